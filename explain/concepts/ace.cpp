// ACE: patches from superpixels (the attribution family's SLIC), k-means on their bottleneck
// activations, ace.py's cluster filter, then TCAV of each kept cluster through tcav().
#include "explain/concepts/ace.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <stdexcept>

#include "engine/interrupt.h"
#include "engine/rng.h"
#include "engine/threads.h"
#include "explain/attribution/slic.h"
#include "explain/concepts/method.h"
#include "explain/concepts/patterns.h"

namespace gb::concepts {

namespace {

constexpr int kMaxPatches = 50000;  // patches held at once (memory: a few P × input size floats)
constexpr int kMaxResolutions = 8;

struct AceOptions {
  PatchOptions patches;
  KMeansOptions kmeans;
  bool channel_mean = true;
  int max_imgs = 40, min_imgs = 20;
  bool paired = true;
  Params tcav;  // the TCAV keys, passed on to tcav()
  double p_threshold = 0.01;
};

// The keys ACE passes on to tcav(), with ace.py's defaults where they differ from tcav's.
const std::vector<std::pair<std::string, std::string>> kTcavOverrides = {
    {"runs", "20"}, {"random_size", "40"}, {"p_threshold", "0.01"}};

AceOptions read_ace_options(ParamReader& r);

}  // namespace

void add_ace_methods(std::vector<Method>& registry) {
  std::vector<ParamInfo> params = {
      {"n_segments", "15,50,80", "SLIC resolutions: segments requested per run, comma-separated, each 2..1000, at most 8"},
      {"compactness", "20", "SLIC compactness (colour on a 0..100 scale), [0.01, 1000]"},
      {"fill", "0.458824", "pixel value outside the segment in a patch (117/255), [0, 1]"},
      {"min_area", "0.001", "segments covering at most this fraction of the image are dropped, [0, 0.5]"},
      {"max_jaccard", "0.5", "a segment overlapping a kept one of an earlier resolution with IoU above this is dropped, [0, 1]"},
      {"channel_mean", "true", "cluster on each channel's spatial mean of the layer (else the flattened activations)"},
      {"n_clusters", "25", "k-means clusters, 2..500"},
      {"n_init", "10", "k-means restarts (k-means++ each; least inertia wins), 1..100"},
      {"kmeans_max_iter", "300", "Lloyd iterations per restart, 1..10000"},
      {"kmeans_tol", "0.0001", "stop when the centres move by less than this x the mean feature variance, [0, 1]"},
      {"max_imgs", "40", "examples per concept (nearest its centre), 2..10000"},
      {"min_imgs", "20", "clusters need more than this many patches, 1..10000 (TCAV needs 2 examples)"},
      {"test", "paired", "paired (ttest_rel over the shared random sets, ace.py) or independent (ttest_ind, tcav)"},
  };
  const auto tcav = std::find_if(registry.begin(), registry.end(), [](const Method& m) { return m.info.name == "tcav"; });
  if (tcav == registry.end()) throw explain::DeclarationError("ace: the tcav method must be registered first");
  for (ParamInfo p : tcav->info.params) {
    for (const auto& [key, value] : kTcavOverrides)
      if (p.name == key) p.default_value = value;
    if (p.name == "seed") p.help += ", and k-means' restarts";
    params.push_back(p);
  }
  registry.push_back(
      {{"ace",
        "Automatic concept discovery: a class's images cut into superpixel patches at several resolutions, "
        "clustered on a layer's activations, each recurring cluster a concept with its TCAV score and p-value",
        params,
        "amiratag/ACE ace.py (Ghorbani et al. 2019): SLIC n_segments 15,50,80, compactness 20; patch = the "
        "segment's bounding box, 117/255 outside the segment, resized bicubic to the input size; channel means at "
        "the bottleneck; KMeans(25) (k-means++, n_init 10, tol 1e-4); clusters with > min_imgs (20) patches kept "
        "if images > size/2, or > size/4 and > N/4, or > size/10 and > N/2; max_imgs (40) examples nearest the "
        "centre; TCAV against 20 random sets of 40, ttest_rel, p < 0.01. Differences: glassbox SLIC (no sigma=1 "
        "smoothing), every segment kept (ace.py drops the last label), inclusive bounding box (ace.py's slice drops "
        "the last row/column), float patches (no uint8 rounding), S > 0 on the logit's gradient (ace.py: S < 0 on "
        "the loss's), CAVs by the tcav method (unit normal of an SGD linear SVM, 33% held out)"},
       Kind::ace,
       [](ParamReader& r) { read_ace_options(r); }});
}

namespace {

std::vector<int> parse_resolutions(const std::string& text) {
  std::vector<int> out;
  size_t p = 0;
  while (p <= text.size()) {
    const size_t q = std::min(text.find(',', p), text.size());
    const std::string item = text.substr(p, q - p);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 2 || v > 1000)
      throw std::invalid_argument("ace: --param n_segments=" + text + ": '" + item + "' is not a whole number in 2..1000");
    out.push_back(int(v));
    p = q + 1;
  }
  if (out.size() > size_t(kMaxResolutions))
    throw std::invalid_argument("ace: --param n_segments=" + text + ": at most " + std::to_string(kMaxResolutions) + " resolutions");
  return out;
}

AceOptions read_ace_options(ParamReader& r) {
  AceOptions o;
  o.patches.n_segments = parse_resolutions(r.text("n_segments"));
  o.patches.compactness = read_number(r, "compactness", 0.01, 1000);
  o.patches.fill = float(read_number(r, "fill", 0, 1));
  o.patches.min_area = read_number(r, "min_area", 0, 0.5);
  o.patches.max_jaccard = read_number(r, "max_jaccard", 0, 1);
  o.channel_mean = r.flag("channel_mean");
  o.kmeans.clusters = read_int(r, "n_clusters", 2, 500);
  o.kmeans.n_init = read_int(r, "n_init", 1, 100);
  o.kmeans.max_iter = read_int(r, "kmeans_max_iter", 1, 10000);
  o.kmeans.tol = read_number(r, "kmeans_tol", 0, 1);
  o.max_imgs = read_int(r, "max_imgs", 2, 10000);
  o.min_imgs = read_int(r, "min_imgs", 1, 10000);
  o.paired = read_choice(r, "test", {"paired", "independent"}) == "paired";
  const std::set<std::string> own = {"n_segments", "compactness", "fill", "min_area", "max_jaccard", "channel_mean",
                                     "n_clusters", "n_init", "kmeans_max_iter", "kmeans_tol", "max_imgs", "min_imgs", "test"};
  for (const ParamInfo& p : r.declared())
    if (!own.count(p.name)) o.tcav[p.name] = r.text(p.name);
  try {
    validate_params("tcav", o.tcav);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("ace: ") + e.what());
  }
  if (o.paired && o.tcav.at("random_baseline") == "pooled")
    throw std::invalid_argument("ace: test=paired pairs run k of a concept and of the baseline, which "
                                "random_baseline=pooled does not have: use test=independent or random_baseline=counterpart");
  o.kmeans.seed = uint64_t(std::stod(o.tcav.at("seed")));
  o.p_threshold = std::stod(o.tcav.at("p_threshold"));
  return o;
}

