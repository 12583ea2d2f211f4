// LRP composites: the open list of (layer predicate, rule) pairs, the table of named composites
// (Zennit's names), and the lrp() call that canonizes, seeds at the target and walks the graph.
#include <cmath>
#include <memory>
#include <stdexcept>

#include "engine/layers.h"
#include "explain/attribution/canonizer.h"
#include "explain/attribution/lrp_rules.h"
#include "explain/common/params.h"

namespace gb::explain {

Composite& Composite::prepend(LayerPredicate p, RuleFactory r) {
  map.insert(map.begin(), {std::move(p), std::move(r)});
  return *this;
}

LayerPredicate named(const std::string& layer) {
  return [layer](const Graph& g, int i) { return g.layer(i).name == layer; };
}

RuleFactory linear(const RuleSpec& spec) {
  return [spec](const Graph& g, int i) { return linear_rule(g.layer(i), spec); };
}

namespace {

template <class... L>
LayerPredicate is_any() {
  return [](const Graph& g, int i) { return ((dynamic_cast<const L*>(&g.layer(i)) != nullptr) || ...); };
}

RuleFactory always(BackwardRule r) {
  return [r](const Graph&, int) { return r; };
}

// The first Conv/Dense node in node order (-1: none).
int first_linear(const Graph& g) {
  for (int i = 0; i < g.size(); ++i)
    if (is_any<Conv2d, Dense>()(g, i)) return i;
  return -1;
}

}  // namespace

Composite layer_map(const RuleSpec& conv, const RuleSpec& dense, const std::optional<RuleSpec>& first,
                    double norm_epsilon) {
  Composite c;
  if (first) c.map.emplace_back([](const Graph& g, int i) { return i == first_linear(g); }, linear(*first));
  c.map.emplace_back(is_any<Conv2d>(), linear(conv));
  c.map.emplace_back(is_any<Dense>(), linear(dense));
  c.map.emplace_back(is_any<Activation, Dropout>(), always(pass_rule()));
  c.map.emplace_back(is_any<AvgPool2d, GlobalAvgPool, Add>(), always(norm_rule(norm_epsilon)));
  c.map.emplace_back(is_any<BatchNorm2d>(),
                     [norm_epsilon](const Graph& g, int i) { return batchnorm_rule(g.layer(i), norm_epsilon); });
  c.map.emplace_back(is_any<MaxPool2d, Flatten>(), always(BackwardRule()));  // winner-take-all: the gradient
  return c;
}

const std::vector<NamedComposite>& named_composites() {
  static const std::vector<NamedComposite> table = {
      {"epsilon", "LRP-ε on every conv/dense layer.", "epsilon", "epsilon", ""},
      {"zero", "LRP-0 (ε = 0, 0 where z = 0) on every conv/dense layer, and unstabilized pooling/Add.", "zero", "zero",
       "", 0.0},
      {"gamma", "LRP-γ (Zennit's sign-aware rule) on every conv/dense layer.", "gamma", "gamma", ""},
      {"alpha-beta", "LRP-αβ on every conv/dense layer (z⁺ = a⁺w⁺ + a⁻w⁻ + b⁺, z⁻ likewise).", "alpha-beta",
       "alpha-beta", ""},
      {"zplus", "LRP-z⁺ on every conv/dense layer (αβ with α = 1, β = 0).", "zplus", "zplus", ""},
      {"epsilon-plus-flat", "Zennit EpsilonPlusFlat: flat on the first conv/dense, z⁺ on convs, ε on dense.", "zplus",
       "epsilon", "flat"},
      {"epsilon-gamma-box", "Zennit EpsilonGammaBox: zᴮ on the first conv/dense, γ on convs, ε on dense.", "gamma",
       "epsilon", "zbox"},
      {"epsilon-alpha2-beta1", "Zennit EpsilonAlpha2Beta1: α2β1 on convs, ε on dense.", "alpha-beta", "epsilon", ""},
  };
  return table;
}

NamedComposite composite_rules(const std::string& name_in) {
  const std::string name = name_in.rfind("lrp-", 0) == 0 ? name_in.substr(4) : name_in;
  if (name.find('=') == std::string::npos) {
    std::string names;
    for (const NamedComposite& c : named_composites()) {
      if (c.name == name) return c;
      names += c.name + ", ";
    }
    throw std::invalid_argument("LRP: unknown composite '" + name_in + "' (known: " + names +
                                "or a mapping conv=...,dense=...,first=...)");
  }
  NamedComposite c{"", "", "epsilon", "epsilon", ""};  // a user mapping
  for (size_t b = 0;;) {
    const size_t e = name.find(',', b);
    const std::string item = name.substr(b, e == std::string::npos ? std::string::npos : e - b);
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq), val = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (eq == std::string::npos)
      throw std::invalid_argument("LRP rule mapping: '" + item + "' is not KEY=RULE (keys: conv, dense, first, norm)");
    if (val.empty() && (key == "conv" || key == "dense" || key == "first"))  // (an empty rule read past the rules)
      throw std::invalid_argument("LRP rule mapping: '" + item + "' gives no rule (" + key + "=RULE; leave out first " +
                                  "for none)");
    if (key == "conv") {
      c.conv = val;
    } else if (key == "dense") {
      c.dense = val;
    } else if (key == "first") {
      c.first = val;
    } else if (key == "norm") {
      char* end = nullptr;
      c.norm_epsilon = std::strtod(val.c_str(), &end);
      if (val.empty() || *end || !float32_finite(c.norm_epsilon) || c.norm_epsilon < 0)
        throw std::invalid_argument("LRP rule mapping: norm '" + val + "' is not a number >= 0");
    } else {
      throw std::invalid_argument("LRP rule mapping: unknown key '" + key + "' (keys: conv, dense, first, norm)");
    }
    if (e == std::string::npos) break;
    b = e + 1;
  }
  for (const std::string* r : {&c.conv, &c.dense, &c.first})
    if (!r->empty()) parse_rule(*r);  // a bad rule fails here, naming itself
  return c;
}

