// DeconvNet / Guided Backprop as backward rules on ReLU nodes (Captum overrides ReLU modules only).
#include "explain/attribution/relu_rules.h"

#include "engine/layers.h"
#include "explain/attribution/gradient.h"

namespace gb::explain {

static BackwardRules relu_rules(const Graph& g, bool guided) {
  BackwardRules rules(g.size());
  for (int i = 0; i < g.size(); ++i) {
    if (!dynamic_cast<const ReLU*>(&g.layer(i))) continue;
    rules[i] = [guided](BackwardCall& c) {
      if (!c.g_in[0]) return;
      const float *x = c.in[0]->data(), *gy = c.g_out.data();
      float* gx = c.g_in[0]->data();
      const size_t n = c.g_out.size();
      if (guided)
        for (size_t k = 0; k < n; ++k) gx[k] = x[k] > 0 && gy[k] > 0 ? gy[k] : 0.f;
      else
        for (size_t k = 0; k < n; ++k) gx[k] = gy[k] > 0 ? gy[k] : 0.f;
    };
  }
  return rules;
}

BackwardRules deconvnet_rules(const Graph& g) { return relu_rules(g, false); }
BackwardRules guided_backprop_rules(const Graph& g) { return relu_rules(g, true); }

static Tensor run(Graph& g, const Tensor& x, const Target& target, int layer, bool guided) {
  const BackwardRules r = relu_rules(g, guided);
  BackpropOptions o;
  o.rules = &r;
  o.layer = layer;
  o.per_sample_rules = true;  // the ReLU rules are elementwise
  return backprop(g, x, target, o);
}

Tensor deconvnet(Graph& g, const Tensor& x, const Target& target, int layer) { return run(g, x, target, layer, false); }
Tensor guided_backprop(Graph& g, const Tensor& x, const Target& target, int layer) {
  return run(g, x, target, layer, true);
}

void add_relu_rule_methods(std::vector<Method>& reg) {
  for (bool guided : {false, true}) {
    std::string name = guided ? "guided-backprop" : "deconvnet";
    reg.push_back({{name,
                    guided ? "gradient with ReLU backward = signal·1[x>0]·1[signal>0]"
                           : "gradient with ReLU backward = relu(signal), forward mask ignored",
                    {{"layer", "", "stop at this layer and return the signal at its output (shaped like it)"}},
                    std::string(guided ? "Captum GuidedBackprop" : "Captum Deconvolution") +
                        " (ReLU nodes only; max-pool routes through the forward argmax)"},
                   [name, guided](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
                     int layer = read_layer(r, g);
                     Result res;
                     res.attribution = guided ? guided_backprop(g, x, t, layer) : deconvnet(g, x, t, layer);
                     return res;
                   }});
  }
}

}  // namespace gb::explain