double squared_distance(const float* a, const double* c, int D) {
  double s = 0;
  for (int d = 0; d < D; ++d) {
    const double t = a[d] - c[d];
    s += t * t;
  }
  return s;
}

// sklearn's greedy k-means++: each new centre is the best of 2 + ln k candidates drawn ∝ D².
std::vector<double> plus_plus(const Tensor& X, int k, Rng& rng) {
  const int N = X.dim(0), D = X.dim(1);
  std::vector<double> centers(size_t(k) * D), closest(N), candidate(N), best_dist(N);
  auto set_center = [&](int c, int row) {
    for (int d = 0; d < D; ++d) centers[size_t(c) * D + d] = X[size_t(row) * D + d];
  };
  set_center(0, int(rng.below(uint32_t(N))));
  double potential = 0;
  for (int n = 0; n < N; ++n) potential += closest[n] = squared_distance(X.data() + size_t(n) * D, centers.data(), D);
  const int trials = 2 + int(std::log(double(k)));
  std::vector<double> cumulative(N);
  for (int c = 1; c < k; ++c) {
    std::partial_sum(closest.begin(), closest.end(), cumulative.begin());
    double best_pot = std::numeric_limits<double>::infinity();
    int best_row = 0;
    for (int t = 0; t < trials; ++t) {
      const double u = double(rng.uniform()) * cumulative.back();
      int row = int(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin());
      row = std::min(row, N - 1);
      double pot = 0;
      const float* xr = X.data() + size_t(row) * D;
      for (int n = 0; n < N; ++n) {
        double s = 0;
        for (int d = 0; d < D; ++d) {
          const double v = double(X[size_t(n) * D + d]) - xr[d];
          s += v * v;
        }
        pot += candidate[n] = std::min(closest[n], s);
      }
      if (pot < best_pot) best_pot = pot, best_row = row, best_dist.swap(candidate);
    }
    set_center(c, best_row);
    closest.swap(best_dist);
    potential = best_pot;
  }
  (void)potential;
  return centers;
}

