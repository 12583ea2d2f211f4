#include <cmath>

#include "engine/layers.h"

namespace gb {

void Activation::forward(ForwardCall& c) {
  const float* x = c.in[0]->data();
  float* y = c.out.data();
  const size_t n = c.out.size();
  for (size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

void Activation::backward(BackwardCall& c) {
  if (!c.g_in[0]) return;
  const float *x = c.in[0]->data(), *y = c.out.data(), *gy = c.g_out.data();
  float* gx = c.g_in[0]->data();
  const size_t n = c.out.size();
  for (size_t i = 0; i < n; ++i) gx[i] = gy[i] * df(x[i], y[i]);
}

double Activation::flops(const std::vector<Shape>& in) const { return double(in[0].numel()) / in[0][0]; }

float Tanh::f(float x) const { return std::tanh(x); }
float Sigmoid::f(float x) const { return x >= 0 ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x)); }
float Softplus::f(float x) const { return beta * x > threshold ? x : std::log1p(std::exp(beta * x)) / beta; }
float Softplus::df(float x, float) const {
  if (beta * x > threshold) return 1.f;
  float e = std::exp(-beta * x);
  return 1.f / (1.f + e);
}

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
