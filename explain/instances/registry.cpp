// The registry of instance methods, and what they share.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/passes.h"
#include "explain/instances/method.h"

namespace gb::explain::instances {

static const explain::MethodTable<Method>& table() {
  static const explain::MethodTable<Method> t("method", [] {
    std::vector<Method> m;
    add_knn_method(m);
    add_influence_method(m);
    add_tracin_method(m);
    add_representer_method(m);
    return m;
  }());
  return t;
}

const std::vector<MethodInfo>& methods() { return table().infos(); }

const MethodInfo& method_info(const std::string& name) { return table().find(name).info; }

bool has_self_influence(const std::string& method) { return bool(table().find(method).self); }

void check_examples(const Graph& g, const Examples& ex, const std::string& what) {
  const Shape want = Shape::batch_of(ex.size() ? ex.size() : 1, g.input_shape());
  if (ex.x.rank() != want.rank || ex.x.shape().sample() != g.input_shape()) shape_error(what, want, ex.x.shape());
  if (ex.size() < 1) throw std::invalid_argument(what + ": no samples");
  if (int(ex.y.size()) != ex.size())
    throw std::invalid_argument(what + ": " + std::to_string(ex.y.size()) + " labels for " + std::to_string(ex.size()) +
                                " samples");
  for (size_t i = 0; i < ex.x.size(); ++i)
    if (!std::isfinite(ex.x[i]))
      throw std::invalid_argument(what + ": sample " + std::to_string(i / ex.x.sample_size()) + " is not finite");
  const int K = g.shape(g.output()).rank == 2 ? g.classes() : 0;
  if (K < 2) throw std::invalid_argument("the model's output " + g.shape(g.output()).str() + " is not [N, classes] logits");
  for (int n = 0; n < ex.size(); ++n)
    if (ex.y[n] < 0 || ex.y[n] >= K)
      throw std::out_of_range(what + ": class " + std::to_string(ex.y[n]) + " of sample " + std::to_string(n) +
                              " outside the model's classes [0," + std::to_string(K) + ")");
}

Scores explain(Graph& model, const Examples& train, const Examples& tests, const std::string& method,
               const Params& params, const Context& context) {
  const Method& m = table().find(method);
  check_examples(model, train, "training set");
  check_examples(model, tests, "test inputs");
  if (train.size() < 2)  // one point has nothing to be ranked against (the command refused it; Python did not)
    throw std::invalid_argument(method + ": the training set holds " + std::to_string(train.size()) +
                                " point(s); influence ranks at least 2");
  ParamReader reader(params, m.info);
  Scores s = m.run(model, train, tests, reader, context);
  reader.done();
  return s;
}

Scores self_influence(Graph& model, const Examples& train, const std::string& method, const Params& params,
                      const Context& context) {
  const Method& m = table().find(method);
  if (!m.self) {
    std::string names;
    for (auto& r : table().all())
      if (r.self) names += (names.empty() ? "" : ", ") + r.info.name;
    throw std::invalid_argument(method + " has no self-influence (methods with one: " + names + ")");
  }
  check_examples(model, train, "training set");
  ParamReader reader(params, m.info);
  Scores s = m.self(model, train, reader, context);
  reader.done();
  return s;
}

int last_dense(const Graph& g, const std::string& method) {
  const int out = g.output();
  if (!dynamic_cast<const Dense*>(&g.layer(out)))
    throw std::invalid_argument(method + ": the model's last layer '" + g.layer(out).name + "' (" +
                                g.layer(out).kind() + ") is not a dense layer producing the logits");
  return out;
}

std::vector<int> chosen_layers(const Graph& g, const std::string& spec, const std::string& method) {
  std::vector<int> nodes;
  if (spec == "last") return {last_dense(g, method)};
  if (spec == "all") {
    for (int i = 0; i < g.size(); ++i) {
      auto params = g.layer(i).params();
      if (std::any_of(params.begin(), params.end(), [](Param* p) { return p->trainable; })) nodes.push_back(i);
    }
    return nodes;
  }
  size_t p = 0;
  while (p <= spec.size()) {
    size_t q = spec.find(',', p);
    if (q == std::string::npos) q = spec.size();
    const std::string name = spec.substr(p, q - p);
    p = q + 1;
    if (name.empty()) continue;
    int i;
    try {
      i = g.at(name);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(method + ": --param layers=" + spec + ": " + e.what());
    }
    auto params = g.layer(i).params();
    if (std::none_of(params.begin(), params.end(), [](Param* q) { return q->trainable; }))
      throw std::invalid_argument(method + ": --param layers=" + spec + ": layer '" + name + "' has no trainable parameters");
    if (std::find(nodes.begin(), nodes.end(), i) == nodes.end()) nodes.push_back(i);
  }
  if (nodes.empty()) throw std::invalid_argument(method + ": --param layers is empty (use last, all or layer names)");
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

int activation_node(const Graph& g, const std::string& spec, const std::string& method) {
  if (spec == "input") return -1;
  if (spec.empty()) return g.node(last_dense(g, method)).inputs[0];
  try {
    return g.at(spec);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(method + ": --param layer=" + spec + ": " + e.what());
  }
}

Tensor loss_gradients(Graph& g, const Examples& ex, int b, int e, const std::vector<int>& nodes) {
  const Tensor x = ex.x.slice(b, e);
  const std::vector<int> y(ex.y.begin() + b, ex.y.begin() + e);
  Tensor seed;
  softmax_cross_entropy(g.forward(x), y, &seed, Reduction::sum);  // row n: sample n's own loss gradient
  return per_sample_param_grads(g, x, seed, nodes);
}

Tensor loss_gradient_dots(Graph& g, const Examples& ex, int b, int e, const std::vector<int>& nodes, const Tensor& V,
                          std::vector<double>* norms) {
  const std::vector<int> y(ex.y.begin() + b, ex.y.begin() + e);
  return per_sample_loss_grad_dots(g, ex.x.slice(b, e), y, nodes, V, norms);
}

LastLayerActivations last_layer_activations(Graph& g, int dense, const Tensor& x, const Context& ctx,
                                            const std::string& stage) {
  const int in = g.node(dense).inputs[0];
  std::vector<Tensor> a = activations(g, x, {in, dense}, ctx.batch, [&](int done, int total) {
    report(ctx, stage, done, total);
  });
  const int N = x.batch();
  return {a[0].reshaped(Shape{N, int(a[0].sample_size())}), a[1]};
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = double(a.size());
  double ma = 0, mb = 0, ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i] / n, mb += b[i] / n;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) * (a[i] - ma);
    bb += (b[i] - mb) * (b[i] - mb);
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

void report(const Context& ctx, const std::string& stage, int done, int total) {
  if (ctx.progress) ctx.progress(stage, done, total);
}

}  // namespace gb::explain::instances