// Nearest centre of every row (ties: the lower index), split over threads by rows.
void assign(const Tensor& X, const std::vector<double>& centers, int k, std::vector<int>& labels, std::vector<double>& dist2) {
  const int N = X.dim(0), D = X.dim(1), T = std::max(1, std::min(threads(), N / 256 + 1));
  parallel(T, [&](int t) {
    for (int n = t; n < N; n += T) {
      int best = 0;
      double bd = std::numeric_limits<double>::infinity();
      for (int c = 0; c < k; ++c) {
        const double s = squared_distance(X.data() + size_t(n) * D, centers.data() + size_t(c) * D, D);
        if (s < bd) bd = s, best = c;
      }
      labels[n] = best, dist2[n] = bd;
    }
  });
}

struct Run {
  std::vector<double> centers;
  double inertia = 0;
  int iterations = 0;
};

Run lloyd(const Tensor& X, std::vector<double> centers, int k, int max_iter, double tol) {
  const int N = X.dim(0), D = X.dim(1);
  std::vector<int> labels(N, -1), previous;
  std::vector<double> dist2(N), sums(size_t(k) * D);
  std::vector<int> counts(k);
  Run run;
  for (run.iterations = 1; run.iterations <= max_iter; ++run.iterations) {
    previous = labels;
    assign(X, centers, k, labels, dist2);
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (int n = 0; n < N; ++n) {
      ++counts[labels[n]];
      for (int d = 0; d < D; ++d) sums[size_t(labels[n]) * D + d] += X[size_t(n) * D + d];
    }
    // An empty cluster moves to the row farthest from its centre (sklearn relocates likewise).
    for (int c = 0; c < k; ++c)
      if (counts[c] == 0) {
        const int far = int(std::max_element(dist2.begin(), dist2.end()) - dist2.begin());
        dist2[far] = 0;
        --counts[labels[far]];
        for (int d = 0; d < D; ++d) {
          sums[size_t(labels[far]) * D + d] -= X[size_t(far) * D + d];
          sums[size_t(c) * D + d] = X[size_t(far) * D + d];
        }
        labels[far] = c, counts[c] = 1;
      }
    double shift = 0;
    for (int c = 0; c < k; ++c)
      for (int d = 0; d < D; ++d) {
        const double v = counts[c] > 0 ? sums[size_t(c) * D + d] / counts[c] : centers[size_t(c) * D + d];
        shift += (v - centers[size_t(c) * D + d]) * (v - centers[size_t(c) * D + d]);
        centers[size_t(c) * D + d] = v;
      }
    if (labels == previous || shift <= tol) break;
  }
  run.iterations = std::min(run.iterations, max_iter);
  assign(X, centers, k, labels, dist2);
  run.inertia = std::accumulate(dist2.begin(), dist2.end(), 0.0);
  run.centers = std::move(centers);
  return run;
}

}  // namespace

