// Robustness: how much the explanation moves when the input moves a little. Every metric explains
// many perturbed copies of each input; they go through explain() in shared batches (explain_rows),
// and every draw is seeded by the metric's seed and the sample's own values.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "explain/metrics/common.h"

namespace gb::metrics {

namespace {

double l2(const float* a, const float* b, size_t D) {
  double s = 0;
  for (size_t i = 0; i < D; ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s);
}

double l2(const float* a, size_t D) {
  double s = 0;
  for (size_t i = 0; i < D; ++i) s += double(a[i]) * a[i];
  return std::sqrt(s);
}

// Per sample, the largest (or mean) finite value over its rows; NaN when none is finite.
struct Reduce {
  bool max = true;
  std::vector<double> acc;
  std::vector<int> count;
  explicit Reduce(int N, bool max) : max(max), acc(N, max ? -INFINITY : 0.0), count(N, 0) {}
  void add(int n, double v) {
    if (!std::isfinite(v)) return;
    acc[n] = max ? std::max(acc[n], v) : acc[n] + v;
    ++count[n];
  }
  std::vector<double> values() const {
    std::vector<double> out;
    for (size_t n = 0; n < acc.size(); ++n) out.push_back(count[n] ? (max ? acc[n] : acc[n] / count[n]) : NAN);
    return out;
  }
};

// Additive noise per feature: U(lo, hi) or N(mean, std²), seeded per sample.
struct Noise {
  bool gaussian = false;
  double lo = -0.2, hi = 0.2, mean = 0, std = 0.1;
};

// Fills row k of sample n with x_n + noise, drawing the sample's noise in row order.
RowFill noisy(const Tensor& x, const Noise& noise, uint64_t seed) {
  const size_t D = x.sample_size();
  struct State {
    Rng rng;
    int n = -1;
  };
  auto st = std::make_shared<State>();
  return [&x, noise, seed, D, st](int n, int, float* row) {
    if (n != st->n) st->rng.reseed(sample_seed(seed, x.data() + n * D, D)), st->n = n;
    for (size_t i = 0; i < D; ++i) {
      const double e = noise.gaussian ? noise.mean + noise.std * st->rng.normal()
                                      : noise.lo + (noise.hi - noise.lo) * st->rng.uniform();
      row[i] = float(x[n * D + i] + e);
    }
  };
}

struct Common {
  int samples = 200;
  bool abs = false, normalise = false, nan_on_change = false;
  uint64_t seed = 42;
};

Common read_common(ParamReader& r) {
  Common c;
  c.samples = integer_in(r, "nr_samples", 1, kMaxSamplesPerInput);
  c.abs = r.flag("abs");
  c.normalise = r.flag("normalise");
  c.nan_on_change = r.flag("return_nan_when_prediction_changes");
  c.seed = uint64_t(r.integer("seed"));
  return c;
}

// Explains the noisy copies and reduces ratio(n, x', a', logits') over them per sample.
using Ratio = std::function<double(int n, const float* xp, const float* ap, const float* logits)>;
std::vector<double> over_noise(Graph& g, const Tensor& x, const Target& t, const Explanation& e, const Common& c,
                               const Noise& noise, bool max, bool with_logits, const Ratio& ratio, const Context& ctx) {
  const size_t D = x.sample_size();
  const Tensor logits = logits_of(g, x);
  const int K = int(logits.sample_size());
  Reduce red(x.batch(), max);
  std::vector<float> ap(D);
  explain_rows(
      g, x, t, e, c.samples, noisy(x, noise, c.seed),
      [&](int n, int, const float* xp, const float* a, const float* lp) {
        if (c.nan_on_change && argmax(lp, K) != argmax(logits.data() + n * K, K)) return;  // NaN: skipped
        std::memcpy(ap.data(), a, D * 4);
        preprocess_rows(ap.data(), 1, D, c.normalise, c.abs);
        red.add(n, ratio(n, xp, ap.data(), lp));
      },
      with_logits || c.nan_on_change, ctx.progress);
  return red.values();
}

Evaluation sensitivity(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                       const Context& ctx, bool max) {
  Common c = read_common(r);
  Noise noise;
  noise.lo = -number_in(r, "lower_bound", 0, 1e6);
  noise.hi = -noise.lo;
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, c.normalise, c.abs);
  const size_t D = x.sample_size();
  Evaluation ev;
  ev.values = over_noise(g, x, t, e, c, noise, max, false,
                         [&](int n, const float*, const float* ap, const float*) {
                           const double den = l2(a.data() + n * D, D);
                           return den > 0 ? l2(ap, a.data() + n * D, D) / den : NAN;
                         },
                         ctx);
  return ev;
}

// The Lipschitz ratio of an explanation at x' against x: ‖a(x') − a(x)‖₂ / (‖x' − x‖₂ + 1e-10).
// NaN at x itself (a perturbation that moved nothing, or a search that never left x): there the
// numerator is a(x) against a(x) computed in another batch, whose last bits may differ, and
// dividing them by 1e-10 made the largest "ratio".
double lipschitz(const float* xp, const float* ap, const float* x, const float* a, size_t D) {
  const double dx = l2(xp, x, D);
  return dx == 0 ? NAN : l2(ap, a, D) / (dx + 1e-10);
}

// Projected search for the largest ratio in the L∞ ball of radius eps around each x: start at the
// best of the samples, then `steps` times estimate the ratio's gradient from `dirs` antithetic
// Rademacher probes (most explanations of ReLU networks are piecewise constant in x, so their own
// gradient is zero almost everywhere), step by step·sign(ĝ) and project back into the ball. The
// estimate is the largest ratio of every point visited, probes included.
void projected_search(Graph& g, const Tensor& x, const Target& t, const Explanation& e, const Tensor& a,
                      const Common& c, double eps, int steps, int dirs, std::vector<double>& best,
                      std::vector<float>& start, const Context& ctx) {
  const int N = x.batch();
  const size_t D = x.sample_size();
  const double step = eps / 4, delta = eps / 8;
  std::vector<float> z = start;                         // [N·D] current points
  std::vector<double> probe(size_t(N) * 2 * dirs);     // ratios of the probes
  std::vector<float> signs(size_t(N) * dirs * D);      // the probes' directions
  auto clip = [&](int n, size_t i, double v) {
    const double lo = x[n * D + i] - eps, hi = x[n * D + i] + eps;
    return float(std::min(hi, std::max(lo, v)));
  };
  std::vector<float> ap(D);
  const Tensor logits = logits_of(g, x);
  const int K = int(logits.sample_size());
  // The ratio at a visited point; with return_nan_when_prediction_changes a point whose predicted
  // class differs from x's does not count (0 for the gradient estimate).
  auto ratio = [&](int n, const float* xp, const float* at, const float* lp) {
    if (c.nan_on_change && argmax(lp, K) != argmax(logits.data() + n * K, K)) return 0.0;
    std::memcpy(ap.data(), at, D * 4);
    preprocess_rows(ap.data(), 1, D, c.normalise, c.abs);
    const double v = lipschitz(xp, ap.data(), x.data() + n * D, a.data() + n * D, D);
    if (std::isnan(v)) return 0.0;  // x itself: not a visited point
    best[n] = std::max(best[n], v);
    return v;
  };
  for (int it = 0; it < steps; ++it) {
    Rng rng;
    int rng_n = -1;
    auto fill = [&](int n, int k, float* row) {
      if (k == 0 && n != rng_n) rng.reseed(sample_seed(c.seed + 7919 * uint64_t(it + 1), x.data() + n * D, D)), rng_n = n;
      float* u = signs.data() + (size_t(n) * dirs + k / 2) * D;
      if (k % 2 == 0)
        for (size_t i = 0; i < D; ++i) u[i] = rng.uniform() < 0.5f ? -1.f : 1.f;
      const double sgn = k % 2 == 0 ? 1 : -1;
      for (size_t i = 0; i < D; ++i) row[i] = clip(n, i, z[n * D + i] + sgn * delta * u[i]);
    };
    explain_rows(
        g, x, t, e, 2 * dirs, fill,
        [&](int n, int k, const float* xp, const float* at, const float* lp) {
          probe[size_t(n) * 2 * dirs + k] = ratio(n, xp, at, lp);
        },
        c.nan_on_change);
    for (int n = 0; n < N; ++n)
      for (size_t i = 0; i < D; ++i) {
        double gi = 0;
        for (int j = 0; j < dirs; ++j)
          gi += (probe[size_t(n) * 2 * dirs + 2 * j] - probe[size_t(n) * 2 * dirs + 2 * j + 1]) *
                signs[(size_t(n) * dirs + j) * D + i];
        z[n * D + i] = clip(n, i, z[n * D + i] + (gi > 0 ? step : gi < 0 ? -step : 0.0));
      }
    explain_rows(
        g, x, t, e, 1, [&](int n, int, float* row) { std::memcpy(row, z.data() + n * D, D * 4); },
        [&](int n, int, const float* xp, const float* at, const float* lp) { ratio(n, xp, at, lp); }, c.nan_on_change);
    if (ctx.progress) ctx.progress(it + 1, steps);
  }
}

Evaluation local_lipschitz(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                           const Context& ctx) {
  Common c = read_common(r);
  const std::string search = choice(r, "search", {"sampling", "pgd"});
  Noise noise;
  noise.gaussian = true;
  noise.mean = number_in(r, "perturb_mean", -1e6, 1e6);
  noise.std = number_in(r, "perturb_std", 0, 1e6);
  const double eps = number_in(r, "epsilon", 1e-12, 1e6);
  const int steps = integer_in(r, "pgd_steps", 0, 10000), dirs = integer_in(r, "pgd_directions", 1, 1000);
  if (search == "pgd") {  // the samples lie in the ball the search explores
    noise.gaussian = false;
    noise.lo = -eps, noise.hi = eps;
  }
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, c.normalise, c.abs);
  const int N = x.batch();
  const size_t D = x.sample_size();
  // The samples, keeping each sample's best point as the search's start.
  std::vector<double> best(N, -INFINITY);
  std::vector<float> start(x.data(), x.data() + x.size());
  std::vector<float> ap(D);
  const Tensor logits = logits_of(g, x);
  const int K = int(logits.sample_size());
  explain_rows(g, x, t, e, c.samples, noisy(x, noise, c.seed),
               [&](int n, int, const float* xp, const float* at, const float* lp) {
                 if (c.nan_on_change && argmax(lp, K) != argmax(logits.data() + n * K, K)) return;
                 std::memcpy(ap.data(), at, D * 4);
                 preprocess_rows(ap.data(), 1, D, c.normalise, c.abs);
                 const double v = lipschitz(xp, ap.data(), x.data() + n * D, a.data() + n * D, D);
                 if (v > best[n]) best[n] = v, std::memcpy(start.data() + n * D, xp, D * 4);
               },
               c.nan_on_change, search == "pgd" ? Progress() : ctx.progress);
  if (search == "pgd") projected_search(g, x, t, e, a, c, eps, steps, dirs, best, start, ctx);
  Evaluation ev;
  for (double v : best) ev.values.push_back(std::isfinite(v) ? v : NAN);
  return ev;
}

