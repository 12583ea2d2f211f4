#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/layers.h"
#include "engine/simd.h"

namespace gb {

static Shape pooled(const std::string& who, const Shape& x, int k, int s, int p) {
  if (x.rank != 4) throw ShapeError(who + " expects [N,C,H,W] input, got " + x.str());
  if (x[2] + 2 * p < k || x[3] + 2 * p < k)
    throw ShapeError(who + ": window " + std::to_string(k) + " larger than input " + x.str());
  return {x[0], x[1], (x[2] + 2 * p - k) / s + 1, (x[3] + 2 * p - k) / s + 1};
}

Shape MaxPool2d::out_shape(const std::vector<Shape>& in) const {
  return pooled("maxpool '" + name + "'", in[0], k, stride, pad);
}

// v where keep, else +0, by masking v's bits: no branch, and inf/NaN gradients stay where they are.
static inline float keep_if(float v, bool keep) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  u &= 0u - uint32_t(keep);
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// Visits every output element of every plane with its window's winner (the first maximum in
// row-major window order, as OpenBox reports ties): f(plane, output index, input index, value).
template <class F>
static void for_winners(const MaxPool2d& L, const Tensor& x, int OH, int OW, F&& f) {
  const int H = x.dim(2), W = x.dim(3), k = L.k, s = L.stride, p = L.pad;
  const size_t planes = size_t(x.dim(0)) * x.dim(1);
  if (k == 2 && s == 2 && p == 0) {  // the common case, without the general bounds
    for (size_t pl = 0; pl < planes; ++pl) {
      const float* xp = x.data() + pl * H * W;
      for (int oh = 0; oh < OH; ++oh) {
        const float *r0 = xp + 2 * oh * W, *r1 = r0 + W;
        for (int ow = 0; ow < OW; ++ow) {
          // Selects, not branches: which element wins is data, and branching on it would be
          // mispredicted about half the time.
          const int j = 2 * ow;
          const float a = r0[j], b = r0[j + 1], c = r1[j], d = r1[j + 1];
          int q = 0;
          float best = a;
          q = b > best ? 1 : q;
          best = b > best ? b : best;
          q = c > best ? 2 : q;
          best = c > best ? c : best;
          q = d > best ? 3 : q;
          best = d > best ? d : best;
          f(pl, oh * OW + ow, (2 * oh + (q >> 1)) * W + j + (q & 1), best);
        }
      }
    }
    return;
  }
  for (size_t pl = 0; pl < planes; ++pl) {
    const float* xp = x.data() + pl * H * W;
    for (int oh = 0; oh < OH; ++oh) {
      const int h0 = oh * s - p, hs = std::max(h0, 0), he = std::min(h0 + k, H);
      for (int ow = 0; ow < OW; ++ow) {
        const int w0 = ow * s - p, ws = std::max(w0, 0), we = std::min(w0 + k, W);
        int32_t bi = hs * W + ws;
        float best = xp[bi];
        for (int ih = hs; ih < he; ++ih)
          for (int iw = ws; iw < we; ++iw)
            if (xp[ih * W + iw] > best) best = xp[ih * W + iw], bi = ih * W + iw;
        f(pl, oh * OW + ow, bi, best);
      }
    }
  }
}

// 2x2 windows, stride 2, no padding: the maximum of each window in for_winners' order (a later
// element wins only when strictly greater, so ties and NaNs give the same value), as plain loops
// that vectorize.
GB_CLONES static void max_pool_2x2(const float* x, float* y, size_t planes, int H, int W, int OH, int OW) {
  for (size_t pl = 0; pl < planes; ++pl)
    for (int oh = 0; oh < OH; ++oh) {
      const float *r0 = x + (pl * H + 2 * oh) * W, *r1 = r0 + W;
      float* yr = y + (pl * OH + oh) * OW;
      for (int ow = 0; ow < OW; ++ow) {
        float best = r0[2 * ow];
        best = r0[2 * ow + 1] > best ? r0[2 * ow + 1] : best;
        best = r1[2 * ow] > best ? r1[2 * ow] : best;
        best = r1[2 * ow + 1] > best ? r1[2 * ow + 1] : best;
        yr[ow] = best;
      }
    }
}

void MaxPool2d::forward(ForwardCall& c) {
  Tensor& y = c.out;
  const Tensor& x = *c.in[0];
  const int OHW = y.dim(2) * y.dim(3);
  float* yd = y.data();
  if (k == 2 && stride == 2 && pad == 0) {
    max_pool_2x2(x.data(), yd, size_t(x.dim(0)) * x.dim(1), x.dim(2), x.dim(3), y.dim(2), y.dim(3));
    return;
  }
  for_winners(*this, x, y.dim(2), y.dim(3), [&](size_t pl, int o, int32_t, float v) { yd[pl * OHW + o] = v; });
}

void MaxPool2d::winners(const Tensor& x, int32_t* am) const {
  Shape y = out_shape({x.shape()});
  const int OHW = y[2] * y[3];
  for_winners(*this, x, y[2], y[3], [&](size_t pl, int o, int32_t i, float) { am[pl * OHW + o] = i; });
}

// The gradient of max_pool_2x2 when the windows tile the plane (H, W even): each window writes
// its four gradients (zero but the winner's), so gx needs no clearing first. The winner as in
// for_winners, computed without branching on the data (a branch on which element wins is
// mispredicted about half the time): the gradient's bits under a mask.
GB_CLONES static void max_pool_2x2_grad(const float* x, const float* g, float* d, size_t planes, int H, int W) {
  const int OW = W / 2, HW = H * W, OHW = (H / 2) * OW;
  for (size_t pl = 0; pl < planes; ++pl)
    for (int oh = 0; oh < H / 2; ++oh) {
      const float *r0 = x + pl * HW + 2 * oh * W, *r1 = r0 + W, *go = g + pl * OHW + oh * OW;
      float *w0 = d + pl * HW + 2 * oh * W, *w1 = w0 + W;
      for (int ow = 0; ow < OW; ++ow) {
        const int j = 2 * ow;
        const float a = r0[j], b = r0[j + 1], cc = r1[j], e = r1[j + 1], v = go[ow];
        const bool q1 = b > a, q2 = cc > (q1 ? b : a), q3 = e > std::max(q1 ? b : a, cc);
        w0[j] = keep_if(v, !q1 & !q2 & !q3);
        w0[j + 1] = keep_if(v, q1 & !q2 & !q3);
        w1[j] = keep_if(v, q2 & !q3);
        w1[j + 1] = keep_if(v, q3);
      }
    }
}

void MaxPool2d::backward(BackwardCall& c) {
  if (!c.g_in[0]) return;
  Tensor& gx = *c.g_in[0];
  const int H = gx.dim(2), W = gx.dim(3), HW = H * W, OW = c.g_out.dim(3), OHW = c.g_out.dim(2) * OW;
  const float* g = c.g_out.data();
  float* d = gx.data();
  if (k == 2 && stride == 2 && pad == 0 && H % 2 == 0 && W % 2 == 0) {
    max_pool_2x2_grad(c.in[0]->data(), g, d, size_t(gx.dim(0)) * gx.dim(1), H, W);
    return;
  }
  gx.fill(0.f);
  for_winners(*this, *c.in[0], c.g_out.dim(2), OW,
              [&](size_t pl, int o, int32_t i, float) { d[pl * HW + i] += g[pl * OHW + o]; });
}

double MaxPool2d::flops(const std::vector<Shape>& in) const {
  Shape o = out_shape(in);
  return double(o.numel()) / o[0] * k * k;
}

Shape AvgPool2d::out_shape(const std::vector<Shape>& in) const {
  return pooled("avgpool '" + name + "'", in[0], k, stride, pad);
}

void AvgPool2d::forward(ForwardCall& c) {
  const Tensor& x = *c.in[0];
  Tensor& y = c.out;
  const int H = x.dim(2), W = x.dim(3), OH = y.dim(2), OW = y.dim(3);
  const size_t planes = size_t(x.dim(0)) * x.dim(1);
  const float inv = 1.f / float(k * k);
  for (size_t pl = 0; pl < planes; ++pl) {
    const float* xp = x.data() + pl * H * W;
    float* yp = y.data() + pl * OH * OW;
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow) {
        const int h0 = oh * stride - pad, w0 = ow * stride - pad;
        const int hs = std::max(h0, 0), he = std::min(h0 + k, H), ws = std::max(w0, 0), we = std::min(w0 + k, W);
        float s = 0;
        for (int ih = hs; ih < he; ++ih)
          for (int iw = ws; iw < we; ++iw) s += xp[ih * W + iw];
        yp[oh * OW + ow] = s * inv;
      }
  }
}

