// Convolution as im2col + GEMM, one sample at a time (3x3 stride-1 convolutions with enough
// channels go to Winograd instead: engine/winograd.h). The column matrix holds a row for every
// kernel tap (c, ki, kj) and a column for every output position, so W[O,K] x col[K,P] is the
// sample's output, already in NCHW order. One sample's column matrix stays in cache, and for the
// sizes of this engine per-sample GEMMs run as fast as one large GEMM over a batch (which would
// also need copies between NCHW and the GEMM layout). Batches are split across threads by the
// graph, not here.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/blas.h"
#include "engine/simd.h"
#include "engine/sizes.h"
#include "engine/layers.h"
#include "engine/threads.h"
#include "engine/winograd.h"

namespace gb {

namespace {

struct Geometry {
  int C, H, W, O, k, s, p, OH, OW;
  int P() const { return OH * OW; }
  int K() const { return C * k * k; }
};

Geometry geometry(const Conv2d& L, const Shape& x) {
  Geometry g{x[1], x[2], x[3], L.out_ch, L.k, L.stride, L.pad, 0, 0};
  g.OH = (g.H + 2 * g.p - g.k) / g.s + 1;
  g.OW = (g.W + 2 * g.p - g.k) / g.s + 1;
  return g;
}

// Output columns [lo, hi) whose input column ow*s - p + kj falls inside [0, W) (and, for phase
// planes, rows or columns j of phase kj: the same condition): the loops below fill the padding
// with zeros and copy the rest without a bounds check per element.
inline void valid_range(int s, int p, int kj, int W, int OW, int& lo, int& hi) {
  lo = std::clamp((p - kj + s - 1) / s, 0, OW);
  if (p - kj < 0) lo = 0;
  hi = std::clamp((W + p - kj + s - 1) / s, lo, OW);
}

// ---- strides >= 2: phase planes --------------------------------------------------------------
//
// With stride s, tap (ki, kj) at output (oh, ow) reads padded input row oh*s + ki and column
// ow*s + kj. Write ki = s*di + a and kj = s*dj + b: the tap reads phase plane (a, b) of the padded
// input, Q_ab[i][j] = xpad[s*i + a][s*j + b], at row oh + di and column ow + dj. So one strided
// pass over each input plane splits it into its phases, after which every tap's row of the
// column matrix is a set of contiguous copies out of one phase plane (and col2im, the adjoint,
// contiguous adds into phase planes and one strided pass back). Only phases a, b < min(s, k) are
// read. When k <= s every tap is its own phase (di = dj = 0) and the phase planes are the
// column rows themselves: im2col is one strided pass straight into col, with no scratch (the
// 1x1 stride-2 projections of a ResNet are a pure subsample).

struct Phases {
  int n;       // phases per axis: min(s, k)
  int d;       // largest tap offset in phase-plane units: (k - 1) / s
  int HQ, WQ;  // phase-plane size: OH + d rows, OW + d columns
  size_t plane() const { return size_t(HQ) * WQ; }
  size_t floats() const { return size_t(n) * n * plane(); }  // one input channel's phase planes
};

Phases phases(const Geometry& g) {
  Phases f;
  f.n = std::min(g.s, g.k);
  f.d = (g.k - 1) / g.s;
  f.HQ = g.OH + f.d;
  f.WQ = g.OW + f.d;
  return f;
}

// Scratch floats im2col and col2im need for geometry g (0: none).
size_t phase_scratch(const Geometry& g) { return g.s >= 2 && g.k > g.s ? phases(g).floats() : 0; }

// q[j] = src[S*j] (S = 2 is a compile-time stride the compiler can vectorize) and its adjoint.
template <int S>
GB_INLINE void gather(float* __restrict q, const float* __restrict src, int n, int s) {
  const int st = S ? S : s;
  if (S == 2 && n == 16) {  // a 32-wide row's phase: two loads and one shuffle, reading src[0, 31)
    typedef float v16 __attribute__((vector_size(64)));
    v16 a, b;
    load_vec(a, src);
    load_vec(b, src + 15);  // its odd elements are src[16], src[18], ..., src[30]
    store_vec(q, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 31));
    return;
  }
  for (int j = 0; j < n; ++j) q[j] = src[j * st];
}
template <int S>
GB_INLINE void scatter_add(float* __restrict dst, const float* __restrict q, int n, int s) {
  const int st = S ? S : s;
  for (int j = 0; j < n; ++j) dst[j * st] += q[j];
}

// Splits one input plane (H x W) into its n x n phase planes: phase (a, b) goes to
// out + (a * n + b) * ps, rows WQ floats apart, rows_q x WQ of them (zeros where the padded input
// is padding or beyond).
template <int S>
GB_INLINE void split(const Geometry& g, const Phases& f, const float* plane, float* out, size_t ps) {
  const int s = S ? S : g.s;
  for (int a = 0; a < f.n; ++a) {
    int i0, i1;
    valid_range(s, g.p, a, g.H, f.HQ, i0, i1);
    for (int b = 0; b < f.n; ++b) {
      float* q = out + size_t(a * f.n + b) * ps;
      int j0, j1;
      valid_range(s, g.p, b, g.W, f.WQ, j0, j1);
      std::fill(q, q + size_t(i0) * f.WQ, 0.f);
      for (int i = i0; i < i1; ++i)
        gather<S>(q + size_t(i) * f.WQ + j0, plane + size_t(i * s + a - g.p) * g.W + (j0 * s + b - g.p), j1 - j0, s);
      // The padding columns, a column at a time (per row they are a float or two: a fill per row
      // would be a memset call each).
      for (int j = 0; j < j0; ++j)
        for (int i = i0; i < i1; ++i) q[size_t(i) * f.WQ + j] = 0.f;
      for (int j = j1; j < f.WQ; ++j)
        for (int i = i0; i < i1; ++i) q[size_t(i) * f.WQ + j] = 0.f;
      std::fill(q + size_t(i1) * f.WQ, q + size_t(f.HQ) * f.WQ, 0.f);
    }
  }
}

// The adjoint of split: adds the phase planes into the input plane.
template <int S>
GB_INLINE void merge(const Geometry& g, const Phases& f, const float* in, size_t ps, float* plane) {
  const int s = S ? S : g.s;
  for (int a = 0; a < f.n; ++a) {
    int i0, i1;
    valid_range(s, g.p, a, g.H, f.HQ, i0, i1);
    for (int b = 0; b < f.n; ++b) {
      const float* q = in + size_t(a * f.n + b) * ps;
      int j0, j1;
      valid_range(s, g.p, b, g.W, f.WQ, j0, j1);
      for (int i = i0; i < i1; ++i)
        scatter_add<S>(plane + size_t(i * s + a - g.p) * g.W + (j0 * s + b - g.p), q + size_t(i) * f.WQ + j0, j1 - j0,
                       s);
    }
  }
}

// d[j] = q[j] (or += with Add) for j < n. The rows of a stride-2 layer's taps are as long as its
// output is wide, 16 or 8 floats in a CIFAR ResNet: those lengths get a loop of fixed length, one
// or two vector moves without a remainder.
template <bool Add, int N>
GB_INLINE void fixed_row(float* __restrict d, const float* __restrict q) {
  for (int j = 0; j < N; ++j) d[j] = Add ? d[j] + q[j] : q[j];
}
template <bool Add>
GB_INLINE void tap_row(float* __restrict d, const float* __restrict q, int n) {
  if (n == 16) return fixed_row<Add, 16>(d, q);
  if (n == 8) return fixed_row<Add, 8>(d, q);
  for (int j = 0; j < n; ++j) d[j] = Add ? d[j] + q[j] : q[j];
}

template <int S>
GB_INLINE void im2col_strided(const Geometry& g, const float* x, float* col, float* scratch) {
  const int P = g.P(), kk = g.k * g.k;
  const Phases f = phases(g);
  if (f.d == 0) {  // k <= s: phase (a, b) is tap (a, b)'s row, split straight into col
    for (int c = 0; c < g.C; ++c) {
      float* d = col + size_t(c) * kk * P;
      const float* plane = x + size_t(c) * g.H * g.W;
      // Phase (a, b) at d + (a * k + b) * P: with n = k that is (a * n + b) * P.
      split<S>(g, f, plane, d, P);
    }
    return;
  }
  for (int c = 0; c < g.C; ++c) {
    split<S>(g, f, x + size_t(c) * g.H * g.W, scratch, f.plane());
    for (int ki = 0; ki < g.k; ++ki)
      for (int kj = 0; kj < g.k; ++kj) {
        const int a = ki % g.s, di = ki / g.s, b = kj % g.s, dj = kj / g.s;
        const float* __restrict q = scratch + size_t(a * f.n + b) * f.plane() + size_t(di) * f.WQ + dj;
        float* __restrict d = col + size_t((c * g.k + ki) * g.k + kj) * P;
        for (int oh = 0; oh < g.OH; ++oh, q += f.WQ, d += g.OW) tap_row<false>(d, q, g.OW);
      }
  }
}

template <int S>
GB_INLINE void col2im_strided(const Geometry& g, const float* col, float* x, float* scratch) {
  const int P = g.P(), kk = g.k * g.k;
  const Phases f = phases(g);
  if (f.d == 0) {
    for (int c = 0; c < g.C; ++c) merge<S>(g, f, col + size_t(c) * kk * P, P, x + size_t(c) * g.H * g.W);
    return;
  }
  for (int c = 0; c < g.C; ++c) {
    std::fill(scratch, scratch + f.floats(), 0.f);
    for (int ki = 0; ki < g.k; ++ki)
      for (int kj = 0; kj < g.k; ++kj) {
        const int a = ki % g.s, di = ki / g.s, b = kj % g.s, dj = kj / g.s;
        float* __restrict q = scratch + size_t(a * f.n + b) * f.plane() + size_t(di) * f.WQ + dj;
        const float* __restrict d = col + size_t((c * g.k + ki) * g.k + kj) * P;
        for (int oh = 0; oh < g.OH; ++oh, q += f.WQ, d += g.OW) tap_row<true>(q, d, g.OW);
      }
    merge<S>(g, f, scratch, f.plane(), x + size_t(c) * g.H * g.W);
  }
}

// The phase-plane paths, compiled for AVX-512 and AVX2 as well as the baseline (engine/simd.h): their rows
// are short (8 to 16 floats in a ResNet's later stages), so the vector width counts.
GB_CLONES void im2col_phases(const Geometry& g, const float* x, float* col, float* scratch) {
  if (g.s == 2)
    im2col_strided<2>(g, x, col, scratch);
  else
    im2col_strided<0>(g, x, col, scratch);
}

GB_CLONES void col2im_phases(const Geometry& g, const float* col, float* x, float* scratch) {
  if (g.s == 2)
    col2im_strided<2>(g, col, x, scratch);
  else
    col2im_strided<0>(g, col, x, scratch);
}

// col[r, p] of one sample x (C*H*W floats). For stride >= 2 with k > s, `scratch` holds
// phase_scratch(g) floats; without it such convolutions gather element by element.
void im2col(const Geometry& g, const float* x, float* col, float* scratch = nullptr) {
  if (g.s >= 2 && (g.k <= g.s || scratch)) return im2col_phases(g, x, col, scratch);
  const int P = g.P();
  // "Same" convolutions (stride 1, output as wide as the input, e.g. 3x3 with padding 1): a tap's
  // row is the input plane shifted by a constant offset, so it is one contiguous copy, after
  // which the few elements that wrapped around a row edge are zeroed.
  const bool same = g.s == 1 && g.OW == g.W;
  for (int c = 0; c < g.C; ++c) {
    const float* plane = x + size_t(c) * g.H * g.W;
    for (int ki = 0; ki < g.k; ++ki)
      for (int kj = 0; kj < g.k; ++kj) {
        float* d = col + size_t((c * g.k + ki) * g.k + kj) * P;
        int lo, hi;
        valid_range(g.s, g.p, kj, g.W, g.OW, lo, hi);
        const int oh0 = std::clamp((g.p - ki + g.s - 1) / g.s, 0, g.OH);  // rows whose input row is inside
        const int oh1 = std::clamp((g.H + g.p - ki + g.s - 1) / g.s, oh0, g.OH);
        if (oh0 == oh1 || lo == hi) {
          std::fill(d, d + P, 0.f);
          continue;
        }
        std::fill(d, d + oh0 * g.OW, 0.f);
        std::fill(d + oh1 * g.OW, d + P, 0.f);
        if (same) {
          const long off = long(ki - g.p) * g.W + (kj - g.p);
          const int first = oh0 * g.OW + lo, last = (oh1 - 1) * g.OW + hi;  // valid elements [first, last)
          std::copy(plane + first + off, plane + last + off, d + first);
          for (int oh = oh0; oh < oh1; ++oh) {
            std::fill(d + oh * g.OW, d + oh * g.OW + lo, 0.f);
            std::fill(d + oh * g.OW + hi, d + (oh + 1) * g.OW, 0.f);
          }
          continue;
        }
        const int shift = kj - g.p;
        for (int oh = oh0; oh < oh1; ++oh) {
          const float* src = plane + size_t(oh * g.s - g.p + ki) * g.W;  // column ow reads src[ow * s + shift]
          float* r = d + oh * g.OW;
          std::fill(r, r + lo, 0.f);
          if (g.s == 1)
            std::copy(src + lo + shift, src + hi + shift, r + lo);
          else
            for (int ow = lo; ow < hi; ++ow) r[ow] = src[ow * g.s + shift];
          std::fill(r + hi, r + g.OW, 0.f);
        }
      }
  }
}

// The adjoint of im2col for one sample: adds col back into x (zeroed by the caller). `scratch`
// as for im2col.
void col2im(const Geometry& g, const float* col, float* x, float* scratch = nullptr) {
  if (g.s >= 2 && (g.k <= g.s || scratch)) return col2im_phases(g, col, x, scratch);
  const int P = g.P();
  for (int c = 0; c < g.C; ++c) {
    float* plane = x + size_t(c) * g.H * g.W;
    for (int ki = 0; ki < g.k; ++ki)
      for (int kj = 0; kj < g.k; ++kj) {
        const float* src = col + size_t((c * g.k + ki) * g.k + kj) * P;
        int lo, hi;
        valid_range(g.s, g.p, kj, g.W, g.OW, lo, hi);
        const int oh0 = std::clamp((g.p - ki + g.s - 1) / g.s, 0, g.OH);
        const int oh1 = std::clamp((g.H + g.p - ki + g.s - 1) / g.s, oh0, g.OH);
        const int shift = kj - g.p;
        for (int oh = oh0; oh < oh1; ++oh) {
          float* dst = plane + size_t(oh * g.s - g.p + ki) * g.W + shift;
          const float* sr = src + oh * g.OW;
          if (g.s == 1)
            for (int ow = lo; ow < hi; ++ow) dst[ow] += sr[ow];
          else
            for (int ow = lo; ow < hi; ++ow) dst[ow * g.s] += sr[ow];
        }
      }
  }
}

// The weight gradient gw += gy colᵀ runs as gwᵀ += col gyᵀ (gy transposed once per sample, O x P
// floats), a product with no transposed right operand, the case GEMM kernels run fastest:
// - with glassbox's kernel, always: OpenBLAS would run the transposed product. Alternating builds
//   on Zen 5, doing so also for the stem's 27 and the 1x1 projections' 16 and 32 column rows
//   made training 1.04x (resnet8) and 1.05x (cifar-convnet, its first layer) faster;
// - with OpenBLAS alone, above this many column rows (C x k x k). Timed alone on one thread
//   (Zen 5): resnet8's stride-2 3x3 layers (144 and 288 rows) 1.4-1.5x faster with OpenBLAS's
//   AVX-512 kernels; a 1x1 layer of 64 channels was level to 7% slower.
constexpr int kTransposedWeightGrad = 64;

}  // namespace

