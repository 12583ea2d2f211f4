// Perturbation methods: occlusion and RISE. They only run the model forward, on batches of
// perturbed copies of each input (`batch` copies per forward pass), so they work for any model
// taking images [N,C,H,W]. A sample's result never depends on the other samples of its batch.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/graph.h"
#include "engine/target.h"

namespace gb::explain {

// The score of class classes[i] for row i of `batch`: the logit, or the softmax probability.
std::vector<float> target_scores(Graph& g, const Tensor& batch, const Target& rows, bool prob);

struct OcclusionOptions {
  int window = 0;  // square window side; 0: max(2, min(H,W)/7), i.e. 4 on 28×28
  int stride = 0;  // 0: max(1, window/2)
  float baseline = 0.f;
  int batch = 256;
  bool prob = false;  // the drop in the target class's softmax probability instead of its logit
  // One value per channel in place of `baseline` (black through a per-channel normalization).
  std::vector<float> channel_baseline = {};
};
// Occlusion (Zeiler & Fergus; Captum's Occlusion with a (C,w,w) window): windows at k·stride from 0,
// ⌈(D−w)/s⌉+1 per axis, the last one clamped inside the image (Captum crops it instead; the two
// agree when s divides D−w, as with the defaults); every channel of the window set to `baseline`
// (or channel c to channel_baseline[c]).
// A pixel's attribution is the mean of f_c(x) − f_c(x_occluded) (logits, or softmax probabilities
// with `prob`, class targets only) over the windows covering it, the same in every channel.
// Returns [N,C,H,W].
Tensor occlusion(Graph& g, const Tensor& x, const Target& target, const OcclusionOptions& o = {});

// Zeiler & Fergus's occlusion map (their Fig. 7 b, d): the target's score when a window of side
// `window` centred on the pixel (rows y − ⌊w/2⌋ .. y − ⌊w/2⌋ + w − 1, clipped to the image) is set to
// `baseline`: the class's softmax probability with `prob`, else its logit. One occluded copy per
// pixel (`stride` is not used). Returns [N,C,H,W], the same map in every channel.
Tensor occlusion_map(Graph& g, const Tensor& x, const Target& target, const OcclusionOptions& o);

struct RiseOptions {
  int masks = 2000;  // N
  int grid = 7;      // s
  float p = 0.5f;    // probability that a grid cell is kept
  uint64_t seed = 0;
  int batch = 256;
};
// One RISE mask (Petsiuk et al. 2018): an s×s Bernoulli(p) grid, cell = ⌈H/s⌉ (and ⌈W/s⌉), upsampled
// bilinearly to (s+1)·cell (align_corners=False, borders clamped where the reference code reflects)
// and cropped to H×W at a random offset in [0, cell). Writes H·W values in [0,1].
void rise_mask(Rng& rng, int s, float p, int H, int W, float* mask);
// Saliency Σ_i P_c(x ⊙ M_i) M_i / (N·p) with P_c the softmax probability (as in the paper; Captum
// has no RISE). The same seeded masks serve every sample. Returns [N,1,H,W].
Tensor rise(Graph& g, const Tensor& x, const Target& target, const RiseOptions& o = {});

}  // namespace gb::explain