Composite composite_from_name(const std::string& name) {
  const NamedComposite c = composite_rules(name);
  std::optional<RuleSpec> first;
  if (!c.first.empty()) first = parse_rule(c.first);
  return layer_map(parse_rule(c.conv), parse_rule(c.dense), first, c.norm_epsilon);
}

BackwardRules lrp_rules(const Graph& g, const Composite& comp) {
  BackwardRules rules(g.size());
  for (int i = 0; i < g.size(); ++i) {
    bool matched = false;
    for (const auto& [accepts, make] : comp.map)
      if (accepts(g, i)) {
        rules[i] = make(g, i);
        matched = true;
        break;
      }
    if (!matched)
      throw std::invalid_argument("LRP has no rule for layer '" + g.layer(i).name + "' of kind " + g.layer(i).kind());
  }
  return rules;
}

Result lrp(Graph& model, const Tensor& x, const Target& target, const std::string& composite, const Params& params) {
  if (composite.find('=') != std::string::npos) {  // a rule mapping: method `lrp` with rule=composite
    Params with_rule = params;
    with_rule["rule"] = composite;
    return lrp(model, x, target, "lrp", with_rule);
  }
  const bool plain = composite.empty() || composite == "lrp";
  const std::string method = plain ? "lrp" : composite.rfind("lrp-", 0) == 0 ? composite : "lrp-" + composite;
  ParamReader pr(params, method_info(method));
  Result r = lrp(model, x, target, method, pr);
  pr.done();
  return r;
}