void Conv2d::build(const std::vector<Shape>& in) {
  if (in[0].rank != 4) throw ShapeError("conv '" + name + "' expects [N,C,H,W] input, got " + in[0].str());
  in_ch = in[0][1];
  // The im2col geometry counts kernel taps and output positions in int.
  to_int(int64_t(in_ch) * k * k, "conv '" + name + "' kernel taps (in channels x k x k)");
  weight.value = Tensor({out_ch, in_ch, k, k});
  weight.grad = Tensor({out_ch, in_ch, k, k});
  if (has_bias) {
    bias.value = Tensor({out_ch});
    bias.grad = Tensor({out_ch});
  }
  const Shape out = out_shape(in);
  out_h_ = out[2];
  out_w_ = out[3];
}

Shape Conv2d::out_shape(const std::vector<Shape>& in) const {
  const Shape& x = in[0];
  if (x.rank != 4 || (in_ch && x[1] != in_ch))
    shape_error("conv '" + name + "' input", Shape{x[0], in_ch, x.rank > 2 ? x[2] : 0, x.rank > 3 ? x[3] : 0}, x);
  // 64-bit: pad and k may come from a hostile file (p=2000000000 overflowed int here).
  const int64_t h = int64_t(x[2]) + 2 * int64_t(pad), w = int64_t(x[3]) + 2 * int64_t(pad);
  if (h < k || w < k)
    throw ShapeError("conv '" + name + "': kernel " + std::to_string(k) + " larger than padded input " + x.str());
  const int oh = to_int((h - k) / stride + 1, "conv '" + name + "' output height"),
            ow = to_int((w - k) / stride + 1, "conv '" + name + "' output width");
  to_int(int64_t(oh) * ow, "conv '" + name + "' output positions (height x width)");
  return {x[0], out_ch, oh, ow};
}