KMeansResult kmeans(const Tensor& X, const KMeansOptions& o) {
  if (X.rank() != 2) throw ShapeError("kmeans: expected rows [N, D], got " + X.shape().str());
  const int N = X.dim(0), D = X.dim(1), k = o.clusters;
  if (k < 1 || N < k)
    throw std::invalid_argument("kmeans: " + std::to_string(N) + " rows for " + std::to_string(k) + " clusters");
  if (o.n_init < 1 || o.max_iter < 1) throw std::invalid_argument("kmeans: n_init and max_iter must be >= 1");
  for (size_t i = 0; i < X.size(); ++i)
    if (!std::isfinite(X[i])) throw std::invalid_argument("kmeans: not finite at row " + std::to_string(i / D));
  // sklearn's tolerance: tol × the mean over features of their variance.
  double variance = 0;
  for (int d = 0; d < D; ++d) {
    double m = 0, s = 0;
    for (int n = 0; n < N; ++n) m += X[size_t(n) * D + d];
    m /= N;
    for (int n = 0; n < N; ++n) s += (X[size_t(n) * D + d] - m) * (X[size_t(n) * D + d] - m);
    variance += s / N;
  }
  const double tol = o.tol * variance / D;
  Run best;
  best.inertia = std::numeric_limits<double>::infinity();
  for (int i = 0; i < o.n_init; ++i) {
    poll_interrupt();  // no forward passes to stop at
    Rng rng(mix_seed(mix_seed(o.seed, 0x6b6d65616e73ULL), uint64_t(i)));
    Run run = lloyd(X, plus_plus(X, k, rng), k, o.max_iter, tol);
    if (run.inertia < best.inertia) best = std::move(run);
  }
  KMeansResult r;
  r.centers = Tensor({k, D});
  for (size_t i = 0; i < best.centers.size(); ++i) r.centers[i] = float(best.centers[i]);
  r.labels.resize(N);
  r.distance.resize(N);
  assign(X, best.centers, k, r.labels, r.distance);
  for (double& d : r.distance) d = std::sqrt(d);
  r.inertia = best.inertia;
  r.iterations = best.iterations;
  return r;
}

// ---- patches ---------------------------------------------------------------------------------

namespace {

// PIL's bicubic kernel (a = -0.5).
double cubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

// PIL's resampling weights from `in` to `out` samples: output i reads inputs first[i] .. first[i] +
// weights[i].size() − 1, the window cut at the edges and its weights renormalized.
struct Taps {
  std::vector<int> first;
  std::vector<std::vector<double>> weights;
};

Taps taps(int in, int out) {
  Taps t;
  const double scale = double(in) / out, filterscale = std::max(scale, 1.0), support = 2 * filterscale;
  for (int i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(0, int(center - support + 0.5)), hi = std::min(in, int(center + support + 0.5));
    std::vector<double> w;
    double sum = 0;
    for (int x = lo; x < hi; ++x) sum += w.emplace_back(cubic((x - center + 0.5) / filterscale));
    for (double& v : w) v = sum != 0 ? v / sum : 0;
    t.first.push_back(lo);
    t.weights.push_back(std::move(w));
  }
  return t;
}

}  // namespace

void patch_from_mask(const float* image, int C, int H, int W, const uint8_t* mask, float fill, int out_h, int out_w,
                     float* out) {
  int y0 = H, y1 = -1, x0 = W, x1 = -1;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      if (mask[size_t(y) * W + x]) y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
  if (y1 < 0) throw std::invalid_argument("patch_from_mask: the mask is empty");
  const int bh = y1 - y0 + 1, bw = x1 - x0 + 1;
  const Taps ty = taps(bh, out_h), tx = taps(bw, out_w);
  std::vector<double> box(size_t(bh) * bw), rows(size_t(bh) * out_w);
  for (int c = 0; c < C; ++c) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (int y = 0; y < bh; ++y)
      for (int x = 0; x < bw; ++x) {
        const size_t p = size_t(y0 + y) * W + (x0 + x);
        const double v = mask[p] ? image[size_t(c) * H * W + p] : fill;
        box[size_t(y) * bw + x] = v, lo = std::min(lo, v), hi = std::max(hi, v);
      }
    for (int y = 0; y < bh; ++y)  // horizontal pass
      for (int i = 0; i < out_w; ++i) {
        double s = 0;
        for (size_t j = 0; j < tx.weights[i].size(); ++j) s += tx.weights[i][j] * box[size_t(y) * bw + tx.first[i] + j];
        rows[size_t(y) * out_w + i] = s;
      }
    for (int i = 0; i < out_h; ++i)  // vertical pass
      for (int x = 0; x < out_w; ++x) {
        double s = 0;
        for (size_t j = 0; j < ty.weights[i].size(); ++j) s += ty.weights[i][j] * rows[size_t(ty.first[i] + j) * out_w + x];
        out[(size_t(c) * out_h + i) * out_w + x] = float(std::clamp(s, lo, hi));  // PIL clips to its uint8 range
      }
  }
}

