// Similarity and statistics of explanation maps, as the randomisation and faithfulness metrics use
// them (scipy.stats and skimage conventions; explain/metrics/METHODS.md).
#pragma once
#include <cstddef>
#include <vector>

namespace gb::metrics {

// Ranks 1..n with ties given their average rank (scipy.stats.rankdata(method="average")).
std::vector<double> average_ranks(const float* v, size_t n);

// Pearson's r; NaN when either side is constant (as scipy, which warns and returns nan).
double pearson(const double* a, const double* b, size_t n);
double pearson(const float* a, const float* b, size_t n);
// Spearman's ρ: Pearson's r of the average ranks (scipy.stats.spearmanr).
double spearman(const float* a, const float* b, size_t n);

// Mean structural similarity of two H×W images (skimage.metrics.structural_similarity defaults:
// 7×7 uniform window, K1 = 0.01, K2 = 0.03, sample covariances, the mean over the windows that fit
// inside the image). data_range > 0.
double ssim(const float* a, const float* b, int H, int W, double data_range);

// Histogram-of-oriented-gradients features of an H×W image after skimage.feature.hog: central
// differences, unsigned orientations in [0°, 180°) in `bins` bins, each cell's histogram the mean
// magnitude per bin, blocks of block×block cells normalised L2-Hys (clipped at 0.2), blocks
// stepping one cell. Empty when the image holds no block.
std::vector<float> hog(const float* img, int H, int W, int cell = 4, int bins = 9, int block = 3);

// Trapezoidal area under y over an evenly spaced grid of step dx (numpy.trapz).
double trapezoid(const double* y, size_t n, double dx);

}  // namespace gb::metrics
