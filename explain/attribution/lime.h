// LIME for images (Ribeiro et al. 2016): SLIC superpixels, random on/off samples of them, a
// locally weighted ridge regression of the model's score on the on/off vector.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/graph.h"
#include "engine/target.h"
#include "explain/attribution/slic.h"

namespace gb::explain {

struct LimeOptions {
  int samples = 1000;   // the first is the unperturbed image (all superpixels on)
  SlicOptions slic;
  bool fill_mean = true;  // hidden superpixels take their own mean per channel (LIME's hide_color=None)
  float fill = 0.f;       // ... or this value when fill_mean is false
  double kernel_width = 0.25;
  double alpha = 1.0;     // ridge penalty (sklearn Ridge's alpha, LIME's default regressor)
  bool prob = true;       // regress the softmax probability (LIME's classifier_fn); false: the logit
  uint64_t seed = 0;      // every sample of a batch uses this seed, so results do not depend on the batch
  int batch = 256;        // perturbed images per forward pass
};

struct LimeExplanation {
  Segmentation segments;
  std::vector<double> weights;  // one coefficient per superpixel
  double intercept = 0;
  double score = 0;  // weighted R² of the fit on the samples (LIME's `score`)

  // Ids of the (at most) k superpixels with the largest positive weights, largest first
  // (LIME's get_image_and_mask with positive_only=True).
  std::vector<int> top(int k) const;
  // H·W values: 1 inside the top-k superpixels, else 0.
  std::vector<float> top_mask(int k) const;
  // H·W values: each pixel gets its superpixel's weight.
  std::vector<float> pixel_map() const;
};

// One explanation per sample of x [N,C,H,W].
std::vector<LimeExplanation> lime(Graph& g, const Tensor& x, const Target& target, const LimeOptions& o = {});

// Weighted ridge regression with intercept, as sklearn's Ridge(alpha).fit(X, y, sample_weight=w):
// centre X and y by their weighted means, solve (Xcᵀ W Xc + αI) β = Xcᵀ W yc with LAPACK's dposv
// (Cholesky), intercept = ȳ − x̄·β. X is n×p row-major.
void weighted_ridge(const std::vector<double>& X, const std::vector<double>& y, const std::vector<double>& w, int p,
                    double alpha, std::vector<double>& coef, double& intercept);

}  // namespace gb::explain