void AvgPool2d::backward(BackwardCall& c) {
  if (!c.g_in[0]) return;
  Tensor& gx = *c.g_in[0];
  gx.fill(0.f);
  const int H = gx.dim(2), W = gx.dim(3), OH = c.g_out.dim(2), OW = c.g_out.dim(3);
  const size_t planes = size_t(gx.dim(0)) * gx.dim(1);
  const float inv = 1.f / float(k * k);
  for (size_t pl = 0; pl < planes; ++pl) {
    const float* g = c.g_out.data() + pl * OH * OW;
    float* d = gx.data() + pl * H * W;
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow) {
        const int h0 = oh * stride - pad, w0 = ow * stride - pad;
        const int hs = std::max(h0, 0), he = std::min(h0 + k, H), ws = std::max(w0, 0), we = std::min(w0 + k, W);
        const float v = g[oh * OW + ow] * inv;
        for (int ih = hs; ih < he; ++ih)
          for (int iw = ws; iw < we; ++iw) d[ih * W + iw] += v;
      }
  }
}

double AvgPool2d::flops(const std::vector<Shape>& in) const {
  Shape o = out_shape(in);
  return double(o.numel()) / o[0] * k * k;
}

Shape GlobalAvgPool::out_shape(const std::vector<Shape>& in) const {
  if (in[0].rank != 4) throw ShapeError("gap '" + name + "' expects [N,C,H,W] input, got " + in[0].str());
  return {in[0][0], in[0][1]};
}

void GlobalAvgPool::forward(ForwardCall& c) {
  const Tensor& x = *c.in[0];
  const size_t planes = size_t(x.dim(0)) * x.dim(1), HW = size_t(x.dim(2)) * x.dim(3);
  for (size_t pl = 0; pl < planes; ++pl) {
    c.out[pl] = float(sum(x.data() + pl * HW, HW) / double(HW));
  }
}

void GlobalAvgPool::backward(BackwardCall& c) {
  if (!c.g_in[0]) return;
  Tensor& gx = *c.g_in[0];
  const size_t planes = size_t(gx.dim(0)) * gx.dim(1), HW = size_t(gx.dim(2)) * gx.dim(3);
  for (size_t pl = 0; pl < planes; ++pl) {
    float v = c.g_out[pl] / float(HW);
    std::fill(gx.data() + pl * HW, gx.data() + (pl + 1) * HW, v);
  }
}

double GlobalAvgPool::flops(const std::vector<Shape>& in) const { return double(in[0].numel()) / in[0][0]; }

}  // namespace gb