int Conv2d::winograd_tile(int OH, int OW) const { return winograd::tile(training_, OH, OW, in_ch, out_ch); }

void Conv2d::prepare(Pass pass, Mode mode) {
  training_ = mode == Mode::train;
  if (!weight.value.empty() && winograd::applies(k, stride, in_ch, out_ch)) {
    const bool transposed = pass == Pass::forward;
    const int m = winograd_tile(out_h_, out_w_);
    if (m != wino_tile_) wino_ready_[0] = wino_ready_[1] = false;
    wino_tile_ = m;
    const size_t F = size_t(out_ch) * in_ch, NP = size_t(m + 2) * (m + 2);
    wino_weight_.resize({2 * int(NP), out_ch, in_ch});
    wino_taps_.resize(9 * F);
    // On all threads (the graph calls prepare() on one thread while the others wait), unless
    // there are too few filters to be worth waking them.
    const int T = F >= 1024 ? threads() : 1;
    parallel(T, [&](int t) {
      int b, e;
      part(t, T, int(F), b, e);
      winograd::transform_weights(m, weight.value.data(), out_ch, in_ch, transposed,
                                  wino_weight_.data() + (transposed ? NP * F : 0), wino_taps_.data(), b, e);
    });
    wino_ready_[transposed] = true;
  }
}

