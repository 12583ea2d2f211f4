// The BatchNorm canonizer (Zennit's SequentialMergeBatchNorm): LRP rules are defined for affine
// layers, so an eval-mode BatchNorm that directly follows a conv/dense (whose output nothing else
// reads) is folded into that layer:
//   w' = w·γ/√(var+eps),  b' = (b − μ)·γ/√(var+eps) + β
// The fold happens on a rebuilt copy of the graph without the BatchNorm node, so the model itself
// is never modified and the logits are unchanged (up to float rounding). BatchNorms that cannot
// be folded stay in the copy; LRP treats them with an ε rule on their affine map.
// Cost: one copy of the parameters per call (O(parameters), small next to a batched forward);
// nothing is cached, so a model whose weights change between calls is always seen fresh.
#pragma once
#include <vector>

#include "engine/graph.h"

namespace gb::explain {

struct Canonized {
  Graph graph;
  // Original node id -> node id in `graph`; a folded BatchNorm maps to the layer it was folded
  // into (whose output now equals the BatchNorm's output).
  std::vector<int> node_map;
  int folded = 0;  // BatchNorms folded
};

bool has_batchnorm(const Graph& g);
// `keep`: conv/dense nodes whose own output is asked for (a target or a stop layer); the
// BatchNorm after such a node is not folded, so the node still outputs its un-normalized values.
Canonized canonize(const Graph& g, const std::vector<int>& keep = {});

}  // namespace gb::explain
