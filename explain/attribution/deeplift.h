// DeepLIFT with the Rescale rule (Shrikumar et al. 2017), as Captum runs it: the input and its
// reference (baseline) go through the graph together as one batch of 2N rows, interleaved (row 2n
// is x_n, row 2n+1 its reference x'_n, so the graph can split the pairs across threads like any
// per-sample rows), and the backward rules at the nonlinearities turn the gradient into
// multipliers Δout/Δin.
//
// - Elementwise nonlinearities (ReLU, LeakyReLU, Tanh, Sigmoid, Softplus): m = g·(y − y')/(x − x'),
//   the gradient g·f'(x) where |x − x'| < 1e-10.
// - Max-pool (Captum's rule): with y, y' the pooled outputs, the output difference is split into
//   max(y, y') − y' routed through the input's argmax and y − max(y, y') routed through the
//   reference's argmax, then divided by Δin (gradient fallback where |Δin| < 1e-10). Captum
//   multiplies the second term by the reference half's own signal, which starts at zero (its
//   model output keeps only the input half) and need not equal the input half's; here both
//   halves carry the same multipliers, so the two terms always sum to g·(y − y') and
//   summation-to-delta holds exactly (Captum's can leak where y < y').
// - Linear layers (conv, dense, pooling by averaging, batchnorm in eval mode, add, flatten) pass
//   multipliers like gradients.
// Attribution (x − x')·m; Result.delta = Σ attribution − (f(x) − f(x')) for the target f, ~0 up to
// rounding.
#pragma once
#include "explain/attribution/explain.h"

namespace gb::explain {

// Rules for a forward pass over interleaved pairs (x_0, x'_0, x_1, x'_1, ...): run them with
// per_sample_rules and row_block = 2.
BackwardRules deeplift_rules(const Graph& g);

struct DeepLiftOptions {
  float baseline_value = 0.f;  // used when `baseline` is empty
  Tensor baseline;             // [N, input...] or [1, input...], optional
  int layer = -1;              // >= 0: attribution (a − a')·m at this node's output
  int internal_batch = 128;    // samples per forward (2x rows)
};
Result deeplift(Graph& g, const Tensor& x, const Target& target, const DeepLiftOptions& o = {});

}  // namespace gb::explain