// The layer's own weights come transformed from prepare(); other weights (LRP's modified copies)
// are transformed per call.
const float* Conv2d::winograd_weights(const Tensor& w, bool transposed, int tile, Workspace& ws) const {
  const size_t F = size_t(w.dim(0)) * w.dim(1), NP = size_t(tile + 2) * (tile + 2);
  if (&w == &weight.value && wino_ready_[transposed] && wino_tile_ == tile && wino_weight_.size() == 2 * NP * F)
    return wino_weight_.data() + (transposed ? NP * F : 0);
  float* u = ws.get(2, NP * F);
  winograd::transform_weights(tile, w.data(), w.dim(0), w.dim(1), transposed, u, ws.get(3, 9 * F), 0, F);
  return u;
}

void Conv2d::conv(const Tensor& x, const Tensor& w, const float* b, Tensor& y, Workspace& ws) const {
  Geometry g = geometry(*this, x.shape());
  if (winograd::applies(g.k, g.s, g.C, g.O)) {
    const winograd::Geometry wg = winograd::geometry(g.C, g.H, g.W, g.O, g.p, winograd_tile(g.OH, g.OW));
    const float* u = winograd_weights(w, true, wg.m, ws);
    const int chunk = std::max(1, std::min(x.batch(), winograd::samples_per_gemm(wg)));
    float* work = ws.get(1, winograd::work_floats(wg, chunk));
    for (int n = 0; n < x.batch(); n += chunk)
      winograd::forward(wg, std::min(chunk, x.batch() - n), x.data() + size_t(n) * g.C * g.H * g.W, u, b,
                        y.data() + size_t(n) * g.O * g.P(), work);
    return;
  }
  const int P = g.P(), K = g.K();
  float* col = ws.get(0, size_t(K) * P);
  float* scratch = ws.get(1, phase_scratch(g));
  for (int n = 0; n < x.batch(); ++n) {
    im2col(g, x.data() + size_t(n) * g.C * g.H * g.W, col, scratch);
    float* yn = y.data() + size_t(n) * g.O * P;
    if (b)  // the GEMM adds onto the bias (beta = 1): one pass over y instead of two
      for (int o = 0; o < g.O; ++o) std::fill(yn + size_t(o) * P, yn + size_t(o + 1) * P, b[o]);
    gemm(false, false, g.O, P, K, 1.f, w.data(), col, b ? 1.f : 0.f, yn);
  }
}

