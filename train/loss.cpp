#include "train/loss.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace gb {

LossResult softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels, Tensor* grad) {
  if (logits.rank() != 2) throw ShapeError("cross-entropy expects [N,K] logits, got " + logits.shape().str());
  const int N = logits.dim(0), K = logits.dim(1);
  if (int(labels.size()) != N)
    throw ShapeError("cross-entropy: " + std::to_string(labels.size()) + " labels for " + std::to_string(N) + " logits");
  if (grad) grad->resize(logits.shape());
  LossResult r;
  for (int n = 0; n < N; ++n) {
    const int y = labels[n];
    if (y < 0 || y >= K)
      throw std::out_of_range("label " + std::to_string(y) + " of sample " + std::to_string(n) + " outside [0," +
                              std::to_string(K) + ")");
    const float* z = logits.data() + size_t(n) * K;
    int arg = 0;
    for (int k = 1; k < K; ++k)
      if (z[k] > z[arg]) arg = k;
    const double m = z[arg];
    double s = 0;
    for (int k = 0; k < K; ++k) s += std::exp(double(z[k]) - m);
    const double lse = m + std::log(s);
    r.loss += lse - z[y];
    r.correct += arg == y;
    if (grad) {
      float* g = grad->data() + size_t(n) * K;
      for (int k = 0; k < K; ++k) g[k] = float((std::exp(double(z[k]) - lse) - (k == y)) / N);
    }
  }
  r.loss /= N;
  return r;
}

}  // namespace gb
