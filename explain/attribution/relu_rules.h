// DeconvNet and Guided Backprop: the exact gradient everywhere except at ReLU nodes, where
// DeconvNet passes relu(signal) (ignoring the forward mask) and Guided Backprop passes
// signal·1[x>0]·1[signal>0]. Max-pool keeps its default rule (route through the forward argmax).
#pragma once
#include "explain/attribution/explain.h"

namespace gb::explain {

// One rule per node of g: set at ReLU nodes only (other nodes use their gradient).
BackwardRules deconvnet_rules(const Graph& g);
BackwardRules guided_backprop_rules(const Graph& g);

// Attributions shaped like x (or like node `layer`'s output when layer >= 0).
Tensor deconvnet(Graph& g, const Tensor& x, const Target& target, int layer = -1);
Tensor guided_backprop(Graph& g, const Tensor& x, const Target& target, int layer = -1);

}  // namespace gb::explain
