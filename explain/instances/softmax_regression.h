// The last layer of a classifier as a convex problem: softmax regression on fixed features f (the
// inputs of the model's last dense layer), z = W f + b, with the cross-entropy against targets t
// (one-hot labels or probabilities). Influence functions take its exact Hessian, representer
// points fit it with an L2 penalty, and the leave-one-out check retrains it.
//
// Parameters θ are laid out as the dense layer's ParamSlice: W [K×D] row-major, then b [K] when
// the layer has a bias. With f̃ = (f, 1) and r = p − t, a row's gradient is r ⊗ f̃ and its Hessian
// (diag p − p pᵀ) ⊗ f̃ f̃ᵀ, exactly (the logits are linear in θ). Sums over rows run in chunks;
// the Hessian's outer products as float GEMMs added into double, on all threads.
#pragma once
#include <vector>

#include "engine/layers.h"
#include "explain/instances/solvers.h"

namespace gb::explain::instances {

class SoftmaxRegression {
 public:
  SoftmaxRegression(const Tensor& features, int classes, bool bias);  // features [N, D]

  int rows() const { return N_; }
  int classes() const { return K_; }
  int size() const { return K_ * Dt_; }  // parameters

  // Per row, row-major [N × K]: the logits W f + b, and their softmax.
  void logits(const std::vector<double>& theta, std::vector<double>& z) const;
  static void softmax(const std::vector<double>& z, int K, std::vector<double>& p);

  // Σ_i w_i (diag p_i − p_i p_iᵀ) ⊗ f̃_i f̃_iᵀ, the Hessian of Σ_i w_i CE(z_i); no weights: all 1.
  SymmetricMatrix hessian(const std::vector<double>& probs, const std::vector<double>* weights = nullptr) const;
  // out = Σ_{i ∈ rows} (diag p_i − p_i p_iᵀ) ⊗ f̃_i f̃_iᵀ v; no rows: all.
  void hessian_product(const std::vector<double>& probs, const std::vector<int>* rows, const double* v,
                       double* out) const;
  // out = Σ_i w_i r_i ⊗ f̃_i: the gradient of Σ_i w_i CE(z_i) for residuals r_i = p_i − t_i.
  void gradient(const std::vector<double>& residuals, const std::vector<double>* weights, double* out) const;
  // out_i = (r_i ⊗ f̃_i) · s for every row: each row's loss gradient against s.
  void dots(const std::vector<double>& residuals, const double* s, double* out) const;
  // Rows [b, e) of the gradients r_i ⊗ f̃_i, one after another (size() values each).
  void row_gradients(const std::vector<double>& residuals, int b, int e, double* out) const;

 private:
  int N_, D_, K_, Dt_;  // Dt_ = D + 1 with a bias
  std::vector<float> f32_;   // [N × Dt]: f̃, for the Hessian's GEMMs
  std::vector<double> f64_;  // the same in double, for everything else
  int index(int k, int d) const { return d < D_ ? k * D_ + d : K_ * D_ + k; }  // θ's index of W[k][d] (d = D: b[k])
  void to_matrix(const double* theta, std::vector<double>& m) const;   // θ as [K × Dt]
  void from_matrix(const std::vector<double>& m, double* theta) const;  // adds m into θ
};

// θ of a dense layer, in its ParamSlice layout (weight, then bias).
std::vector<double> dense_theta(const Dense& d);
void set_dense_theta(Dense& d, const std::vector<double>& theta);

// (1/N) Σ_i w_i CE(z_i, t_i) + (l2/2) ‖θ‖², with CE(z, t) = logsumexp(z) − tᵀz (t a probability row).
double softmax_objective(const SoftmaxRegression& m, const std::vector<double>& targets,
                         const std::vector<double>* weights, double l2, const std::vector<double>& theta);

struct SoftmaxFit {
  std::vector<double> theta;
  int iterations = 0;
  double gradient_norm = 0;  // max |∂/∂θ| of the objective at theta
  double objective = 0;
};

// Minimizes softmax_objective from theta by Newton's method (the exact Hessian, Cholesky) with a
// backtracking line search, until max |gradient| ≤ tolerance or max_iterations. Where the objective
// can no longer resolve a step's decrease, a step must lower max |gradient| instead; when no step
// lowers either, the fit stops there (gradient_norm says how close it got). l2 > 0.
SoftmaxFit fit_softmax_regression(const SoftmaxRegression& m, const std::vector<double>& targets,
                                  const std::vector<double>* weights, double l2, std::vector<double> theta,
                                  int max_iterations, double tolerance);

}  // namespace gb::explain::instances