namespace {

// The composite of a registered method, its rules' arguments overridden by the parameters given
// (every parameter a rule declares is a parameter of the composites that use the rule).
Composite read_composite(const std::string& method, ParamReader& pr) {
  NamedComposite c = composite_rules(method == "lrp" ? pr.text("rule") : method);
  std::vector<RuleSpec> specs;  // dense, conv, first: the order of the methods' parameter lists
  for (const std::string* text : {&c.dense, &c.conv, &c.first})
    if (!text->empty()) specs.push_back(parse_rule(*text));
  if (method != "lrp")
    for (const ParamInfo& p : pr.declared())
      if (p.name != "seed" && p.name != "layer") {
        const std::string v = pr.text(p.name);
        if (pr.given(p.name))
          for (RuleSpec& s : specs)
            if (s.has(p.name)) s.args[p.name] = v;
      }
  std::optional<RuleSpec> first;
  if (!c.first.empty()) first = specs.back();
  return layer_map(specs[1], specs[0], first, c.norm_epsilon);
}

}  // namespace

Result lrp(Graph& model, const Tensor& x, const Target& target, const std::string& method, ParamReader& pr) {
  const Composite comp = read_composite(method, pr);
  const std::string seed_mode = pr.text("seed");
  if (seed_mode != "logit" && seed_mode != "onehot")
    throw std::invalid_argument(method + ": seed must be logit or onehot, got '" + seed_mode + "'");
  const std::string layer = pr.text("layer");
  target.check(model, x.batch());

  // LRP runs on a canonized copy only when there is BatchNorm to fold.
  std::unique_ptr<Canonized> canon;
  Graph* g = &model;
  int stop = layer.empty() ? -1 : model.at(layer);
  Target t = target;
  if (has_batchnorm(model)) {
    // A conv/dense asked for by name keeps its own output: folded, it would output its BatchNorm's.
    canon = std::make_unique<Canonized>(canonize(model, {stop, target.node}));
    g = &canon->graph;
    if (stop >= 0) stop = canon->node_map[stop];
    if (t.node >= 0) t.node = canon->node_map[t.node];  // a folded BatchNorm: the layer it was folded into
  }
  const BackwardRules rules = lrp_rules(*g, comp);
  ForwardOptions fo;
  fo.until = t.at(*g);
  const Tensor& out = g->forward(x, fo);
  // Relevance starts as the target's seed w (onehot) or w ⊙ a (logit: Zennit's and Captum's
  // start from the output value, so Σ relevance ≈ f(x) = ⟨w, a⟩).
  const int N = x.batch();
  Tensor seed = t.seed(*g, 0, N);
  if (seed_mode == "logit")
    for (size_t i = 0; i < seed.size(); ++i) seed[i] *= out[i];
  std::vector<double> seed_value(N);
  const size_t S = seed.sample_size();
  for (int n = 0; n < N; ++n) seed_value[n] = sum(seed.data() + n * S, S);
  BackwardOptions opt;
  opt.rules = &rules;
  opt.per_sample_rules = true;  // every rule reads and writes its own samples only
  opt.seed_at = t.at(*g);
  opt.stop_at = stop;
  // Conservation per layer, from this same pass: each node's relevance summed per sample.
  std::vector<std::vector<double>> layer_sums(g->size() + 1);  // [0]: the input, [i + 1]: node i
  opt.on_node = [&](int node, const Tensor& r) {
    const size_t S = r.sample_size();
    for (int n = 0; n < N; ++n) layer_sums[node + 1].push_back(sum(r.data() + n * S, S));
  };
  Result res;
  res.attribution = g->backward(seed, opt).clone();
  res.details.resize(N);
  for (int i = 0; i <= g->size(); ++i) {
    if (layer_sums[i].empty()) continue;  // past the seed, or below a stop layer
    res.detail_layers.push_back(i == 0 ? "input" : g->layer(i - 1).name);
    for (int n = 0; n < N; ++n) res.details[n]["relevance_per_layer"].push_back(layer_sums[i][n]);
  }
  const size_t D = res.attribution.sample_size();
  for (int n = 0; n < N; ++n) {
    double s = 0;
    for (size_t i = 0; i < D; ++i) s += res.attribution[n * D + i];
    res.delta.push_back(s - seed_value[n]);
  }
  return res;
}

}  // namespace gb::explain
