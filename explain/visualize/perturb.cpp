// What the model needs to see (survey §4.4.2): the minimal image of Zhou et al. 2015 (remove, one
// at a time, the segment whose removal lowers the class score least, while the prediction holds)
// and the meaningful-perturbation masks of Fong & Vedaldi 2017 (optimize a smooth mask that
// deletes the class evidence by blurring or graying, or that preserves it, with area and TV
// penalties). Both run batched forwards (and for masks, backwards) over the model's graph.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <cmath>
#include <stdexcept>

#include "engine/argmax.h"
#include "engine/rng.h"
#include "explain/visualize/method.h"

namespace gb::visualize {

namespace {

// The image with every pixel of `removed` segments replaced by `fill` (same shape as x0).
void compose(const float* x0, const float* fill, const std::vector<int>& seg, const std::vector<char>& removed, int C,
             size_t HW, float* out) {
  for (int c = 0; c < C; ++c)
    for (size_t i = 0; i < HW; ++i) out[c * HW + i] = removed[seg[i]] ? fill[c * HW + i] : x0[c * HW + i];
}

// The replacement of removed pixels: black, gray (pixels 0, 0.5 through the bounds) or the blurred image.
Tensor fill_images(const Tensor& x, const std::string& kind, double sigma, const Bounds& b) {
  Tensor f = x.clone();
  if (kind == "blur") {
    gaussian_blur(f, sigma);
    return f;
  }
  const int C = x.dim(1);
  const size_t HW = size_t(x.dim(2)) * x.dim(3);
  for (int n = 0; n < x.batch(); ++n)
    for (int c = 0; c < C; ++c)
      std::fill_n(f.data() + (size_t(n) * C + c) * HW, HW, b.from_pixel(c, kind == "gray" ? 0.5f : 0.f));
  return f;
}

// Segment labels per input (0..S-1, renumbered densely): the given label images, or square cells.
std::vector<std::vector<int>> read_segments(ParamReader& r, const Graph& g, int N, int& cell) {
  const int H = g.input_shape()[1], W = g.input_shape()[2];
  cell = read_int(r, "cell", 1, std::max(H, W));
  std::vector<std::vector<int>> seg(N, std::vector<int>(size_t(H) * W));
  const Tensor* given = r.tensor("segments");
  if (!given && r.given("segments"))
    throw std::invalid_argument("minimal-image: --param segments must be a label image (FILE.npy on the command line)");
  if (given && given->size() != size_t(H) * W && given->size() != size_t(N) * H * W)
    throw ShapeError("minimal-image: segments " + given->shape().str() + " for " + std::to_string(N) + " inputs of " +
                     std::to_string(H) + "x" + std::to_string(W) + " (give H x W labels, or N of them)");
  for (int n = 0; n < N; ++n) {
    std::vector<int> ids;  // dense renumbering of the given labels
    for (int i = 0; i < H * W; ++i) {
      int label = (i / W / cell) * ((W + cell - 1) / cell) + (i % W) / cell;
      if (given) {
        const float v = (*given)[(given->size() == size_t(H) * W ? 0 : size_t(n) * H * W) + i];
        if (!(v >= 0 && v < 1e6f) || v != std::floor(v)) {
          char text[32];  // (as the float32 it was read into: an int32 2147483647 is 2147483648 here)
          std::snprintf(text, sizeof text, "%.10g", double(v));
          throw std::invalid_argument("minimal-image: segment label " + std::string(text) + " at pixel " +
                                      std::to_string(i) + " is not a whole number in [0, 1000000)");
        }
        label = int(v);
      }
      auto it = std::find(ids.begin(), ids.end(), label);
      seg[n][i] = int(it - ids.begin());
      if (it == ids.end()) ids.push_back(label);
    }
  }
  return seg;
}

Result run_minimal_image(Graph& g, const Request& q, ParamReader& r) {
  require_inputs(q, "minimal-image");
  const std::vector<Unit> units = per_input_units(g, q, "minimal-image", true);
  const Score score = parse_score(read_choice(r, "score", {"logit", "prob"}));
  const std::string fill_kind = read_choice(r, "fill", {"black", "gray", "blur"});
  const double sigma = read_number(r, "blur_sigma", 0, 10);
  int cell = 0;
  const int N = q.inputs.batch(), C = g.input_shape()[0], K = g.classes();
  const std::vector<std::vector<int>> seg = read_segments(r, g, N, cell);
  const size_t HW = seg[0].size(), D = q.inputs.sample_size();
  const Tensor fill = fill_images(q.inputs, fill_kind, sigma, q.bounds);

  std::vector<int> S(N);
  std::vector<std::vector<char>> removed(N);
  std::vector<std::vector<double>> curve(N);
  std::vector<char> done(N, 0);
  for (int n = 0; n < N; ++n) {
    S[n] = 1 + *std::max_element(seg[n].begin(), seg[n].end());
    removed[n].assign(S[n], 0);
  }
  const Tensor& start_logits = g.forward(q.inputs);
  std::vector<double> start(N);
  std::vector<int> start_pred(N);
  for (int n = 0; n < N; ++n) {
    const float* z = start_logits.data() + size_t(n) * K;
    start[n] = unit_value(units[n], score, z, Shape{K});
    start_pred[n] = argmax(z, K);
    curve[n].push_back(start[n]);
  }
  // Each round: every input's candidates (its image with one more segment removed) in one batch.
  Tensor batch;
  std::vector<std::pair<int, int>> who;  // (input, segment) of each candidate row
  for (int round = 0;; ++round) {
    who.clear();
    for (int n = 0; n < N; ++n)
      for (int s = 0; s < S[n] && !done[n]; ++s)
        if (!removed[n][s]) who.emplace_back(n, s);
    if (who.empty()) break;
    batch.resize(Shape::batch_of(int(who.size()), g.input_shape()));
    for (size_t i = 0; i < who.size(); ++i) {
      auto [n, s] = who[i];
      removed[n][s] = 1;
      compose(q.inputs.data() + n * D, fill.data() + n * D, seg[n], removed[n], C, HW, batch.data() + i * D);
      removed[n][s] = 0;
    }
    const Tensor& z = g.forward(batch);
    std::vector<int> pick(N, -1);
    std::vector<double> best(N, -INFINITY);
    for (size_t i = 0; i < who.size(); ++i) {
      auto [n, s] = who[i];
      const float* row = z.data() + i * K;
      const int pred = argmax(row, K);
      const double v = unit_value(units[n], score, row, Shape{K});
      if (pred == units[n].index && v > best[n]) best[n] = v, pick[n] = s;  // ties: the lower segment
    }
    for (int n = 0; n < N; ++n) {
      if (done[n]) continue;
      if (pick[n] < 0) {
        done[n] = 1;
        continue;
      }
      removed[n][pick[n]] = 1;
      curve[n].push_back(best[n]);
    }
    if (q.progress) q.progress(round + 1, std::max(S[0], 1));
  }
  Result res;
  res.panels.push_back({"input", q.inputs.clone(), Draw::pixels, true});
  res.panels.push_back({"image", Tensor(q.inputs.shape()), Draw::pixels});
  res.panels.push_back({"kept", Tensor(Shape{N, 1, g.input_shape()[1], g.input_shape()[2]}), Draw::unsigned_map});
  for (int n = 0; n < N; ++n) {
    compose(q.inputs.data() + n * D, fill.data() + n * D, seg[n], removed[n], C, HW,
            res.panels[1].values.data() + n * D);
    int kept_px = 0;
    for (size_t i = 0; i < HW; ++i) {
      const bool kept = !removed[n][seg[n][i]];
      res.panels[2].values[n * HW + i] = kept ? 1.f : 0.f;
      kept_px += kept;
    }
    const int kept = int(std::count(removed[n].begin(), removed[n].end(), 0));
    Row row;
    row.name = input_name(q, n) + "_minimal_" + units[n].name(g);
    row.caption = label(g, q, units[n]) + "\n" + std::to_string(kept) + "/" + std::to_string(S[n]) + " segments kept";
    row.values = {{"segments", S[n]}, {"kept", kept}, {"kept_pixels", kept_px}, {"start_score", start[n]},
                  {"score", curve[n].back()}, {"start_predicted", start_pred[n]},
                  {"target", units[n].index}};
    row.curves["score"] = curve[n];
    res.rows.push_back(std::move(row));
  }
  return res;
}

// Fong & Vedaldi's objective (what the mask minimizes) and its gradient with respect to m, per row:
// deletion:     λ₁·mean|1 − m| + λ_TV·TV(m) + f_c(Φ(x₀; m))
// preservation: λ₁·mean|m|     + λ_TV·TV(m) − f_c(Φ(x₀; m))
struct MaskLoss {
  bool deletion;
  double l1, tv, beta;
  double operator()(const float* m, int h, int w, double f, const float* g_f, float* grad) const {
    const size_t n = size_t(h) * w;
    double area = 0;
    for (size_t i = 0; i < n; ++i) {
      const double d = deletion ? 1.0 - m[i] : m[i];
      area += std::fabs(d) / double(n);
      // torch's |.| has gradient sign(.) with sign(0) = 0.
      const double s = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0;
      grad[i] = float(l1 * s * (deletion ? -1.0 : 1.0) / double(n) + (deletion ? g_f[i] : -g_f[i]));
    }
    const double t = tv_mean(m, h, w, beta, grad, tv);
    return l1 * area + tv * t + (deletion ? f : -f);
  }
};

Result run_mask(Graph& g, const Request& q, ParamReader& r) {
  require_inputs(q, "mask");
  const std::vector<Unit> units = per_input_units(g, q, "mask", true);
  const bool deletion = read_choice(r, "variant", {"deletion", "preservation"}) == "deletion";
  const std::string perturbation = read_choice(r, "perturbation", {"blur", "black", "gray"});
  const double sigma = read_number(r, "blur_sigma", 0, 10);
  const int scale = read_int(r, "mask_scale", 1, 28);
  const int steps = read_int(r, "steps", 1, 100000);
  const double lr = read_number(r, "lr", 1e-12, 1e6);
  const MaskLoss loss{deletion, read_number(r, "l1", 0, 1e6), read_number(r, "tv", 0, 1e6), read_number(r, "tv_beta", 1, 10)};
  const double noise = read_number(r, "noise", 0, 10);
  const uint64_t seed = uint64_t(read_int(r, "seed", 0, INT_MAX));
  const Score score = parse_score(read_choice(r, "score", {"prob", "logit", "logprob"}));
  const double m0 = read_number(r, "start", 0, 1);

  const int N = q.inputs.batch(), C = g.input_shape()[0], H = g.input_shape()[1], W = g.input_shape()[2];
  const int h = (H + scale - 1) / scale, w = (W + scale - 1) / scale;
  const Tensor& x0 = q.inputs;
  const Tensor base = fill_images(x0, perturbation, sigma, q.bounds);  // what deleted pixels become
  Tensor m(Shape{N, 1, h, w}, float(m0)), M, phi(x0.shape()), g_M(Shape{N, 1, H, W}), g_m, grad(Shape{N, 1, h, w}), seed_t;
  const Resize up(h, w, H, W);
  const Objective f = unit_objective(g, units, score);
  StepState adam(m.shape());
  std::vector<double> value(N), L(N), start = evaluate(g, f, x0);
  std::vector<std::vector<double>> curve(N);
  std::vector<Rng> rng;
  for (int n = 0; n < N; ++n) rng.emplace_back(mix_seed(seed, 0x6d61736b));  // the same stream for every input: one by one = batch
  const size_t HW = size_t(H) * W, D = x0.sample_size();
  BackwardOptions bo;
  auto perturb = [&](bool with_noise) {
    up.forward(m, M);
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c)
        for (size_t i = 0; i < HW; ++i) {
          const size_t at = n * D + c * HW + i;
          phi[at] = base[at] + M[n * HW + i] * (x0[at] - base[at]) + (with_noise && noise > 0 ? float(noise * rng[n].normal()) : 0.f);
        }
  };
  for (int t = 0; t < steps; ++t) {
    perturb(true);
    f.eval(g.forward(phi), 0, value.data(), seed_t);
    const Tensor& g_phi = g.backward(seed_t, bo);
    g_M.fill(0.f);
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c)
        for (size_t i = 0; i < HW; ++i) {
          const size_t at = n * D + c * HW + i;
          g_M[n * HW + i] += g_phi[at] * (x0[at] - base[at]);
        }
    up.adjoint(g_M, g_m);
    for (int n = 0; n < N; ++n) {
      float* gr = grad.data() + size_t(n) * h * w;
      L[n] = loss(m.data() + size_t(n) * h * w, h, w, value[n], g_m.data() + size_t(n) * h * w, gr);
      curve[n].push_back(L[n]);
      for (int i = 0; i < h * w; ++i) gr[i] = -gr[i];  // ascend −L
      ascent_step(Step::adam, lr, m.data() + size_t(n) * h * w, gr, size_t(h) * w, adam, n);
      for (int i = 0; i < h * w; ++i) m[size_t(n) * h * w + i] = std::clamp(m[size_t(n) * h * w + i], 0.f, 1.f);
    }
    if (q.progress) q.progress(t + 1, steps);
  }
  perturb(false);
  const std::vector<double> final_score = evaluate(g, f, phi);
  Result res;
  res.panels.push_back({"input", x0.clone(), Draw::pixels, true});
  res.panels.push_back({"image", phi.clone(), Draw::pixels});
  Tensor shown = M.clone();  // deletion: what was deleted (1 − M); preservation: what was kept (M)
  if (deletion)
    for (size_t i = 0; i < shown.size(); ++i) shown[i] = 1 - shown[i];
  res.panels.push_back({deletion ? "deleted" : "kept", shown, Draw::unsigned_map});
  for (int n = 0; n < N; ++n) {
    double area = 0;
    for (size_t i = 0; i < HW; ++i) area += M[n * HW + i] / double(HW);
    Row row;
    row.name = input_name(q, n) + "_mask_" + units[n].name(g);
    row.caption = label(g, q, units[n]) + "\n" + number(start[n]) + " -> " + number(final_score[n]);
    row.values = {{"start_score", start[n]}, {"score", final_score[n]}, {"kept_area", area}, {"loss", L[n]},
                  {"steps", steps}, {"target", units[n].index}};
    row.curves["loss"] = curve[n];
    res.rows.push_back(std::move(row));
  }
  return res;
}

}  // namespace

