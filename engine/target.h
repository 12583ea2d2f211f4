// What an explanation explains: per sample n, a linear function of one node's output,
//   f_n(x) = ⟨w_n, a_node(x_n)⟩,
// whose gradient seed at that node is w_n. A class logit is the default (w_n one-hot on the
// target class at the logits); a channel's mean, one unit, or any direction at a layer are the
// others (Captum's NeuronGradient / neuron-attribution conventions, and the directional
// derivative along a concept vector). Every gradient and rule method starts its backward pass
// from Target::seed at Target::node; completeness checks compare against Target::values.
#pragma once
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace gb {

struct Target {
  enum class Kind { element, channel_mean, direction };
  Kind kind = Kind::element;
  int node = -1;           // -1: the graph output
  std::vector<int> index;  // element: per sample (or one for all), the flat index in the node's output
  int channel = 0;         // channel_mean
  Tensor direction;        // direction: [1 or N, node shape...]

  Target() = default;
  Target(std::vector<int> classes) : index(std::move(classes)) {}  // the class logits (implicit)
  Target(std::initializer_list<int> classes) : index(classes) {}
  static Target unit(const Graph& g, int node, int c, int y = 0, int x = 0);  // one unit, every sample
  static Target channel_mean(int node, int c);
  static Target along(int node, Tensor direction);

  int at(const Graph& g) const { return node < 0 ? g.output() : node; }
  // True for per-sample class logits at the graph output (what CAM, softmax scores and the
  // LRP/IG summaries of logits assume).
  bool is_class(const Graph& g) const { return kind == Kind::element && at(g) == g.output(); }
  // Throws naming the problem unless this target fits g and a batch of n samples.
  void check(const Graph& g, int n) const;
  // The target of rows that explain samples rows[0], rows[1], ... (IG steps, noisy copies,
  // perturbed copies, DeepLIFT pairs).
  Target gather(const std::vector<int>& rows) const;
  // The seed of samples [b, e): w_b .. w_{e-1}, shaped like the node's output for e - b rows.
  void seed(const Graph& g, int b, int e, Tensor& s) const;
  Tensor seed(const Graph& g, int b, int e) const;
  // f for samples [b, e) from `a`, the node's output for those samples (row 0 is sample b).
  void values(const Tensor& a, int b, int e, double* out) const;
  // "class 3", "relu2 channel 5 (mean)", "conv1[2,4,4]", "a direction at relu3".
  std::string describe(const Graph& g, int sample = 0) const;
  // Kind::element: the flat index that sample n's target reads (its class at the logits).
  int element(int n) const { return index.size() == 1 ? index[0] : index[n]; }
};

// The target of f_n(x) at a forward pass already run over samples [b, e): Σ w ⊙ a per sample.
std::vector<double> target_values(Graph& g, const Target& t, int b, int e);

}  // namespace gb
