// glassbox's own single-precision GEMM for AVX-512 CPUs: C = alpha * op(A) * B + beta * C, row-major,
// op(A) = A or Aᵀ, B not transposed (the products of the Winograd points; of im2col convolutions'
// forward, input-gradient and weight-gradient passes; of dense layers' backward passes).
//
// Why it exists: OpenBLAS picks its kernels once per process, from the CPU or OPENBLAS_CORETYPE, and
// an AVX2 choice on an AVX-512 CPU halves the width of every product in training (blas.h decides
// when this kernel runs). It is the textbook register-tiled GEMM, small enough to read: each tile
// of C, up to MR x NR, is MR * 2 accumulators of 16 floats, updated per k by one broadcast of A per
// row and two loads of B. A is read in place (no packed copy, so a small product starts at once),
// B in column chunks sized to stay in L2. Each element of C is one k-ordered sum, so results do not
// depend on the thread count or on how a product is cut into tiles.
#include "engine/gemm_avx512.h"

#include <algorithm>
#include <cstddef>

#include "engine/simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GB_AVX512 __attribute__((target("avx512f")))
#define GB_HAVE_AVX512_GEMM 1
#endif

namespace gb {

#if GB_HAVE_AVX512_GEMM
namespace {
constexpr int MR = kAvx512GemmRows;  // rows of a tile: 12 x 2 accumulators + 2 B vectors fit the 32 registers
constexpr int NR = kAvx512GemmCols;  // columns of a tile: two vectors of 16

// Where row r (< MR) of a tile of op(A) is read: element (r, k) is row(r)[k * step]. Without a
// transpose the rows are lda apart and k steps by 1; they are reached from four base pointers and
// two index registers (rows 3q, 3q + 1, 3q + 2), so the loop needs no packed copy of A. With Aᵀ a
// tile's rows are adjacent floats and k steps by lda.
struct Rows {
  const float* base[4];
  size_t one, two;  // the offsets of rows 3q + 1 and 3q + 2 from row 3q
  size_t step;
  GB_INLINE float at(int r, size_t k) const {
    const float* p = base[r / 3] + k * step;
    return r % 3 == 0 ? p[0] : r % 3 == 1 ? p[one] : p[two];
  }
};

Rows rows_of(bool trans_a, const float* A, int lda, int i0, int rows) {
  Rows a{};
  const size_t row = trans_a ? 1 : size_t(lda);  // from one row of op(A) to the next
  for (int q = 0; q < 4; ++q) a.base[q] = A + size_t(i0 + std::min(3 * q, rows - 1)) * row;
  a.one = row;
  a.two = 2 * row;
  a.step = trans_a ? size_t(lda) : 1;
  return a;
}

// One tile: rows [0, R) of op(A) (R <= MR) times columns [0, cols) of B (cols <= 16 * V).
template <int R, int V, bool Full>
GB_AVX512 void tile(int K, const Rows& a, const float* B, int ldb, float* C, int ldc, int cols, float alpha,
                    float beta) {
  __m512 acc[R][V];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  __mmask16 mask[V];
  for (int v = 0; v < V; ++v) {
    const int n = std::clamp(cols - 16 * v, 0, 16);
    mask[v] = __mmask16(n == 16 ? 0xFFFFu : (1u << n) - 1u);
  }
  const Rows rows = a;  // a local copy the compiler can keep in registers
  for (int k = 0; k < K; ++k) {
    const float* bk = B + size_t(k) * ldb;
    __m512 b[V];
    for (int v = 0; v < V; ++v) b[v] = Full ? _mm512_loadu_ps(bk + 16 * v) : _mm512_maskz_loadu_ps(mask[v], bk + 16 * v);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512 ar = _mm512_set1_ps(rows.at(r, size_t(k)));
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(ar, b[v], acc[r][v]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha), be = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) {
      float* c = C + size_t(r) * ldc + 16 * v;
      __m512 out = alpha == 1.f ? acc[r][v] : _mm512_mul_ps(al, acc[r][v]);
      if (beta != 0.f)
        out = _mm512_fmadd_ps(be, Full ? _mm512_loadu_ps(c) : _mm512_maskz_loadu_ps(mask[v], c), out);
      if (Full)
        _mm512_storeu_ps(c, out);
      else
        _mm512_mask_storeu_ps(c, mask[v], out);
    }
}

using TileFn = void (*)(int, const Rows&, const float*, int, float*, int, int, float, float);

template <int R>
TileFn tile_for(int cols) {
  if (cols == 32) return tile<R, 2, true>;
  if (cols == 16) return tile<R, 1, true>;
  return cols > 16 ? tile<R, 2, false> : tile<R, 1, false>;
}

TileFn tile_for(int rows, int cols) {
  switch (rows) {
    case 1: return tile_for<1>(cols);
    case 2: return tile_for<2>(cols);
    case 3: return tile_for<3>(cols);
    case 4: return tile_for<4>(cols);
    case 5: return tile_for<5>(cols);
    case 6: return tile_for<6>(cols);
    case 7: return tile_for<7>(cols);
    case 8: return tile_for<8>(cols);
    case 9: return tile_for<9>(cols);
    case 10: return tile_for<10>(cols);
    case 11: return tile_for<11>(cols);
    default: return tile_for<12>(cols);
  }
}

void scale(int M, int N, float beta, float* C, int ldc) {  // C = beta * C, with beta = 0 writing zeros
  for (int i = 0; i < M; ++i) {
    float* c = C + size_t(i) * ldc;
    if (beta == 0.f)
      std::fill(c, c + N, 0.f);
    else
      for (int j = 0; j < N; ++j) c[j] *= beta;
  }
}
}  // namespace

bool avx512_gemm_supported() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return bool(__builtin_cpu_supports("avx512f"));
  }();
  return yes;
}

void avx512_gemm(bool trans_a, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) return scale(M, N, beta, C, ldc);
  // Rows in as few tiles as hold them, of near-equal height: 64 rows as 10 + 11 + 11 + 10 + 11 + 11,
  // not 5 x 12 + 4 (a 4-row tile spends as many loads of B as a 12-row one on a third of the work).
  const int panels = (M + MR - 1) / MR;
  // Columns of B in chunks of about 256 KiB (a multiple of NR), so a chunk stays in L2 while every
  // row tile passes over it.
  const int chunk = std::max(NR, int(65536 / K) / NR * NR);
  for (int j0 = 0; j0 < N; j0 += chunk) {
    const int j1 = std::min(N, j0 + chunk);
    for (int p = 0; p < panels; ++p) {
      const int i = int(long(M) * p / panels), rows = int(long(M) * (p + 1) / panels) - i;
      const Rows a = rows_of(trans_a, A, lda, i, rows);
      for (int j = j0; j < j1; j += NR) {
        const int cols = std::min(NR, j1 - j);
        tile_for(rows, cols)(K, a, B + j, ldb, C + size_t(i) * ldc + j, ldc, cols, alpha, beta);
      }
    }
  }
}
#else
bool avx512_gemm_supported() { return false; }
void avx512_gemm(bool, int, int, int, float, const float*, int, const float*, int, float, float*, int) {}
#endif

}  // namespace gb
