// Faithfulness: does removing what the explanation calls important change the model's output the
// most? Pixel flipping, deletion/insertion (MoRF/LeRF), region perturbation (AOPC), selectivity,
// faithfulness correlation, monotonicity, sensitivity-n and infidelity. Every perturbed input of
// every sample and step goes through the graph in shared forward batches (score_rows).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "explain/metrics/common.h"
#include "explain/metrics/similarity.h"

namespace gb::metrics {

namespace {

// Cumulative perturbation: per sample, the features changed at each step, concatenated, and where
// each step ends (step k covers features[ends[k-1] .. ends[k]), ends[-1] = 0).
struct Steps {
  std::vector<int> features;
  std::vector<int> ends;
};

Steps pixel_steps(std::vector<int> order, int per_step) {
  Steps s;
  const int D = int(order.size());
  for (int e = per_step; e < D + per_step; e += per_step) s.ends.push_back(std::min(e, D));
  s.features = std::move(order);
  return s;
}

// Every channel of each patch in `order`.
Steps patch_steps(const std::vector<std::vector<int>>& patches, const std::vector<int>& order, int C, size_t HW,
                  int count) {
  Steps s;
  for (int k = 0; k < count; ++k) {
    for (int c = 0; c < C; ++c)
      for (int i : patches[order[k]]) s.features.push_back(int(size_t(c) * HW + i));
    s.ends.push_back(int(s.features.size()));
  }
  return s;
}

// Scores along cumulative perturbations: row k of sample n is `from` with the features of steps
// 1..k taken from `to`; k = 0 is `from` itself. Returns [N][S+1], S = the steps of each sample
// (the same count for all).
std::vector<std::vector<double>> cumulative_scores(Graph& g, const Target& t, bool softmax, const Tensor& from,
                                                   const Tensor& to, const std::vector<Steps>& steps,
                                                   const Progress& progress) {
  const int N = from.batch(), S = int(steps[0].ends.size());
  const size_t D = from.sample_size();
  std::vector<float> cur(D);
  int cur_n = -1, cur_k = 0;
  auto fill = [&](int n, int k, float* row) {
    if (n != cur_n) {
      std::memcpy(cur.data(), from.data() + size_t(n) * D, D * 4);
      cur_n = n, cur_k = 0;
    }
    const float* src = to.data() + size_t(n) * D;
    const Steps& st = steps[n];
    for (; cur_k < k; ++cur_k)
      for (int i = cur_k == 0 ? 0 : st.ends[cur_k - 1]; i < st.ends[cur_k]; ++i) cur[st.features[i]] = src[st.features[i]];
    std::memcpy(row, cur.data(), D * 4);
  };
  const std::vector<double> flat = score_rows(g, t, softmax, N, S + 1, fill, progress);
  std::vector<std::vector<double>> y(N);
  for (int n = 0; n < N; ++n) y[n].assign(flat.begin() + size_t(n) * (S + 1), flat.begin() + size_t(n + 1) * (S + 1));
  return y;
}

Tensor baselines_of(const Tensor& x, const Baseline& b, uint64_t seed) {
  Tensor out(x.shape());
  const size_t D = x.sample_size();
  for (int n = 0; n < x.batch(); ++n)
    baseline_values(b, x.data() + n * D, x.shape().sample(), seed, out.data() + n * D);
  return out;
}

// The order of a sample's D features (pixels or patches): by decreasing attribution a (morf),
// increasing (lerf), or a random permutation (random) drawn from `draw_seed`, which the caller
// derives from the whole sample's values, so samples that differ anywhere get different orders.
std::vector<int> feature_order(const std::string& order, const float* a, size_t D, uint64_t draw_seed) {
  if (order == "morf") return order_decreasing(a, D);
  if (order == "lerf") return order_increasing(a, D);
  std::vector<int> o(D);
  for (size_t i = 0; i < D; ++i) o[i] = int(i);
  Rng rng(draw_seed);
  for (size_t i = D - 1; i > 0; --i) std::swap(o[i], o[rng.below(uint32_t(i + 1))]);
  return o;
}

Curve make_curve(const std::string& name, const std::string& x_label, const std::string& y_label, std::vector<double> xs,
                 std::vector<std::vector<double>> y) {
  Curve c;
  c.name = name, c.x_label = x_label, c.y_label = y_label, c.x = std::move(xs), c.y = std::move(y);
  return c;
}

std::vector<double> fractions(const Steps& s, size_t D) {
  std::vector<double> f = {0.0};
  for (int e : s.ends) f.push_back(double(e) / double(D));
  return f;
}

// ---- pixel flipping, deletion, insertion ---------------------------------------------------------

struct FlipSettings {
  std::string order = "morf";
  int per_step = 1;
  Baseline baseline;
  bool softmax = true, abs = false, normalise = true, insertion = false;
  uint64_t seed = 42;
};

// The curves of every sample: scores after 0, 1, ..., S steps.
std::vector<std::vector<double>> flip_curves(Graph& g, const Tensor& x, const Target& t, const Explanation& e,
                                             const FlipSettings& s, const Context& ctx, Steps* first) {
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, s.normalise, s.abs);
  const size_t D = x.sample_size();
  const Tensor base = baselines_of(x, s.baseline, s.seed);
  std::vector<Steps> steps;
  for (int n = 0; n < x.batch(); ++n) {
    const uint64_t draw = sample_seed(s.seed, x.data() + n * D, D);
    steps.push_back(pixel_steps(feature_order(s.order, a.data() + n * D, D, draw), s.per_step));
  }
  if (first) *first = steps[0];
  return s.insertion ? cumulative_scores(g, t, s.softmax, base, x, steps, ctx.progress)
                     : cumulative_scores(g, t, s.softmax, x, base, steps, ctx.progress);
}

FlipSettings read_flip(ParamReader& r, const Graph& g, const Tensor& x, const Target& t, bool deletion_family) {
  FlipSettings s;
  s.per_step = integer_in(r, "features_in_step", 1, long(x.sample_size()));
  s.baseline = read_baseline(r, deletion_family);
  if (deletion_family) s.baseline.sigma = number_in(r, "blur_sigma", 0.1, 100);
  if (deletion_family) s.order = choice(r, "order", {"morf", "lerf", "random"});
  s.softmax = read_softmax(r, g, t);
  s.abs = r.flag("abs");
  s.normalise = r.flag("normalise");
  s.seed = uint64_t(r.integer("seed"));
  return s;
}

Evaluation pixel_flipping(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                          const Context& ctx) {
  FlipSettings s = read_flip(r, g, x, t, false);
  Steps first;
  std::vector<std::vector<double>> y = flip_curves(g, x, t, e, s, ctx, &first);
  Evaluation ev;
  for (auto& c : y) {
    c.erase(c.begin());  // Quantus's curve starts after the first step
    ev.values.push_back(trapezoid(c.data(), c.size(), 1.0));
  }
  std::vector<double> xs = fractions(first, x.sample_size());
  xs.erase(xs.begin());
  ev.curves.push_back(make_curve("pixel-flipping", "fraction of features flipped", s.softmax ? "probability" : "score",
                                 xs, std::move(y)));
  return ev;
}

// Deletion (from x towards the baseline) or insertion (from the baseline towards x): AUC over the
// fraction of features changed, and AOPC, the mean drop from the start.
Evaluation deletion_insertion(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                              const Context& ctx, bool insertion) {
  FlipSettings s = read_flip(r, g, x, t, true);
  s.insertion = insertion;
  Steps first;
  std::vector<std::vector<double>> y = flip_curves(g, x, t, e, s, ctx, &first);
  Evaluation ev;
  const std::vector<double> xs = fractions(first, x.sample_size());
  std::vector<double>& aopc = ev.extra["aopc"];
  for (auto& c : y) {
    double auc = 0, drop = 0;
    for (size_t k = 0; k < c.size(); ++k) {
      if (k) auc += 0.5 * (c[k - 1] + c[k]) * (xs[k] - xs[k - 1]);
      drop += c[0] - c[k];
    }
    ev.values.push_back(auc);
    aopc.push_back(drop / double(c.size()));
  }
  const std::string name = insertion ? "insertion" : "deletion";
  ev.curves.push_back(make_curve(name + " (" + s.order + ")",
                                 insertion ? "fraction of features inserted" : "fraction of features deleted",
                                 s.softmax ? "probability" : "score", xs, std::move(y)));
  return ev;
}

// ---- region perturbation and selectivity ---------------------------------------------------------

struct PatchRun {
  std::vector<std::vector<double>> y;  // scores after 0..L patches
};

PatchRun patch_curves(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                      const Context& ctx, const std::string& order, int max_regions) {
  require_images(x, r.method());
  const int C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int size = integer_in(r, "patch_size", 1, std::min(H, W));
  const Baseline b = read_baseline(r);
  const bool softmax = read_softmax(r, g, t), abs = r.flag("abs"), normalise = r.flag("normalise");
  const uint64_t seed = uint64_t(r.integer("seed"));
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, normalise, abs);
  const std::vector<std::vector<int>> patches = patch_grid(H, W, size);
  const int L = std::min<int>(int(patches.size()), max_regions);
  const size_t HW = size_t(H) * W, D = x.sample_size();
  std::vector<Steps> steps;
  for (int n = 0; n < x.batch(); ++n) {
    std::vector<float> sums;
    for (auto& p : patches) sums.push_back(float(patch_sum(a.data() + n * D, C, HW, p)));
    const uint64_t draw = sample_seed(seed, x.data() + n * D, D);
    steps.push_back(patch_steps(patches, feature_order(order, sums.data(), sums.size(), draw), C, HW, L));
  }
  return {cumulative_scores(g, t, softmax, x, baselines_of(x, b, seed), steps, ctx.progress)};
}

