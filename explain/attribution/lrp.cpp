// The LRP methods of the registry: one per rule or Zennit composite, and `lrp` with a rule
// mapping. The work is in lrp_rules.cpp (rules) and canonizer.cpp (BatchNorm folding).
#include "explain/attribution/lrp_rules.h"
#include "explain/attribution/method.h"

namespace gb::explain {

void add_lrp_methods(std::vector<Method>& registry) {
  const ParamInfo seed{"seed", "logit", "logit: start from the target logit (Σ relevance ≈ f_c(x)); onehot: from 1"};
  const ParamInfo layer{"layer", "", "stop at this layer and return the relevance at its output"};
  const ParamInfo eps{"epsilon", "1e-6", "ε of the epsilon rule (denominator z + ε·sign(z), sign(0) = +1)"};
  const ParamInfo gamma{"gamma", "0.25", "γ of the sign-aware gamma rule"};
  const ParamInfo alpha{"alpha", "2", "α of the αβ rule (α − β = 1)"};
  const ParamInfo beta{"beta", "1", "β of the αβ rule (default α − 1)"};
  const ParamInfo low{"low", "0", "zᴮ lower bound of the input domain, in the model's input space ('min': per-sample min; glassbox explain's default: pixel 0 through the model's normalization)"};
  const ParamInfo high{"high", "1", "zᴮ upper bound of the input domain, in the model's input space ('max': per-sample max; glassbox explain's default: pixel 1 through the model's normalization)"};
  const std::string note =
      " Avg-pool/GAP/Add split in proportion to their inputs (stabilizer 1e-6), max-pool is winner-take-all, "
      "activations pass relevance through; BatchNorm is folded into the preceding conv/dense. delta = Σ relevance − "
      "f_c(x) (relevance absorbed by biases and stabilizers).";
  struct Entry {
    std::string composite, summary;
    std::vector<ParamInfo> params;
  };
  const std::vector<Entry> entries = {
      {"epsilon", "LRP-ε on every conv/dense layer.", {eps}},
      {"zero", "LRP-0 (ε = 0, 0 where z = 0) on every conv/dense layer, and unstabilized pooling/Add.", {}},
      {"gamma", "LRP-γ (Zennit's sign-aware rule) on every conv/dense layer.", {gamma}},
      {"alpha-beta", "LRP-αβ on every conv/dense layer (z⁺ = a⁺w⁺ + a⁻w⁻ + b⁺, z⁻ likewise).", {alpha, beta}},
      {"zplus", "LRP-z⁺ on every conv/dense layer (αβ with α = 1, β = 0).", {}},
      {"epsilon-plus-flat", "Zennit EpsilonPlusFlat: flat on the first conv/dense, z⁺ on convs, ε on dense.", {eps}},
      {"epsilon-gamma-box", "Zennit EpsilonGammaBox: zᴮ on the first conv/dense, γ on convs, ε on dense.",
       {eps, gamma, low, high}},
      {"epsilon-alpha2-beta1", "Zennit EpsilonAlpha2Beta1: α2β1 on convs, ε on dense.", {eps, alpha, beta}},
  };
  for (const Entry& e : entries) {
    MethodInfo info{"lrp-" + e.composite, e.summary + note, e.params, "Zennit"};
    info.params.push_back(seed);
    info.params.push_back(layer);
    registry.push_back({info, [c = e.composite](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
                          return lrp(g, x, t, "lrp-" + c, r);
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
