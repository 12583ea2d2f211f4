// Winograd F(2x2, 3x3) and F(4x4, 3x3); see winograd.h. The transforms cost O(C * tiles) per
// sample against the GEMMs' O(O * C * tiles), so they must run vectorized, not at scalar speed.
//
// F(2x2, 3x3), written out by hand below:
//   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
//         [0  1  1  0]        [ 1/2  1/2  1/2]          [0  1 -1 -1]
//         [0 -1  1  0]        [ 1/2 -1/2  1/2]
//         [0  1  0 -1]        [ 0    0    1 ]
// F(4x4, 3x3) (interpolation points 0, ±1, ±2, ∞), through one "M X M^T" loop (separable) over
// the matrices' one-dimensional maps, written out with their shared sums (OneD):
//   B^T = [4  0 -5  0  1  0]    G = [ 1/4    0     0  ]    A^T = [1  1  1  1  1  0]
//         [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]          [0  1 -1  2 -2  0]
//         [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6 ]          [0  1  1  4  4  0]
//         [0 -2 -1  2  1  0]        [ 1/24  1/12  1/6 ]          [0  1 -1  8 -8  1]
//         [0  2 -1 -2  1  0]        [ 1/24 -1/12  1/6 ]
//         [0  4  0 -5  0  1]        [ 0     0     1  ]
#include "engine/winograd.h"

#include <algorithm>
#include <cstring>

#include "engine/blas.h"
#include "engine/simd.h"

