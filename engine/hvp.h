// Exact Hessian-vector products through the graph: Pearlmutter's R-operator (1994).
//
// For a direction v over chosen parameters θ_S (a ParamSlice), H v = d/dr ∇_S L(θ + r v) at r = 0,
// where L = Σ_n CE(f(x_n; θ), y_n) is the summed cross-entropy. One forward pass carries, beside
// every activation a, its tangent ȧ = da/dr (forward mode); one backward pass carries, beside every
// gradient g, its tangent ġ; the tangents of the chosen layers' parameter gradients are H v. Both
// passes are the model's one graph with tangent rules, on interleaved rows (row 2n is sample n,
// row 2n + 1 its tangent), so they split across threads like any pass (as DeepLIFT's pairs do).
//
// Tangent rules exist for conv, dense, relu, leakyrelu, tanh, sigmoid, softplus, maxpool, avgpool,
// gap, flatten, add, dropout and batchnorm (both in eval mode: the Hessian of the model as it
// predicts). A layer kind without one is refused by name. At the kinks of ReLU and max-pooling,
// which inputs hit with probability zero, the second derivative is taken as zero, as autograd does.
#pragma once
#include <memory>
#include <vector>

#include "engine/graph.h"
#include "engine/passes.h"

namespace gb {

// Throws std::invalid_argument naming the first layer that has no tangent rule, or an output that
// is not [N, classes] logits.
void check_hvp_support(const Graph& g);

// Products with the Hessian of one graph over one slice of its parameters. It keeps its tangent
// rules and buffers from product to product (LiSSA takes thousands of small ones), so the graph and
// the slice's parameters must outlive it.
class HessianVectorProduct {
 public:
  HessianVectorProduct(Graph& g, const ParamSlice& slice);  // throws as check_hvp_support
  ~HessianVectorProduct();
  HessianVectorProduct(const HessianVectorProduct&) = delete;
  HessianVectorProduct& operator=(const HessianVectorProduct&) = delete;

  // out (slice.size floats) = Σ_n H_n v, the Hessian of the summed cross-entropy over x's samples
  // restricted to the slice's parameters (rows and columns), times v (slice.size floats, in the
  // slice's layout). Labels in [0, classes). The samples run `batch` at a time. With
  // input_tangent, also writes d/dr ∇_x L(x_n; θ + r v) for each sample ([N, input...]): the mixed
  // derivative ∇_x (vᵀ ∇_S L), behind Koh & Liang's I_pert. Uses the parameters' grad buffers as
  // its sums.
  void operator()(const Tensor& x, const std::vector<int>& labels, const float* v, float* out,
                  Tensor* input_tangent = nullptr, int batch = 128);

 private:
  friend class InputHessianVectorProduct;
  struct State;
  Graph& g_;
  const ParamSlice& slice_;
  std::unique_ptr<State> s_;
};

// Products with the Hessian of each sample's f_n(x) = ⟨seed_n, output(x)⟩ (a fixed seed at the
// graph output, e.g. one-hot on a class logit) with respect to its input: the second-order terms
// of attacks on explanations (Ghorbani et al. 2019), whose loss is a function of ∇_x f. The same
// tangent rules, with the tangent at the input (v) instead of the parameters; the seed's own
// tangent is zero. On ReLU and max-pool networks the Hessian is zero almost everywhere, so
// callers use a copy with smooth activations (softplus) for these products.
class InputHessianVectorProduct {
 public:
  explicit InputHessianVectorProduct(Graph& g);  // throws as check_hvp_support
  ~InputHessianVectorProduct();
  InputHessianVectorProduct(const InputHessianVectorProduct&) = delete;
  InputHessianVectorProduct& operator=(const InputHessianVectorProduct&) = delete;

  // For x, v [N, input...] and seed [N, output...]: grad_n = ∇f_n(x_n) and hv_n = ∇²f_n(x_n) v_n,
  // both [N, input...] (resized). One forward and one backward pass of 2·min(N, batch) interleaved
  // rows per `batch` samples.
  void operator()(const Tensor& x, const Tensor& v, const Tensor& seed, Tensor& grad, Tensor& hv, int batch = 128);

 private:
  Graph& g_;
  ParamSlice none_;  // no parameter moves
  std::unique_ptr<HessianVectorProduct::State> s_;
};

// One product, as HessianVectorProduct(g, slice)(x, labels, v, out, input_tangent, batch).
void hessian_vector_product(Graph& g, const Tensor& x, const std::vector<int>& labels, const ParamSlice& slice,
                            const float* v, float* out, Tensor* input_tangent = nullptr, int batch = 128);

}  // namespace gb
