// The LRP methods of the registry: `lrp-<name>` for every named composite, its parameters those
// of its rules (so a composite's --list entry follows from the rule and composite tables), and
// `lrp` with a rule mapping. The work is in lrp_rules.cpp (rules), lrp_composites.cpp
// (composites, lrp()) and canonizer.cpp (BatchNorm folding).
#include "explain/attribution/lrp_rules.h"
#include "explain/attribution/method.h"

namespace gb::explain {

void add_lrp_methods(std::vector<Method>& registry) {
  const ParamInfo seed{"seed", "logit", "logit: start from the target's value (Σ relevance ≈ f(x)); onehot: from 1"};
  const ParamInfo layer{"layer", "", "stop at this layer and return the relevance at its output"};
  const std::string note =
      " Avg-pool/GAP/Add split in proportion to their inputs (stabilizer 1e-6), max-pool is winner-take-all, "
      "activations pass relevance through; BatchNorm is folded into the preceding conv/dense. delta = Σ relevance − "
      "f(x) (relevance absorbed by biases and stabilizers); details: relevance_per_layer = Σ relevance at the input and at "
      "each layer's output, from the same pass (conservation per layer).";
  for (const NamedComposite& c : named_composites()) {
    MethodInfo info{"lrp-" + c.name, c.summary + note, {}, "Zennit"};
    for (const std::string* rule : {&c.dense, &c.conv, &c.first}) {
      if (rule->empty()) continue;
      for (const ParamInfo& p : rule_params(parse_rule(*rule).name)) {
        bool seen = false;
        for (const ParamInfo& q : info.params) seen |= q.name == p.name;
        if (!seen) info.params.push_back(p);
      }
    }
    info.params.push_back(seed);
    info.params.push_back(layer);
    registry.push_back({info, [name = info.name](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
                          return lrp(g, x, t, name, r);
                        }});
  }
  MethodInfo info{"lrp",
                  "LRP with a user rule mapping, e.g. rule=conv=gamma:0.25,dense=epsilon:0.01,first=zbox:0:1 (rules: "
                  "epsilon[:ε], zero, gamma[:γ], alpha-beta[:α[:β]], zplus, zbox[:low:high], wsquare, flat; "
                  "norm=ε stabilizes pooling/Add)." + note,
                  {{"rule", "conv=epsilon,dense=epsilon", "KEY=RULE[,KEY=RULE...] with keys conv, dense, first, norm"}, seed, layer},
                  "Zennit"};
  registry.push_back({info, [](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
                        return lrp(g, x, t, "lrp", r);
                      }});
}

}  // namespace gb::explain
