#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/layers.h"
#include "engine/simd.h"
#include "engine/sizes.h"

namespace gb {

static Shape pooled(const std::string& who, const Shape& x, int k, int s, int p) {
  if (x.rank != 4) throw ShapeError(who + " expects [N,C,H,W] input, got " + x.str());
  const int64_t h = int64_t(x[2]) + 2 * int64_t(p), w = int64_t(x[3]) + 2 * int64_t(p);  // 64-bit: p is a file's
  if (h < k || w < k) throw ShapeError(who + ": window " + std::to_string(k) + " larger than input " + x.str());
  return {x[0], x[1], to_int((h - k) / s + 1, who + " output height"), to_int((w - k) / s + 1, who + " output width")};
}

// Whether v replaces the window's maximum so far: greater, or NaN. The vector loops below write
// the same test per lane, (v > best) | (v != v).
static inline bool beats(float v, float best) { return v > best || v != v; }

Shape MaxPool2d::out_shape(const std::vector<Shape>& in) const {
  return pooled("maxpool '" + name + "'", in[0], k, stride, pad);
}

// Visits every output element of every plane with its window's winner (the first maximum in
// row-major window order, as OpenBox reports ties): f(plane, output index, input index, value).
// A later element wins when it is greater or NaN (PyTorch's max_pool2d): a window holding a NaN
// gives NaN, and its gradient goes to the last NaN (seen only under --allow-nonfinite).
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
          const bool wb = beats(b, best);
          q = wb ? 1 : q;
          best = wb ? b : best;
          const bool wc = beats(c, best);
          q = wc ? 2 : q;
          best = wc ? c : best;
          const bool wd = beats(d, best);
          q = wd ? 3 : q;
          best = wd ? d : best;
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
            if (beats(xp[ih * W + iw], best)) best = xp[ih * W + iw], bi = ih * W + iw;
        f(pl, oh * OW + ow, bi, best);
      }
    }
  }
}

// 2x2 windows with stride 2 and no padding, the common case, run L windows at a time: the two
// input rows are loaded as 2L floats each and split into even and odd columns (GCC vector
// extensions; each clone compiles them for its own target). A row of OW windows is covered by
// blocks of 8 (or 4) windows, the last block overlapping the one before it: windows are
// independent, so one done twice writes the same values twice. Rows of fewer than 4 windows go
// one window at a time (L = 1).
template <int L>
struct Lanes {
  typedef float f __attribute__((vector_size(4 * L)));
  typedef int32_t i __attribute__((vector_size(4 * L)));
};
template <>
struct Lanes<1> {
  typedef float f;
  typedef int32_t i;
};

template <int L>
GB_INLINE void split_columns(const float* p, typename Lanes<L>::f& even, typename Lanes<L>::f& odd) {
  if constexpr (L == 1) {
    even = p[0], odd = p[1];
  } else {
    typename Lanes<L>::f a, b;
    load_vec(a, p);
    load_vec(b, p + L);
    if constexpr (L == 8) {
      even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
      odd = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
    } else {
      even = __builtin_shufflevector(a, b, 0, 2, 4, 6);
      odd = __builtin_shufflevector(a, b, 1, 3, 5, 7);
    }
  }
}

// The inverse of split_columns: p gets even[0], odd[0], even[1], odd[1], ... (V: float lanes,
// or int lanes holding floats' bits).
template <int L, class V>
GB_INLINE void merge_columns(float* p, const V& even, const V& odd) {
  if constexpr (L == 1) {
    store_vec(p, even);
    store_vec(p + 1, odd);
  } else {
    V a, b;
    if constexpr (L == 8) {
      a = __builtin_shufflevector(even, odd, 0, 8, 1, 9, 2, 10, 3, 11);
      b = __builtin_shufflevector(even, odd, 4, 12, 5, 13, 6, 14, 7, 15);
    } else {
      a = __builtin_shufflevector(even, odd, 0, 4, 1, 5);
      b = __builtin_shufflevector(even, odd, 2, 6, 3, 7);
    }
    store_vec(p, a);
    store_vec(p + L, b);
  }
}

template <class Block>
GB_INLINE void cover_row(int OW, Block&& block) {
  using std::integral_constant;
  if (OW >= 8) {
    int o = 0;
    for (; o + 8 <= OW; o += 8) block(integral_constant<int, 8>{}, o);
    if (o < OW) block(integral_constant<int, 8>{}, OW - 8);
  } else if (OW >= 4) {
    block(integral_constant<int, 4>{}, 0);
    block(integral_constant<int, 4>{}, OW - 4);
  } else {
    for (int o = 0; o < OW; ++o) block(integral_constant<int, 1>{}, o);
  }
}