Evaluation region_perturbation(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                               const Context& ctx) {
  const std::string order = choice(r, "order", {"morf", "lerf", "random"});
  const int regions = integer_in(r, "regions_evaluation", 1, 1000000);
  PatchRun run = patch_curves(g, x, t, e, r, ctx, order, regions);
  Evaluation ev;
  std::vector<std::vector<double>> drops;
  for (auto& c : run.y) {
    std::vector<double> d;
    for (size_t k = 1; k < c.size(); ++k) d.push_back(c[0] - c[k]);  // Quantus: f(x) − f(x_k), k ≥ 1
    double aopc = 0;
    for (double v : d) aopc += v;
    ev.values.push_back(aopc / double(d.size() + 1));  // Samek et al.: the k = 0 term is 0
    ev.extra["auc"].push_back(trapezoid(d.data(), d.size(), 1.0));
    drops.push_back(std::move(d));
  }
  std::vector<double> xs;
  for (size_t k = 1; k <= drops[0].size(); ++k) xs.push_back(double(k));
  ev.curves.push_back(make_curve("region perturbation (" + order + ")", "patches perturbed", "score drop", xs,
                                 std::move(drops)));
  return ev;
}

Evaluation selectivity(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                       const Context& ctx) {
  PatchRun run = patch_curves(g, x, t, e, r, ctx, "morf", 1 << 30);
  Evaluation ev;
  for (auto& c : run.y) {
    c.erase(c.begin());  // Quantus: the scores after each patch
    ev.values.push_back(trapezoid(c.data(), c.size(), 1.0));
  }
  std::vector<double> xs;
  for (size_t k = 1; k <= run.y[0].size(); ++k) xs.push_back(double(k));
  ev.curves.push_back(make_curve("selectivity", "patches removed", "score", xs, std::move(run.y)));
  return ev;
}

