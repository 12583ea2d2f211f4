// Row-major GEMM: C = alpha * op(A) * op(B) + beta * C, with op(A) M x K and op(B) K x N.
#pragma once
#include <cblas.h>

namespace gb {
inline void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, const float* B,
                 float beta, float* C) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
}
// The same with explicit leading dimensions (row strides), for matrices inside larger arrays.
inline void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                 int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}
}  // namespace gb
