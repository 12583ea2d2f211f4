#include "explain/metrics/common.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "explain/attribution/explain.h"
#include "explain/attribution/perturbation.h"
#include "engine/finite.h"

namespace gb::metrics {

// ---- parameters ---------------------------------------------------------------------------------

static std::string range_text(double lo, double hi) {
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return std::string(b);
  };
  return "[" + num(lo) + ", " + num(hi) + "]";
}

int integer_in(ParamReader& r, const std::string& key, long lo, long hi) {
  const int v = r.integer(key);
  if (v < lo || v > hi)
    throw std::invalid_argument(r.method() + ": --param " + key + "=" + r.text(key) + " outside " +  // as given (1e-9 read 0.000000)
                                range_text(double(lo), double(hi)));
  return v;
}

double number_in(ParamReader& r, const std::string& key, double lo, double hi) {
  const double v = r.number(key);
  if (v < lo || v > hi)
    throw std::invalid_argument(r.method() + ": --param " + key + "=" + r.text(key) + " outside " +  // as given (1e-9 read 0.000000)
                                range_text(lo, hi));
  return v;
}

std::string choice(ParamReader& r, const std::string& key, const std::vector<std::string>& choices) {
  const std::string v = r.text(key);
  std::string known;
  for (const std::string& c : choices) {
    if (c == v) return v;
    known += (known.empty() ? "" : ", ") + c;
  }
  throw std::invalid_argument(r.method() + ": --param " + key + "=" + v + " (known: " + known + ")");
}

// ---- attributions --------------------------------------------------------------------------------

Tensor input_attribution(Graph& g, const Tensor& x, const Target& t, const std::string& method, const Params& params) {
  Tensor a = explain::explain(g, x, t, method, params).attribution;
  if (a.shape() != x.shape())
    throw std::invalid_argument(method + " gives attributions " + a.shape().str() + ", not shaped like the inputs " +
                                x.shape().str() + ": the metrics evaluate attributions of the input (drop its layer "
                                "parameter)");
  return a;
}

Tensor attribution_of(Graph& g, const Tensor& x, const Target& t, const Explanation& e) {
  if (!e.attribution.empty()) {
    if (e.attribution.shape() != x.shape())
      shape_error("the given attribution of " + e.method, x.shape(), e.attribution.shape());
    return e.attribution.clone();
  }
  return input_attribution(g, x, t, e.method, e.params);
}

void preprocess_rows(float* a, int rows, size_t D, bool normalise, bool abs) {
  for (int n = 0; n < rows; ++n) {
    float* p = a + size_t(n) * D;
    if (normalise) {
      float m = 0;
      for (size_t i = 0; i < D; ++i) m = std::max(m, std::fabs(p[i]));
      if (m > 0)
        for (size_t i = 0; i < D; ++i) p[i] /= m;
    }
    if (abs)
      for (size_t i = 0; i < D; ++i) p[i] = std::fabs(p[i]);
  }
}

void preprocess(Tensor& a, bool normalise, bool abs) {
  if (!a.empty()) preprocess_rows(a.data(), a.batch(), a.sample_size(), normalise, abs);
}

Params params_for_rows(const Params& p, const Rows& rows, int N) {
  Params out = p;
  for (auto& [key, t] : out.tensors) {
    if (t.batch() != N || N == 1) continue;  // one tensor for every sample: broadcast as it is
    const size_t D = t.sample_size();
    Tensor g(t.shape().with_batch(int(rows.size())));
    for (size_t i = 0; i < rows.size(); ++i) std::memcpy(g.data() + i * D, t.data() + size_t(rows[i]) * D, D * 4);
    t = g;
  }
  return out;
}

bool read_softmax(ParamReader& r, const Graph& g, const Target& t) {
  const bool given = r.given("softmax");
  const bool on = r.flag("softmax");
  if (on && !t.is_class(g)) {
    if (given)
      throw std::invalid_argument(r.method() + ": --param softmax=true needs class targets (the target is " +
                                  t.describe(g) + ")");
    return false;  // the default follows Quantus for classes; a unit's value has no softmax
  }
  return on;
}

