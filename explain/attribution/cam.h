// The CAM family: CAM, Grad-CAM, Guided Grad-CAM, Grad-CAM++ and Score-CAM. The C++ calls return
// maps at the layer's resolution ([N,1,h,w], except Score-CAM); the registered methods upsample
// them bilinearly to the input (resize.h) and broadcast them over the input's channels, so every
// attribution is shaped like the input [N,C,H,W].
#pragma once
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/target.h"

namespace gb::explain {

// The layer whose feature maps the CAM family reads by default: walk back from the output while
// the nodes are not spatial (dense, activations on features, dropout, gap, flatten...) to the
// first node with [N,C,H,W] output (the input of GAP/flatten), then back through pooling and
// dropout to the output of the last conv's activation (camnet: relu3; lenet5: relu2, not
// maxpool2). Throws when the graph has no spatial layer.
int default_cam_layer(const Graph& g);
// `name` empty: default_cam_layer; otherwise the named layer, which must output [N,C,h,w].
// With `target`, the layer must also be below the target's layer (its gradient reaches it).
int cam_layer(const Graph& g, const std::string& name, const char* method, const Target* target = nullptr);

// CAM (Zhou et al. 2016): M_c = Σ_k w_k^c A^k with A the GAP input and w the Dense weights after
// it (no bias). Needs a ... → GlobalAvgPool → (dropout) → Dense head; throws naming the head found.
Tensor cam_maps(Graph& g, const Tensor& x, const Target& target);

// Grad-CAM: α_k = mean_ij ∂f_c/∂A^k_ij (f_c the target logit), L = Σ_k α_k A^k, ReLU'd when `relu`.
Tensor grad_cam_maps(Graph& g, const Tensor& x, const Target& target, int layer, bool relu = true);

// Grad-CAM++ closed form for piecewise-linear nets: α_ij^k = g² / (2g² + Σ_ab A^k_ab · g³) (0 where
// the denominator is 0), w_k = Σ_ij α_ij^k ReLU(g_ij), L = ReLU(Σ_k w_k A^k).
Tensor grad_cam_pp_maps(Graph& g, const Tensor& x, const Target& target, int layer);

// Score-CAM (the official code's variant): H^k = minmax(upsample(A^k)), weight_k = softmax
// probability of the target for x ⊙ H^k (channels with a constant map are skipped),
// L = minmax(ReLU(Σ_k weight_k upsample(A^k))). Returns [N,1,H,W] at the input's resolution; the
// masked inputs run through the model `batch` at a time.
Tensor score_cam_maps(Graph& g, const Tensor& x, const Target& target, int layer, int batch = 256);

}  // namespace gb::explain
