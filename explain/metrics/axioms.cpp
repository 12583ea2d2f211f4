// Axioms: properties an attribution either has or lacks. Completeness (Σ a = f(x) − f(x')),
// non-sensitivity (features that do not change the output get no attribution, and the other way
// round) and input invariance (Kindermans et al. 2017: a constant shift of the input absorbed by
// the first layer's bias changes nothing about the model, so it must change nothing about the
// explanation).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "explain/attribution/explain.h"
#include "explain/attribution/gradient.h"
#include "explain/metrics/common.h"
#include "explain/openbox/openbox.h"

namespace gb::metrics {

namespace {

// The `baseline` default that `method` declares, or that the base method under it declares (a noise
// tunnel passes its parameters on); nullopt when neither has one.
std::optional<std::string> declared_baseline(const std::string& method, const Params& params) {
  std::optional<std::string> base;
  for (const ParamInfo& p : explain::method_info(method).params) {
    if (p.name == "baseline") return p.default_value;
    if (p.name == "base") base = params.count("base") ? params.at("base") : p.default_value;
  }
  return base && *base != method ? declared_baseline(*base, {}) : std::nullopt;
}

// The explained method's baseline as it ran, [N, ...]: the `baseline` tensor or number it was given,
// else its (or its base method's) declared default. Empty when it takes none.
Tensor method_baseline(const Explanation& e, const Tensor& x) {
  if (auto it = e.params.tensors.find("baseline"); it != e.params.tensors.end())
    return explain::full_baseline(x, it->second, 0, "completeness: the method's");
  std::optional<std::string> declared = declared_baseline(e.method, e.params);
  if (auto it = e.params.find("baseline"); it != e.params.end()) declared = it->second;
  if (!declared) return {};
  // One number, or one per channel (occlusion's V0,V1,... : black through a per-channel normalization).
  const std::string value = *declared;
  const std::vector<float> values = explain::channel_values(value, "completeness: the method's baseline=" + value);
  const int C = x.rank() >= 2 ? x.dim(1) : 1;
  if (values.size() != 1 && values.size() != size_t(C))
    throw std::invalid_argument("completeness: the method's baseline=" + value + " has " + std::to_string(values.size()) +
                                " values for inputs of " + std::to_string(C) + " channels");
  Tensor b(x.shape(), values[0]);
  const size_t plane = x.sample_size() / size_t(C);
  for (int n = 0; n < x.batch(); ++n)
    for (int c = 0; c < C; ++c)
      std::fill_n(b.data() + (size_t(n) * C + c) * plane, plane, values[size_t(c) % values.size()]);
  return b;
}

Evaluation completeness(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                        const Context&) {
  // "method" (the default): the path's start is the method's own baseline, as Captum's
  // convergence delta takes it; Quantus has the user repeat it as perturb_baseline.
  const bool own = r.text("perturb_baseline") == "method";
  Tensor base = own ? method_baseline(e, x) : Tensor();
  const Baseline b = own ? Baseline{} : read_baseline(r);  // black where the method has no baseline
  const bool softmax = read_softmax(r, g, t), abs = r.flag("abs"), normalise = r.flag("normalise");
  const uint64_t seed = uint64_t(r.integer("seed"));
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, normalise, abs);
  const size_t D = x.sample_size();
  if (base.empty()) {
    base = Tensor(x.shape());
    for (int n = 0; n < x.batch(); ++n) baseline_values(b, x.data() + n * D, x.shape().sample(), seed, base.data() + n * D);
  }
  const std::vector<double> fx = scores_of(g, x, t, softmax), fb = scores_of(g, base, t, softmax);
  Evaluation ev;
  for (int n = 0; n < x.batch(); ++n) {
    const double delta = sum(a.data() + n * D, D) - (fx[n] - fb[n]);
    ev.values.push_back(std::fabs(delta));
    ev.extra["delta"].push_back(delta);
    ev.extra["relative"].push_back(std::fabs(delta) / std::max(std::fabs(fx[n] - fb[n]), 1e-12));
  }
  return ev;
}

Evaluation non_sensitivity(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                           const Context& ctx) {
  const double eps = number_in(r, "eps", 0, 1e30);
  const int per_step = integer_in(r, "features_in_step", 1, long(x.sample_size()));
  const Baseline b = read_baseline(r);
  const bool softmax = read_softmax(r, g, t), abs = r.flag("abs"), normalise = r.flag("normalise");
  const uint64_t seed = uint64_t(r.integer("seed"));
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, normalise, abs);
  const int N = x.batch();
  const size_t D = x.sample_size();
  // Per sample: the features with a < eps ("non-features") and the others, each in index order
  // and in groups of features_in_step; one perturbed row per group. Samples with fewer groups than
  // the most pad with x itself (rows that are scored but not read).
  std::vector<std::vector<std::vector<int>>> groups(N);
  int S = 0;
  for (int n = 0; n < N; ++n) {
    for (bool non : {true, false}) {
      std::vector<int> run;
      for (size_t i = 0; i < D; ++i)
        if ((a[n * D + i] < eps) == non) {
          run.push_back(int(i));
          if (int(run.size()) == per_step) groups[n].push_back(run), run.clear();
        }
      if (!run.empty()) groups[n].push_back(run);
    }
    S = std::max(S, int(groups[n].size()));
  }
  Tensor base(x.shape());
  for (int n = 0; n < N; ++n) baseline_values(b, x.data() + n * D, x.shape().sample(), seed, base.data() + n * D);
  auto fill = [&](int n, int k, float* row) {
    std::memcpy(row, x.data() + n * D, D * 4);
    if (k < int(groups[n].size()))
      for (int i : groups[n][k]) row[i] = base[n * D + i];
  };
  const std::vector<double> f0 = scores_of(g, x, t, softmax);
  const std::vector<double> f = score_rows(g, t, softmax, N, S, fill, ctx.progress);
  Evaluation ev;
  for (int n = 0; n < N; ++n) {
    double violations = 0;
    for (size_t k = 0; k < groups[n].size(); ++k) {
      const bool unchanged = std::fabs(f0[n] - f[size_t(n) * S + k]) < eps;
      for (int i : groups[n][k]) violations += unchanged != (a[n * D + i] < eps);
    }
    ev.values.push_back(violations);
  }
  return ev;
}

