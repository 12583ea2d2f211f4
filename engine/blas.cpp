// Which GEMM runs a product (see blas.h).
#include "engine/blas.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "engine/gemm_avx512.h"
#include "engine/threads.h"

namespace gb {

bool own_gemm_active() {
  static const bool active = [] {
    const char* env = std::getenv("GLASSBOX_GEMM");
    const std::string choice = env ? env : "";  // empty: glassbox decides
    if (choice != "" && choice != "own" && choice != "openblas")
      throw std::runtime_error("GLASSBOX_GEMM=" + choice + ": unknown GEMM (use 'openblas', 'own', or leave it unset)");
    if (choice == "openblas" || !avx512_gemm_supported()) return false;
    // OpenBLAS's own AVX-512 kernels are about as fast on these products, so the kernel stands in
    // only for narrower ones.
    return choice == "own" || !blas_core_is_avx512(blas_core());
  }();
  return active;
}

// Below this many multiply-adds a product runs on the calling thread: the size under which
// OpenBLAS too keeps a GEMM on one thread (its 65536 x GEMM_MULTITHREAD_THRESHOLD = 4).
constexpr double kSplitWork = 262144.0;

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  if (trans_b || !own_gemm_active()) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int n = threads();
  if (n == 1 || in_parallel() || double(M) * N * K <= kSplitWork) {
    avx512_gemm(trans_a, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the longer side of C; each part computes whole elements, so the bits do not change.
  const bool by_rows = M / kAvx512GemmRows >= N / kAvx512GemmCols;
  const int tile = by_rows ? kAvx512GemmRows : kAvx512GemmCols, tiles = ((by_rows ? M : N) + tile - 1) / tile;
  parallel(std::min(n, tiles), [&](int t) {
    int b, e;
    part(t, std::min(n, tiles), tiles, b, e);
    const int lo = b * tile, hi = std::min(e * tile, by_rows ? M : N);
    if (lo >= hi) return;
    if (by_rows) {
      const float* a = trans_a ? A + lo : A + size_t(lo) * lda;
      avx512_gemm(trans_a, hi - lo, N, K, alpha, a, lda, B, ldb, beta, C + size_t(lo) * ldc, ldc);
    } else {
      avx512_gemm(trans_a, M, hi - lo, K, alpha, A, lda, B + lo, ldb, beta, C + lo, ldc);
    }
  });
}

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, const float* B, float beta,
          float* C) {
  gemm(trans_a, trans_b, M, N, K, alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
}

}  // namespace gb