void Conv2d::conv_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, Workspace& ws) const {
  conv_backward(nullptr, gy, w, &gx, nullptr, nullptr, ws, nullptr);
}

void Conv2d::conv_backward_weight(const Tensor& x, const Tensor& gy, Tensor& gw, float* gb, Workspace& ws) const {
  conv_backward(&x, gy, weight.value, nullptr, &gw, gb, ws, nullptr);
}

void Conv2d::conv_backward(const Tensor* x, const Tensor& gy, const Tensor& w, Tensor* gx, Tensor* gw, float* gb,
                           Workspace& ws, FloatBuffer* carry, bool add_gx) const {
  if (!gx && !gw && !gb) return;
  Geometry g = geometry(*this, (x ? *x : *gx).shape());
  const int N = gy.batch(), P = g.P(), K = g.K();
  const size_t in_floats = size_t(g.C) * g.H * g.W, out_floats = size_t(g.O) * P;
  if (winograd::applies(g.k, g.s, g.C, g.O)) {
    // Both gradients start from the output gradient's tiles, computed once. The samples' weight
    // gradients add up in the Winograd domain, a few samples per GEMM, and go back to 3x3 once:
    // at the end of this call, or with `carry` at the end of the pass (end_backward).
    constexpr int kSamples = 8;
    const winograd::Geometry wg = winograd::geometry(g.C, g.H, g.W, g.O, g.p, winograd_tile(g.OH, g.OW));
    const size_t F = size_t(g.O) * g.C, NP = wg.points();
    const int chunk = std::max(1, std::min(N, std::max(gw ? kSamples : 1, winograd::samples_per_gemm(wg))));
    const float* u = gx ? winograd_weights(w, false, wg.m, ws) : nullptr;  // slot 2 (and 3) when transformed here
    float* m = ws.get(0, winograd::grad_tile_floats(wg, chunk));
    float* work = ws.get(1, winograd::work_floats(wg, chunk));
    float* du = nullptr;
    float beta = 0.f;
    if (gw && carry) {
      beta = carry->empty() ? 0.f : 1.f;
      carry->resize(NP * F);
      du = carry->data();
    } else if (gw) {
      du = ws.get(3, (NP + 9) * F);  // and add_weight_grad's scratch after it
    }
    for (int n = 0; n < N; n += chunk) {
      const int c = std::min(chunk, N - n);
      winograd::grad_tiles(wg, c, gy.data() + n * out_floats, m, work);
      if (gx) winograd::backward_data(wg, c, m, u, gx->data() + n * in_floats, work, add_gx);
      if (gw) winograd::backward_weight(wg, c, x->data() + n * in_floats, m, beta, du, work);
      beta = 1.f;
    }
    if (gw && !carry && N) winograd::add_weight_grad(wg.m, du, g.O, g.C, gw->data(), du + NP * F);
  } else {
    float* col = ws.get(0, size_t(K) * P);
    float* scratch = ws.get(1, phase_scratch(g));
    const bool transposed = gw && N > 0 && (own_gemm_active() || K > kTransposedWeightGrad);
    // One sample's gy, P x O; at the end the call's gw, O x K, transposed out of gw_t.
    float* gy_t = transposed ? ws.get(2, size_t(std::max(P, K)) * g.O) : nullptr;
    float* gw_t = transposed ? ws.get(3, size_t(K) * g.O) : nullptr;  // the call's gwᵀ, K x O
    if (gx && !add_gx) gx->fill(0.f);  // col2im adds into it
    for (int n = 0; n < N; ++n) {
      if (gw) {
        im2col(g, x->data() + n * in_floats, col, scratch);
        if (transposed) {
          winograd::to_channel_last(gy.data() + n * out_floats, g.O, P, gy_t);
          gemm(false, false, K, g.O, P, 1.f, col, gy_t, n ? 1.f : 0.f, gw_t);
        } else {
          gemm(false, true, g.O, K, P, 1.f, gy.data() + n * out_floats, col, 1.f, gw->data());
        }
      }
      if (gx) {
        gemm(true, false, K, P, g.O, 1.f, w.data(), gy.data() + n * out_floats, 0.f, col);
        col2im(g, col, gx->data() + n * in_floats, scratch);
      }
    }
    if (transposed) {  // gw += (gw_t)ᵀ: transposed in 8 x 8 register blocks, then one contiguous add
      winograd::to_channel_last(gw_t, K, g.O, gy_t);
      float* d = gw->data();
      for (size_t i = 0, n = size_t(K) * g.O; i < n; ++i) d[i] += gy_t[i];
    }
  }
  if (gb)
    for (int o = 0; o < g.O; ++o) {
      double s = 0;
      for (int n = 0; n < N; ++n) s += sum(gy.data() + n * out_floats + size_t(o) * P, P);
      gb[o] += float(s);
    }
}

