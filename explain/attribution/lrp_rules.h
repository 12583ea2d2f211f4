// Layer-wise Relevance Propagation, Zennit-style: a rule is a BackwardRule attached to one layer
// of the graph, and a composite is an open list of (layer predicate, rule) pairs that picks each
// layer's rule. Dense/Conv rules run the "modified gradient" way, batched through GEMM:
//   z = forward with modified inputs/weights, s = R / (z + stabilizer),
//   c = backward_data(s) with the same modified weights, R_in = a ⊙ c.
// Conventions follow Zennit (stabilizer ε·sign(z) with sign(0) = +1, default 1e-6), see
// explain/METHODS.md and the comments in lrp_rules.cpp.
//
// Adding a Dense/Conv rule touches one place: its entry in the rule table (lrp_rules.cpp):
// name, parameters with defaults, and the function that builds it. Adding a named composite is
// one entry in the composite table there; the registry's `lrp-<name>` methods and their
// parameters follow from it.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "explain/attribution/explain.h"

namespace gb::explain {

// One Dense/Conv rule as written "name:arg:arg", e.g. "epsilon:0.01", "zero", "gamma:0.25",
// "alpha-beta:2:1", "zplus", "zbox:0:1", "zbox:min:max", "wsquare", "flat". Arguments not given
// take the rule's defaults (rule_params()).
struct RuleSpec {
  std::string name = "epsilon";
  std::map<std::string, std::string> args;  // given arguments by parameter name ("epsilon", "gamma", ...)
  bool has(const std::string& arg) const;   // the rule takes this parameter
  double number(const std::string& arg) const;  // given or default; throws naming a bad value
};

// Parses a rule; throws std::invalid_argument naming the bad part and the known rules.
RuleSpec parse_rule(const std::string& text);
// The parameters of a rule (name, default, help): its `--param` keys in the composites that use it.
const std::vector<ParamInfo>& rule_params(const std::string& rule);
// The rule for one Conv2d or Dense layer (throws for another kind).
BackwardRule linear_rule(Layer& layer, const RuleSpec& spec);

// Which rule each layer gets: the first entry whose predicate accepts the node. A layer no entry
// accepts is an error naming it; an entry may give an empty rule (the layer's own gradient,
// winner-take-all max-pool).
using LayerPredicate = std::function<bool(const Graph&, int node)>;
using RuleFactory = std::function<BackwardRule(const Graph&, int node)>;
struct Composite {
  std::vector<std::pair<LayerPredicate, RuleFactory>> map;
  // Inserts in front: the new entry wins over the ones already there (a lab program's override,
  // e.g. c.prepend(named("conv2"), linear(parse_rule("gamma:0.5")))).
  Composite& prepend(LayerPredicate p, RuleFactory r);
};
LayerPredicate named(const std::string& layer);  // the layer of that name
RuleFactory linear(const RuleSpec& spec);         // linear_rule on the node's layer

// Zennit's layer map: `first` (when set) on the first Conv/Dense layer in node order, `conv` on
// other convolutions, `dense` on other dense layers; activations and dropout pass relevance on;
// avg-pool, GAP and Add split it in proportion to their inputs (stabilizer norm_epsilon, 0: a safe
// divide); a BatchNorm that could not be folded gets the ε rule on its affine map; max-pool
// (winner-take-all) and flatten keep their gradient.
Composite layer_map(const RuleSpec& conv, const RuleSpec& dense, const std::optional<RuleSpec>& first,
                    double norm_epsilon = 1e-6);

// The named composites (Zennit's names) and the rule mappings users write.
struct NamedComposite {
  std::string name, summary;
  std::string conv, dense, first;  // rule texts; first may be empty
  double norm_epsilon = 1e-6;
};
const std::vector<NamedComposite>& named_composites();
// A composite's rules: a name of named_composites() (an optional "lrp-" prefix is accepted) or a
// mapping "conv=gamma:0.25,dense=epsilon:0.01,first=zbox:0:1,norm=1e-6" (unmapped keys: epsilon,
// no first rule, norm 1e-6).
NamedComposite composite_rules(const std::string& name);
Composite composite_from_name(const std::string& name);

// The per-node rules for `g` (typically a canonized graph, see canonizer.h). Rules capture the
// layers' weights as they are now; they stay valid while `g` lives and its weights are unchanged.
// Throws std::invalid_argument for a layer no entry of the composite accepts.
BackwardRules lrp_rules(const Graph& g, const Composite& c);

// Rules for the other layers, usable on their own.
BackwardRule pass_rule();                                // relevance through unchanged
BackwardRule norm_rule(double epsilon);                  // proportional to the inputs (avg-pool, GAP, Add)
BackwardRule batchnorm_rule(Layer& bn, double epsilon);  // ε rule on BatchNorm's affine map

// The lab-program call: LRP with a composite (see composite_rules; "" or "lrp" reads the mapping
// from params["rule"]) on a batch. Params as for the registered methods: the parameters of the
// composite's rules (epsilon, gamma, alpha, beta, low, high: they override those rules'
// arguments), seed (logit | onehot), layer (stop at this layer and return the relevance at its
// output). The relevance starts at the target: w ⊙ a (logit) or w (onehot) for the target's seed
// w at its node, so Σ relevance ≈ f(x) for the default.
// BatchNorm is folded into its preceding conv/dense on a copy of the graph first (canonizer.h);
// hooks on `model` then do not see it (to watch layer relevances of such a model, run lrp_rules()
// on canonize(model).graph yourself, as tests/test_lrp.cpp does with plain graphs).
// Cost: ε/LRP-0/flat/w² cost about one gradient pass; γ, αβ and zᴮ run the stacked modified
// forward and backward GEMMs on top (skipping the a⁻ half when a layer's input is non-negative).
// Result.delta[n] = Σ relevance − Σ seed (f(x) for the default logit seed): the relevance
// absorbed or leaked by biases, stabilizers, α ≠ 1 and unfolded BatchNorm, not an error.
Result lrp(Graph& model, const Tensor& x, const Target& target, const std::string& composite,
           const Params& params = {});
// The same with the parameters read through `reader` (the registry's call); method is "lrp" or
// "lrp-<composite>".
Result lrp(Graph& model, const Tensor& x, const Target& target, const std::string& method, ParamReader& reader);

}  // namespace gb::explain