// Agarwal et al.'s relative change of v against v', element by element, the denominator v
// (eps where v is 0): ‖(v − v') / v‖₂.
double relative_change(const float* v, const float* vp, size_t D, double eps) {
  double s = 0;
  for (size_t i = 0; i < D; ++i) {
    const double d = (double(v[i]) - vp[i]) / (v[i] == 0 ? eps : double(v[i]));
    s += d * d;
  }
  return std::sqrt(s);
}

Evaluation relative_stability(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                              const Context& ctx, bool output) {
  Common c = read_common(r);
  Noise noise;
  noise.lo = number_in(r, "lower_bound", -1e6, 1e6);
  noise.hi = number_in(r, "upper_bound", -1e6, 1e6);
  if (noise.hi <= noise.lo)
    throw std::invalid_argument(r.method() + ": upper_bound must exceed lower_bound");
  const double eps = number_in(r, "eps_min", 1e-30, 1);
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, c.normalise, c.abs);
  const size_t D = x.sample_size();
  const Tensor logits = output ? logits_of(g, x) : Tensor();
  const size_t K = output ? logits.sample_size() : 0;
  Evaluation ev;
  ev.values = over_noise(g, x, t, e, c, noise, true, output,
                         [&](int n, const float* xp, const float* ap, const float* lp) {
                           const double num = relative_change(a.data() + n * D, ap, D, eps);
                           double den = output ? l2(logits.data() + n * K, lp, K)
                                               : relative_change(x.data() + n * D, xp, D, eps);
                           if (den == 0) den = eps;
                           return num / den;
                         },
                         ctx);
  return ev;
}