// ---- faithfulness correlation and sensitivity-n --------------------------------------------------

// Random subsets of `size` features per sample and run (seeded by the sample's values): the
// attribution sums over each subset and the score drops when it is set to the baseline.
struct SubsetRuns {
  std::vector<std::vector<double>> sums, drops;  // [N][runs]
};

SubsetRuns subset_runs(Graph& g, const Tensor& x, const Tensor& a, const Target& t, bool softmax, const Tensor& base,
                       const std::vector<int>& sizes, int runs, uint64_t seed, const Progress& progress) {
  const int N = x.batch(), S = int(sizes.size()) * runs;
  const size_t D = x.sample_size();
  SubsetRuns out;
  out.sums.assign(N, std::vector<double>(S));
  out.drops.assign(N, std::vector<double>(S));
  const std::vector<double> f0 = scores_of(g, x, t, softmax);
  std::vector<int> perm(D);
  Rng rng;
  int rng_n = -1;
  auto fill = [&](int n, int k, float* row) {
    if (n != rng_n) rng.reseed(sample_seed(seed, x.data() + n * D, D)), rng_n = n;
    const int m = sizes[k / runs];
    // The first m entries of a partial Fisher-Yates shuffle: m distinct features.
    for (size_t i = 0; i < D; ++i) perm[i] = int(i);
    for (int i = 0; i < m; ++i) std::swap(perm[i], perm[i + rng.below(uint32_t(D - i))]);
    std::memcpy(row, x.data() + n * D, D * 4);
    double s = 0;
    for (int i = 0; i < m; ++i) {
      row[perm[i]] = base[n * D + perm[i]];
      s += a[n * D + perm[i]];
    }
    out.sums[n][k] = s;
  };
  const std::vector<double> f = score_rows(g, t, softmax, N, S, fill, progress);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < S; ++k) out.drops[n][k] = f0[n] - f[size_t(n) * S + k];
  return out;
}

