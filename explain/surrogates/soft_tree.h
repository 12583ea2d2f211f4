// A soft decision tree (engine/interpretable_layers.h, SoftTree) read as an explanation: how it
// routes inputs, its two predictions (the path-weighted mixture is the model's own output; the
// maximum-probability path picks the leaf with the largest path probability and predicts that
// leaf's most probable class), the tree as JSON, and Frosst & Hinton's figure: each inner node's
// filter drawn as an image, each leaf's class distribution, a given input's path highlighted.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/interpretable_layers.h"
#include "explain/common/heatmap.h"

namespace gb::explain::surrogates {

// The graph's first soft tree layer, or -1.
int soft_tree_node(const Graph& g);

// How a tree routes a batch: per sample, the probability of turning right at each inner node and
// of reaching each node (heap order, SoftTree's), and the leaf of largest path probability (ties:
// the leftmost).
struct Routing {
  Tensor right;           // [N, 2^D − 1]
  Tensor reach;           // [N, 2^(D+1) − 1]
  std::vector<int> leaf;  // per sample, 0 .. 2^D − 1
  // The nodes from the root down to sample n's leaf (D inner nodes, then the leaf's node).
  std::vector<int> path(int n, int depth) const;
};
// Runs x (the model's input space) through the graph up to the tree's input, batch by batch.
Routing route(Graph& g, int tree_node, const Tensor& x, int batch = 256);

// Per sample, the most probable class of its maximum-probability leaf.
std::vector<int> max_path_predictions(const SoftTree& tree, const Routing& r);

// The whole tree: depth, β, classes, and per node (heap order) its kind, depth and children;
// inner nodes their filter (shaped `filter_shape` when it has F values) and bias; leaves their
// class distribution and most probable class.
nlohmann::json tree_json(const SoftTree& tree, const std::vector<std::string>& classes, const Shape& filter_shape);

// The figure: the top `levels` levels of inner nodes (filters in blue-white-red, each scaled by its
// own largest |w|) with the leaves below them when the tree is that shallow, and sample n's
// maximum-probability path drawn in red; then that path node by node (its filters, the
// probability of turning right and the turn taken) with the input and the leaf's distribution.
// `pixels` is sample n's input for display ([C,H,W] in [0,1]); `filter_shape` as in tree_json.
Image tree_figure(const SoftTree& tree, const Shape& filter_shape, const std::vector<std::string>& classes,
                  const Routing& r, int n, const Tensor& pixels, int levels = 4);

}  // namespace gb::explain::surrogates