// Each window's maximum in for_winners' order: a later element wins only when strictly greater or
// NaN, so ties and NaNs give the same value.
GB_CLONES static void max_pool_2x2(const float* x, float* y, size_t planes, int H, int W, int OH, int OW) {
  for (size_t pl = 0; pl < planes; ++pl)
    for (int oh = 0; oh < OH; ++oh) {
      const float *r0 = x + (pl * H + 2 * oh) * W, *r1 = r0 + W;
      float* yr = y + (pl * OH + oh) * OW;
      cover_row(OW, [&](auto lanes, int o) {
        constexpr int L = decltype(lanes)::value;
        typename Lanes<L>::f a, b, c, e;
        split_columns<L>(r0 + 2 * o, a, b);
        split_columns<L>(r1 + 2 * o, c, e);
        typename Lanes<L>::f best = a;
        best = ((b > best) | (b != b)) ? b : best;
        best = ((c > best) | (c != c)) ? c : best;
        best = ((e > best) | (e != e)) ? e : best;
        store_vec(yr + o, best);
      });
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
// for_winners, found with selects, not branches (a branch on which element wins is mispredicted
// about half the time), and the gradient's bits kept under the winner's mask.
GB_CLONES static void max_pool_2x2_grad(const float* x, const float* g, float* d, size_t planes, int H, int W) {
  const int OW = W / 2, HW = H * W, OHW = (H / 2) * OW;
  for (size_t pl = 0; pl < planes; ++pl)
    for (int oh = 0; oh < H / 2; ++oh) {
      const float *r0 = x + pl * HW + 2 * oh * W, *r1 = r0 + W, *go = g + pl * OHW + oh * OW;
      float *w0 = d + pl * HW + 2 * oh * W, *w1 = w0 + W;
      cover_row(OW, [&](auto lanes, int o) {
        constexpr int L = decltype(lanes)::value;
        using F = typename Lanes<L>::f;
        using I = typename Lanes<L>::i;
        F a, b, c, e;
        split_columns<L>(r0 + 2 * o, a, b);
        split_columns<L>(r1 + 2 * o, c, e);
        const I ones = I{} - 1, none = I{};  // q: all ones where a later element beats the best so far
        const I t1 = (b > a) | (b != b);  // b beats a: greater or NaN, as in for_winners
        const F best1 = t1 ? b : a;
        const I t2 = (c > best1) | (c != c);
        const F best2 = t2 ? c : best1;
        const I t3 = (e > best2) | (e != e);
        const I q1 = t1 ? ones : none, q2 = t2 ? ones : none, q3 = t3 ? ones : none;
        I bits;  // the output gradients' bits
        load_vec(bits, go + o);
        merge_columns<L>(w0 + 2 * o, I(bits & ~(q1 | q2 | q3)), I(bits & q1 & ~(q2 | q3)));
        merge_columns<L>(w1 + 2 * o, I(bits & q2 & ~q3), I(bits & q3));
      });
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

// ---- nearest-neighbour upsampling --------------------------------------------------------------

Shape Upsample2d::out_shape(const std::vector<Shape>& in) const {
  const Shape& x = in[0];
  if (x.rank != 4) throw ShapeError("upsample '" + name + "' expects [N,C,H,W] input, got " + x.str());
  return {x[0], x[1], to_int(int64_t(x[2]) * scale, "upsample '" + name + "' output height"),
          to_int(int64_t(x[3]) * scale, "upsample '" + name + "' output width")};
}

void Upsample2d::forward(ForwardCall& c) {
  const Tensor& x = *c.in[0];
  const int h = x.dim(2), w = x.dim(3), W = w * scale;
  const size_t planes = size_t(x.dim(0)) * x.dim(1);
  for (size_t p = 0; p < planes; ++p)
    for (int i = 0; i < h; ++i) {
      const float* src = x.data() + (p * h + i) * w;
      float* row = c.out.data() + (p * h + i) * scale * W;
      for (int j = 0; j < w; ++j) std::fill(row + j * scale, row + (j + 1) * scale, src[j]);
      for (int r = 1; r < scale; ++r) std::copy(row, row + W, row + r * W);
    }
}

void Upsample2d::backward(BackwardCall& c) {
  Tensor* gx = c.g_in[0];
  if (!gx) return;
  const int h = gx->dim(2), w = gx->dim(3), W = w * scale;
  const size_t planes = size_t(gx->dim(0)) * gx->dim(1);
  for (size_t p = 0; p < planes; ++p)
    for (int i = 0; i < h; ++i) {
      float* dst = gx->data() + (p * h + i) * w;
      std::fill(dst, dst + w, 0.f);
      for (int r = 0; r < scale; ++r) {
        const float* row = c.g_out.data() + ((p * h + i) * scale + r) * W;
        for (int j = 0; j < W; ++j) dst[j / scale] += row[j];
      }
    }
}

}  // namespace gb