Evaluation faithfulness_correlation(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                                    const Context& ctx) {
  const long D = long(x.sample_size());
  if (D < 2)  // a subset must leave a feature out ("subset_size outside [1, 0]" said nothing useful)
    throw NotApplicable(r.method() + ": needs inputs of at least 2 features, not " + x.shape().sample().str());
  const int runs = integer_in(r, "nr_runs", 2, kMaxSamplesPerInput);
  const int size = integer_in(r, "subset_size", 1, D - 1);
  const Baseline b = read_baseline(r);
  const bool softmax = read_softmax(r, g, t), abs = r.flag("abs"), normalise = r.flag("normalise");
  const uint64_t seed = uint64_t(r.integer("seed"));
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, normalise, abs);
  SubsetRuns s = subset_runs(g, x, a, t, softmax, baselines_of(x, b, seed), {size}, runs, seed, ctx.progress);
  Evaluation ev;
  for (int n = 0; n < x.batch(); ++n) ev.values.push_back(pearson(s.sums[n].data(), s.drops[n].data(), runs));
  return ev;
}

Evaluation sensitivity_n(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                         const Context& ctx) {
  const long D = long(x.sample_size());
  const double max_fraction = number_in(r, "n_max_percentage", 1.0 / double(D), 1.0);
  const int count = integer_in(r, "n_values", 1, 100);
  const int runs = integer_in(r, "nr_runs", 2, kMaxSamplesPerInput);
  const Baseline b = read_baseline(r);
  const bool softmax = read_softmax(r, g, t), abs = r.flag("abs"), normalise = r.flag("normalise");
  const uint64_t seed = uint64_t(r.integer("seed"));
  // Subset sizes from 1 to n_max_percentage·D, evenly spaced in log scale (Ancona et al. plot
  // sensitivity-n against log n), without repeats.
  const int n_max = std::max(1, int(max_fraction * double(D)));
  std::vector<int> sizes;
  for (int i = 0; i < count; ++i) {
    const int m = count == 1 ? n_max : int(std::lround(std::exp(std::log(double(n_max)) * i / (count - 1))));
    if (sizes.empty() || m > sizes.back()) sizes.push_back(m);
  }
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, normalise, abs);
  SubsetRuns s = subset_runs(g, x, a, t, softmax, baselines_of(x, b, seed), sizes, runs, seed, ctx.progress);
  Evaluation ev;
  std::vector<std::vector<double>> curves;
  for (int n = 0; n < x.batch(); ++n) {
    std::vector<double> c;
    double total = 0;
    int finite = 0;
    for (size_t j = 0; j < sizes.size(); ++j) {
      const double rho = pearson(s.sums[n].data() + j * runs, s.drops[n].data() + j * runs, size_t(runs));
      c.push_back(rho);
      if (std::isfinite(rho)) total += rho, ++finite;
    }
    ev.values.push_back(finite ? total / finite : NAN);
    curves.push_back(std::move(c));
  }
  ev.curves.push_back(make_curve("sensitivity-n", "n (features removed)", "Pearson r",
                                 std::vector<double>(sizes.begin(), sizes.end()), std::move(curves)));
  ev.curves.back().log_x = true;
  return ev;
}