namespace gb::winograd {

// Floats from one tile's points to the next tile's, for n channels: padded by 16 so that the
// GEMMs' rows (one per tile) are not a power of two apart, which would map them all onto the
// same cache sets.
static size_t tile_ld(int points, int n) { return size_t(points) * n + 16; }
static size_t tile_ld(const Geometry& g, int n) { return tile_ld(g.points(), n); }

Geometry geometry(int C, int H, int W, int O, int p, int m) {
  Geometry g{C, H, W, O, p, m, H + 2 * p - 2, W + 2 * p - 2, 0, 0};
  g.TH = (g.OH + m - 1) / m;
  g.TW = (g.OW + m - 1) / m;
  return g;
}

bool applies(int k, int stride, int C, int O) { return k == 3 && stride == 1 && C >= 16 && O >= 16; }

int tile(bool training, int OH, int OW, int C, int O) {
  if (!training || OH < 8 || OW < 8) return 2;
  const double tiles = double((OH + 3) / 4) * ((OW + 3) / 4);  // of 4x4
  if (tiles < 16 && 36.0 * O * C * sizeof(float) > (1 << 20)) return 2;
  return 16 * tiles <= 1.15 * OH * OW ? 4 : 2;
}

size_t work_floats(const Geometry& g, int n) {
  // The input tiles' points and the output tiles for n samples, and one channel-last plane
  // (input or output, padded).
  return tile_ld(g, g.C) * g.T() * n + grad_tile_floats(g, n) +
         std::max(size_t(g.PH()) * g.PW() * g.C, size_t(g.m) * g.m * g.T() * g.O);
}

int samples_per_gemm(const Geometry& g) { return g.T() >= 16 ? 1 : (32 + g.T() - 1) / g.T(); }

size_t grad_tile_floats(const Geometry& g, int n) { return tile_ld(g, g.O) * g.T() * n; }

namespace {

// The transforms work on channel-last copies of the planes ([h][w][c]), so that every loop runs
// over the channels: contiguous, as long as C or O, and vectorized by the compiler (a loop over
// the tiles of a row would be only a few iterations long). The entry points below are compiled
// for AVX-512 and AVX2 as well as the baseline and pick one at load time (GCC target_clones).

// Conversions between planar arrays (NCHW: channel c's P positions contiguous) and channel-last
// ones (position p's channels contiguous from at(p)) go in 8x8 blocks, transposed in registers
// with GCC vector extensions, which each clone compiles for its own target: a scalar strided
// copy costs as much as a tile transform.
typedef float v8 __attribute__((vector_size(32)));

// out[k][i] = in[i][k] (or += with Add) for eight rows of eight floats (unpack, then 2x2 and 4x4
// blocks).
template <bool Add = false>
GB_INLINE void transpose8(const float* const in[8], float* const out[8]) {
  v8 r[8], t[8], q[8];
  for (int i = 0; i < 8; ++i) load_vec(r[i], in[i]);
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4)
    for (int j = 0; j < 2; ++j) {
      q[i + 2 * j] = __builtin_shufflevector(t[i + j], t[i + j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      q[i + 2 * j + 1] = __builtin_shufflevector(t[i + j], t[i + j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  for (int k = 0; k < 4; ++k) {
    v8 lo = __builtin_shufflevector(q[k], q[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    v8 hi = __builtin_shufflevector(q[k], q[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    if (Add) {
      v8 a, b;
      load_vec(a, out[k]);
      load_vec(b, out[k + 4]);
      lo += a;
      hi += b;
    }
    store_vec(out[k], lo);
    store_vec(out[k + 4], hi);
  }
}

template <bool Add>
GB_INLINE void put(float& d, float v) { d = Add ? d + v : v; }

// Where position p of an h x w plane starts in a channel-last buffer with rows rs floats apart,
// n channels per position, the plane's (0, 0) at `origin`.
struct ChannelLast {
  int w, n;
  size_t rs, origin;
};

// planar[c * P + p] <-> channel_last[at(p) + c] for C channels and P positions, in the direction
// ToChannelLast says; with Add, added to dst. Blocks of eight channels, each along all positions
// (streaming through the planes); the positions' offsets step along a row instead of dividing.
template <bool ToChannelLast, bool Add = false>
GB_INLINE void convert(const float* src, float* dst, int C, int P, const ChannelLast& at) {
  auto planar = [&](int c, int p) { return size_t(c) * P + p; };
  struct Walk {  // at(p) for p = 0, 1, 2, ...
    const ChannelLast& at;
    size_t row_start, offset;
    int col = 0;
    size_t next() {
      const size_t o = offset;
      if (++col == at.w) col = 0, row_start += at.rs, offset = row_start;
      else offset += at.n;
      return o;
    }
  };
  int c0 = 0;
  for (; c0 + 8 <= C; c0 += 8) {
    Walk walk{at, at.origin, at.origin};
    int p0 = 0;
    for (; p0 + 8 <= P; p0 += 8) {
      const float* in[8];
      float* out[8];
      for (int k = 0; k < 8; ++k) {
        const size_t pos = walk.next();
        in[k] = ToChannelLast ? src + planar(c0 + k, p0) : src + pos + c0;
        out[k] = ToChannelLast ? dst + pos + c0 : dst + planar(c0 + k, p0);
      }
      transpose8<Add>(in, out);
    }
    for (; p0 < P; ++p0) {
      const size_t pos = walk.next();
      for (int c = c0; c < c0 + 8; ++c)
        put<Add>(ToChannelLast ? dst[pos + c] : dst[planar(c, p0)], ToChannelLast ? src[planar(c, p0)] : src[pos + c]);
    }
  }
  if (c0 == C) return;
  Walk walk{at, at.origin, at.origin};
  for (int p = 0; p < P; ++p) {
    const size_t pos = walk.next();
    for (int c = c0; c < C; ++c)
      put<Add>(ToChannelLast ? dst[pos + c] : dst[planar(c, p)], ToChannelLast ? src[planar(c, p)] : src[pos + c]);
  }
}

// Zeroes a [rows][cols][C] channel-last buffer outside rows [r0, r1) x columns [c0, c1), the
// part that a conversion then fills (zeroing it all first would write most of it twice).
GB_INLINE void zero_border(float* X, int rows, int cols, int C, int r0, int r1, int c0, int c1) {
  const size_t rs = size_t(cols) * C;
  std::fill(X, X + r0 * rs, 0.f);
  for (int r = r0; r < r1; ++r) {
    std::fill(X + r * rs, X + r * rs + size_t(c0) * C, 0.f);
    std::fill(X + r * rs + size_t(c1) * C, X + (r + 1) * rs, 0.f);
  }
  std::fill(X + r1 * rs, X + rows * rs, 0.f);
}

// X[h + p][w + p][c] = x[c][h][w] in a zero-padded [PH][PW][C] buffer.
GB_INLINE void to_padded_hwc(const Geometry& g, const float* x, float* X) {
  const size_t rs = size_t(g.PW()) * g.C;
  zero_border(X, g.PH(), g.PW(), g.C, g.p, g.p + g.H, g.p, g.p + g.W);
  convert<true>(x, X, g.C, g.H * g.W, ChannelLast{g.W, g.C, rs, g.p * rs + size_t(g.p) * g.C});
}

// x[c][h][w] = X[h + p][w + p][c] (or += with Add): the interior of a padded channel-last buffer.
template <bool Add>
GB_INLINE void from_padded_hwc(const Geometry& g, const float* X, float* x) {
  const size_t rs = size_t(g.PW()) * g.C;
  convert<false, Add>(X, x, g.C, g.H * g.W, ChannelLast{g.W, g.C, rs, g.p * rs + size_t(g.p) * g.C});
}

// One tile: v[xi * n + c] = (B^T d B)[xi] for the 4x4 patch d at d0 (rows rs apart, columns n
// apart, n channels).
GB_INLINE void input_tile(int n, const float* __restrict d0, size_t rs, float* __restrict v) {
  // The points are blocks of n floats: stores to different points never overlap.
GB_IVDEP
  for (int c = 0; c < n; ++c) {
    float r[4][4];  // B^T d
    for (int l = 0; l < 4; ++l) {
      const float a = d0[l * n + c], b = d0[rs + l * n + c], e = d0[2 * rs + l * n + c], f = d0[3 * rs + l * n + c];
      r[0][l] = a - e;
      r[1][l] = b + e;
      r[2][l] = e - b;
      r[3][l] = b - f;
    }
    for (int i = 0; i < 4; ++i) {  // (B^T d) B
      v[(4 * i) * n + c] = r[i][0] - r[i][2];
      v[(4 * i + 1) * n + c] = r[i][1] + r[i][2];
      v[(4 * i + 2) * n + c] = r[i][2] - r[i][1];
      v[(4 * i + 3) * n + c] = r[i][1] - r[i][3];
    }
  }
}

// The adjoint of input_tile: adds B v B^T into the patch at d0.
GB_INLINE void input_tile_adjoint(int n, const float* __restrict v, float* __restrict d0, size_t rs) {
  // The points are blocks of n floats: stores to different points never overlap.
GB_IVDEP
  for (int c = 0; c < n; ++c) {
    float r[4][4];  // the adjoint of the column step
    for (int i = 0; i < 4; ++i) {
      const float a = v[(4 * i) * n + c], b = v[(4 * i + 1) * n + c], e = v[(4 * i + 2) * n + c],
                  f = v[(4 * i + 3) * n + c];
      r[i][0] = a;
      r[i][1] = b - e + f;
      r[i][2] = b + e - a;
      r[i][3] = -f;
    }
    for (int l = 0; l < 4; ++l) {  // then of the row step
      d0[l * n + c] += r[0][l];
      d0[rs + l * n + c] += r[1][l] - r[2][l] + r[3][l];
      d0[2 * rs + l * n + c] += r[1][l] + r[2][l] - r[0][l];
      d0[3 * rs + l * n + c] -= r[3][l];
    }
  }
}

// One tile: the 2x2 outputs A^T m A of every channel, m[xi * n + o], into y0 (rows rs apart,
// columns n apart).
GB_INLINE void output_tile(int n, const float* __restrict m, float* __restrict y0, size_t rs) {
  // The points are blocks of n floats: stores to different points never overlap.
GB_IVDEP
  for (int o = 0; o < n; ++o) {
    float s0[4], s1[4];  // A^T m
    for (int j = 0; j < 4; ++j) {
      const float a = m[j * n + o], b = m[(4 + j) * n + o], c = m[(8 + j) * n + o], d = m[(12 + j) * n + o];
      s0[j] = a + b + c;
      s1[j] = b - c - d;
    }
    y0[o] = s0[0] + s0[1] + s0[2];
    y0[n + o] = s0[1] - s0[2] - s0[3];
    y0[rs + o] = s1[0] + s1[1] + s1[2];
    y0[rs + n + o] = s1[1] - s1[2] - s1[3];
  }
}

// The adjoint of output_tile: m = A g A^T from the 2x2 output gradients [a b; c d] at g0. With
// A = [1 0; 1 1; 1 -1; 0 -1] the rows of A g are (a,b), (a+c,b+d), (a-c,b-d), (-c,-d), and each
// row (x, y) becomes (x, x+y, x-y, -y).
GB_INLINE void output_tile_adjoint(int n, const float* __restrict g0, size_t rs, float* __restrict m) {
  // The points are blocks of n floats: stores to different points never overlap.
GB_IVDEP
  for (int o = 0; o < n; ++o) {
    const float a = g0[o], b = g0[n + o], c = g0[rs + o], d = g0[rs + n + o];
    const float r[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}};
    for (int i = 0; i < 4; ++i) {
      m[(4 * i) * n + o] = r[i][0];
      m[(4 * i + 1) * n + o] = r[i][0] + r[i][1];
      m[(4 * i + 2) * n + o] = r[i][0] - r[i][1];
      m[(4 * i + 3) * n + o] = -r[i][1];
    }
  }
}

// ---- F(4x4, 3x3): the matrices of the header comment, one dimension at a time ----------------

// Tags for B^T, G and A^T, and for their transposes (the adjoints' matrices).
struct BT4 {};
struct G4 {};
struct AT4 {};
template <class Mt>
struct Transposed {};

// y = M x for the K values of x, with the sums that several outputs share computed once (d4 - 4 d2
// feeds two outputs of B^T d, and so on): a third fewer operations than the matrix's non-zero
// entries, which the compiler would not find itself, as it must not reassociate float sums.
template <class Mt>
struct OneD;
template <>
struct OneD<BT4> {
  static constexpr int K = 6, R = 6;
  GB_INLINE static void apply(const float* d, float* t) {
    const float a = d[4] - 4 * d[2], b = d[3] - 4 * d[1], e = d[4] - d[2], f = 2 * (d[3] - d[1]);
    t[0] = 4 * d[0] - 5 * d[2] + d[4];
    t[1] = a + b;
    t[2] = a - b;
    t[3] = e + f;
    t[4] = e - f;
    t[5] = 4 * d[1] - 5 * d[3] + d[5];
  }
};
template <>
struct OneD<Transposed<BT4>> {  // B t
  static constexpr int K = 6, R = 6;
  GB_INLINE static void apply(const float* t, float* d) {
    const float p = t[1] + t[2], q = t[2] - t[1], r = t[3] + t[4], s = t[4] - t[3];
    d[0] = 4 * t[0];
    d[1] = 4 * q + 2 * s + 4 * t[5];
    d[2] = -5 * t[0] - 4 * p - r;
    d[3] = -q - 2 * s - 5 * t[5];
    d[4] = t[0] + p + r;
    d[5] = t[5];
  }
};
template <>
struct OneD<AT4> {
  static constexpr int K = 6, R = 4;
  GB_INLINE static void apply(const float* m, float* o) {
    const float a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    o[0] = m[0] + a + c;
    o[1] = b + 2 * d;
    o[2] = a + 4 * c;
    o[3] = b + 8 * d + m[5];
  }
};
template <>
struct OneD<Transposed<AT4>> {  // A o
  static constexpr int K = 4, R = 6;
  GB_INLINE static void apply(const float* o, float* m) {
    const float e = o[0] + o[2], f = o[1] + o[3], g = o[0] + 4 * o[2], h = 2 * o[1] + 8 * o[3];
    m[0] = o[0];
    m[1] = e + f;
    m[2] = e - f;
    m[3] = g + h;
    m[4] = g - h;
    m[5] = o[3];
  }
};

template <>
struct OneD<G4> {
  static constexpr int K = 3, R = 6;
  GB_INLINE static void apply(const float* g, float* u) {
    const float p = g[0] + g[2], q = g[0] * (1.f / 24) + g[2] * (1.f / 6), r = g[1] * (1.f / 12);
    u[0] = g[0] * (1.f / 4);
    u[1] = -(p + g[1]) * (1.f / 6);
    u[2] = -(p - g[1]) * (1.f / 6);
    u[3] = q + r;
    u[4] = q - r;
    u[5] = g[2];
  }
};
template <>
struct OneD<Transposed<G4>> {  // G^T u
  static constexpr int K = 6, R = 3;
  GB_INLINE static void apply(const float* u, float* g) {
    const float s12 = u[1] + u[2], d12 = u[2] - u[1], s34 = u[3] + u[4], d34 = u[3] - u[4];
    g[0] = u[0] * (1.f / 4) - s12 * (1.f / 6) + s34 * (1.f / 24);
    g[1] = d12 * (1.f / 6) + d34 * (1.f / 12);
    g[2] = (s34 - s12) * (1.f / 6) + u[5];
  }
};

// out(i, j) = Σ_k Σ_l M(i, k) in(k, l) M(j, l) for n channels, with in(k, l) at
// in[k * irs + l * ics + c] and out(i, j) at out[i * ors + j * ocs + c], stored or (Add) added:
// OneD<M> down the columns of in, then along the rows of the result.
template <class Mt, bool Add>
GB_INLINE void separable(int n, const float* __restrict in, size_t irs, size_t ics, float* __restrict out, size_t ors,
                         size_t ocs) {
  using T = OneD<Mt>;
  constexpr int R = T::R, K = T::K;
  // The points are blocks of n floats: stores to different points never overlap.
GB_IVDEP
  for (int c = 0; c < n; ++c) {
    float x[R][K];  // M in
#pragma GCC unroll 8
    for (int l = 0; l < K; ++l) {
      float col[K], res[R];
#pragma GCC unroll 8
      for (int k = 0; k < K; ++k) col[k] = in[k * irs + l * ics + c];
      T::apply(col, res);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) x[i][l] = res[i];
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      float res[R];
      T::apply(x[i], res);
#pragma GCC unroll 8
      for (int j = 0; j < R; ++j) {
        if (Add)
          out[i * ors + j * ocs + c] += res[j];
        else
          out[i * ors + j * ocs + c] = res[j];
      }
    }
  }
}

// The four tile transforms of each tile size, as input_tile ... output_tile_adjoint above.
template <int M>
struct Tile;
template <>
struct Tile<2> {
  GB_INLINE static void input(int n, const float* d0, size_t rs, float* v) { input_tile(n, d0, rs, v); }
  GB_INLINE static void input_adjoint(int n, const float* v, float* d0, size_t rs) { input_tile_adjoint(n, v, d0, rs); }
  GB_INLINE static void output(int n, const float* m, float* y0, size_t rs) { output_tile(n, m, y0, rs); }
  GB_INLINE static void output_adjoint(int n, const float* g0, size_t rs, float* m) { output_tile_adjoint(n, g0, rs, m); }
};
template <>
struct Tile<4> {
  GB_INLINE static void input(int n, const float* d0, size_t rs, float* v) {
    separable<BT4, false>(n, d0, rs, n, v, 6 * size_t(n), n);
  }
  GB_INLINE static void input_adjoint(int n, const float* v, float* d0, size_t rs) {
    separable<Transposed<BT4>, true>(n, v, 6 * size_t(n), n, d0, rs, n);
  }
  GB_INLINE static void output(int n, const float* m, float* y0, size_t rs) {
    separable<AT4, false>(n, m, 6 * size_t(n), n, y0, rs, n);
  }
  GB_INLINE static void output_adjoint(int n, const float* g0, size_t rs, float* m) {
    separable<Transposed<AT4>, false>(n, g0, rs, n, m, 6 * size_t(n), n);
  }
};

// The points of every tile of one sample into v, channel-last: v[t][xi][c]. X is scratch for the
// padded channel-last input.
template <int M>
GB_INLINE void transform_input(const Geometry& g, const float* x, float* v, float* X) {
  to_padded_hwc(g, x, X);
  const size_t rs = size_t(g.PW()) * g.C;
  for (int th = 0; th < g.TH; ++th)
    for (int tw = 0; tw < g.TW; ++tw)
      Tile<M>::input(g.C, X + M * th * rs + size_t(M * tw) * g.C, rs, v + size_t(th * g.TW + tw) * tile_ld(g, g.C));
}

// m[t][xi][o] = A gy A^T for the tiles of one sample. G is scratch: the output gradient
// channel-last over whole tiles ([M TH][M TW][O], zero past the output's edge).
template <int M>
GB_INLINE void transform_output_grad(const Geometry& g, const float* gy, float* m, float* G) {
  const int O = g.O, WM = M * g.TW;
  const size_t rs = size_t(WM) * O;
  zero_border(G, M * g.TH, WM, O, 0, g.OH, 0, g.OW);
  convert<true>(gy, G, O, g.OH * g.OW, ChannelLast{g.OW, O, rs, 0});
  for (int th = 0; th < g.TH; ++th)
    for (int tw = 0; tw < g.TW; ++tw)
      Tile<M>::output_adjoint(O, G + M * th * rs + size_t(M * tw) * O, rs,
                              m + size_t(th * g.TW + tw) * tile_ld(g, O));
}

// Row I of (G g) G^T for every filter: k holds the 9 taps as [9][F], u gets points 4I..4I+3.
// Row I of G g is g's row 0, (row0 + row1 + row2) / 2, (row0 - row1 + row2) / 2 or row 2.
template <int I>
GB_INLINE void weight_row(size_t F, size_t f0, size_t f1, const float* __restrict k, float* __restrict u) {
  for (size_t f = f0; f < f1; ++f) {
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

// Both weight transforms go through a [9][F] copy of the taps, so that their arithmetic runs
// over contiguous filters. The filters are taken in (o, c) order, or (c, o) for the transposed
// layout.
GB_CLONES void transform_weights(int m, const float* w, int O, int C, bool transposed, float* u, float* taps,
                                 size_t f0, size_t f1) {
  const size_t F = size_t(O) * C;
  // Eight filters at a time through a small block: the nine rows of taps are a power of two
  // apart for common channel counts, and single-float stores to them, interleaved with the loads,
  // stall on false store-to-load dependences (4K aliasing).
  size_t c = f0 / O, o = f0 % O;  // f = c * O + o when transposed
  for (size_t f = f0; f < f1; f += 8) {
    const size_t n = std::min<size_t>(8, f1 - f);
    float blk[9][8];
    for (size_t j = 0; j < n; ++j) {
      const float* src = w + 9 * (transposed ? o * C + c : f + j);
      for (int e = 0; e < 9; ++e) blk[e][j] = src[e];
      if (++o == size_t(O)) o = 0, ++c;
    }
    for (int e = 0; e < 9; ++e)
      if (n == 8)
        std::memcpy(taps + e * F + f, blk[e], sizeof blk[e]);
      else
        std::memcpy(taps + e * F + f, blk[e], n * sizeof(float));
  }
  if (m == 4) {  // u(i, j) = (G g G^T)(i, j): the taps are 3x3 "channels" F apart
    separable<G4, false>(int(f1 - f0), taps + f0, 3 * F, F, u + f0, 6 * F, F);
    return;
  }
  weight_row<0>(F, f0, f1, taps, u);
  weight_row<1>(F, f0, f1, taps, u);
  weight_row<2>(F, f0, f1, taps, u);
  weight_row<3>(F, f0, f1, taps, u);
}

GB_CLONES void add_weight_grad(int m, const float* du, int O, int C, float* gw, float* work) {
  const size_t F = size_t(O) * C;
  if (m == 4) {
    separable<Transposed<G4>, false>(int(F), du, 6 * F, F, work, 3 * F, F);
  } else {
    weight_grad_row<0>(F, du, work);
    weight_grad_row<1>(F, du, work);
    weight_grad_row<2>(F, du, work);
  }
  for (size_t f = 0; f < F; f += 8) {  // through a block, as in transform_weights
    const size_t n = std::min<size_t>(8, F - f);
    float blk[9][8];
    for (int e = 0; e < 9; ++e) std::memcpy(blk[e], work + e * F + f, n * sizeof(float));
    for (size_t j = 0; j < n; ++j)
      for (int e = 0; e < 9; ++e) gw[9 * (f + j) + e] += blk[e][j];
  }
}

namespace {

// The GEMMs take point xi's [tiles x channels] matrix straight out of the tile-major arrays:
// rows tile_ld(channels) apart.
template <int M>
GB_INLINE void forward_tiles(const Geometry& g, int n, const float* x, const float* u, const float* b, float* y,
                             float* work) {
  const int T = g.T(), C = g.C, O = g.O, NP = g.points(), P = g.OH * g.OW;
  float* v = work;
  float* m = v + tile_ld(g, C) * T * n;
  float* X = m + tile_ld(g, O) * T * n;  // the padded input, then the output, channel-last
  for (int s = 0; s < n; ++s) transform_input<M>(g, x + size_t(s) * C * g.H * g.W, v + tile_ld(g, C) * s * T, X);
  for (int xi = 0; xi < NP; ++xi)  // M = V U^T: [tiles x C] x [C x O], the n samples' tiles as rows
    gemm(false, false, n * T, O, C, 1.f, v + xi * C, int(tile_ld(g, C)), u + xi * size_t(O) * C, O, 0.f, m + xi * O,
         int(tile_ld(g, O)));
  const size_t rs = size_t(M * g.TW) * O;
  for (int s = 0; s < n; ++s) {
    const float* ms = m + tile_ld(g, O) * s * T;
    float* ys = y + size_t(s) * O * P;
    for (int th = 0; th < g.TH; ++th)
      for (int tw = 0; tw < g.TW; ++tw)
        Tile<M>::output(O, ms + size_t(th * g.TW + tw) * tile_ld(g, O), X + M * th * rs + size_t(M * tw) * O, rs);
    convert<false>(X, ys, O, P, ChannelLast{g.OW, O, rs, 0});
    if (b)
      for (int o = 0; o < O; ++o)
        for (int q = 0; q < P; ++q) ys[size_t(o) * P + q] += b[o];
  }
}

template <int M>
GB_INLINE void backward_data_tiles(const Geometry& g, int n, const float* m, const float* u, float* gx, float* work,
                                   bool add) {
  const int T = g.T(), C = g.C, O = g.O, NP = g.points();
  float* v = work;
  float* X = v + tile_ld(g, C) * T * n;  // the padded input gradient, channel-last
  for (int xi = 0; xi < NP; ++xi)  // dV = dM U: [tiles x O] x [O x C], the n samples' tiles as rows
    gemm(false, false, n * T, C, O, 1.f, m + xi * O, int(tile_ld(g, O)), u + xi * size_t(O) * C, C, 0.f, v + xi * C,
         int(tile_ld(g, C)));
  const size_t rs = size_t(g.PW()) * C;
  for (int s = 0; s < n; ++s) {
    const float* vs = v + tile_ld(g, C) * s * T;
    float* gs = gx + size_t(s) * C * g.H * g.W;
    std::fill(X, X + size_t(g.PH()) * rs, 0.f);
    for (int th = 0; th < g.TH; ++th)
      for (int tw = 0; tw < g.TW; ++tw)
        Tile<M>::input_adjoint(C, vs + size_t(th * g.TW + tw) * tile_ld(g, C), X + M * th * rs + size_t(M * tw) * C,
                               rs);
    if (add)
      from_padded_hwc<true>(g, X, gs);
    else
      from_padded_hwc<false>(g, X, gs);
  }
}

template <int M>
GB_INLINE void backward_weight_tiles(const Geometry& g, int n, const float* x, const float* m, float beta, float* du,
                                     float* work) {
  const int T = g.T(), C = g.C, O = g.O, NP = g.points();
  float* v = work;
  float* X = v + tile_ld(g, C) * n * T;
  for (int s = 0; s < n; ++s) transform_input<M>(g, x + size_t(s) * C * g.H * g.W, v + tile_ld(g, C) * s * T, X);
  for (int xi = 0; xi < NP; ++xi)  // dU = dM^T V: [O x tiles] x [tiles x C]
    gemm(true, false, O, C, n * T, 1.f, m + xi * O, int(tile_ld(g, O)), v + xi * C, int(tile_ld(g, C)), beta,
         du + xi * size_t(O) * C, C);
}

}  // namespace

GB_CLONES void forward(const Geometry& g, int n, const float* x, const float* u, const float* b, float* y,
                       float* work) {
  if (g.m == 4)
    forward_tiles<4>(g, n, x, u, b, y, work);
  else
    forward_tiles<2>(g, n, x, u, b, y, work);
}

GB_CLONES void to_channel_last(const float* planar, int C, int P, float* channel_last) {
  convert<true>(planar, channel_last, C, P, ChannelLast{P, C, 0, 0});  // at(p) = p * C
}

GB_CLONES void grad_tiles(const Geometry& g, int n, const float* gy, float* m, float* work) {
  for (int s = 0; s < n; ++s) {
    const float* gs = gy + size_t(s) * g.O * g.OH * g.OW;
    float* ms = m + tile_ld(g, g.O) * s * g.T();
    if (g.m == 4)
      transform_output_grad<4>(g, gs, ms, work);
    else
      transform_output_grad<2>(g, gs, ms, work);
  }
}

GB_CLONES void backward_data(const Geometry& g, int n, const float* m, const float* u, float* gx, float* work,
                             bool add) {
  if (g.m == 4)
    backward_data_tiles<4>(g, n, m, u, gx, work, add);
  else
    backward_data_tiles<2>(g, n, m, u, gx, work, add);
}

GB_CLONES void backward_weight(const Geometry& g, int n, const float* x, const float* m, float beta, float* du,
                               float* work) {
  if (g.m == 4)
    backward_weight_tiles<4>(g, n, x, m, beta, du, work);
  else
    backward_weight_tiles<2>(g, n, x, m, beta, du, work);
}

}  // namespace gb::winograd
