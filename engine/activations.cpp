#include <cmath>

#include "engine/layers.h"
#include "engine/simd.h"

namespace gb {

namespace {
// y may be x and gx may be gy (the graph runs ReLU in place in training): element i is read before
// it is written, so the loops vectorize without the overlap check, which would run them scalar.
GB_CLONES void relu(const float* x, float* y, size_t n) {
GB_IVDEP
  for (size_t i = 0; i < n; ++i) y[i] = relu_passes(x[i]) ? x[i] : 0.f;
}
GB_CLONES void relu_grad(const float* x, const float* gy, float* gx, size_t n) {
GB_IVDEP
  for (size_t i = 0; i < n; ++i) gx[i] = relu_passes(x[i]) ? gy[i] : 0.f;
}
}  // namespace

void ReLU::forward(ForwardCall& c) { relu(c.in[0]->data(), c.out.data(), c.out.size()); }

void ReLU::backward(BackwardCall& c) {
  if (c.g_in[0]) relu_grad(c.in[0]->data(), c.g_out.data(), c.g_in[0]->data(), c.out.size());
}

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