std::vector<double> score_rows(Graph& g, const Target& target, bool softmax, int N, int S, const RowFill& fill,
                               const Progress& progress, int batch) {
  const Shape sample = g.input_shape();
  const size_t D = sample.numel();
  const long total = long(N) * S;
  std::vector<double> scores(static_cast<size_t>(total));
  Tensor buffer(Shape::batch_of(int(std::min<long>(total, batch)), sample));
  Rows rows;
  for (long r0 = 0; r0 < total; r0 += batch) {
    const int B = int(std::min<long>(batch, total - r0));
    rows.resize(B);
    for (int i = 0; i < B; ++i) {
      const long r = r0 + i;
      rows[i] = int(r / S);
      fill(rows[i], int(r % S), buffer.data() + size_t(i) * D);
    }
    const std::vector<float> s = explain::target_scores(g, buffer.slice(0, B), target.gather(rows), softmax);
    // Checked here (the inputs were checked finite): every value of the metric would be NaN.
    for (int i = 0; i < B && !nonfinite_allowed(); ++i)
      if (!std::isfinite(s[i]))
        throw std::range_error("the model's score of input " + std::to_string(rows[i]) + " or a perturbed copy of it is " +
                               std::to_string(s[i]) + ": the perturbation overflows the model (a perturb_baseline far "
                               "outside the inputs' range?)");
    std::copy(s.begin(), s.end(), scores.begin() + r0);
    if (progress) progress(r0 + B, total);
  }
  return scores;
}

std::vector<double> scores_of(Graph& g, const Tensor& x, const Target& target, bool softmax) {
  const size_t D = x.sample_size();
  return score_rows(g, target, softmax, x.batch(), 1,
                    [&](int n, int, float* row) { std::memcpy(row, x.data() + size_t(n) * D, D * 4); });
}

Tensor logits_of(Graph& g, const Tensor& x) {
  Tensor out(g.shape(g.output(), x.batch()));
  const size_t K = out.sample_size();
  for (int b = 0; b < x.batch(); b += 256) {
    const int e = std::min(x.batch(), b + 256);
    const Tensor& y = g.forward(x.slice(b, e));
    std::memcpy(out.data() + size_t(b) * K, y.data(), y.size() * 4);
  }
  return out;
}

void explain_rows(Graph& g, const Tensor& x, const Target& target, const Explanation& e, int S, const RowFill& fill,
                  const RowVisit& visit, bool with_logits, const Progress& progress, int batch) {
  const int N = x.batch();
  const size_t D = x.sample_size();
  const long total = long(N) * S;
  Tensor buffer(x.shape().with_batch(int(std::min<long>(total, batch))));
  Rows rows;
  for (long r0 = 0; r0 < total; r0 += batch) {
    const int B = int(std::min<long>(batch, total - r0));
    rows.resize(B);
    for (int i = 0; i < B; ++i) {
      rows[i] = int((r0 + i) / S);
      fill(rows[i], int((r0 + i) % S), buffer.data() + size_t(i) * D);
    }
    const Tensor xs = buffer.slice(0, B);
    const Tensor a = input_attribution(g, xs, target.gather(rows), e.method, params_for_rows(e.params, rows, N));
    const Tensor logits = with_logits ? logits_of(g, xs) : Tensor();
    const size_t K = logits.empty() ? 0 : logits.sample_size();
    for (int i = 0; i < B; ++i)
      visit(rows[i], int((r0 + i) % S), xs.data() + size_t(i) * D, a.data() + size_t(i) * D,
            with_logits ? logits.data() + i * K : nullptr);
    if (progress) progress(r0 + B, total);
  }
}

// ---- baselines -----------------------------------------------------------------------------------

Baseline read_baseline(ParamReader& r, bool allow_blur) {
  const std::string key = "perturb_baseline", v = r.text(key);
  Baseline b;
  if (v == "black") b.kind = Baseline::Kind::black;
  else if (v == "white") b.kind = Baseline::Kind::white;
  else if (v == "mean") b.kind = Baseline::Kind::mean;
  else if (v == "uniform") b.kind = Baseline::Kind::uniform;
  else if (v == "blur" && allow_blur) b.kind = Baseline::Kind::blur;
  else {
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (!v.empty() && !*end && std::isfinite(d) && !explain::float32_finite(d))
      throw std::invalid_argument(r.method() + ": --param " + key + "=" + v + " is beyond float32's range (3.4e38)");
    if (v.empty() || *end || !std::isfinite(d))
      throw std::invalid_argument(r.method() + ": --param " + key + "=" + v +
                                  " (known: black, white, mean, uniform" + (allow_blur ? ", blur" : "") + ", or a number)");
    b.kind = Baseline::Kind::value;
    b.value = float(d);
  }
  return b;
}

