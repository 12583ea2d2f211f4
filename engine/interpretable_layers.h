// Layers of models that are interpretable by design: the soft decision tree and the additive
// model's per-feature networks.
//
// SoftTree: Frosst & Hinton's soft decision tree (2017) as one layer, a complete binary tree of
// depth D over [N, F] inputs (flatten images first). Inner node i turns right with probability
//   p_i(x) = σ(β (w_i·x + b_i))                      (survey eq. 3; β the inverse temperature)
// and left with 1 − p_i, so leaf l is reached with the product P_l(x) of the turns on its path,
// and Σ_l P_l(x) = 1. Leaf l holds a class distribution Q_l = softmax(φ_l). The layer's output
// is the log of the path-weighted prediction,
//   z_k(x) = log Σ_l P_l(x) Q_lk,
// so softmax(z) is that mixture and the tree trains, evaluates and explains like any classifier.
// Its maximum-probability-path prediction (the leaf with the largest P_l, then its Q_l) comes
// from routes(). Frosst & Hinton's balancing penalty, which keeps each inner node using both of
// its subtrees over a batch, is penalty(), added to the training loss by the caller.
//
// Nodes are in heap order: inner nodes 0 .. 2^D − 2 (root 0, children 2i+1 left and 2i+2 right),
// then the leaves, leaf l being node 2^D − 1 + l (left to right). Parameters, PyTorch-style:
// weight [2^D − 1, F] (one filter per inner node), bias [2^D − 1], leaves [2^D, K] (the φ_l).
#pragma once
#include "engine/layer.h"

namespace gb {

struct SoftTree : Layer {
  static constexpr int kMaxDepth = 12;  // 4095 inner nodes: a bound on memory and run time
  int depth, classes;
  float beta;
  int features = 0;
  Param weight{"weight"}, bias{"bias"}, leaves{"leaves"};

  SoftTree(int depth, int classes, float beta = 1.f) : depth(depth), classes(classes), beta(beta) {}
  int inner() const { return (1 << depth) - 1; }
  int leaf_count() const { return 1 << depth; }
  int nodes() const { return 2 * leaf_count() - 1; }

  std::string kind() const override { return "softtree"; }
  void build(const std::vector<Shape>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  std::vector<Param*> params() override { return {&weight, &bias, &leaves}; }
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
  void init(Rng& rng) override;
  void prepare(Pass pass, Mode mode) override;
  bool piecewise_linear() const override { return false; }

  // Per sample of x [N, F]: right[n, i] = p_i(x_n) and reach[n, m] = the probability of reaching
  // node m (reach of leaf l: P_l). For analysis: paths, figures, the maximum-probability leaf.
  void routes(const Tensor& x, Tensor& right, Tensor& reach) const;
  // The leaves' class distributions Q, [2^D, K].
  Tensor leaf_distributions() const;

  // Frosst & Hinton's balancing penalty over the batch x [N, F] (the layer's input):
  //   C = −λ Σ_i 2^(−d_i) · ½ (log α_i + log(1 − α_i)),  α_i = Σ_n P^i(x_n) p_i(x_n) / Σ_n P^i(x_n),
  // with P^i the probability of reaching inner node i and d_i its depth (root 0). Nodes that no
  // sample reaches are left out; α is clamped to [1e-12, 1 − 1e-12]. Returns C; adds ∂C/∂weight
  // and ∂C/∂bias (λ is in C) to grad_weight and grad_bias when given, and writes ∂C/∂x to grad_x
  // when given.
  double penalty(const Tensor& x, double lambda, Tensor* grad_weight, Tensor* grad_bias, Tensor* grad_x) const;

 private:
  std::vector<double> q_;  // softmax of the leaves, [2^D, K], refreshed by prepare()
  void inner_logits(const Tensor& x, float* a) const;  // a = x weightᵀ + bias, [N, 2^D − 1]
};

// Layers of the additive model (a neural additive model: one small network per input feature).
//
// GroupDense: G independent dense layers side by side. Input [N, G·a] is G groups of a features;
// group g's outputs are its own affine map of its own inputs, y_g = W_g x_g + b_g, so output
// [N, G·OUT] holds OUT values per group and no group sees another's input. weight [G·OUT, a]
// (group g's rows g·OUT .. g·OUT + OUT − 1, each PyTorch's [out, in]), bias [G·OUT].
struct GroupDense : Layer {
  int out_per_group, groups;
  bool has_bias;
  int in_per_group = 0;
  Param weight{"weight"}, bias{"bias"};

  GroupDense(int out_per_group, int groups, bool bias = true)
      : out_per_group(out_per_group), groups(groups), has_bias(bias) {}
  std::string kind() const override { return "groupdense"; }
  void build(const std::vector<Shape>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  std::vector<Param*> params() override;
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
  void init(Rng& rng) override;
};

// GroupSum: [N, G·K] -> [N, K], y_k = Σ_g x[g·K + k]: the sum of the groups' outputs (the
// additive model's Σ_j f_j(x_j)).
struct GroupSum : Layer {
  int groups;
  explicit GroupSum(int groups) : groups(groups) {}
  std::string kind() const override { return "groupsum"; }
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
};

}  // namespace gb