// The node that reads the graph input; input invariance shifts what it sees.
int first_layer(const Graph& g) {
  int first = -1;
  for (int i = 0; i < g.size(); ++i)
    for (int in : g.node(i).inputs)
      if (in == -1) {
        if (first >= 0) throw NotApplicable("input-invariance: several layers read the input");
        first = i;
      }
  return first;
}

// A copy of g whose first layer (a convolution with padding p) takes the input already zero-padded
// by p (so a shift of the input shifts the padding too, and the first layer's bias can absorb it
// exactly); p = 0 and dense first layers give a plain copy.
Graph padded_copy(const Graph& g, int first, int& pad) {
  nlohmann::json arch = architecture_json(g);
  pad = 0;
  if (auto* conv = dynamic_cast<const Conv2d*>(&g.layer(first))) {
    pad = conv->pad;
    for (auto& L : arch["layers"])
      if (L["name"] == conv->name) L["p"] = 0;
    arch["input"][1] = arch["input"][1].get<int>() + 2 * pad;
    arch["input"][2] = arch["input"][2].get<int>() + 2 * pad;
  }
  Graph out = graph_from_json(arch);
  auto src = g.named_params(), dst = out.named_params();
  for (size_t i = 0; i < src.size(); ++i) dst[i].second->value.copy_from(src[i].second->value);
  return out;
}

// Zero-pads each [C,H,W] sample by p on every side (plus `shift` everywhere, the pads included).
Tensor pad_images(const Tensor& x, int p, float shift) {
  if (x.rank() != 4) {  // not images: only the shift
    Tensor y = x.clone();
    for (size_t i = 0; i < y.size(); ++i) y[i] += shift;
    return y;
  }
  const int N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor y(Shape{N, C, H + 2 * p, W + 2 * p}, shift);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int yy = 0; yy < H; ++yy)
        for (int xx = 0; xx < W; ++xx) y.at(n, c, yy + p, xx + p) = x.at(n, c, yy, xx) + shift;
  return y;
}

