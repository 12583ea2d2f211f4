// How much an explanation changed, as Ghorbani et al. (2019) measure it, and the ROC-AUC of a
// detector. Maps are importance maps: Ghorbani's Σ_c |attribution| per pixel, scaled to sum H·W.
#pragma once
#include <array>
#include <vector>

#include "engine/tensor.h"

namespace gb::attacks {

// [N, C, H, W] attributions → [N, 1, H, W] importance maps: Σ_c |a| per pixel, scaled so that each
// sample's map sums to H·W (mean 1; Ghorbani et al.'s code). An all-zero map stays zero.
Tensor importance(const Tensor& attribution);

// The chain rule through importance(): given the attribution m [N,C,H,W], its importance map
// I = importance(m) and ∂D/∂I, writes ∂D/∂m (resized). With S = Σ_c |m| and I = P·S/ΣS (P = H·W):
// ∂D/∂S_p = (P/ΣS)(∂D/∂I_p − Σ_q ∂D/∂I_q·I_q/P), and ∂S_p/∂m_cp = sign(m_cp) (0 at 0).
void importance_backward(const Tensor& m, const Tensor& I, const Tensor& dI, Tensor& dm);

// The indices of the k largest of m[0..n), largest first; ties go to the lower index.
std::vector<int> top_k(const float* m, int n, int k);
// |top_k(a) ∩ top_k(b)| / k.
double topk_intersection(const float* a, const float* b, int n, int k);
// Spearman's rank correlation with average ranks for ties (scipy.stats.spearmanr); 0 when either
// map is constant.
double spearman(const float* a, const float* b, int n);
// The center of mass (row, column) of a non-negative H×W map: Σ m·(i, j) / Σ m (the map's middle
// when it is all zero).
std::array<double, 2> center_of_mass(const float* m, int H, int W);

// The area under the ROC curve of scores that should be larger for positives: the probability that
// a positive outscores a negative, ties counting one half (the Mann-Whitney statistic / n⁺n⁻).
double roc_auc(const std::vector<double>& negatives, const std::vector<double>& positives);

}  // namespace gb::attacks