Patches extract_patches(const Tensor& images, const PatchOptions& o, const std::function<void(int, int)>& progress) {
  if (images.rank() != 4) throw ShapeError("extract_patches: expected images [N, C, H, W], got " + images.shape().str());
  if (o.n_segments.empty()) throw std::invalid_argument("extract_patches: no SLIC resolutions");
  const int N = images.dim(0), C = images.dim(1), H = images.dim(2), W = images.dim(3);
  const size_t HW = size_t(H) * W;
  Patches out;
  out.height = H, out.width = W;
  std::vector<float> pixels;  // kept patches, appended
  for (int i = 0; i < N; ++i) {
    const Tensor img = images.sample(i);
    // Kept segments of earlier resolutions: their label maps, ids and sizes, to test overlaps.
    std::vector<std::vector<int>> maps;
    std::vector<std::vector<int>> kept_ids, sizes;
    for (int segments : o.n_segments) {
      explain::SlicOptions so;
      so.segments = segments;
      so.compactness = o.compactness;
      const explain::Segmentation seg = explain::slic(img, so);
      std::vector<int> size(seg.count, 0), kept;
      for (int l : seg.labels) ++size[l];
      // overlap[r][s·count_r + m]: pixels of segment s (this run) in segment m of earlier run r.
      std::vector<std::vector<int>> overlap(maps.size());
      for (size_t r = 0; r < maps.size(); ++r) {
        const int cr = int(sizes[r].size());
        overlap[r].assign(size_t(seg.count) * cr, 0);
        for (size_t p = 0; p < HW; ++p) ++overlap[r][size_t(seg.labels[p]) * cr + maps[r][p]];
      }
      for (int s = 0; s < seg.count; ++s) {
        if (double(size[s]) / double(HW) <= o.min_area) continue;
        bool unique = true;
        for (size_t r = 0; r < maps.size() && unique; ++r)
          for (int m : kept_ids[r]) {
            const int cr = int(sizes[r].size()), inter = overlap[r][size_t(s) * cr + m];
            if (double(inter) / double(size[s] + sizes[r][m] - inter) > o.max_jaccard) {
              unique = false;
              break;
            }
          }
        if (unique) kept.push_back(s);
      }
      for (int s : kept) {
        if (int(out.image.size()) >= kMaxPatches)
          throw std::invalid_argument("ace: more than " + std::to_string(kMaxPatches) + " patches; use fewer images or segments");
        const size_t at = out.masks.size();
        out.masks.resize(at + HW);
        for (size_t p = 0; p < HW; ++p) out.masks[at + p] = seg.labels[p] == s;
        const size_t px = pixels.size();
        pixels.resize(px + size_t(C) * HW);
        patch_from_mask(img.data(), C, H, W, out.masks.data() + at, o.fill, H, W, pixels.data() + px);
        out.image.push_back(i);
      }
      maps.push_back(seg.labels);
      kept_ids.push_back(std::move(kept));
      sizes.push_back(std::move(size));
    }
    if (progress) progress(i + 1, N);
  }
  out.x = Tensor(Shape{int(out.image.size()), C, H, W});
  std::copy(pixels.begin(), pixels.end(), out.x.data());
  return out;
}

bool keep_cluster(int size, int images, int discovery, int min_imgs) {
  if (size <= min_imgs) return false;
  const bool highly_common = images > 0.5 * size;
  const bool mildly = images > 0.25 * size && images > 0.25 * discovery;
  const bool spread = images > 0.1 * size && images > 0.5 * discovery;
  return highly_common || mildly || spread;
}

// ---- ACE ---------------------------------------------------------------------------------------

namespace {

Tensor gather_rows(const Tensor& x, const std::vector<int>& rows) {
  Tensor out(x.shape().with_batch(int(rows.size())));
  const size_t s = x.sample_size();
  for (size_t i = 0; i < rows.size(); ++i) std::copy_n(x.data() + rows[i] * s, s, out.data() + i * s);
  return out;
}

// [P, C, h, w] -> [P, C] channel means; anything else flattened to [P, D].
Tensor cluster_features(const Tensor& a, bool channel_mean) {
  const int P = a.dim(0);
  if (!channel_mean || a.rank() < 4) return a.reshaped(Shape{P, int(a.sample_size())});
  const int C = a.dim(1);
  const size_t S = a.sample_size() / C;
  Tensor f({P, C});
  for (int p = 0; p < P; ++p)
    for (int c = 0; c < C; ++c) {
      double s = 0;
      const float* v = a.data() + (size_t(p) * C + c) * S;
      for (size_t j = 0; j < S; ++j) s += v[j];
      f[size_t(p) * C + c] = float(s / double(S));
    }
  return f;
}

}  // namespace