Evaluation input_invariance(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                            const Context&) {
  const float shift = float(number_in(r, "input_shift", -1e6, 1e6));
  const double atol = number_in(r, "atol", 0, 1e30), rtol = number_in(r, "rtol", 0, 1e30);
  const int first = first_layer(g);
  const Layer& L = g.layer(first);
  const auto* conv_layer = dynamic_cast<const Conv2d*>(&L);
  const auto* dense_layer = dynamic_cast<const Dense*>(&L);
  if (!conv_layer && !dense_layer)
    throw NotApplicable("input-invariance: the first layer " + L.name + " is a " + L.kind() +
                                "; the shift is absorbed by a conv or dense layer's bias");
  if (conv_layer ? !conv_layer->has_bias : !dense_layer->has_bias)
    throw NotApplicable("input-invariance: the first layer " + L.name + " has no bias to absorb the shift");
  int pad = 0;
  Graph plain = padded_copy(g, first, pad);
  Graph shifted = clone(plain);
  // b' = b − shift · Σ_inputs w per output unit (Quantus add_mean_shift_to_first_layer's b1 − wᵀm).
  Param *w = nullptr, *b = nullptr;
  for (auto& [name, p] : shifted.named_params()) {
    if (name == L.name + ".weight") w = p;
    if (name == L.name + ".bias") b = p;
  }
  const int units = b->value.dim(0);
  const size_t per = w->value.size() / size_t(units);
  for (int u = 0; u < units; ++u) b->value[u] -= float(shift * sum(w->value.data() + u * per, per));
  // The method's tensor parameters (baselines shaped like inputs) move with the input; numbers
  // (e.g. IG's default baseline 0) stay where they are, as in Kindermans et al.
  Params p_plain = e.params, p_shift = e.params;
  for (auto& [key, tensor] : e.params.tensors)
    if (tensor.rank() == x.rank() && tensor.shape().sample() == x.shape().sample()) {
      p_plain.tensors[key] = pad_images(tensor, pad, 0.f);
      p_shift.tensors[key] = pad_images(tensor, pad, shift);
    }
  const Tensor x0 = pad_images(x, pad, 0.f), x1 = pad_images(x, pad, shift);
  const Tensor a0 = input_attribution(plain, x0, t, e.method, p_plain);
  const Tensor a1 = input_attribution(shifted, x1, t, e.method, p_shift);
  const Tensor l0 = logits_of(plain, x0), l1 = logits_of(shifted, x1);
  Evaluation ev;
  const size_t D = a0.sample_size(), K = l0.sample_size();
  for (int n = 0; n < x.batch(); ++n) {
    bool close = true;
    double worst = 0, model = 0;
    for (size_t i = 0; i < D; ++i) {
      const double d = std::fabs(double(a0[n * D + i]) - a1[n * D + i]);
      close &= d <= atol + rtol * std::fabs(a1[n * D + i]);  // numpy.isclose(a0, a1)
      worst = std::max(worst, d);
    }
    for (size_t k = 0; k < K; ++k) model = std::max(model, double(std::fabs(l0[n * K + k] - l1[n * K + k])));
    ev.values.push_back(close ? 1.0 : 0.0);
    ev.extra["max_difference"].push_back(worst);
    ev.extra["model_difference"].push_back(model);
  }
  return ev;
}

// How far a quadrature rule's Integrated Gradients is from the exact path integral (the sum over
// the linear regions the path crosses, method=exact), with the same baseline.
Evaluation integration_error(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                             const Context&) {
  if (e.method != "integrated-gradients")
    throw NotApplicable(r.method() + " evaluates integrated-gradients (the method is " + e.method + ")");
  try {
    openbox::check_piecewise_linear(g);
  } catch (const std::invalid_argument& err) {
    throw NotApplicable(r.method() + ": " + err.what());
  }
  const Tensor a = attribution_of(g, x, t, e);
  Params exact_params = e.params;
  exact_params["method"] = "exact";
  const explain::Result exact = explain::explain(g, x, t, "integrated-gradients", exact_params);
  Evaluation ev;
  const size_t D = x.sample_size();
  for (int n = 0; n < x.batch(); ++n) {
    double err = 0, norm = 0, sum_rule = 0, sum_exact = 0;
    for (size_t i = 0; i < D; ++i) {
      const double ar = a[n * D + i], ae = exact.attribution[n * D + i];
      err += std::fabs(ar - ae), norm += std::fabs(ae), sum_rule += ar, sum_exact += ae;
    }
    ev.values.push_back(norm > 0 ? err / norm : (err > 0 ? INFINITY : 0.0));
    ev.extra["exact_delta"].push_back(exact.delta[n]);
    // Σ exact = f(x) − f(x') up to exact_delta, so the rule's own completeness gap is:
    ev.extra["rule_delta"].push_back(sum_rule - (sum_exact - exact.delta[n]));
    ev.extra["regions"].push_back(exact.details[n].at("regions")[0]);
    ev.extra["pieces"].push_back(exact.details[n].at("pieces")[0]);
  }
  return ev;
}

