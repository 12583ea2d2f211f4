// BatchNorm2d with PyTorch's semantics. Works on [N,C,H,W] (per channel) and on [N,F] (per
// feature, as BatchNorm1d).
#include <cmath>

#include "engine/layers.h"

namespace gb {

void BatchNorm2d::build(const std::vector<Shape>& in) {
  if (in[0].rank != 4 && in[0].rank != 2)
    throw ShapeError("batchnorm '" + name + "' expects [N,C,H,W] or [N,F] input, got " + in[0].str());
  channels = in[0][1];
  for (Param* p : params()) {
    p->value = Tensor({channels});
    p->grad = Tensor({channels});
  }
  reset();
}

void BatchNorm2d::init(Rng&) { reset(); }

void BatchNorm2d::reset() {
  weight.value.fill(1.f);
  bias.value.fill(0.f);
  running_mean.value.fill(0.f);
  running_var.value.fill(1.f);
}

void BatchNorm2d::eval_affine(std::vector<float>& scale, std::vector<float>& shift) const {
  scale.resize(channels);
  shift.resize(channels);
  for (int ch = 0; ch < channels; ++ch) {
    scale[ch] = weight.value[ch] / std::sqrt(running_var.value[ch] + eps);
    shift[ch] = bias.value[ch] - running_mean.value[ch] * scale[ch];
  }
}

static void dims(const Tensor& x, int& N, int& C, size_t& HW) {
  N = x.dim(0);
  C = x.dim(1);
  HW = x.rank() == 4 ? size_t(x.dim(2)) * x.dim(3) : 1;
}

void BatchNorm2d::forward(ForwardCall& c) {
  const Tensor& x = *c.in[0];
  Tensor& y = c.out;
  int N, C;
  size_t HW;
  dims(x, N, C, HW);
  const bool training = c.mode == Mode::train;
  std::vector<float> scale(C), shift(C);
  if (!training) {
    eval_affine(scale, shift);
  } else {
    batch_mean.assign(C, 0.f);
    batch_invstd.assign(C, 0.f);
    const double count = double(N) * HW;
    for (int ch = 0; ch < C; ++ch) {
      double s = 0, ss = 0;
      for (int n = 0; n < N; ++n) s += sum(x.data() + (size_t(n) * C + ch) * HW, HW);
      double mean = s / count;
      for (int n = 0; n < N; ++n) {
        const float* p = x.data() + (size_t(n) * C + ch) * HW;
        for (size_t i = 0; i < HW; ++i) ss += (p[i] - mean) * (p[i] - mean);
      }
      double var = ss / count;
      batch_mean[ch] = float(mean);
      batch_invstd[ch] = float(1.0 / std::sqrt(var + eps));
      double unbiased = count > 1 ? ss / (count - 1) : var;
      running_mean.value[ch] = (1 - momentum) * running_mean.value[ch] + momentum * float(mean);
      running_var.value[ch] = (1 - momentum) * running_var.value[ch] + momentum * float(unbiased);
      scale[ch] = weight.value[ch] * batch_invstd[ch];
      shift[ch] = bias.value[ch] - batch_mean[ch] * scale[ch];
    }
  }
  for (int n = 0; n < N; ++n)
    for (int ch = 0; ch < C; ++ch) {
      const float* p = x.data() + (size_t(n) * C + ch) * HW;
      float* q = y.data() + (size_t(n) * C + ch) * HW;
      for (size_t i = 0; i < HW; ++i) q[i] = p[i] * scale[ch] + shift[ch];
    }
}

void BatchNorm2d::backward(BackwardCall& c) {
  const Tensor& x = *c.in[0];
  const Tensor& gy = c.g_out;
  int N, C;
  size_t HW;
  dims(x, N, C, HW);
  const double count = double(N) * HW;
  const bool training = c.mode == Mode::train;
  for (int ch = 0; ch < C; ++ch) {
    const float mean = training ? batch_mean[ch] : running_mean.value[ch];
    const float invstd = training ? batch_invstd[ch] : 1.f / std::sqrt(running_var.value[ch] + eps);
    double sum_g = 0, sum_gx = 0;  // sum(gy), sum(gy * xhat)
    for (int n = 0; n < N; ++n) {
      const float* p = x.data() + (size_t(n) * C + ch) * HW;
      const float* g = gy.data() + (size_t(n) * C + ch) * HW;
      for (size_t i = 0; i < HW; ++i) {
        sum_g += g[i];
        sum_gx += g[i] * (p[i] - mean) * invstd;
      }
    }
    if (c.param_grads) {
      (*c.grads[0])[ch] += float(sum_gx);
      (*c.grads[1])[ch] += float(sum_g);
    }
    if (!c.g_in[0]) continue;
    const float gamma = weight.value[ch];
    for (int n = 0; n < N; ++n) {
      const float* p = x.data() + (size_t(n) * C + ch) * HW;
      const float* g = gy.data() + (size_t(n) * C + ch) * HW;
      float* d = c.g_in[0]->data() + (size_t(n) * C + ch) * HW;
      for (size_t i = 0; i < HW; ++i) {
        if (training) {
          double xhat = (p[i] - mean) * invstd;
          d[i] = float(gamma * invstd * (g[i] - sum_g / count - xhat * sum_gx / count));
        } else {
          d[i] = gamma * invstd * g[i];
        }
      }
    }
  }
}

double BatchNorm2d::flops(const std::vector<Shape>& in) const { return 2.0 * in[0].numel() / in[0][0]; }

}  // namespace gb