// ---- monotonicity and infidelity -----------------------------------------------------------------

Evaluation monotonicity(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                        const Context& ctx) {
  FlipSettings s = read_flip(r, g, x, t, false);
  s.order = "lerf";      // Quantus: np.argsort(a), the least relevant features first...
  s.insertion = true;    // ...added one step at a time to the baseline
  std::vector<std::vector<double>> y = flip_curves(g, x, t, e, s, ctx, nullptr);
  Evaluation ev;
  for (auto& c : y) {
    c.erase(c.begin());  // Quantus compares the scores after each step
    bool rising = true;
    for (size_t k = 1; k < c.size(); ++k) rising &= c[k] >= c[k - 1];
    ev.values.push_back(rising ? 1.0 : 0.0);
  }
  return ev;
}

Evaluation infidelity(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                      const Context& ctx) {
  const int samples = integer_in(r, "n_perturb_samples", 1, kMaxSamplesPerInput);
  const double stdev = number_in(r, "perturb_std", 0.0, 1e6);
  const bool normalize = r.flag("normalize"), abs = r.flag("abs"), normalise = r.flag("normalise");
  const bool softmax = read_softmax(r, g, t);
  const uint64_t seed = uint64_t(r.integer("seed"));
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, normalise, abs);
  const int N = x.batch();
  const size_t D = x.sample_size();
  // Row k of sample n is x − I with I ~ N(0, σ²) per feature (Captum's x − perturbation); the
  // explanation's prediction of the drop is ⟨a, I⟩.
  std::vector<std::vector<double>> predicted(N, std::vector<double>(samples));
  Rng rng;
  int rng_n = -1;
  auto fill = [&](int n, int k, float* row) {
    if (n != rng_n) rng.reseed(sample_seed(seed, x.data() + n * D, D)), rng_n = n;
    double dot = 0;
    for (size_t i = 0; i < D; ++i) {
      const float noise = float(stdev) * rng.normal();
      row[i] = x[n * D + i] - noise;
      dot += double(a[n * D + i]) * noise;
    }
    predicted[n][k] = dot;
  };
  const std::vector<double> f0 = scores_of(g, x, t, softmax);
  const std::vector<double> f = score_rows(g, t, softmax, N, samples, fill, ctx.progress);
  Evaluation ev;
  for (int n = 0; n < N; ++n) {
    // Captum: Σ (β⟨a,I⟩ − Δf)² / n with β = 1, or with normalize the least-squares β.
    auto delta = [&](int k) { return f0[n] - f[size_t(n) * samples + k]; };
    double aa = 0, ad = 0;
    for (int k = 0; k < samples; ++k) aa += predicted[n][k] * predicted[n][k], ad += predicted[n][k] * delta(k);
    const double beta = !normalize ? 1.0 : aa > 0 ? ad / aa : 0.0;
    double sq = 0;  // summed as squares: β²aa − 2βad + dd cancelled to below 0
    for (int k = 0; k < samples; ++k) sq += (beta * predicted[n][k] - delta(k)) * (beta * predicted[n][k] - delta(k));
    ev.values.push_back(sq / samples);
  }
  return ev;
}

