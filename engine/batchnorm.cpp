// BatchNorm2d with PyTorch's semantics. Works on [N,C,H,W] (per channel) and on [N,F] (per
// feature, as BatchNorm1d).
#include <cmath>
#include <stdexcept>

#include "engine/layers.h"
#include "engine/simd.h"

namespace gb {

// The two element-wise loops of a training step, compiled for each vector width (engine/simd.h).
// y = x * scale[ch] + shift[ch] for N samples' C planes of HW floats.
GB_CLONES static void affine_planes(const float* x, float* y, int N, int C, size_t HW, const float* scale,
                                    const float* shift) {
  for (int n = 0; n < N; ++n)
    for (int ch = 0; ch < C; ++ch) {
      const float* p = x + (size_t(n) * C + ch) * HW;
      float* q = y + (size_t(n) * C + ch) * HW;
      const float a = scale[ch], b = shift[ch];  // locals: q cannot alias them, so the loop vectorizes
      for (size_t i = 0; i < HW; ++i) q[i] = p[i] * a + b;
    }
}

// d = ka * g + kb * (x - mean) + kc for one channel's N planes of HW floats, `stride` apart. d may be
// g (the graph's in-place backward): element i is read before it is written.
GB_CLONES static void input_grad_planes(const float* x, const float* g, float* d, int N, size_t HW, size_t stride,
                                        float mean, float ka, float kb, float kc) {
  for (int n = 0; n < N; ++n) {
    const float* p = x + n * stride;
    const float* gn = g + n * stride;
    float* dn = d + n * stride;
GB_IVDEP
    for (size_t i = 0; i < HW; ++i) dn[i] = ka * gn[i] + kb * (p[i] - mean) + kc;
  }
}

void BatchNorm2d::build(const std::vector<Shape>& in) {
  if (in[0].rank != 4 && in[0].rank != 2)
    throw ShapeError("batchnorm '" + name + "' expects [N,C,H,W] or [N,F] input, got " + in[0].str());
  channels = in[0][1];
  plane_ = in[0].rank == 4 ? size_t(in[0][2]) * in[0][3] : 1;
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
  eval_affine(scale.data(), shift.data());
}

void BatchNorm2d::eval_affine(float* scale, float* shift) const {
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

void BatchNorm2d::prepare(Pass p, Mode) {
  if (p == Pass::forward) stats_ready_ = false;
  grad_sums_ready_ = false;
}

// Forward part: per channel the slice's sum and its squared deviations from the slice's mean.
// Backward part: per channel Σ g and Σ g·x̂ with the batch statistics of the forward pass. Where
// the graph vouches for the output y = γ x̂ + β, Σ g·x̂ = Σ g·(y − β) / γ reads it instead of x: in
// training a ReLU has just read it for its mask, so it is in cache, where x is not. Only for
// channels with |β| ≤ 16 |γ|: the division magnifies y's rounding by |β/γ| against x̂'s own.
void BatchNorm2d::partial_sums(Pass p, const std::vector<const Tensor*>& in, const Tensor* out, const Tensor* g_out,
                               double* part) const {
  const Tensor& x = *in[0];
  int N, C;
  size_t HW;
  dims(x, N, C, HW);
  const size_t stride = size_t(C) * HW;  // from a sample's plane of channel ch to the next sample's
  for (int ch = 0; ch < C; ++ch) {
    const float* xc = x.data() + ch * HW;
    double a = 0, b = 0;
    if (p == Pass::forward) {
      a = sum(xc, HW, N, stride);
      const double mean = N ? a / (double(N) * HW) : 0;
      b = sum_squared_deviations(xc, HW, mean, N, stride);
    } else {
      const float gamma = weight.value[ch], beta = bias.value[ch];
      const float* gc = g_out->data() + ch * HW;
      if (out && gamma != 0 && std::abs(beta) <= 16 * std::abs(gamma)) {
        sum_and_centered_dot(gc, out->data() + ch * HW, HW, beta, a, b, N, stride);
        b /= gamma;
      } else {
        sum_and_centered_dot(gc, xc, HW, batch_mean[ch], a, b, N, stride);
        b *= batch_invstd[ch];
      }
    }
    part[2 * ch] = a;
    part[2 * ch + 1] = b;
  }
}

void BatchNorm2d::combine_sums(Pass p, const std::vector<const double*>& parts, const std::vector<int>& rows,
                               bool param_grads) {
  const size_t HW = plane_;
  if (p == Pass::forward) {
    batch_mean.assign(channels, 0.f);
    batch_invstd.assign(channels, 0.f);
    for (int ch = 0; ch < channels; ++ch) {
      // Chan et al.: merging (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b) in part order.
      double n = 0, mean = 0, m2 = 0;
      for (size_t t = 0; t < parts.size(); ++t) {
        const double nb = double(rows[t]) * HW;
        if (nb == 0) continue;
        const double mb = parts[t][2 * ch] / nb, delta = mb - mean, total = n + nb;
        if (n == 0) {  // the first part as it is: one thread gives exactly the two-pass formula
          n = nb, mean = mb, m2 = parts[t][2 * ch + 1];
          continue;
        }
        mean += delta * nb / total;
        m2 += parts[t][2 * ch + 1] + delta * delta * n * nb / total;
        n = total;
      }
      const double var = m2 / n, unbiased = n > 1 ? m2 / (n - 1) : var;
      batch_mean[ch] = float(mean);
      batch_invstd[ch] = float(1.0 / std::sqrt(var + eps));
      running_mean.value[ch] = (1 - momentum) * running_mean.value[ch] + momentum * float(mean);
      running_var.value[ch] = (1 - momentum) * running_var.value[ch] + momentum * float(unbiased);
    }
    stats_ready_ = true;
    return;
  }
  sum_g_.assign(channels, 0.0);
  sum_gx_.assign(channels, 0.0);
  count_ = 0;
  for (size_t t = 0; t < parts.size(); ++t) {
    count_ += double(rows[t]) * HW;
    for (int ch = 0; ch < channels; ++ch) sum_g_[ch] += parts[t][2 * ch], sum_gx_[ch] += parts[t][2 * ch + 1];
  }
  if (param_grads)
    for (int ch = 0; ch < channels; ++ch) {
      weight.grad[ch] += float(sum_gx_[ch]);
      bias.grad[ch] += float(sum_g_[ch]);
    }
  grad_sums_ready_ = true;
}

void BatchNorm2d::forward(ForwardCall& c) {
  const Tensor& x = *c.in[0];
  Tensor& y = c.out;
  int N, C;
  size_t HW;
  dims(x, N, C, HW);
  float* scale = c.ws.get(0, 2 * size_t(C));  // the call's scratch: no allocation once the workspace has grown
  float* shift = scale + C;
  if (c.mode == Mode::eval) {
    eval_affine(scale, shift);
  } else {
    if (!stats_ready_) throw std::logic_error("batchnorm '" + name + "': training forward without the batch's sums");
    for (int ch = 0; ch < C; ++ch) {
      scale[ch] = weight.value[ch] * batch_invstd[ch];
      shift[ch] = bias.value[ch] - batch_mean[ch] * scale[ch];
    }
  }
  affine_planes(x.data(), y.data(), N, C, HW, scale, shift);
}

// In training the sums over the whole batch come from combine_sums (which also added the
// parameter gradients); in eval mode each call's rows are independent and add their own.
void BatchNorm2d::backward(BackwardCall& c) {
  const Tensor& x = *c.in[0];
  const Tensor& gy = c.g_out;
  int N, C;
  size_t HW;
  dims(x, N, C, HW);
  const bool training = c.mode == Mode::train;
  if (training && !grad_sums_ready_)
    throw std::logic_error("batchnorm '" + name + "': training backward without the batch's sums");
  for (int ch = 0; ch < C; ++ch) {
    const float mean = training ? batch_mean[ch] : running_mean.value[ch];
    const float invstd = training ? batch_invstd[ch] : 1.f / std::sqrt(running_var.value[ch] + eps);
    const float gamma = weight.value[ch];
    if (training) {
      if (!c.g_in[0]) continue;
      // dx = γ·invstd·(g − Σg/n − x̂·Σgx̂/n) = a·g + b·(x − mean) + c, the coefficients in double once.
      const double k = double(gamma) * invstd;
      const float ka = float(k), kb = float(-k * invstd * sum_gx_[ch] / count_), kc = float(-k * sum_g_[ch] / count_);
      const size_t at = size_t(ch) * HW;
      input_grad_planes(x.data() + at, gy.data() + at, c.g_in[0]->data() + at, N, HW, size_t(C) * HW, mean, ka, kb,
                        kc);
      continue;
    }
    double sum_g = 0, sum_gx = 0;
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
    for (int n = 0; n < N; ++n) {
      const float* g = gy.data() + (size_t(n) * C + ch) * HW;
      float* d = c.g_in[0]->data() + (size_t(n) * C + ch) * HW;
      for (size_t i = 0; i < HW; ++i) d[i] = gamma * invstd * g[i];
    }
  }
}

double BatchNorm2d::flops(const std::vector<Shape>& in) const { return 2.0 * in[0].numel() / in[0][0]; }

}  // namespace gb
