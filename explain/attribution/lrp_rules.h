// Layer-wise Relevance Propagation, Zennit-style: a rule is a BackwardRule attached to one layer
// of the graph; a composite picks a rule per layer type and position. Dense/Conv rules run the
// "modified gradient" way, batched through GEMM:
//   z = forward with modified inputs/weights, s = R / (z + stabilizer),
//   c = backward_data(s) with the same modified weights, R_in = a ⊙ c.
// Conventions follow Zennit (stabilizer ε·sign(z) with sign(0) = +1, default 1e-6), see
// explain/METHODS.md and the comments in lrp_rules.cpp.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "explain/attribution/explain.h"

namespace gb::explain {

enum class LrpRule { epsilon, zero, gamma, alpha_beta, zplus, zbox, wsquare, flat };

// One Dense/Conv rule with its parameters. `epsilon` is ε for the epsilon rule and the
// denominator stabilizer for every other rule (Zennit: 1e-6); `zero` ignores it and divides
// safely (0 where z = 0).
struct RuleSpec {
  LrpRule kind = LrpRule::epsilon;
  double epsilon = 1e-6;
  double gamma = 0.25;
  double alpha = 2, beta = 1;
  // zbox bounds of the input domain (scalars, broadcast over the input). *_sample: use each
  // sample's own min / max instead (written "min" / "max" in a rule string).
  double low = 0, high = 1;
  bool low_sample = false, high_sample = false;
};

// Parses "epsilon:0.01", "zero", "gamma:0.25", "alpha-beta:2:1", "zplus", "zbox:0:1",
// "zbox:min:max", "wsquare", "flat". Throws std::invalid_argument naming the bad part.
RuleSpec parse_rule(const std::string& text);
std::string rule_name(LrpRule r);

// Which rule each layer gets. `first` (when set) replaces the conv/dense rule on the first
// Conv/Dense layer in node order (Zennit's first-layer map). `norm_epsilon` stabilizes the
// parameter-free proportional rules (avg-pool, GAP, Add, BatchNorm that could not be folded);
// 0 means a safe divide (LRP-0).
struct Composite {
  RuleSpec conv, dense;
  std::optional<RuleSpec> first;
  double norm_epsilon = 1e-6;
};

// Composite for a name: "epsilon", "zero", "gamma", "alpha-beta", "zplus", "epsilon-plus-flat",
// "epsilon-gamma-box", "epsilon-alpha2-beta1" (an optional "lrp-" prefix is accepted), or a user
// mapping "conv=gamma:0.25,dense=epsilon:0.01,first=zbox:0:1" (unmapped keys: epsilon 1e-6).
Composite composite_from_name(const std::string& name);

// The per-node rules for `g` (typically a canonized graph, see canonizer.h). Rules capture the
// layers' weights as they are now; they stay valid while `g` lives and its weights are unchanged.
// Throws std::invalid_argument for a layer kind LRP has no rule for.
BackwardRules lrp_rules(const Graph& g, const Composite& c);

// Single-layer rules, usable on their own (e.g. a custom composite in a lab program).
BackwardRule linear_rule(Layer& layer, const RuleSpec& spec);  // Conv2d or Dense
BackwardRule pass_rule();                                      // relevance through unchanged
BackwardRule norm_rule(double epsilon);  // proportional to the inputs (avg-pool, GAP, Add)
BackwardRule batchnorm_rule(Layer& bn, double epsilon);  // ε rule on BatchNorm's affine map

// The lab-program call: LRP with a composite (see composite_from_name; "" reads the mapping from
// params["rule"]) on a batch, one target per sample. Params as for the registered methods:
// epsilon, gamma, alpha, beta, low, high (override the composite's rule parameters), seed
// (logit | onehot), layer (stop at this layer and return the relevance at its output).
// BatchNorm is folded into its preceding conv/dense on a copy of the graph first (canonizer.h);
// hooks set on `model` then do not fire (to watch layer relevances of such a model, run
// lrp_rules() on canonize(model).graph yourself, as tests/test_lrp.cpp does with plain graphs).
// Cost: ε/LRP-0/flat/w² cost about one gradient pass; γ, αβ and zᴮ run the stacked modified
// forward and backward GEMMs on top (skipping the a⁻ half when a layer's input is non-negative).
// Result.delta[n] = Σ relevance − seed value (f_c(x) for the default logit seed): the relevance
// absorbed or leaked by biases, stabilizers, α ≠ 1 and unfolded BatchNorm, not an error.
Result lrp(Graph& model, const Tensor& x, const Target& target, const std::string& composite,
           const Params& params = {});
// The same with the parameters read through `reader` (the registry's call); method is "lrp" or
// "lrp-<composite>".
Result lrp(Graph& model, const Tensor& x, const Target& target, const std::string& method,
           ParamReader& reader);

}  // namespace gb::explain
