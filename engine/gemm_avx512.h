// glassbox's own AVX-512 GEMM (see gemm_avx512.cpp); gemm() in blas.h decides when it runs.
#pragma once

namespace gb {
bool avx512_gemm_supported();  // this CPU runs it
constexpr int kAvx512GemmRows = 12, kAvx512GemmCols = 32;  // the largest tile of C (rows x columns)
// C = alpha * op(A) * B + beta * C, row-major; op(A) is M x K (A, or Aᵀ stored K x M), B is K x N.
// beta = 0 overwrites C without reading it. Single-threaded; needs avx512_gemm_supported().
void avx512_gemm(bool trans_a, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc);
}  // namespace gb
