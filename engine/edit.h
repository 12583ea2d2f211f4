// Editing a model in place, for the methods that change it on purpose: sanity checks re-initialize
// layers (Adebayo et al. 2018), pruning masks filters, and both work on a copy (clone(), in
// engine/architecture.h) so the model a user loaded stays as it was.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/graph.h"

namespace gb {

// Re-draws the parameters of the chosen layers with each layer's own initializer (Layer::init:
// Kaiming-uniform weights and zero biases for conv/dense, identity BatchNorm). Layer i draws from
// a generator seeded by (seed, i) alone, so a layer gets the same values whichever other layers
// are chosen with it (a cascade re-initializes the same top layers the same way at every step).
// Other layers are untouched.
void reinitialize(Graph& g, const std::vector<int>& nodes, uint64_t seed);

// Zeroes output units of a conv (filters) or dense (rows) layer: their weights and bias, so those
// outputs are 0 before the following nonlinearity. Throws naming the layer or unit when the layer
// has no output units to mask or a unit is out of range. An optimizer step afterwards may move
// them again; mask again after each step to keep them pruned.
void mask_units(Graph& g, int node, const std::vector<int>& units);

}  // namespace gb