void Conv2d::forward(ForwardCall& c) {
  conv(*c.in[0], weight.value, has_bias ? bias.value.data() : nullptr, c.out, c.ws);
}

void Conv2d::backward(BackwardCall& c) {
  Tensor* gw = c.param_grads ? c.grads[0] : nullptr;
  float* gb = c.param_grads && has_bias ? c.grads[1]->data() : nullptr;
  conv_backward(c.in[0], c.g_out, weight.value, c.g_in[0], gw, gb, c.ws, gw && c.carry ? &c.ws.carry(c.node) : nullptr,
                c.add_to_g_in);
}

void Conv2d::end_backward(Workspace& ws, int node, const std::vector<Tensor*>& grads) {
  FloatBuffer& du = ws.carry(node);
  if (du.empty()) return;
  const size_t F = size_t(out_ch) * in_ch;
  // The carried tiles' size tells which transform made them (prepare() may have changed it since).
  const int m = du.size() == 36 * F ? 4 : 2;
  winograd::add_weight_grad(m, du.data(), out_ch, in_ch, grads[0]->data(), ws.get(3, 9 * F));
  du.clear();
}

std::vector<Param*> Conv2d::params() {
  if (has_bias) return {&weight, &bias};
  return {&weight};
}

double Conv2d::flops(const std::vector<Shape>& in) const {
  Shape o = out_shape(in);
  return 2.0 * double(o[1]) * o[2] * o[3] * in_ch * k * k;
}