// x shifted horizontally by `shift` pixels (right when positive), vacated columns set to `fill`.
void translate(const float* x, int C, int H, int W, int shift, float fill, float* out) {
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int col = 0; col < W; ++col) {
        const int src = col - shift;
        out[(size_t(c) * H + y) * W + col] = src >= 0 && src < W ? x[(size_t(c) * H + y) * W + src] : fill;
      }
}

Evaluation continuity(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                      const Context& ctx) {
  require_images(x, r.method());
  const int C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int steps = integer_in(r, "nr_steps", 1, 2 * W + 1);
  const Baseline b = read_baseline(r);
  const bool abs = r.flag("abs"), normalise = r.flag("normalise"), nan_on_change = r.flag("return_nan_when_prediction_changes");
  const uint64_t seed = uint64_t(r.integer("seed"));
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, normalise, abs);
  const size_t D = x.sample_size();
  const Tensor logits = logits_of(g, x);
  const int K = int(logits.sample_size());
  // Quantus: shifts −W + dx·(s + 1), dx = (2W + 1) / nr_steps, so the last ones move x out of view.
  const int dx = (2 * W + 1) / steps;
  std::vector<float> fill(D);
  auto shifted = [&](int n, int s, float* row) {
    baseline_values(b, x.data() + n * D, x.shape().sample(), seed, fill.data());
    translate(x.data() + n * D, C, H, W, -W + dx * (s + 1), fill[0], row);
  };
  Reduce red(x.batch(), true);
  std::vector<float> ap(D);
  explain_rows(
      g, x, t, e, steps, shifted,
      [&](int n, int, const float* xp, const float* at, const float* lp) {
        if (nan_on_change && argmax(lp, K) != argmax(logits.data() + n * K, K)) return;
        // A shift of 0 (W a multiple of the step) or a row it leaves unchanged is x itself: the
        // ratio is 0/0 there, and a(x) from another batch differs from a(x) in its last bits.
        if (std::memcmp(xp, x.data() + n * D, D * 4) == 0) return;
        std::memcpy(ap.data(), at, D * 4);
        preprocess_rows(ap.data(), 1, D, normalise, abs);
        double l1 = 0;
        for (size_t i = 0; i < D; ++i) l1 += std::fabs(double(a[n * D + i]) - ap[i]);
        red.add(n, l1 / (l2(x.data() + n * D, xp, D) + 1e-9));
      },
      nan_on_change, ctx.progress);
  Evaluation ev;
  ev.values = red.values();
  return ev;
}

