#include "engine/graph.h"

#include <map>

namespace gb {

Graph::Graph(const Shape& input) : input_shape_(input) {
  if (input.rank < 1 || input.rank > 3) throw ShapeError("graph input must be rank 1..3 per sample, got " + input.str());
}

int Graph::add(std::unique_ptr<Layer> layer, std::vector<int> inputs) {
  const int id = size();
  if (int(inputs.size()) != layer->arity())
    throw std::invalid_argument(layer->kind() + " takes " + std::to_string(layer->arity()) + " input(s), got " +
                                std::to_string(inputs.size()));
  std::vector<Shape> in;
  for (int j : inputs) {
    if (j < -1 || j >= id) throw std::invalid_argument("layer input " + std::to_string(j) + " is not an earlier node");
    in.push_back(shape(j, 1));
  }
  if (layer->name.empty()) {
    std::map<std::string, int> count;
    for (auto& n : nodes_) count[n.layer->kind()]++;
    int k = count[layer->kind()] + 1;
    while (find(layer->kind() + std::to_string(k)) >= 0) ++k;
    layer->name = layer->kind() + std::to_string(k);
  } else if (find(layer->name) >= 0) {
    throw std::invalid_argument("duplicate layer name '" + layer->name + "'");
  }
  layer->build(in);
  shapes_.push_back(layer->out_shape(in));
  nodes_.push_back({std::move(layer), std::move(inputs)});
  acts_.resize(nodes_.size());
  sigs_.resize(nodes_.size());
  return id;
}

Graph& Graph::then(std::unique_ptr<Layer> layer) {
  add(std::move(layer), {size() - 1});
  return *this;
}

int Graph::find(const std::string& name) const {
  for (int i = 0; i < size(); ++i)
    if (nodes_[i].layer->name == name) return i;
  return -1;
}

int Graph::at(const std::string& name) const {
  int i = find(name);
  if (i < 0) {
    std::string names;
    for (auto& n : nodes_) names += (names.empty() ? "" : ", ") + n.layer->name;
    throw std::invalid_argument("no layer named '" + name + "' (layers: " + names + ")");
  }
  return i;
}

Shape Graph::shape(int node, int batch) const {
  if (node < 0) return Shape::batch_of(batch, input_shape_);
  return shapes_.at(node).with_batch(batch);
}

void Graph::init(uint64_t seed) {
  Rng r(seed);
  for (auto& n : nodes_) n.layer->init(r);
}

std::vector<std::pair<std::string, Param*>> Graph::named_params() const {
  std::vector<std::pair<std::string, Param*>> out;
  for (auto& n : nodes_)
    for (Param* p : n.layer->params()) out.emplace_back(n.layer->name + "." + p->name, p);
  return out;
}

size_t Graph::param_count(bool trainable_only) const {
  size_t s = 0;
  for (auto& [name, p] : named_params())
    if (p->trainable || !trainable_only) s += p->value.size();
  return s;
}

void Graph::zero_grad() {
  for (auto& [name, p] : named_params())
    if (p->trainable) p->grad.fill(0.f);
}

const Tensor& Graph::forward(const Tensor& x, Mode mode, const ForwardRules* rules) {
  if (nodes_.empty()) throw std::logic_error("forward through an empty graph");
  if (x.rank() != input_shape_.rank + 1 || x.shape().sample() != input_shape_)
    shape_error("model input", Shape::batch_of(x.rank() ? x.batch() : 1, input_shape_), x.shape());
  input_ = x;
  const int N = x.batch();
  for (int i = 0; i < size(); ++i) {
    Node& nd = nodes_[i];
    std::vector<const Tensor*> in;
    for (int j : nd.inputs) in.push_back(&activation(j));
    acts_[i].resize(shapes_[i].with_batch(N));
    ForwardCall call{i, *nd.layer, std::move(in), acts_[i], mode, ws_, rng};
    if (rules && i < int(rules->size()) && (*rules)[i])
      (*rules)[i](call);
    else
      nd.layer->forward(call);
    if (on_forward) on_forward(i, acts_[i]);
  }
  return acts_.back();
}

const Tensor& Graph::backward(const Tensor& seed, const BackwardOptions& opt) {
  const int out = output();
  check_shape(seed, acts_[out].shape(), "backward seed");
  written_.assign(nodes_.size() + 1, 0);  // index j+1; slot 0 is the input
  auto target = [&](int j) -> Tensor& { return j < 0 ? input_sig_ : sigs_[j]; };
  sigs_[out].resize(seed.shape());
  sigs_[out].copy_from(seed);
  written_[out + 1] = 1;
  for (int i = out; i >= 0; --i) {
    if (!written_[i + 1]) continue;  // no signal reaches this node
    // All consumers of node i come after it, so its signal is complete here.
    if (on_backward) on_backward(i, sigs_[i]);
    if (i == opt.stop_at) break;
    Node& nd = nodes_[i];
    const size_t k = nd.inputs.size();
    std::vector<const Tensor*> in(k);
    std::vector<Tensor*> g_in(k, nullptr);
    std::vector<char> direct(k, 0);
    if (scratch_.size() < k) scratch_.resize(k);
    for (size_t a = 0; a < k; ++a) {
      int j = nd.inputs[a];
      in[a] = &activation(j);
      if (j < 0 && !opt.input_grad) continue;
      bool claimed = written_[j + 1];
      for (size_t b = 0; b < a; ++b) claimed |= nd.inputs[b] == j && direct[b];
      Tensor& t = claimed ? scratch_[a] : target(j);
      t.resize(in[a]->shape());
      g_in[a] = &t;
      direct[a] = !claimed;
    }
    BackwardCall call{i, *nd.layer, in, acts_[i], sigs_[i], g_in, opt.param_grads, ws_};
    if (opt.rules && i < int(opt.rules->size()) && (*opt.rules)[i])
      (*opt.rules)[i](call);
    else
      nd.layer->backward(call);
    for (size_t a = 0; a < k; ++a) {
      if (!g_in[a] || direct[a]) continue;
      Tensor& t = target(nd.inputs[a]);
      float* d = t.data();
      const float* s = g_in[a]->data();
      for (size_t e = 0; e < t.size(); ++e) d[e] += s[e];
    }
    for (size_t a = 0; a < k; ++a)
      if (g_in[a]) written_[nd.inputs[a] + 1] = 1;
  }
  if (on_backward && opt.stop_at < 0 && opt.input_grad && written_[0]) on_backward(-1, input_sig_);
  return opt.stop_at >= 0 ? sigs_[opt.stop_at] : input_sig_;
}

}  // namespace gb
