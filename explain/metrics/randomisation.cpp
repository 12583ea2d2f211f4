// Randomisation (Adebayo et al. 2018's sanity checks, Sixt et al. 2020's random logit): an
// explanation that stays the same when the model's parameters, its training labels or the
// explained class are randomised does not explain the model. Each stage is one explain() call over
// all inputs on an edited copy of the model (engine/edit.h); the loaded model is never changed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine/architecture.h"
#include "engine/edit.h"
#include "explain/attribution/explain.h"
#include "explain/metrics/common.h"
#include "explain/metrics/similarity.h"

namespace gb::metrics {

namespace {

enum class Measure { spearman, spearman_abs, ssim, hog };
const std::vector<std::string> kMeasures = {"spearman", "spearman-abs", "ssim", "hog"};

Measure measure_of(const std::string& name) {
  return Measure(std::find(kMeasures.begin(), kMeasures.end(), name) - kMeasures.begin());
}

// Σ_c |a_c| per pixel divided by its maximum (Adebayo et al.'s abs_grayscale_norm): H·W values.
std::vector<float> abs_gray(const float* a, int C, size_t HW) {
  std::vector<float> m(HW, 0.f);
  for (int c = 0; c < C; ++c)
    for (size_t i = 0; i < HW; ++i) m[i] += std::fabs(a[c * HW + i]);
  const float top = *std::max_element(m.begin(), m.end());
  if (top > 0)
    for (float& v : m) v /= top;
  return m;
}

// The similarity of two attributions of one sample (`sample` is their shape [C,H,W] or [F]):
// Spearman's ρ of the signed values or of |a|, and for images the SSIM and the Pearson
// correlation of HOG features of the abs-normalised gray maps. NaN where undefined (a constant
// map's ranks, SSIM/HOG of non-images).
double similarity(Measure m, const float* a, const float* b, const Shape& sample) {
  const size_t D = sample.numel();
  if (m == Measure::spearman) return spearman(a, b, D);
  if (m == Measure::spearman_abs) {
    std::vector<float> aa(a, a + D), bb(b, b + D);
    for (size_t i = 0; i < D; ++i) aa[i] = std::fabs(aa[i]), bb[i] = std::fabs(bb[i]);
    return spearman(aa.data(), bb.data(), D);
  }
  if (sample.rank != 3) return NAN;
  const int C = sample[0], H = sample[1], W = sample[2];
  const std::vector<float> ga = abs_gray(a, C, size_t(H) * W), gb = abs_gray(b, C, size_t(H) * W);
  if (m == Measure::ssim) {
    const auto [lo_a, hi_a] = std::minmax_element(ga.begin(), ga.end());
    const auto [lo_b, hi_b] = std::minmax_element(gb.begin(), gb.end());
    const double range = std::max(*hi_a, *hi_b) - std::min(*lo_a, *lo_b);  // Quantus: over both maps
    return range > 0 ? ssim(ga.data(), gb.data(), H, W, range) : 1.0;
  }
  const std::vector<float> ha = hog(ga.data(), H, W), hb = hog(gb.data(), H, W);
  return ha.empty() ? NAN : pearson(ha.data(), hb.data(), ha.size());
}

// The chosen similarity, skipped (NotApplicable) where it has no value for these samples: SSIM
// needs images of at least its 7×7 window, HOG at least 3×3 cells of 4×4 pixels. Every value
// would have been NaN.
std::string read_measure(ParamReader& r, const Shape& sample) {
  const std::string name = choice(r, "similarity", kMeasures);
  const Measure m = measure_of(name);
  if (m != Measure::ssim && m != Measure::hog) return name;
  const int least = m == Measure::ssim ? 7 : 12;
  if (sample.rank != 3 || sample[1] < least || sample[2] < least)
    throw NotApplicable(r.method() + ": similarity=" + name + " needs images of at least " + std::to_string(least) + "x" +
                        std::to_string(least) + " pixels, not " + sample.str() + " (try --param similarity=spearman)");
  return name;
}

// The nodes whose parameters a randomisation re-draws (conv, dense, batchnorm), in graph order.
std::vector<int> parameter_layers(Graph& g) {
  std::vector<int> nodes;
  for (int i = 0; i < g.size(); ++i)
    if (!g.layer(i).params().empty()) nodes.push_back(i);
  return nodes;
}

Tensor explain_with(Graph& model, const Tensor& x, const Target& t, const Explanation& e) {
  return input_attribution(model, x, t, e.method, e.params);
}

// Similarity curves over stages: for each measure, y[n][s] = similarity(stage s, stage 0).
void add_similarity_curves(Evaluation& ev, const Shape& sample, const std::vector<std::string>& ticks,
                           const std::string& x_label) {
  const Tensor& a0 = ev.stage_attributions[0];
  const size_t D = a0.sample_size();
  for (const std::string& name : kMeasures) {
    Curve c;
    c.name = name;
    c.x_label = x_label;
    c.y_label = name == "hog" ? "HOG correlation" : name == "ssim" ? "SSIM" : "Spearman rank correlation";
    c.ticks = ticks;
    for (size_t s = 0; s < ticks.size(); ++s) c.x.push_back(double(s));
    c.y.assign(a0.batch(), {});
    for (int n = 0; n < a0.batch(); ++n)
      for (const Tensor& as : ev.stage_attributions)
        c.y[n].push_back(similarity(measure_of(name), a0.data() + n * D, as.data() + n * D, sample));
    ev.curves.push_back(std::move(c));
  }
}

// The chosen measure's mean over the randomised stages (Quantus return_average_correlation) and,
// as extra "last", its value at the last stage.
void summarise(Evaluation& ev, const std::string& measure) {
  const Curve& c = ev.curves[size_t(measure_of(measure))];
  auto& last = ev.extra["last"];
  for (const std::vector<double>& y : c.y) {
    std::vector<double> randomised(y.begin() + 1, y.end());
    ev.values.push_back(finite_mean(randomised));
    last.push_back(y.back());
  }
}

Evaluation parameter_randomisation(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                                   const Context& ctx, bool cascading) {
  const std::string measure = read_measure(r, x.shape().sample());
  const std::string order = cascading ? choice(r, "layer_order", {"top_down", "bottom_up"}) : "";
  const uint64_t seed = uint64_t(r.integer("seed"));
  std::vector<int> layers = parameter_layers(g);
  if (layers.empty()) throw NotApplicable(r.method() + ": the model has no layers with parameters");
  if (order != "bottom_up") std::reverse(layers.begin(), layers.end());  // from the logits down
  Evaluation ev;
  ev.stages = {"original"};
  ev.stage_attributions = {attribution_of(g, x, t, e)};
  Graph copy = clone(g);
  for (size_t s = 0; s < layers.size(); ++s) {
    if (!cascading && s > 0) copy = clone(g);  // independent: one layer at a time
    reinitialize(copy, {layers[s]}, seed);
    ev.stages.push_back(g.layer(layers[s]).name);
    ev.stage_attributions.push_back(explain_with(copy, x, t, e));
    if (ctx.progress) ctx.progress(long(s + 1), long(layers.size()));
  }
  ev.stage_prefix = cascading ? "+ " : "only ";
  // Independent randomisation re-draws one layer at a time, the rest as trained.
  add_similarity_curves(ev, x.shape().sample(), ev.stages,
                        cascading ? "randomised through (each layer and the ones before it)" : "the one layer randomised");
  summarise(ev, measure);
  return ev;
}

Evaluation data_randomisation(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                              const Context& ctx) {
  const std::string measure = read_measure(r, x.shape().sample());
  Graph& other = *ctx.label_random_model;
  if (!same_architecture(other, g))
    throw std::invalid_argument(r.method() + ": the label-random model's architecture differs from the model's");
  // A copy of the model (the same file twice, say) would score a perfect 1 that means nothing.
  const auto mine = g.named_params(), theirs = other.named_params();
  bool same = mine.size() == theirs.size();
  for (size_t i = 0; same && i < mine.size(); ++i) {
    const Tensor &a = mine[i].second->value, &b = theirs[i].second->value;
    same = a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
  }
  if (same)
    throw std::invalid_argument(r.method() + ": the label-random model has the same weights as the model; it must be "
                                "one trained on shuffled labels");
  Evaluation ev;
  ev.stages = {"original", "random labels"};
  ev.stage_attributions = {attribution_of(g, x, t, e), explain_with(other, x, t, e)};
  add_similarity_curves(ev, x.shape().sample(), ev.stages, "model (trained on the labels or on random labels)");
  const Curve& c = ev.curves[size_t(measure_of(measure))];
  for (const auto& y : c.y) ev.values.push_back(y[1]);
  for (const Curve& k : ev.curves)
    for (const auto& y : k.y) ev.extra[k.name].push_back(y[1]);
  return ev;
}

Evaluation random_logit(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                        const Context&) {
  const uint64_t seed = uint64_t(r.integer("seed"));
  if (!t.is_class(g)) throw NotApplicable(r.method() + ": needs class targets (the target is " + t.describe(g) + ")");
  const int K = g.classes(), N = x.batch();
  if (K < 2) throw NotApplicable(r.method() + ": needs a model with at least 2 classes");
  const std::string measure = read_measure(r, x.shape().sample());
  const size_t D = x.sample_size();
  std::vector<int> other(N);
  for (int n = 0; n < N; ++n) {  // uniform over the other K − 1 classes, seeded by the sample
    Rng rng(sample_seed(seed, x.data() + n * D, D));
    const int k = int(rng.below(uint32_t(K - 1)));
    other[n] = k < t.element(n) ? k : k + 1;
  }
  Evaluation ev;
  ev.stages = {"target class", "random other class"};
  ev.stage_attributions = {attribution_of(g, x, t, e), explain_with(g, x, Target(other), e)};
  for (int n = 0; n < N; ++n) {
    ev.values.push_back(similarity(measure_of(measure), ev.stage_attributions[0].data() + n * D,
                                   ev.stage_attributions[1].data() + n * D, x.shape().sample()));
    ev.extra["other_class"].push_back(other[n]);
  }
  return ev;
}

const ParamInfo kSimilarity{"similarity", "spearman-abs",
                            "the value's measure: spearman (signed a) | spearman-abs (|a|) | ssim | hog (Pearson of HOG "
                            "features; ssim and hog of the abs-normalised gray maps)"};
const ParamInfo kReinitSeed = explain::seed_param("42", "re-initialisation seed (layer i draws from (seed, i) alone)");

}  // namespace

void add_randomisation_metrics(std::vector<Metric>& reg) {
  const std::string fam = "randomisation";
  reg.push_back({{{"cascading-randomisation",
                   "similarity to the original explanation as the layers' parameters are re-initialised one after "
                   "another, from the logits down (layer_order=top_down); value: the mean over the randomised stages; "
                   "extra last: after every layer; curves: all four measures per stage; stage explanations for the grid",
                   {kSimilarity, {"layer_order", "top_down", "top_down (Adebayo's cascade) | bottom_up"}, kReinitSeed},
                   "Quantus MPRT (Adebayo et al. 2018) with return_average_correlation; re-initialisation with each "
                   "layer's own initializer (engine/edit.h); Spearman of |a| as Quantus's abs=True default"},
                  fam, Better::lower},
                 [](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r, const Context& c) {
                   return parameter_randomisation(g, x, t, e, r, c, true);
                 }});
  reg.push_back({{{"independent-randomisation",
                   "similarity to the original explanation when one layer at a time is re-initialised (the others "
                   "trained); value: the mean over layers; curves per measure and layer",
                   {kSimilarity, kReinitSeed},
                   "Quantus MPRT with layer_order='independent' (Adebayo et al. 2018)"},
                  fam, Better::lower},
                 [](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r, const Context& c) {
                   return parameter_randomisation(g, x, t, e, r, c, false);
                 }});
  reg.push_back({{{"data-randomisation",
                   "similarity between the explanation of the model and that of the same architecture trained on "
                   "shuffled labels; extras: all four measures",
                   {kSimilarity},
                   "Adebayo et al. 2018's data randomization test (Quantus has none); glassbox evaluate trains the "
                   "label-random model with the same settings (tools/cmd_metrics.cpp)"},
                  fam, Better::lower, false, true},
                 data_randomisation});
  reg.push_back({{{"random-logit",
                   "similarity between the explanation of the target class and of a random other class",
                   {{"similarity", "ssim", kSimilarity.help}, explain::seed_param("42", "draw of the other class (seeded per sample)")},
                   "Quantus RandomLogit (Sixt et al. 2020); SSIM of the 2-D abs-normalised maps (Quantus: of the "
                   "flattened, signed maps)"},
                  fam, Better::lower},
                 random_logit});
}

}  // namespace gb::metrics
