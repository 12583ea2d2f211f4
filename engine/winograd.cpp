// Winograd F(2x2, 3x3); see winograd.h. The transforms cost O(C * tiles) per sample against the
// GEMMs' O(O * C * tiles), so they must run vectorized, not at scalar speed.
//
//   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
//         [0  1  1  0]        [ 1/2  1/2  1/2]          [0  1 -1 -1]
//         [0 -1  1  0]        [ 1/2 -1/2  1/2]
//         [0  1  0 -1]        [ 0    0    1 ]
#include "engine/winograd.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/blas.h"

namespace gb::winograd {

Geometry geometry(int C, int H, int W, int O, int p) {
  Geometry g{C, H, W, O, p, H + 2 * p - 2, W + 2 * p - 2, 0, 0};
  g.TH = (g.OH + 1) / 2;
  g.TW = (g.OW + 1) / 2;
  return g;
}

bool applies(int k, int stride, int C, int O) { return k == 3 && stride == 1 && C >= 16 && O >= 16; }

size_t work_floats(const Geometry& g, int n) {
  return 16 * size_t(g.C + g.O) * g.T() * n + size_t(g.PH()) * g.PW() + 8 * size_t(g.PW());
}

namespace {

// The transforms are loops over a row of tiles. Each is a small function whose pointers are
// __restrict parameters, so the compiler vectorizes it; the entry points below are compiled for
// AVX2 as well as the baseline and pick one at load time (GCC target_clones).
#define GB_INLINE [[gnu::always_inline]] inline

// Copies one input plane into the interior of the zero-padded plane (its border stays zero).
GB_INLINE void pad_plane(const Geometry& g, const float* plane, float* pad) {
  for (int h = 0; h < g.H; ++h) std::memcpy(pad + size_t(h + g.p) * g.PW() + g.p, plane + size_t(h) * g.W, g.W * sizeof(float));
}

// Rows of B^T d for the 4 padded rows r (stride PW) of one tile row: t[i][j], t rows of width n.
GB_INLINE void rows_bt(int n, const float* __restrict r, int PW, float* __restrict t) {
  for (int j = 0; j < n; ++j) {
    const float a = r[j], b = r[PW + j], c = r[2 * PW + j], d = r[3 * PW + j];
    t[j] = a - c;
    t[n + j] = b + c;
    t[2 * n + j] = c - b;
    t[3 * n + j] = b - d;
  }
}

// Columns (.) B of one row s of B^T d: o[k * stride + tw] for the 4 points k of each tile.
GB_INLINE void cols_b(int TW, const float* __restrict s, float* __restrict o, size_t stride) {
  for (int tw = 0; tw < TW; ++tw) {
    const float a = s[2 * tw], b = s[2 * tw + 1], c = s[2 * tw + 2], d = s[2 * tw + 3];
    o[tw] = a - c;
    o[stride + tw] = b + c;
    o[2 * stride + tw] = c - b;
    o[3 * stride + tw] = b - d;
  }
}

// The adjoint of cols_b: row s (width 2TW + 2) from the tiles' 4 points; neighbouring tiles
// overlap by two columns, so the second half of each tile is added in a separate pass.
GB_INLINE void cols_b_adjoint(int TW, const float* __restrict o, size_t stride, float* __restrict s) {
  for (int tw = 0; tw < TW; ++tw) {
    s[2 * tw] = o[tw];
    s[2 * tw + 1] = o[stride + tw] - o[2 * stride + tw] + o[3 * stride + tw];
  }
  s[2 * TW] = s[2 * TW + 1] = 0.f;
  for (int tw = 0; tw < TW; ++tw) {
    s[2 * tw + 2] += o[stride + tw] + o[2 * stride + tw] - o[tw];
    s[2 * tw + 3] -= o[3 * stride + tw];
  }
}

// The adjoint of rows_bt: adds B t into the 4 padded rows r.
GB_INLINE void rows_bt_adjoint(int n, const float* __restrict t, float* __restrict r, int PW) {
  for (int j = 0; j < n; ++j) {
    const float a = t[j], b = t[n + j], c = t[2 * n + j], d = t[3 * n + j];
    r[j] += a;
    r[PW + j] += b - c + d;
    r[2 * PW + j] += b + c - a;
    r[3 * PW + j] -= d;
  }
}

// A^T m A for a row of tiles: m[k * xs + tw] are the 16 points, y0/y1 the two output rows
// (width 2TW), plus the bias.
GB_INLINE void tiles_out(int TW, const float* __restrict m, size_t xs, float bias, float* __restrict y0,
                         float* __restrict y1) {
  for (int tw = 0; tw < TW; ++tw) {
    float s0[4], s1[4];  // A^T m: row 0 = m0 + m1 + m2, row 1 = m1 - m2 - m3 (rows of the 4x4 m)
    for (int j = 0; j < 4; ++j) {
      const float a = m[j * xs + tw], b = m[(4 + j) * xs + tw], c = m[(8 + j) * xs + tw], d = m[(12 + j) * xs + tw];
      s0[j] = a + b + c;
      s1[j] = b - c - d;
    }
    y0[2 * tw] = s0[0] + s0[1] + s0[2] + bias;  // then the same on columns
    y0[2 * tw + 1] = s0[1] - s0[2] - s0[3] + bias;
    y1[2 * tw] = s1[0] + s1[1] + s1[2] + bias;
    y1[2 * tw + 1] = s1[1] - s1[2] - s1[3] + bias;
  }
}

// The adjoint of tiles_out: the 16 points A [a b; c d] A^T of each tile from the output rows g0/g1.
// A = [1 0; 1 1; 1 -1; 0 -1], so row R of A g is (a,b), (a+c,b+d), (a-c,b-d) or (-c,-d), and each
// row (x, y) becomes the points (x, x+y, x-y, -y). One loop per row keeps each loop vectorizable.
template <int R>
GB_INLINE void tiles_out_adjoint_row(int TW, const float* __restrict g0, const float* __restrict g1,
                                     float* __restrict m, size_t xs) {
  for (int tw = 0; tw < TW; ++tw) {
    const float a = g0[2 * tw], b = g0[2 * tw + 1], c = g1[2 * tw], d = g1[2 * tw + 1];
    float x, y;
    if constexpr (R == 0) x = a, y = b;
    if constexpr (R == 1) x = a + c, y = b + d;
    if constexpr (R == 2) x = a - c, y = b - d;
    if constexpr (R == 3) x = -c, y = -d;
    m[tw] = x, m[xs + tw] = x + y, m[2 * xs + tw] = x - y, m[3 * xs + tw] = -y;
  }
}

GB_INLINE void tiles_out_adjoint(int TW, const float* g0, const float* g1, float* m, size_t xs) {
  tiles_out_adjoint_row<0>(TW, g0, g1, m, xs);
  tiles_out_adjoint_row<1>(TW, g0, g1, m + 4 * xs, xs);
  tiles_out_adjoint_row<2>(TW, g0, g1, m + 8 * xs, xs);
  tiles_out_adjoint_row<3>(TW, g0, g1, m + 12 * xs, xs);
}

// v[xi][c][t] = (B^T d B)[xi] for every tile t of every channel c of one sample; a channel's
// row in v is ld floats long (several samples can share v, side by side).
GB_INLINE void transform_input(const Geometry& g, const float* x, float* v, size_t ld, float* pad, float* tmp) {
  const size_t xs = g.C * ld;
  const int PW = g.PW();
  std::fill(pad, pad + size_t(g.PH()) * PW, 0.f);
  for (int c = 0; c < g.C; ++c) {
    pad_plane(g, x + size_t(c) * g.H * g.W, pad);
    for (int th = 0; th < g.TH; ++th) {
      rows_bt(PW, pad + size_t(2 * th) * PW, PW, tmp);
      for (int i = 0; i < 4; ++i) cols_b(g.TW, tmp + i * PW, v + 4 * i * xs + c * ld + th * g.TW, xs);
    }
  }
}

// m[xi][o][t] = (A gy A^T)[xi] for every tile of every output channel of one sample; rows ld long.
GB_INLINE void transform_output_grad(const Geometry& g, const float* gy, float* m, size_t ld, float* tmp) {
  const size_t xs = g.O * ld;
  float* g0 = tmp;
  float* g1 = tmp + 2 * g.TW;
  for (int o = 0; o < g.O; ++o) {
    const float* go = gy + size_t(o) * g.OH * g.OW;
    for (int th = 0; th < g.TH; ++th) {
      // The tile's two output rows, zero past the output's edge.
      std::memcpy(g0, go + size_t(2 * th) * g.OW, g.OW * sizeof(float));
      if (2 * th + 1 < g.OH)
        std::memcpy(g1, go + size_t(2 * th + 1) * g.OW, g.OW * sizeof(float));
      else
        std::fill(g1, g1 + g.OW, 0.f);
      if (g.OW & 1) g0[g.OW] = g1[g.OW] = 0.f;
      tiles_out_adjoint(g.TW, g0, g1, m + o * ld + th * g.TW, xs);
    }
  }
}

// Row I of (G g) G^T for every filter: k holds the 9 taps as [9][F], u gets points 4I..4I+3.
// Row I of G g is g's row 0, (row0 + row1 + row2) / 2, (row0 - row1 + row2) / 2 or row 2.
template <int I>
GB_INLINE void weight_row(size_t F, const float* __restrict k, float* __restrict u) {
  for (size_t f = 0; f < F; ++f) {
    float r[3];
    for (int j = 0; j < 3; ++j) {
      const float a = k[j * F + f], b = k[(3 + j) * F + f], c = k[(6 + j) * F + f];
      if constexpr (I == 0) r[j] = a;
      if constexpr (I == 1) r[j] = 0.5f * (a + b + c);
      if constexpr (I == 2) r[j] = 0.5f * (a - b + c);
      if constexpr (I == 3) r[j] = c;
    }
    u[(4 * I) * F + f] = r[0];
    u[(4 * I + 1) * F + f] = 0.5f * (r[0] + r[1] + r[2]);
    u[(4 * I + 2) * F + f] = 0.5f * (r[0] - r[1] + r[2]);
    u[(4 * I + 3) * F + f] = r[2];
  }
}

// Row R of G^T du G for every filter (the adjoint of weight_row): du is [16][F], k gets taps
// 3R..3R+2 of [9][F]. Row R of G^T du is du's row 0 + (row1 + row2) / 2, (row1 - row2) / 2 or
// row 3 + (row1 + row2) / 2; its columns go through G the same way.
template <int R>
GB_INLINE void weight_grad_row(size_t F, const float* __restrict du, float* __restrict k) {
  for (size_t f = 0; f < F; ++f) {
    float t[4];
    for (int j = 0; j < 4; ++j) {
      const float a = du[j * F + f], b = du[(4 + j) * F + f], c = du[(8 + j) * F + f], d = du[(12 + j) * F + f];
      if constexpr (R == 0) t[j] = a + 0.5f * (b + c);
      if constexpr (R == 1) t[j] = 0.5f * (b - c);
      if constexpr (R == 2) t[j] = d + 0.5f * (b + c);
    }
    k[(3 * R) * F + f] = t[0] + 0.5f * (t[1] + t[2]);
    k[(3 * R + 1) * F + f] = 0.5f * (t[1] - t[2]);
    k[(3 * R + 2) * F + f] = t[3] + 0.5f * (t[1] + t[2]);
  }
}

}  // namespace

#define GB_CLONES __attribute__((target_clones("avx2", "default")))

// Both weight transforms go through a [9][O*C] copy of the taps, so that their arithmetic runs
// over contiguous filters.
GB_CLONES void transform_weights(const float* w, int O, int C, float* u) {
  const size_t F = size_t(O) * C;
  std::vector<float> taps(9 * F);
  for (size_t f = 0; f < F; ++f)
    for (int e = 0; e < 9; ++e) taps[e * F + f] = w[9 * f + e];
  weight_row<0>(F, taps.data(), u);
  weight_row<1>(F, taps.data(), u);
  weight_row<2>(F, taps.data(), u);
  weight_row<3>(F, taps.data(), u);
}

GB_CLONES void add_weight_grad(const float* du, int O, int C, float* gw, float* work) {
  const size_t F = size_t(O) * C;
  weight_grad_row<0>(F, du, work);
  weight_grad_row<1>(F, du, work);
  weight_grad_row<2>(F, du, work);
  for (size_t f = 0; f < F; ++f)
    for (int e = 0; e < 9; ++e) gw[9 * f + e] += work[e * F + f];
}

GB_CLONES void forward(const Geometry& g, const float* x, const float* u, const float* b, float* y, float* work) {
  const size_t T = g.T(), CT = g.C * T, OT = g.O * T;
  float* v = work;
  float* m = v + 16 * CT;
  float* pad = m + 16 * OT;
  float* tmp = pad + size_t(g.PH()) * g.PW();
  transform_input(g, x, v, T, pad, tmp);
  for (int xi = 0; xi < 16; ++xi)
    gemm(false, false, g.O, int(T), g.C, 1.f, u + xi * size_t(g.O) * g.C, v + xi * CT, 0.f, m + xi * OT);
  float* y0 = tmp;
  float* y1 = tmp + 2 * g.TW;
  for (int o = 0; o < g.O; ++o) {
    float* yo = y + size_t(o) * g.OH * g.OW;
    for (int th = 0; th < g.TH; ++th) {
      tiles_out(g.TW, m + o * T + th * g.TW, OT, b ? b[o] : 0.f, y0, y1);
      std::memcpy(yo + size_t(2 * th) * g.OW, y0, g.OW * sizeof(float));
      if (2 * th + 1 < g.OH) std::memcpy(yo + size_t(2 * th + 1) * g.OW, y1, g.OW * sizeof(float));
    }
  }
}

GB_CLONES void backward_data(const Geometry& g, const float* gy, const float* u, float* gx, float* work) {
  const size_t T = g.T(), CT = g.C * T, OT = g.O * T;
  const int PW = g.PW();
  float* m = work;
  float* v = m + 16 * OT;
  float* pad = v + 16 * CT;
  float* tmp = pad + size_t(g.PH()) * PW;
  transform_output_grad(g, gy, m, T, tmp);
  for (int xi = 0; xi < 16; ++xi)
    gemm(true, false, g.C, int(T), g.O, 1.f, u + xi * size_t(g.O) * g.C, m + xi * OT, 0.f, v + xi * CT);
  for (int c = 0; c < g.C; ++c) {
    std::fill(pad, pad + size_t(g.PH()) * PW, 0.f);
    for (int th = 0; th < g.TH; ++th) {
      for (int i = 0; i < 4; ++i) cols_b_adjoint(g.TW, v + 4 * i * CT + c * T + th * g.TW, CT, tmp + i * PW);
      rows_bt_adjoint(PW, tmp, pad + size_t(2 * th) * PW, PW);
    }
    float* gc = gx + size_t(c) * g.H * g.W;
    for (int h = 0; h < g.H; ++h)
      std::memcpy(gc + size_t(h) * g.W, pad + size_t(h + g.p) * PW + g.p, g.W * sizeof(float));
  }
}

GB_CLONES void backward_weight(const Geometry& g, int n, const float* x, const float* gy, float beta, float* du,
                               float* work) {
  const size_t T = g.T(), nT = n * T;
  float* v = work;
  float* m = v + 16 * g.C * nT;
  float* pad = m + 16 * g.O * nT;
  float* tmp = pad + size_t(g.PH()) * g.PW();
  for (int s = 0; s < n; ++s) {
    transform_input(g, x + size_t(s) * g.C * g.H * g.W, v + s * T, nT, pad, tmp);
    transform_output_grad(g, gy + size_t(s) * g.O * g.OH * g.OW, m + s * T, nT, tmp);
  }
  for (int xi = 0; xi < 16; ++xi)
    gemm(false, true, g.O, g.C, int(nT), 1.f, m + xi * g.O * nT, v + xi * g.C * nT, beta, du + xi * size_t(g.O) * g.C);
}

}  // namespace gb::winograd