const ParamInfo kAxiomBaseline{"perturb_baseline", "black",
                          "black (the sample's min) | white | mean | uniform | a number in the model's input space"};
const ParamInfo kAxiomSeed = explain::seed_param("42", "draws of perturb_baseline=uniform");

}  // namespace

void add_axiom_metrics(std::vector<Metric>& reg) {
  const std::string fam = "axiomatic";
  reg.push_back({{{"completeness",
                   "|Σ a − (f(x) − f(x'))| with x' the baseline; extras: delta (signed), relative (|delta| / |f(x) − "
                   "f(x')|)",
                   {{"perturb_baseline", "method",
                     "method: the explained method's own baseline (its baseline parameter; black where it has none) "
                     "| " + kAxiomBaseline.help},
                    {"softmax", "false", "f is the softmax probability (false: the logit)"},
                    {"abs", "false", "take |a|"}, {"normalise", "false", "divide by max |a| first (Quantus's default "
                    "true would rescale Σ a and break the axiom's units)"}, kAxiomSeed},
                   "Quantus Completeness (Sundararajan et al. 2017) returning the gap instead of exact float equality; "
                   "x' defaults to the method's own baseline (Quantus: perturb_baseline, default black, which must be "
                   "set to the method's by hand)"},
                  fam, Better::lower},
                 completeness});
  reg.push_back({{{"non-sensitivity",
                   "the number of features where (setting it to the baseline changes f by less than eps) differs from "
                   "(its attribution is below eps)",
                   {{"eps", "1e-5", "threshold for both"}, {"features_in_step", "1", "features perturbed together"},
                    kAxiomBaseline, {"softmax", "true", "f is the softmax probability (false: the logit)"},
                    {"abs", "true", "take |a|"}, {"normalise", "true", "divide by max |a| first"}, kAxiomSeed},
                   "Quantus NonSensitivity (Nguyen & Martínez 2020)"},
                  fam, Better::lower},
                 non_sensitivity});
  reg.push_back({{{"input-invariance",
                   "1 when the explanation of x equals that of x + input_shift under the model whose first-layer bias "
                   "absorbs the shift (numpy.isclose with atol, rtol), else 0; extras: max_difference, and "
                   "model_difference (largest logit change: the two models must agree)",
                   {{"input_shift", "-1", "constant added to every input element"},
                    {"atol", "1e-4", "absolute tolerance"}, {"rtol", "1e-5", "relative tolerance"}},
                   "Quantus InputInvariance (Kindermans et al. 2017); a padded first convolution is rewritten to take "
                   "the input pre-padded, so the pads shift too and the shifted model is exact (Quantus's bias from "
                   "the smallest response is not exact at the borders); tensor parameters (baselines) shift with the "
                   "input"},
                  fam, Better::higher},
                 input_invariance});
  reg.push_back({{{"integration-error",
                   "‖IG − IG_exact‖₁ / ‖IG_exact‖₁: the quadrature error of integrated-gradients (its method and "
                   "n_steps as given) against the exact path integral over the linear regions the path crosses; "
                   "extras: exact_delta, rule_delta (completeness gaps), regions, pieces",
                   {},
                   "glassbox only (no reference library integrates exactly): integrated-gradients method=exact, "
                   "piecewise-linear models"},
                  fam, Better::lower},
                 integration_error});
}

}  // namespace gb::metrics