// Separable Gaussian blur of each H×W plane, truncated at 3σ, borders clamped (the kernel is
// renormalised over the pixels inside, so a constant image stays constant).
static void blur(const float* x, int C, int H, int W, double sigma, float* out) {
  const int radius = std::max(1, int(std::ceil(3 * sigma)));
  std::vector<double> k(2 * radius + 1);
  for (int i = -radius; i <= radius; ++i) k[i + radius] = std::exp(-0.5 * i * i / (sigma * sigma));
  std::vector<double> tmp(size_t(H) * W);
  for (int c = 0; c < C; ++c) {
    const float* p = x + size_t(c) * H * W;
    float* o = out + size_t(c) * H * W;
    for (int y = 0; y < H; ++y)
      for (int xx = 0; xx < W; ++xx) {
        double s = 0, w = 0;
        for (int i = -radius; i <= radius; ++i)
          if (xx + i >= 0 && xx + i < W) s += k[i + radius] * p[y * W + xx + i], w += k[i + radius];
        tmp[size_t(y) * W + xx] = s / w;
      }
    for (int y = 0; y < H; ++y)
      for (int xx = 0; xx < W; ++xx) {
        double s = 0, w = 0;
        for (int i = -radius; i <= radius; ++i)
          if (y + i >= 0 && y + i < H) s += k[i + radius] * tmp[size_t(y + i) * W + xx], w += k[i + radius];
        o[y * W + xx] = float(s / w);
      }
  }
}

void baseline_values(const Baseline& b, const float* x, const Shape& sample, uint64_t seed, float* out) {
  const size_t D = sample.numel();
  switch (b.kind) {
    case Baseline::Kind::black: std::fill_n(out, D, *std::min_element(x, x + D)); break;
    case Baseline::Kind::white: std::fill_n(out, D, *std::max_element(x, x + D)); break;
    case Baseline::Kind::mean: std::fill_n(out, D, float(sum(x, D) / double(D))); break;
    case Baseline::Kind::value: std::fill_n(out, D, b.value); break;
    case Baseline::Kind::uniform: {
      Rng rng(sample_seed(seed, x, D));
      for (size_t i = 0; i < D; ++i) out[i] = rng.uniform();
      break;
    }
    case Baseline::Kind::blur:
      if (sample.rank != 3)  // skipped, not fatal: blur is insertion's default, and a family run goes on
        throw NotApplicable("perturb_baseline=blur needs image inputs [C,H,W], not " + sample.str());
      blur(x, sample[0], sample[1], sample[2], b.sigma, out);
      break;
  }
}

// ---- orders and seeds ----------------------------------------------------------------------------

std::vector<int> order_decreasing(const float* a, size_t D) {
  std::vector<int> o(D);
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [a](int i, int j) { return a[i] > a[j]; });
  return o;
}

std::vector<int> order_increasing(const float* a, size_t D) {
  std::vector<int> o(D);
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [a](int i, int j) { return a[i] < a[j]; });
  return o;
}

uint64_t sample_seed(uint64_t seed, const float* x, size_t D) {
  uint64_t h = 1469598103934665603ULL ^ (seed * 0x9e3779b97f4a7c15ULL);  // FNV-1a over the bits
  for (size_t i = 0; i < D; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    h = (h ^ bits) * 1099511628211ULL;
  }
  return h;
}

std::vector<std::vector<int>> patch_grid(int H, int W, int size) {
  auto pad_before = [size](int d) { return d % size == 0 ? 0 : (size - d % size) / 2; };  // floor of half
  const int py = pad_before(H), px = pad_before(W);
  const int ny = (H + size - 1) / size, nx = (W + size - 1) / size;
  std::vector<std::vector<int>> patches;
  for (int by = 0; by < ny; ++by)
    for (int bx = 0; bx < nx; ++bx) {
      std::vector<int> p;
      for (int y = by * size - py; y < (by + 1) * size - py; ++y)
        for (int x = bx * size - px; x < (bx + 1) * size - px; ++x)
          if (y >= 0 && y < H && x >= 0 && x < W) p.push_back(y * W + x);
      if (!p.empty()) patches.push_back(std::move(p));
    }
  return patches;
}

double patch_sum(const float* a, int C, size_t HW, const std::vector<int>& pixels) {
  double s = 0;
  for (int c = 0; c < C; ++c)
    for (int i : pixels) s += a[size_t(c) * HW + i];
  return s;
}

void require_images(const Tensor& x, const std::string& metric) {
  if (x.rank() != 4) throw NotApplicable(metric + ": needs images [N,C,H,W], got " + x.shape().str());
}

}  // namespace gb::metrics
