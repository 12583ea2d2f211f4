#include "explain/instances/solvers.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "engine/interrupt.h"
#include "engine/rng.h"

// LAPACK from OpenBLAS (no lapacke.h here); the trailing length is gfortran's hidden argument for
// the character `uplo`.
extern "C" void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
extern "C" void dpotrs_(const char* uplo, const int* n, const int* nrhs, const double* a, const int* lda, double* b,
                        const int* ldb, int* info, size_t uplo_len);

namespace gb::explain::instances {

// Row-major lower triangle = column-major upper triangle, so LAPACK is called with "U".
bool cholesky(const SymmetricMatrix& A, SymmetricMatrix& L) {
  L = A;
  int info = 0;
  dpotrf_("U", &L.n, L.a.data(), &L.n, &info, 1);
  if (info != 0) return false;
  for (int i = 0; i < L.n; ++i)
    for (int j = i + 1; j < L.n; ++j) L.at(i, j) = 0;  // the lower triangle is L
  return true;
}

void cholesky_solve(const SymmetricMatrix& L, double* b, int count) {
  int info = 0;
  dpotrs_("U", &L.n, &count, L.a.data(), &L.n, b, &L.n, &info, 1);
  if (info != 0) throw std::runtime_error("cholesky_solve: dpotrs failed (info " + std::to_string(info) + ")");
}

void inverse_quadratic_forms(const SymmetricMatrix& L, double* rows, int count, double* out) {
  // rows (count × n, row-major) := rows · L⁻ᵀ, so row i becomes (L⁻¹ g_i)ᵀ.
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, count, L.n, 1.0, L.a.data(), L.n, rows,
              L.n);
  for (int i = 0; i < count; ++i) out[i] = cblas_ddot(L.n, rows + size_t(i) * L.n, 1, rows + size_t(i) * L.n, 1);
}

static double dot(const std::vector<double>& a, const std::vector<double>& b) {
  return cblas_ddot(int(a.size()), a.data(), 1, b.data(), 1);
}

SolveReport conjugate_gradient(const Product& A, const std::vector<double>& b, std::vector<double>& x,
                               int max_iterations, double tol) {
  const size_t n = b.size();
  x.assign(n, 0.0);
  std::vector<double> r = b, p = b, Ap(n);
  const double bb = dot(b, b);
  double rr = bb;
  SolveReport rep;
  if (bb == 0) return rep;
  while (rep.iterations < max_iterations && rr > tol * tol * bb) {
    poll_interrupt();  // a product may have no forward pass to stop at
    A(p.data(), Ap.data());
    const double pAp = dot(p, Ap);
    if (!(pAp > 0))
      throw std::runtime_error("conjugate gradients: the damped Hessian is not positive definite along a search "
                               "direction (pᵀHp = " + std::to_string(pAp) + "); raise damping");
    const double alpha = rr / pAp;
    for (size_t i = 0; i < n; ++i) x[i] += alpha * p[i], r[i] -= alpha * Ap[i];
    const double next = dot(r, r);
    for (size_t i = 0; i < n; ++i) p[i] = r[i] + next / rr * p[i];
    rr = next;
    ++rep.iterations;
  }
  rep.residual = std::sqrt(rr / bb);
  return rep;
}

SolveReport lissa(const BatchProduct& H, int points, const std::vector<double>& b, std::vector<double>& x,
                  const LissaOptions& o) {
  if (points < 1) throw std::invalid_argument("LiSSA: no points to take the Hessian over");
  const size_t n = b.size();
  x.assign(n, 0.0);
  // Batches walk a shuffled order of the points without replacement, reshuffled when too few
  // remain (as Koh & Liang's next_batch), so a batch of every point is the exact mean Hessian.
  Rng rng(o.seed);
  std::vector<int> order(points);
  for (int i = 0; i < points; ++i) order[i] = i;
  int next = points;
  std::vector<double> h(n), Hh(n);
  std::vector<int> batch(std::min(o.batch, points));
  SolveReport rep;
  const double keep = 1 - o.damping / o.scale, bnorm = std::sqrt(dot(b, b));
  // Over positive semi-definite batch Hessians with eigenvalues below 2(scale − λ), each step
  // shrinks h by at least (1 − λ/scale), so ‖h‖ ≤ (scale/λ)‖b‖. One point's Hessian (lissa_batch 1)
  // is often indefinite on hidden layers even where the mean is not; then ‖h‖ wanders above that
  // bound on a random walk (past 10x in about 1 of 20 recursions in a simulation with curvatures
  // ±1) yet converges. Past 1000x it is growing: negative curvature of the damped mean Hessian
  // grows h by 1 + |μ + λ|/scale a step, which a check for overflow alone caught thousands of steps
  // after the answer had stopped meaning anything, if at all.
  const double limit = o.damping > 0 ? 1000 * o.scale / o.damping * bnorm : 1e15 * bnorm;
  char scale_text[32];
  std::snprintf(scale_text, sizeof scale_text, "%g", o.scale);
  for (int s = 0; s < o.samples; ++s) {
    h = b;
    for (int j = 0; j < o.depth; ++j) {
      poll_interrupt();
      if (next + int(batch.size()) > points) {
        for (int i = points; i > 1; --i) std::swap(order[i - 1], order[rng.below(uint32_t(i))]);
        next = 0;
      }
      std::copy_n(order.begin() + next, batch.size(), batch.begin());
      next += int(batch.size());
      H(batch, h.data(), Hh.data());
      double change = 0, size = 0;
      for (size_t i = 0; i < n; ++i) {
        const double next = b[i] + keep * h[i] - Hh[i] / o.scale;
        change += (next - h[i]) * (next - h[i]);
        size += next * next;
        h[i] = next;
      }
      if (!std::isfinite(size) || size > limit * limit)
        throw std::runtime_error(
            "LiSSA diverged at depth " + std::to_string(j + 1) + " (‖h‖ grew past 1000·lissa_scale/damping·‖b‖): "
            "the damped Hessian has negative curvature (raise damping; solver=cg reports pᵀHp < 0 then), single "
            "batches' Hessians curve too far below zero (raise lissa_batch), or lissa_scale " + scale_text +
            " is below the largest eigenvalue (raise it)");
      rep.residual = size > 0 ? std::sqrt(change / size) : 0;
    }
    for (size_t i = 0; i < n; ++i) x[i] += h[i] / o.scale / o.samples;
  }
  rep.iterations = o.depth * o.samples;
  return rep;
}

}  // namespace gb::explain::instances
