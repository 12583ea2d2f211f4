#include <cmath>

#include "engine/layers.h"

namespace gb {

double Activation::flops(const std::vector<Shape>& in) const { return double(in[0].numel()) / in[0][0]; }

Tensor softmax(const Tensor& logits) {
  if (logits.rank() != 2) throw ShapeError("softmax expects [N,K] logits, got " + logits.shape().str());
  Tensor p(logits.shape());
  const int N = logits.dim(0), K = logits.dim(1);
  for (int n = 0; n < N; ++n) {
    const float* z = logits.data() + size_t(n) * K;
    float* q = p.data() + size_t(n) * K;
    float m = z[0];
    for (int k = 1; k < K; ++k) m = std::max(m, z[k]);
    double s = 0;
    for (int k = 0; k < K; ++k) s += (q[k] = std::exp(z[k] - m));
    for (int k = 0; k < K; ++k) q[k] = float(q[k] / s);
  }
  return p;
}

}  // namespace gb
