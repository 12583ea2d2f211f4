// BatchNorm folding on a rebuilt copy of the graph (see canonizer.h).
#include "explain/attribution/canonizer.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/architecture.h"
#include "engine/layers.h"

namespace gb::explain {

bool has_batchnorm(const Graph& g) {
  for (int i = 0; i < g.size(); ++i)
    if (dynamic_cast<const BatchNorm2d*>(&g.layer(i))) return true;
  return false;
}

// The conv/dense node BatchNorm `i` can be folded into, or -1.
static int fold_target(const Graph& g, int i, const std::vector<int>& keep) {
  if (!dynamic_cast<const BatchNorm2d*>(&g.layer(i))) return -1;
  const int j = g.node(i).inputs[0];
  if (j < 0 || std::find(keep.begin(), keep.end(), j) != keep.end()) return -1;
  if (!dynamic_cast<const Conv2d*>(&g.layer(j)) && !dynamic_cast<const Dense*>(&g.layer(j))) return -1;
  // Other readers of the conv's output must keep seeing the un-normalized values.
  for (int k = 0; k < g.size(); ++k)
    if (k != i)
      for (int in : g.node(k).inputs)
        if (in == j) return -1;
  // Dropping the BatchNorm must leave the graph's output node in place.
  if (i == g.output() && j != g.output() - 1) return -1;
  return j;
}

Canonized canonize(const Graph& g, const std::vector<int>& keep) {
  json arch = architecture_json(g);
  std::map<std::string, std::string> renamed;  // folded BatchNorm -> the layer it went into
  std::map<std::string, int> folded_into;      // conv/dense name -> BatchNorm node
  for (int i = 0; i < g.size(); ++i) {
    int j = fold_target(g, i, keep);
    if (j < 0) continue;
    renamed[g.layer(i).name] = g.layer(j).name;
    folded_into[g.layer(j).name] = i;
  }
  json layers = json::array();
  for (auto& e : arch["layers"]) {
    std::string name = e["name"].get<std::string>();
    if (renamed.count(name)) continue;
    for (auto& in : e["inputs"]) {
      auto it = renamed.find(in.get<std::string>());
      if (it != renamed.end()) in = it->second;
    }
    if (folded_into.count(name)) e["bias"] = true;  // the fold needs a bias even where there was none
    layers.push_back(e);
  }
  arch["layers"] = layers;

  Canonized c{graph_from_json(arch), {}, int(renamed.size())};
  for (int i = 0; i < g.size(); ++i) {
    const std::string& name = g.layer(i).name;
    auto it = renamed.find(name);
    c.node_map.push_back(c.graph.at(it == renamed.end() ? name : it->second));
  }

  std::map<std::string, Param*> src;
  for (auto& [name, p] : g.named_params()) src[name] = p;
  for (int i = 0; i < c.graph.size(); ++i) {
    Layer& L = c.graph.layer(i);
    auto f = folded_into.find(L.name);
    if (f == folded_into.end()) {
      for (Param* p : L.params()) p->value.copy_from(src.at(L.name + "." + p->name)->value);
      continue;
    }
    const auto& bn = static_cast<const BatchNorm2d&>(g.layer(f->second));
    std::vector<float> scale, shift;
    bn.eval_affine(scale, shift);  // scale = γ/√(var+eps), shift = β − μ·scale
    Tensor* w;
    Tensor* b;
    const Tensor* old_b = nullptr;
    if (auto* cv = dynamic_cast<Conv2d*>(&L)) {
      w = &cv->weight.value;
      b = &cv->bias.value;
    } else {
      auto& dn = dynamic_cast<Dense&>(L);
      w = &dn.weight.value;
      b = &dn.bias.value;
    }
    w->copy_from(src.at(L.name + ".weight")->value);
    if (auto it = src.find(L.name + ".bias"); it != src.end()) old_b = &it->second->value;
    const int O = w->dim(0);
    const size_t per = w->size() / O;
    for (int o = 0; o < O; ++o) {
      float* row = w->data() + o * per;
      for (size_t k = 0; k < per; ++k) row[k] *= scale[o];
      // (b − μ)·s + β = b·s + shift
      (*b)[o] = (old_b ? (*old_b)[o] * scale[o] : 0.f) + shift[o];
    }
  }
  return c;
}

}  // namespace gb::explain
