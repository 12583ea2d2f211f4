// Row-major GEMM: C = alpha * op(A) * op(B) + beta * C, with op(A) M x K and op(B) K x N.
//
// On CPUs with AVX-512, products whose B is not transposed run glassbox's own kernel
// (gemm_avx512.h), split over the threads by tiles of C when the call is outside a split run and
// large enough; each element of C is then the same k-ordered sum at any thread count. Everything
// else runs OpenBLAS. GLASSBOX_GEMM=openblas in the environment sends every product to OpenBLAS.
#pragma once
#include <cblas.h>

namespace gb {
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, const float* B, float beta,
          float* C);
// The same with explicit leading dimensions (row strides), for matrices inside larger arrays.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc);
// Whether products with an untransposed B run glassbox's AVX-512 kernel in this process.
bool own_gemm_active();
}  // namespace gb