// He (Kaiming) uniform: U(-b, b) with b = gain * sqrt(3 / fan_in); gain sqrt(2) suits ReLU nets.
// Biases start at zero.
static void kaiming_uniform(Rng& rng, Tensor& w, int fan_in, float gain) {
  float bound = gain * std::sqrt(3.f / float(fan_in));
  for (size_t i = 0; i < w.size(); ++i) w[i] = (2 * rng.uniform() - 1) * bound;
}

void Conv2d::init(Rng& rng) {
  int fan_in = in_ch * k * k;
  kaiming_uniform(rng, weight.value, fan_in, std::sqrt(2.f));  // He init for ReLU nets
  if (has_bias) bias.value.fill(0.f);
}

// ---- transposed convolution: the adjoint convolution's geometry, its kernels transposed --------

namespace {

// The convolution whose input-to-output map the transposed convolution is the adjoint of: its
// input is the transposed convolution's output (out_ch channels, H×W) and its output the
// transposed convolution's input (in_ch channels, h×w).
Geometry adjoint_geometry(const ConvTranspose2d& L, int h, int w, int H, int W) {
  return {L.out_ch, H, W, L.in_ch, L.k, L.stride, L.pad, h, w};
}

}  // namespace

void ConvTranspose2d::build(const std::vector<Shape>& in) {
  if (in[0].rank != 4) throw ShapeError("convt '" + name + "' expects [N,C,H,W] input, got " + in[0].str());
  if (out_pad >= stride) throw std::invalid_argument("convt '" + name + "': output padding must be below the stride");
  in_ch = in[0][1];
  to_int(int64_t(out_ch) * k * k, "convt '" + name + "' kernel taps (out channels x k x k)");
  to_int(int64_t(in[0][2]) * in[0][3], "convt '" + name + "' input positions (H x W)");
  weight.value = Tensor({in_ch, out_ch, k, k});
  weight.grad = Tensor({in_ch, out_ch, k, k});
  if (has_bias) {
    bias.value = Tensor({out_ch});
    bias.grad = Tensor({out_ch});
  }
}

Shape ConvTranspose2d::out_shape(const std::vector<Shape>& in) const {
  const Shape& x = in[0];
  if (x.rank != 4 || (in_ch && x[1] != in_ch))
    shape_error("convt '" + name + "' input", Shape{x[0], in_ch, x.rank > 2 ? x[2] : 0, x.rank > 3 ? x[3] : 0}, x);
  const int64_t oh = (int64_t(x[2]) - 1) * stride - 2 * int64_t(pad) + k + out_pad,
                ow = (int64_t(x[3]) - 1) * stride - 2 * int64_t(pad) + k + out_pad;
  if (oh < 1 || ow < 1) throw ShapeError("convt '" + name + "': padding leaves no output for input " + x.str());
  const int h = to_int(oh, "convt '" + name + "' output height"), w = to_int(ow, "convt '" + name + "' output width");
  // The col2im geometry and the bias loop count output positions in int (54003 x 54003 wrapped).
  to_int(int64_t(h) * w, "convt '" + name + "' output positions (height x width)");
  return {x[0], out_ch, h, w};
}

void ConvTranspose2d::forward(ForwardCall& c) {
  const Tensor& x = *c.in[0];
  const Geometry g = adjoint_geometry(*this, x.dim(2), x.dim(3), c.out.dim(2), c.out.dim(3));
  const int P = g.P(), K = g.K();
  const size_t in_floats = size_t(in_ch) * P, out_floats = size_t(out_ch) * g.H * g.W;
  float* col = c.ws.get(0, size_t(K) * P);
  float* scratch = c.ws.get(1, phase_scratch(g));
  for (int n = 0; n < x.batch(); ++n) {
    gemm(true, false, K, P, g.O, 1.f, weight.value.data(), x.data() + n * in_floats, 0.f, col);  // Wᵀ x
    float* y = c.out.data() + n * out_floats;
    std::fill(y, y + out_floats, 0.f);
    col2im(g, col, y, scratch);
    if (has_bias)
      for (int o = 0; o < out_ch; ++o)
        for (int i = 0; i < g.H * g.W; ++i) y[size_t(o) * g.H * g.W + i] += bias.value[o];
  }
}

