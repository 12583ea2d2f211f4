#include "engine/edit.h"

#include <stdexcept>
#include <string>

#include "engine/layers.h"

namespace gb {

void reinitialize(Graph& g, const std::vector<int>& nodes, uint64_t seed) {
  for (int i : nodes) {
    if (i < 0 || i >= g.size()) throw std::invalid_argument("reinitialize: node " + std::to_string(i) + " does not exist");
    Rng r(seed * 0x9e3779b97f4a7c15ULL + uint64_t(i) + 1);
    g.layer(i).init(r);
  }
}

void mask_units(Graph& g, int node, const std::vector<int>& units) {
  if (node < 0 || node >= g.size()) throw std::invalid_argument("mask_units: node " + std::to_string(node) + " does not exist");
  Layer& L = g.layer(node);
  Param *weight = nullptr, *bias = nullptr;
  int outputs = 0;
  if (auto* c = dynamic_cast<Conv2d*>(&L)) {
    weight = &c->weight, bias = c->has_bias ? &c->bias : nullptr, outputs = c->out_ch;
  } else if (auto* d = dynamic_cast<Dense*>(&L)) {
    weight = &d->weight, bias = d->has_bias ? &d->bias : nullptr, outputs = d->out_features;
  } else {
    throw std::invalid_argument("mask_units: layer " + L.name + " (" + L.kind() + ") has no filters or units to mask");
  }
  const size_t per = weight->value.size() / size_t(outputs);
  for (int u : units) {
    if (u < 0 || u >= outputs)
      throw std::out_of_range("mask_units: unit " + std::to_string(u) + " of layer " + L.name + " outside [0," +
                              std::to_string(outputs) + ")");
    std::fill_n(weight->value.data() + size_t(u) * per, per, 0.f);
    if (bias) bias->value[u] = 0.f;
  }
}

}  // namespace gb
