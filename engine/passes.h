// Batched uses of the graph that several explanation families share: chosen layers' activations
// over a whole dataset, and one parameter-gradient row per sample.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace gb {

// Called after each batch with the samples done so far and the total (progress on the command line).
using Progress = std::function<void(int done, int total)>;

// The outputs of `nodes` for every sample of x ([N, input...]), each [N, node shape...]. Runs x in
// batches of `batch` rows (eval mode), each forward only up to the last chosen node, and keeps
// nothing else between batches.
std::vector<Tensor> activations(Graph& g, const Tensor& x, const std::vector<int>& nodes, int batch = 256,
                                const Progress& progress = {});

// The layers' trainable parameters, in Graph::named_params order: what a per-sample gradient row holds.
struct ParamSlice {
  std::vector<std::string> names;  // "conv1.weight", ...
  std::vector<Param*> params;
  size_t size = 0;                 // floats per row
};
ParamSlice param_slice(const Graph& g, const std::vector<int>& nodes);

// Per-sample parameter gradients: row n of the result ([N, slice.size]) is the gradient of
// ⟨seed_n, output(x_n)⟩ with respect to the chosen layers' trainable parameters, so the rows sum
// to the batch gradient of ⟨seed, output⟩. With seed = the gradient of a loss taken with
// Reduction::sum, row n is the gradient of sample n's own loss (influence functions, TracIn).
// One backward pass for the signals (eval mode), then each chosen layer's own parameter gradient
// per sample, split across threads by samples. `seed` is shaped like the graph output.
Tensor per_sample_param_grads(Graph& g, const Tensor& x, const Tensor& seed, const std::vector<int>& nodes);

// The same rows' dot products with the rows of V ([M, slice.size]), without forming the rows:
// out[n][t] = ⟨row n, V_t⟩, [N, M] (TracIn, influence scores over a training set). A dense layer's
// row is an outer product, s_n a_nᵀ (its signal and input), whose dot with a block of V_t is
// s_nᵀ V_t a_n: one GEMM per block of samples instead of out × in floats per sample; other layers
// form their part of the row one sample at a time. With squared_norms (N values), also ‖row n‖².
Tensor per_sample_grad_dots(Graph& g, const Tensor& x, const Tensor& seed, const std::vector<int>& nodes,
                            const Tensor& V, std::vector<double>* squared_norms = nullptr);
// The same for each sample's own cross-entropy at its label (the seed of Reduction::sum), taken
// from this pass's forward: one forward pass where the caller would otherwise need two.
Tensor per_sample_loss_grad_dots(Graph& g, const Tensor& x, const std::vector<int>& labels,
                                 const std::vector<int>& nodes, const Tensor& V,
                                 std::vector<double>* squared_norms = nullptr);

}  // namespace gb
