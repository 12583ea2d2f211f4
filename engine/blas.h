// Row-major GEMM: C = alpha * op(A) * op(B) + beta * C, with op(A) M x K and op(B) K x N.
//
// OpenBLAS chooses its kernels once per process (from the CPU, or OPENBLAS_CORETYPE). Where it runs
// narrower kernels than an AVX-512 CPU has (e.g. OPENBLAS_CORETYPE=Haswell), products whose B is
// not transposed run glassbox's own AVX-512 kernel instead (gemm_avx512.h), split over the threads
// by tiles of C when the call is outside a split run and large enough; each element of C is then
// the same k-ordered sum at any thread count. Everything else runs OpenBLAS.
// GLASSBOX_GEMM=openblas sends every product to OpenBLAS, GLASSBOX_GEMM=own uses the kernel on any
// AVX-512 CPU.
#pragma once
#include <cblas.h>

namespace gb {
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, const float* B, float beta,
          float* C);
// The same with explicit leading dimensions (row strides), for matrices inside larger arrays.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc);
// Whether products with an untransposed B run glassbox's AVX-512 kernel in this process (decided
// once, at the first call).
bool own_gemm_active();
}  // namespace gb
