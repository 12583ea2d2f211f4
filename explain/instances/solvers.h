// Linear solves with a Hessian for influence functions: s = (H + λI)⁻¹ b, with H the mean Hessian
// of the training loss. Directly, by a Cholesky factorization of an explicit H (LAPACK); or from
// Hessian-vector products only, by conjugate gradients (what Koh & Liang's code does through
// scipy's fmin_ncg) or LiSSA (Agarwal et al. 2017, as in Koh & Liang's get_inverse_hvp_lissa).
// Vectors are double; the products may be computed in float.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace gb::explain::instances {

// A symmetric matrix, row-major, n × n.
struct SymmetricMatrix {
  int n = 0;
  std::vector<double> a;
  explicit SymmetricMatrix(int n = 0) : n(n), a(size_t(n) * n, 0.0) {}
  double& at(int i, int j) { return a[size_t(i) * n + j]; }
  double at(int i, int j) const { return a[size_t(i) * n + j]; }
};

// The Cholesky factor L (A = L Lᵀ), or nullopt-like: returns false when A is not positive definite.
bool cholesky(const SymmetricMatrix& A, SymmetricMatrix& L);
// Overwrites b (n values, `count` right-hand sides one after another) with A⁻¹ b from A's factor.
void cholesky_solve(const SymmetricMatrix& L, double* b, int count = 1);
// For each of `count` rows g (n values each): ‖L⁻¹ g‖² = gᵀ A⁻¹ g. Overwrites the rows.
void inverse_quadratic_forms(const SymmetricMatrix& L, double* rows, int count, double* out);

// out = (H + λI) v over all points (conjugate gradients), or the mean Hessian over the given
// points' rows (LiSSA's mini-batches; λ is added by the solver).
using Product = std::function<void(const double* v, double* out)>;
using BatchProduct = std::function<void(const std::vector<int>& points, const double* v, double* out)>;

struct SolveReport {
  int iterations = 0;
  double residual = 0;  // CG: ‖b − A x‖ / ‖b‖ at the end; LiSSA: the last update's relative size
};

// Solves A x = b for symmetric positive definite A (x starts at 0). Stops when ‖r‖ ≤ tol·‖b‖ or
// after max_iterations; throws when a direction has pᵀAp ≤ 0 (A is not positive definite there:
// more damping is needed).
SolveReport conjugate_gradient(const Product& A, const std::vector<double>& b, std::vector<double>& x,
                               int max_iterations, double tol);

struct LissaOptions {
  int depth = 5000;      // recursion depth (Koh & Liang's MNIST setting)
  double scale = 25;     // H/scale must have eigenvalues below 1
  double damping = 0;    // λ, added to the mean Hessian as in the other solvers
  int batch = 1;         // points per Hessian-vector product, drawn without replacement
  int samples = 10;      // independent recursions, averaged
  uint64_t seed = 0;
};

// LiSSA: h_j = b + (1 − λ/scale) h_{j−1} − H_batch h_{j−1} / scale, x = mean over samples of
// h_depth / scale, which tends to (H + λI)⁻¹ b. Koh & Liang write the recursion with
// (1 − d) h_{j−1}; their d is λ/scale here, so that λ means the same in every solver. Throws when
// the recursion diverges: ‖h‖ past 1000·(scale/λ)·‖b‖, a thousand times what positive semi-definite
// batch Hessians with eigenvalues below 2(scale − λ) allow (negative curvature beyond λ, batches
// curving too far below zero, or scale too small).
SolveReport lissa(const BatchProduct& H, int points, const std::vector<double>& b, std::vector<double>& x,
                  const LissaOptions& o);

}  // namespace gb::explain::instances