void ConvTranspose2d::backward(BackwardCall& c) {
  const Tensor& x = *c.in[0];
  Tensor* gx = c.g_in[0];
  Tensor* gw = c.param_grads ? c.grads[0] : nullptr;
  float* gb = c.param_grads && has_bias ? c.grads[1]->data() : nullptr;
  if (!gx && !gw) return;
  const Geometry g = adjoint_geometry(*this, x.dim(2), x.dim(3), c.g_out.dim(2), c.g_out.dim(3));
  const int P = g.P(), K = g.K();
  const size_t in_floats = size_t(in_ch) * P, out_floats = size_t(out_ch) * g.H * g.W;
  float* col = c.ws.get(0, size_t(K) * P);
  float* scratch = c.ws.get(1, phase_scratch(g));
  for (int n = 0; n < x.batch(); ++n) {
    im2col(g, c.g_out.data() + n * out_floats, col, scratch);  // the convolution of the output gradient...
    if (gx) gemm(false, false, g.O, P, K, 1.f, weight.value.data(), col, 0.f, gx->data() + n * in_floats);
    if (gw) gemm(false, true, g.O, K, P, 1.f, x.data() + n * in_floats, col, 1.f, gw->data());  // ...and x ⊗ it
  }
  if (gb)
    for (int o = 0; o < out_ch; ++o) {
      double s = 0;
      for (int n = 0; n < x.batch(); ++n) s += sum(c.g_out.data() + n * out_floats + size_t(o) * g.H * g.W, g.H * g.W);
      gb[o] += float(s);
    }
}

std::vector<Param*> ConvTranspose2d::params() {
  if (has_bias) return {&weight, &bias};
  return {&weight};
}

double ConvTranspose2d::flops(const std::vector<Shape>& in) const {
  return 2.0 * double(in[0][2]) * in[0][3] * in_ch * out_ch * k * k;
}

// He uniform over the inputs that reach one output: in_ch · k² / s² of them on average.
void ConvTranspose2d::init(Rng& rng) {
  const int64_t fan_in = int64_t(in_ch) * k * k / (int64_t(stride) * stride);  // (s = 100000 overflowed s²)
  kaiming_uniform(rng, weight.value, int(std::max<int64_t>(1, fan_in)), std::sqrt(2.f));
  if (has_bias) bias.value.fill(0.f);
}

void Dense::build(const std::vector<Shape>& in) {
  if (in[0].rank != 2)
    throw ShapeError("dense '" + name + "' expects [N,F] input, got " + in[0].str() + " (add flatten before it)");
  in_features = in[0][1];
  weight.value = Tensor({out_features, in_features});
  weight.grad = Tensor({out_features, in_features});
  if (has_bias) {
    bias.value = Tensor({out_features});
    bias.grad = Tensor({out_features});
  }
}

Shape Dense::out_shape(const std::vector<Shape>& in) const {
  if (in[0].rank != 2 || (in_features && in[0][1] != in_features))
    shape_error("dense '" + name + "' input", Shape{in[0][0], in_features}, in[0]);
  return {in[0][0], out_features};
}

void Dense::dense(const Tensor& x, const Tensor& w, const float* b, Tensor& y) const {
  const int N = x.batch();
  if (b)
    for (int n = 0; n < N; ++n) std::memcpy(y.data() + size_t(n) * out_features, b, out_features * sizeof(float));
  gemm(false, true, N, out_features, in_features, 1.f, x.data(), w.data(), b ? 1.f : 0.f, y.data());
}

void Dense::dense_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx) const {
  gemm(false, false, gy.batch(), in_features, out_features, 1.f, gy.data(), w.data(), 0.f, gx.data());
}

void Dense::forward(ForwardCall& c) { dense(*c.in[0], weight.value, has_bias ? bias.value.data() : nullptr, c.out); }

void Dense::backward(BackwardCall& c) {
  const Tensor& gy = c.g_out;
  if (c.param_grads) {
    gemm(true, false, out_features, in_features, gy.batch(), 1.f, gy.data(), c.in[0]->data(), 1.f,
         c.grads[0]->data());
    if (has_bias) {
      float* gb = c.grads[1]->data();
      for (int n = 0; n < gy.batch(); ++n)
        for (int o = 0; o < out_features; ++o) gb[o] += gy[size_t(n) * out_features + o];
    }
  }
  if (c.g_in[0]) dense_backward_data(gy, weight.value, *c.g_in[0]);
}

std::vector<Param*> Dense::params() {
  if (has_bias) return {&weight, &bias};
  return {&weight};
}

double Dense::flops(const std::vector<Shape>&) const { return 2.0 * in_features * out_features; }

void Dense::init(Rng& rng) {
  kaiming_uniform(rng, weight.value, in_features, std::sqrt(2.f));
  if (has_bias) bias.value.fill(0.f);
}

}  // namespace gb
