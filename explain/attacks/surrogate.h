// The differentiable explanations behind attacks on explanations. An attack on an explanation
// ascends a function D of the map I(x), so it needs ∇_x D(I(x)): for gradient maps that is a
// product with the input Hessian of the model. On ReLU networks that Hessian is zero almost
// everywhere, so Ghorbani et al. (2019) take these gradients on a surrogate: the same network and
// weights with every ReLU replaced by softplus (their code: Keras' softplus, β = 1). glassbox builds
// that surrogate as a model copy (its architecture JSON with `softplus(β)` in place of `relu`, the
// same parameters) and differentiates its maps exactly with the engine's input Hessian-vector
// products (forward-over-reverse tangents through the copy's one graph). The perturbed input is
// always judged on the original model and its own registered explanation method.
#pragma once
#include <string>
#include <vector>

#include "engine/hvp.h"
#include "explain/attacks/attacks.h"

namespace gb::attacks {

// A copy of g with every ReLU replaced by softplus(β) (threshold 20 as PyTorch's), the same
// parameters. Throws naming a layer that has no second-order rule (engine/hvp.h).
Graph softplus_surrogate(const Graph& g, double beta);

// The surrogate's maps: the gradient of the class logit (saliency), input × gradient, or
// Integrated Gradients from a baseline (Gauss-Legendre nodes, as Captum).
enum class SmoothMap { gradient, input_x_gradient, integrated_gradients };
SmoothMap smooth_map(const std::string& name);  // gradient, input-x-gradient, integrated-gradients
// The surrogate map that stands for a registered explanation method: saliency → gradient;
// integrated-gradients → integrated-gradients; input-x-gradient, deeplift and every lrp-* (which
// equal or approximate input × gradient on ReLU networks) → input-x-gradient; others → gradient.
SmoothMap smooth_map_for(const std::string& method);

class SmoothExplainer {
 public:
  // baseline: [1, input...] in the model's input space (integrated-gradients).
  SmoothExplainer(Graph& surrogate, SmoothMap map, int ig_steps, const Tensor& baseline);

  // The surrogate's map of each row's class, shaped like x (input space); valid until the next call.
  const Tensor& attribution(const Tensor& x, const std::vector<int>& classes);
  // ∇_x ⟨dm, m(x)⟩ per row, m the map above: exact through the surrogate's Hessian (input space).
  const Tensor& vjp(const Tensor& x, const std::vector<int>& classes, const Tensor& dm);

 private:
  Graph& g_;
  SmoothMap map_;
  InputHessianVectorProduct hvp_;
  std::vector<double> alphas_, weights_;
  Tensor baseline_;
  Tensor rows_, seed_, v_, grad_, hv_, out_;  // the rows of the passes (IG: one per sample and node)

  void class_seeds(const std::vector<int>& classes, int per_sample);
  void path_rows(const Tensor& x);  // IG: the baseline + α_k (x − baseline) rows, sample-major
};

// A registered attribution method's importance maps (metrics.h) of pixel images on the original
// model: what attacks on explanations and detection judge by. Methods with a baseline
// (integrated-gradients, deeplift) start from a black image and the zB rule's box is the pixel
// range, both through the normalization, as `glassbox explain` does; other parameters keep their
// defaults.
class MethodMaps {
 public:
  MethodMaps(Graph& model, const PixelSpace& s, const std::string& method);  // throws on an unknown method
  // [N,1,H,W] importance maps of p [N,C,H,W] (pixels) for each row's class.
  Tensor maps(const Tensor& p, const std::vector<int>& classes);
  // The black image (pixel lo, or 0 when unbounded) in the model's input space, [1, input...].
  static Tensor black(const Graph& g, const PixelSpace& s);

 private:
  Graph& g_;
  const PixelSpace& s_;
  std::string method_;
  explain::Params params_;
  Tensor x_;
};

}  // namespace gb::attacks