void add_perturb_methods(std::vector<Method>& reg) {
  reg.push_back({{"minimal-image",
                  "minimal image: remove, one at a time, the segment whose removal lowers the class score least, "
                  "while the prediction holds; reports the kept segments and the score curve",
                  {{"cell", "4", "square segments of this many pixels (unless segments are given)"},
                   {"segments", "", "a label image (H x W, or one per input) e.g. glassbox explain's lime "
                                    "_segments.npy; the command line reads FILE.npy"},
                   {"fill", "black", "what removed segments become: black, gray (pixels 0, 0.5) or blur"},
                   {"blur_sigma", "3", "sigma of fill=blur, in pixels"},
                   {"score", "logit", "the class score: logit or prob"}},
                  "Zhou et al. 2015 (greedy removal until the prediction would change); segments are square cells "
                  "or given labels, where Zhou et al. use a segmentation; removed segments are filled, not cut out"},
                 run_minimal_image});
  reg.push_back({{"mask",
                  "meaningful perturbation: optimize a smooth low-resolution mask that deletes (or preserves) the "
                  "class evidence by blurring or graying, with area and TV penalties",
                  {{"variant", "deletion", "deletion (min l1 mean|1-m| + tv TV(m) + f) or preservation "
                                           "(min l1 mean|m| + tv TV(m) - f)"},
                   {"perturbation", "blur", "what deleted pixels become: blur, black or gray"},
                   {"blur_sigma", "3", "sigma of the blur, in pixels"},
                   {"mask_scale", "4", "the mask is (H/scale) x (W/scale), upsampled bilinearly"},
                   {"steps", "300", "Adam steps (1..100000)"},
                   {"lr", "0.1", "Adam's learning rate [1e-12, 1e6]"},
                   {"l1", "0.1", "lambda_1 of the area term (a mean over the mask)"},
                   {"tv", "0.2", "lambda_TV of the mask's TV (means over pixel pairs)"},
                   {"tv_beta", "3", "beta of that TV"},
                   {"noise", "0", "std of Gaussian noise added to the perturbed input each step (input space)"},
                   explain::seed_param("0", "random seed of that noise"),
                   {"score", "prob", "f: the class's prob (softmax), logit or logprob"},
                   {"start", "0.5", "the mask's start value everywhere (1: nothing deleted)"}},
                  "Fong & Vedaldi 2017 with the reference code's means (jacobgil/pytorch-explain-black-box: mean "
                  "L1, TV as means of |diff|^beta, beta 3, Adam lr 0.1, mask clamped to [0,1]); the mask starts at "
                  "0.5, not 1 (at 1 a confident softmax has no gradient and the mask never moves); blur sigma 3 px "
                  "on 28 px images where the paper uses 10 on 224; no noise by default"},
                 run_mask});
}

}  // namespace gb::visualize