AceResult ace(Graph& g, const AceRequest& q, const Params& params) {
  const Method& m = find_method("ace", Kind::ace);
  ParamReader reader(params, m.info);
  const AceOptions o = read_ace_options(reader);
  reader.done();
  check_examples(g, q.images, "ace images");
  check_examples(g, q.inputs, "ace inputs");
  check_examples(g, q.random_pool, "random pool");
  if (q.images.rank() != 4) throw std::invalid_argument("ace: needs image inputs [C, H, W], the model takes " + g.input_shape().str());
  if (q.layer < -1 || q.layer >= q.target.at(g))
    throw std::invalid_argument("ace: layer " + std::to_string(q.layer) + " is not below the target's node");
  q.target.check(g, q.inputs.batch());
  auto report = [&](const std::string& stage, int done, int total) {
    if (q.progress) q.progress(stage, done, total);
  };

  AceResult r;
  r.layer = layer_name(g, q.layer);
  r.p_threshold = o.p_threshold;
  r.patches = extract_patches(q.images, o.patches, [&](int d, int t) { report("patches", d, t); });
  Tensor x = r.patches.x.clone();
  if (q.to_input) q.to_input(x);
  const int P = x.batch();
  if (P < o.kmeans.clusters)
    throw std::invalid_argument("ace: " + std::to_string(P) + " patches for n_clusters=" + std::to_string(o.kmeans.clusters));
  const int batch = std::stoi(o.tcav.at("batch"));
  const Tensor acts = activations(g, x, {q.layer}, batch, [&](int d, int t) { report("patch activations", d, t); })[0];
  r.clusters = kmeans(cluster_features(acts, o.channel_mean), o.kmeans);
  report("k-means", 1, 1);

  // ace.py's filter; a concept's examples are its max_imgs patches nearest the centre.
  const int K = o.kmeans.clusters;
  std::vector<std::vector<int>> members(K);
  for (int p = 0; p < P; ++p) members[r.clusters.labels[p]].push_back(p);
  for (int c = 0; c < K; ++c) {
    std::set<int> images;
    for (int p : members[c]) images.insert(r.patches.image[p]);
    if (!keep_cluster(int(members[c].size()), int(images.size()), q.images.batch(), o.min_imgs)) continue;
    AceConcept found;
    found.name = "concept" + std::to_string(r.concepts.size() + 1);
    found.cluster = c, found.size = int(members[c].size()), found.images = int(images.size());
    found.members = members[c];
    std::stable_sort(found.members.begin(), found.members.end(),
                     [&](int a, int b) { return r.clusters.distance[a] < r.clusters.distance[b]; });
    if (int(found.members.size()) > o.max_imgs) found.members.resize(o.max_imgs);
    r.concepts.push_back(std::move(found));
  }
  if (r.concepts.empty()) return r;

  TcavRequest tq;
  for (const AceConcept& c : r.concepts) tq.concepts.push_back({c.name, gather_rows(x, c.members)});
  tq.random_pool = q.random_pool;
  tq.inputs = q.inputs;
  tq.target = q.target;
  tq.layers = {q.layer};
  tq.progress = q.progress;
  TcavResult t = tcav(g, tq, o.tcav, "tcav");
  r.runs = t.runs;
  r.random = std::move(t.layers[0].random);
  for (size_t i = 0; i < r.concepts.size(); ++i) {
    ConceptScores& s = r.concepts[i].scores;
    s = std::move(t.layers[0].concepts[i]);
    if (o.paired) {  // run k of a concept and of the baseline share random set k
      s.sign_test = ttest_rel(s.sign_count, r.random.sign_count);
      s.magnitude_test = ttest_rel(s.magnitude, r.random.magnitude);
    }
    s.significant = s.sign_test.p < o.p_threshold;
    s.significant_bonferroni = s.sign_test.p < o.p_threshold / double(r.concepts.size());
  }
  std::stable_sort(r.concepts.begin(), r.concepts.end(), [](const AceConcept& a, const AceConcept& b) {
    return mean(a.scores.sign_count) > mean(b.scores.sign_count);
  });
  return r;
}

}  // namespace gb::concepts