const ParamInfo kNoiseSeed = explain::seed_param("42", "noise seed (each sample's draws depend only on it and the sample's values)");
const ParamInfo kNan{"return_nan_when_prediction_changes", "false",
                     "skip perturbations that change the predicted class (NaN when all do)"};
const ParamInfo kRobustnessNormalise{"normalise", "false", "divide each attribution by its max |a| first"};
const ParamInfo kRobustnessAbs{"abs", "false", "take |a| (after normalising)"};
const ParamInfo kSamples{"nr_samples", "200", "perturbed copies per sample"};

}  // namespace

void add_robustness_metrics(std::vector<Metric>& reg) {
  const std::string fam = "robustness";
  for (bool max : {true, false})
    reg.push_back({{{max ? "max-sensitivity" : "avg-sensitivity",
                     std::string(max ? "largest" : "mean") +
                         " ‖a(x + δ) − a(x)‖₂ / ‖a(x)‖₂ over nr_samples draws δ ~ U(−lower_bound, lower_bound) per "
                         "feature; NaN when a(x) = 0",
                     {kSamples, {"lower_bound", "0.2", "noise half-width (model input space)"}, kRobustnessAbs, kRobustnessNormalise, kNan,
                      kNoiseSeed},
                     std::string(max ? "Quantus MaxSensitivity" : "Quantus AvgSensitivity") +
                         " (Yeh et al. 2019; Frobenius norms of the difference and of a(x)); Captum sensitivity_max is "
                         "the same with perturb_radius 0.02 and 10 samples"},
                    fam, Better::lower},
                   [max](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                         const Context& c) { return sensitivity(g, x, t, e, r, c, max); }});
  reg.push_back({{{"local-lipschitz",
                   "largest ‖a(x') − a(x)‖₂ / (‖x' − x‖₂ + 1e-10) over nr_samples draws x' = x + N(perturb_mean, "
                   "perturb_std²) per feature",
                   {kSamples, {"perturb_mean", "0", "noise mean (search=sampling)"},
                    {"perturb_std", "0.1", "noise σ (search=sampling; model input space)"},
                    {"search", "sampling", "sampling (Quantus) | pgd: samples uniform in the L∞ ball of radius epsilon, "
                     "then a projected search from the best one"},
                    {"epsilon", "0.1", "search=pgd: the ball's radius (model input space)"},
                    {"pgd_steps", "10", "search=pgd: ascent steps (each 2·pgd_directions + 1 explanations per input; 0: the ball's samples only)"},
                    {"pgd_directions", "4", "search=pgd: antithetic random probes per step for the gradient estimate"},
                    kRobustnessAbs, {"normalise", "true", kRobustnessNormalise.help}, kNan, kNoiseSeed},
                   "Quantus LocalLipschitzEstimate (Alvarez-Melis & Jaakkola 2018, survey eq. 27) by sampling; "
                   "search=pgd adds a projected zeroth-order ascent in the ball (step epsilon/4, probes ±epsilon/8); x "
                   "itself is never a visited point (its ratio is 0/0)"},
                  fam, Better::lower},
                 local_lipschitz});
  for (bool output : {false, true})
    reg.push_back({{{output ? "relative-output-stability" : "relative-input-stability",
                     std::string("largest ‖(a − a')/a‖₂ / ") +
                         (output ? "‖logits − logits'‖₂" : "‖(x − x')/x‖₂") +
                         " over nr_samples draws x' = x + U(lower_bound, upper_bound) per feature (divisions by 0 use "
                         "eps_min)",
                     {kSamples, {"lower_bound", "0.02", "noise low end"}, {"upper_bound", "0.2", "noise high end"},
                      {"eps_min", "1e-6", "stands in for zero denominators"}, kRobustnessAbs, kRobustnessNormalise,
                      {"return_nan_when_prediction_changes", "true", kNan.help}, kNoiseSeed},
                     std::string("Quantus ") + (output ? "RelativeOutputStability" : "RelativeInputStability") +
                         " (Agarwal et al. 2022; its noise U(0.02, 0.2) is one-sided); perturbations that change the "
                         "prediction are skipped where Quantus's np.max turns the whole sample into NaN"},
                    fam, Better::lower},
                   [output](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                            const Context& c) { return relative_stability(g, x, t, e, r, c, output); }});
  reg.push_back({{{"continuity",
                   "largest ‖a(x_s) − a(x)‖₁ / (‖x_s − x‖₂ + 1e-9) over nr_steps horizontal translations x_s of x "
                   "(shift −W + dx·(s+1), dx = (2W+1)/nr_steps; vacated pixels set to perturb_baseline); a translation "
                   "equal to x (shift 0) is left out: its ratio is 0/0",
                   {{"nr_steps", "28", "translations"}, {"perturb_baseline", "black", "fill of vacated pixels: black "
                    "(the sample's min), white, mean, uniform (its first draw) or a number"},
                    {"abs", "true", kRobustnessAbs.help}, {"normalise", "true", kRobustnessNormalise.help}, kNan, kNoiseSeed},
                   "Quantus Continuity (Montavon et al. 2018 as Quantus implements it); a prediction change is judged "
                   "against x's predicted class (Quantus: against y_batch)"},
                  fam, Better::lower},
                 continuity});
}

}  // namespace gb::metrics