// ---- declarations --------------------------------------------------------------------------------

const ParamInfo kAbsFalse{"abs", "false", "take |a| after normalising"};
const ParamInfo kAbsTrue{"abs", "true", "take |a| after normalising"};
const ParamInfo kNormalise{"normalise", "true", "divide each sample's attribution by its max |a| (Quantus normalise_by_max, per sample)"};
const ParamInfo kBaseline{"perturb_baseline", "black",
                          "replacement value: black (the sample's min), white (its max), mean, uniform (U(0,1) noise per "
                          "feature), or a number in the model's input space"};
const ParamInfo kSeed = explain::seed_param("42", "random draws (seeded per sample by its own values)");
const ParamInfo kSoftmaxTrue{"softmax", "true", "score the softmax probability of the target class (false: its logit)"};
const ParamInfo kSoftmaxFalse{"softmax", "false", "score the softmax probability of the target class (false: its logit)"};
const ParamInfo kStep{"features_in_step", "1", "features changed per step (input elements; 1..D)"};

}  // namespace

void add_faithfulness_metrics(std::vector<Metric>& reg) {
  const std::string fam = "faithfulness";
  reg.push_back({{{"pixel-flipping",
                   "score after flipping the features in decreasing attribution order, features_in_step at a time; "
                   "value: area under that curve (trapezoid, dx = 1 per step)",
                   {kStep, kBaseline, kSoftmaxTrue, kAbsFalse, kNormalise, kSeed},
                   "Quantus PixelFlipping (Bach et al. 2015) with return_auc_per_sample; ties in the order broken by "
                   "feature index (numpy's argsort is not stable); perturb_baseline uniform draws one value per "
                   "feature, not one per sample and step"},
                  fam, Better::lower},
                 pixel_flipping});
  const ParamInfo order{"order", "morf", "morf (most relevant first) | lerf (least relevant first) | random"};
  reg.push_back({{{"deletion",
                   "score as features are deleted (set to the baseline) in attribution order, from x (fraction 0) to "
                   "all deleted (1); value: AUC over the fraction deleted; extra aopc: mean drop from f(x)",
                   {kStep, {"perturb_baseline", "black", kBaseline.help + ", or blur"},
                    {"blur_sigma", "5", "σ in pixels of perturb_baseline=blur (RISE: σ 5)"}, order, kSoftmaxTrue,
                    kAbsFalse, kNormalise, kSeed},
                   "Petsiuk et al. 2018 (RISE's deletion metric: curve includes x itself, AUC by trapezoid over [0,1]); "
                   "order=lerf is Samek et al.'s LeRF; Quantus has no deletion metric (pixel-flipping is its nearest)"},
                  fam, Better::lower},
                 [](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r, const Context& c) {
                   return deletion_insertion(g, x, t, e, r, c, false);
                 }});
  reg.push_back({{{"insertion",
                   "score as features of x are inserted into the baseline in attribution order, from the baseline "
                   "(fraction 0) to x (1); value: AUC over the fraction inserted; extra aopc: mean of f(start) − f(step)",
                   {kStep, {"perturb_baseline", "blur", kBaseline.help + ", or blur"},
                    {"blur_sigma", "5", "σ in pixels of perturb_baseline=blur (RISE: σ 5)"}, order, kSoftmaxTrue,
                    kAbsFalse, kNormalise, kSeed},
                   "Petsiuk et al. 2018 (RISE's insertion metric from a blurred copy; AUC by trapezoid over [0,1])"},
                  fam, Better::higher},
                 [](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r, const Context& c) {
                   return deletion_insertion(g, x, t, e, r, c, true);
                 }});
  reg.push_back({{{"region-perturbation",
                   "score drops f(x) − f(x_k) as patch_size² patches (all channels) are set to the baseline in order of "
                   "their attribution sums; value: AOPC = Σ_k drop_k / (L + 1) over k = 0..L; extra auc: trapezoid of "
                   "the drops (dx = 1)",
                   {{"patch_size", "8", "patch side in pixels"},
                    {"order", "morf", "morf | lerf | random"},
                    {"regions_evaluation", "100", "patches perturbed (L, at most the patches there are)"},
                    kBaseline, kSoftmaxTrue, kAbsFalse, kNormalise, kSeed},
                   "Quantus RegionPerturbation (Samek et al. 2017; grid padded evenly as Quantus, the baseline taken "
                   "from the unpadded image); value is Samek's AOPC of the curve Quantus returns"},
                  fam, Better::higher},
                 region_perturbation});
  reg.push_back({{{"selectivity",
                   "score after removing patch_size² patches in decreasing order of attribution sum; value: area under "
                   "that curve (trapezoid, dx = 1 per patch)",
                   {{"patch_size", "8", "patch side in pixels"}, kBaseline, kSoftmaxTrue, kAbsFalse, kNormalise, kSeed},
                   "Quantus Selectivity (Montavon et al. 2018) with its get_auc_score"},
                  fam, Better::lower},
                 selectivity});
  reg.push_back({{{"faithfulness-correlation",
                   "Pearson correlation, over nr_runs random subsets of subset_size features, between the attribution "
                   "sum over the subset and the score drop when the subset is set to the baseline",
                   {{"nr_runs", "100", "random subsets per sample"},
                    {"subset_size", "224", "features per subset (below the input size)"},
                    kBaseline, kSoftmaxFalse, kAbsFalse, kNormalise, kSeed},
                   "Quantus FaithfulnessCorrelation (Bhatt et al. 2020)"},
                  fam, Better::higher},
                 faithfulness_correlation});
  reg.push_back({{{"monotonicity",
                   "1 when the score never decreases as features are added to the baseline from the least to the most "
                   "relevant, else 0",
                   {kStep, kBaseline, kSoftmaxTrue, kAbsTrue, kNormalise, kSeed},
                   "Quantus Monotonicity (Arya et al. 2019)"},
                  fam, Better::higher},
                 monotonicity});
  reg.push_back({{{"sensitivity-n",
                   "for n_values subset sizes n (log-spaced from 1 to n_max_percentage·D), the Pearson correlation over "
                   "nr_runs random n-subsets between their attribution sum and the score drop when removed; value: the "
                   "mean over n; curve: r against n",
                   {{"n_max_percentage", "0.8", "largest subset as a fraction of the features"},
                    {"n_values", "10", "subset sizes evaluated"},
                    {"nr_runs", "100", "random subsets per size and sample"},
                    kBaseline, kSoftmaxTrue, kAbsFalse, kNormalise, kSeed},
                   "Ancona et al. 2018 (random subsets per size and sample, as the paper); Quantus SensitivityN instead "
                   "removes one cumulative MoRF sequence and correlates across the batch"},
                  fam, Better::higher},
                 sensitivity_n});
  reg.push_back({{{"infidelity",
                   "mean over n_perturb_samples noise draws I ~ N(0, perturb_std²) of (⟨a, I⟩ − (f(x) − f(x − I)))²",
                   {{"n_perturb_samples", "10", "noise draws per sample"},
                    {"perturb_std", "0.1", "σ of the Gaussian perturbation (model input space)"},
                    {"normalize", "false", "scale ⟨a, I⟩ by the least-squares β first (Captum normalize)"},
                    kSoftmaxFalse, kAbsFalse, {"normalise", "false", kNormalise.help}, kSeed},
                   "Captum infidelity with Yeh et al. 2019's Gaussian perturbation (Captum leaves perturb_func to the "
                   "user; its docs use σ 0.003); Quantus Infidelity's square-patch removal is not followed"},
                  fam, Better::lower},
                 infidelity});
}

}  // namespace gb::metrics
