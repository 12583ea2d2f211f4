// The gradient family: saliency, input x gradient, Integrated Gradients and the noise tunnel
// (SmoothGrad, SmoothGrad², VarGrad around any registered method). Also the batched backward
// pass that the rule-based families (relu_rules, deeplift) share.
//
// All calls are batch first: x is [N, input...], the target says what each sample's explanation
// explains (a class logit by default, or a unit at a layer: engine/target.h), and the result is
// shaped like x (or like the chosen layer's output when `layer` >= 0).
#pragma once
#include <string>
#include <vector>

#include "explain/attribution/method.h"

namespace gb::explain {

// Reads the `layer=NAME` parameter: the node id, or -1 (the input) when absent.
int read_layer(ParamReader& r, const Graph& g);

// The target's value f_n(x) per sample, in rows of at most `chunk` (eval mode, each forward only
// up to the target's node).
std::vector<double> target_outputs(Graph& g, const Tensor& x, const Target& target, int chunk = 256);

struct BackpropOptions {
  const BackwardRules* rules = nullptr;  // null: the exact gradient
  int layer = -1;                        // read the signal at this node's output (-1: the input)
  int chunk = 256;                       // rows per forward/backward
  bool times_activation = false;         // multiply by the activation (input x gradient)
  bool per_sample_rules = false;         // see BackwardOptions
  int row_block = 1;                     // see BackwardOptions (DeepLIFT's input/reference pairs)
};
// The signal of a backward pass seeded with the target (Target::seed at its node), with the
// options' rules, read at the input or at a layer.
Tensor backprop(Graph& g, const Tensor& x, const Target& target, const BackpropOptions& o = {});

// Signed d f / d x (f the target). abs: |gradient|. reduce_max: the maximum over channels (after abs, if any)
// written to every channel, so the result keeps the input's shape.
Tensor saliency(Graph& g, const Tensor& x, const Target& target, bool abs = false, bool reduce_max = false,
                int layer = -1);
Tensor input_x_gradient(Graph& g, const Tensor& x, const Target& target, int layer = -1);

// The baseline as a full [N, ...] tensor: b itself, b [1, ...] repeated, or `value` everywhere
// when b is empty. Throws a ShapeError naming `who` otherwise.
Tensor full_baseline(const Tensor& x, const Tensor& b, float value, const std::string& who);

// `exact`: for piecewise-linear networks the gradient is constant inside each linear region, so
// the path integral is a finite sum over the regions the straight path crosses (OpenBox's segment
// walk): (x − x') ⊙ Σ_pieces (t1 − t0) ∇f(midpoint). No quadrature error; n_steps is not used.
enum class IgMethod { gausslegendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid, exact };
IgMethod ig_method(const std::string& name);  // throws naming the accepted names
// Integration nodes in [0, 1] and their weights (summing to 1), as Captum computes them (not for exact).
void ig_nodes(IgMethod m, int n, std::vector<double>& alphas, std::vector<double>& weights);

struct IgOptions {
  int n_steps = 50;
  IgMethod method = IgMethod::gausslegendre;
  float baseline_value = 0.f;  // used when `baseline` is empty
  Tensor baseline;             // [N, input...] or [1, input...] (broadcast), optional
  int internal_batch = 256;    // rows (sample x step) per forward/backward
  // >= 0: Captum's LayerIntegratedGradients at this node's output: the path runs from the
  // node's activation at the baseline to its activation at x, and the attribution (shaped like
  // the activation) is (a(x) − a(x')) ⊙ ∫ ∂f/∂a along it.
  int layer = -1;
};
// Result.delta[n] = Σ attribution − (f_n(x) − f_n(x')), f_n the target. With IgMethod::exact,
// Result.details[n] holds "regions" (distinct linear regions the path crosses) and "pieces" (the
// path's pieces, one per region visit); smooth layers (tanh, sigmoid, softplus) and layer IG are
// refused.
Result integrated_gradients(Graph& g, const Tensor& x, const Target& target, const IgOptions& o = {});

enum class NoiseKind { smoothgrad, smoothgrad_sq, vargrad };
struct NoiseOptions {
  NoiseKind kind = NoiseKind::smoothgrad;
  int n = 50;
  float level = 0.15f;  // σ = level · (x_max − x_min) of each sample...
  float stdev = -1.f;   // ...unless stdev >= 0: an absolute σ
  uint64_t seed = 0;
  std::string base = "saliency";  // any registered method
  Params base_params;             // passed to the base method
  int internal_batch = 256;       // noisy rows per call of the base method
};
// The noise of a sample depends only on (seed, the sample's values), so a batch gives the same
// result as its samples one by one.
Result noise_tunnel(Graph& g, const Tensor& x, const Target& target, const NoiseOptions& o = {});

}  // namespace gb::explain
