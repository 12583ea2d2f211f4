#include "explain/instances/softmax_regression.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/blas.h"
#include "engine/interrupt.h"
#include "engine/threads.h"

namespace gb::explain::instances {

namespace {
constexpr int kChunk = 1024;  // rows per GEMM

// C (M × N) = A (M × K) · Bᵀ (B: N × K), row-major, double.
void gemm_nt(int M, int N, int K, const double* A, const double* B, double* C) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0, A, K, B, K, 0.0, C, N);
}
// C (M × N) += Aᵀ (A: K × M) · B (K × N).
void gemm_tn_add(int M, int N, int K, const double* A, const double* B, double* C) {
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0, A, M, B, N, 1.0, C, N);
}
}  // namespace

SoftmaxRegression::SoftmaxRegression(const Tensor& features, int classes, bool bias)
    : N_(features.batch()), D_(int(features.sample_size())), K_(classes), Dt_(D_ + (bias ? 1 : 0)) {
  if (features.rank() != 2 || N_ < 1) throw ShapeError("softmax regression expects [N, D] features, got " + features.shape().str());
  if (classes < 2) throw std::invalid_argument("softmax regression needs at least 2 classes");
  f32_.resize(size_t(N_) * Dt_);
  f64_.resize(size_t(N_) * Dt_);
  for (int i = 0; i < N_; ++i)
    for (int d = 0; d < Dt_; ++d) {
      const float v = d < D_ ? features[size_t(i) * D_ + d] : 1.f;
      f32_[size_t(i) * Dt_ + d] = v;
      f64_[size_t(i) * Dt_ + d] = v;
    }
}

void SoftmaxRegression::to_matrix(const double* theta, std::vector<double>& m) const {
  m.resize(size_t(K_) * Dt_);
  for (int k = 0; k < K_; ++k)
    for (int d = 0; d < Dt_; ++d) m[size_t(k) * Dt_ + d] = theta[index(k, d)];
}

void SoftmaxRegression::from_matrix(const std::vector<double>& m, double* theta) const {
  for (int k = 0; k < K_; ++k)
    for (int d = 0; d < Dt_; ++d) theta[index(k, d)] += m[size_t(k) * Dt_ + d];
}

void SoftmaxRegression::logits(const std::vector<double>& theta, std::vector<double>& z) const {
  std::vector<double> W;
  to_matrix(theta.data(), W);
  z.resize(size_t(N_) * K_);
  gemm_nt(N_, K_, Dt_, f64_.data(), W.data(), z.data());
}

void SoftmaxRegression::softmax(const std::vector<double>& z, int K, std::vector<double>& p) {
  p.resize(z.size());
  for (size_t i = 0; i < z.size(); i += K) {
    const double m = *std::max_element(z.begin() + i, z.begin() + i + K);
    double total = 0;
    for (int k = 0; k < K; ++k) total += p[i + k] = std::exp(z[i + k] - m);
    for (int k = 0; k < K; ++k) p[i + k] /= total;
  }
}

// Block (k, l) of the Hessian is Σ_i s_i f̃_i f̃_iᵀ with s_i = w_i (δ_kl p_ik − p_ik p_il). Per chunk
// of rows, the features scaled by s for every pair k ≤ l side by side form one wide matrix B, and
// one GEMM F̃ᵀ B gives every block's share of the chunk (a wide GEMM runs near the machine's peak,
// where 55 narrow ones of Dt × Dt would not).
SymmetricMatrix SoftmaxRegression::hessian(const std::vector<double>& probs, const std::vector<double>* weights) const {
  std::vector<std::pair<int, int>> pairs;
  for (int k = 0; k < K_; ++k)
    for (int l = k; l < K_; ++l) pairs.emplace_back(k, l);
  const int Q = int(pairs.size()), wide = Q * Dt_, chunk = 512;
  std::vector<float> B(size_t(chunk) * wide), product(size_t(Dt_) * wide);
  std::vector<double> blocks(product.size(), 0.0);
  for (int b = 0; b < N_; b += chunk) {
    poll_interrupt();
    const int rows = std::min(chunk, N_ - b);
    const float* f = f32_.data() + size_t(b) * Dt_;
    const int T = std::max(1, threads());
    parallel(T, [&](int t) {  // the rows of B split across threads
      int first, last;
      part(t, T, rows, first, last);
      for (int i = first; i < last; ++i) {
        const double* p = probs.data() + size_t(b + i) * K_;
        const double w = weights ? (*weights)[b + i] : 1.0;
        const float* fi = f + size_t(i) * Dt_;
        float* dst = B.data() + size_t(i) * wide;
        for (int q = 0; q < Q; ++q) {
          const auto [k, l] = pairs[q];
          const float s = float(w * ((k == l ? p[k] : 0.0) - p[k] * p[l]));
          for (int d = 0; d < Dt_; ++d) dst[q * Dt_ + d] = s * fi[d];
        }
      }
    });
    gemm(true, false, Dt_, wide, rows, 1.f, f, B.data(), 0.f, product.data());
    for (size_t e = 0; e < blocks.size(); ++e) blocks[e] += product[e];
  }
  SymmetricMatrix H(size());
  for (int q = 0; q < Q; ++q) {
    const auto [k, l] = pairs[q];
    for (int d = 0; d < Dt_; ++d)
      for (int e = 0; e < Dt_; ++e) {
        const double v = blocks[size_t(d) * wide + q * Dt_ + e];  // Σ s f̃_d f̃_e
        H.at(index(k, d), index(l, e)) = v;
        H.at(index(l, e), index(k, d)) = v;
      }
  }
  return H;
}

void SoftmaxRegression::hessian_product(const std::vector<double>& probs, const std::vector<int>* rows,
                                        const double* v, double* out) const {
  std::vector<double> V, acc(size_t(K_) * Dt_, 0.0), u(K_);
  to_matrix(v, V);
  const int n = rows ? int(rows->size()) : N_;
  for (int j = 0; j < n; ++j) {
    const int i = rows ? (*rows)[j] : j;
    const double *f = f64_.data() + size_t(i) * Dt_, *p = probs.data() + size_t(i) * K_;
    double pu = 0;
    for (int k = 0; k < K_; ++k) pu += p[k] * (u[k] = cblas_ddot(Dt_, V.data() + size_t(k) * Dt_, 1, f, 1));
    for (int k = 0; k < K_; ++k) cblas_daxpy(Dt_, p[k] * (u[k] - pu), f, 1, acc.data() + size_t(k) * Dt_, 1);
  }
  std::fill(out, out + size(), 0.0);
  from_matrix(acc, out);
}

void SoftmaxRegression::gradient(const std::vector<double>& residuals, const std::vector<double>* weights,
                                 double* out) const {
  std::vector<double> acc(size_t(K_) * Dt_, 0.0), r(size_t(kChunk) * K_);
  for (int b = 0; b < N_; b += kChunk) {
    const int rows = std::min(kChunk, N_ - b);
    for (int i = 0; i < rows; ++i)
      for (int k = 0; k < K_; ++k)
        r[size_t(i) * K_ + k] = (weights ? (*weights)[b + i] : 1.0) * residuals[size_t(b + i) * K_ + k];
    gemm_tn_add(K_, Dt_, rows, r.data(), f64_.data() + size_t(b) * Dt_, acc.data());
  }
  std::fill(out, out + size(), 0.0);
  from_matrix(acc, out);
}

void SoftmaxRegression::dots(const std::vector<double>& residuals, const double* s, double* out) const {
  std::vector<double> S, u(size_t(kChunk) * K_);
  to_matrix(s, S);
  for (int b = 0; b < N_; b += kChunk) {
    const int rows = std::min(kChunk, N_ - b);
    gemm_nt(rows, K_, Dt_, f64_.data() + size_t(b) * Dt_, S.data(), u.data());
    for (int i = 0; i < rows; ++i)
      out[b + i] = cblas_ddot(K_, residuals.data() + size_t(b + i) * K_, 1, u.data() + size_t(i) * K_, 1);
  }
}

void SoftmaxRegression::row_gradients(const std::vector<double>& residuals, int b, int e, double* out) const {
  for (int i = b; i < e; ++i) {
    double* g = out + size_t(i - b) * size();
    for (int k = 0; k < K_; ++k)
      for (int d = 0; d < Dt_; ++d) g[index(k, d)] = residuals[size_t(i) * K_ + k] * f64_[size_t(i) * Dt_ + d];
  }
}

std::vector<double> dense_theta(const Dense& d) {
  std::vector<double> theta(d.weight.value.data(), d.weight.value.data() + d.weight.value.size());
  if (d.has_bias) theta.insert(theta.end(), d.bias.value.data(), d.bias.value.data() + d.bias.value.size());
  return theta;
}

void set_dense_theta(Dense& d, const std::vector<double>& theta) {
  const size_t W = d.weight.value.size();
  for (size_t i = 0; i < W; ++i) d.weight.value[i] = float(theta[i]);
  if (d.has_bias)
    for (size_t k = 0; k < d.bias.value.size(); ++k) d.bias.value[k] = float(theta[W + k]);
}

double softmax_objective(const SoftmaxRegression& m, const std::vector<double>& targets,
                         const std::vector<double>* weights, double l2, const std::vector<double>& theta) {
  std::vector<double> z;
  m.logits(theta, z);
  const int K = m.classes();
  double loss = 0;
  for (int i = 0; i < m.rows(); ++i) {
    const double* zi = z.data() + size_t(i) * K;
    const double mx = *std::max_element(zi, zi + K);
    double total = 0, tz = 0;
    for (int k = 0; k < K; ++k) total += std::exp(zi[k] - mx), tz += targets[size_t(i) * K + k] * zi[k];
    loss += (weights ? (*weights)[i] : 1.0) * (mx + std::log(total) - tz);
  }
  double norm = 0;
  for (double v : theta) norm += v * v;
  return loss / m.rows() + l2 / 2 * norm;
}

namespace {
// The objective's value, gradient and largest gradient component at θ, and the softmax rows the
// Hessian needs there.
struct Point {
  std::vector<double> theta, p, grad;
  double objective = 0, gradient_norm = 0;
};

Point evaluate_at(const SoftmaxRegression& m, const std::vector<double>& targets, const std::vector<double>* weights,
                  double l2, std::vector<double> theta) {
  Point x;
  std::vector<double> z;
  m.logits(theta, z);
  SoftmaxRegression::softmax(z, m.classes(), x.p);
  for (size_t i = 0; i < z.size(); ++i) z[i] = x.p[i] - targets[i];  // residuals
  x.grad.resize(size_t(m.size()));
  m.gradient(z, weights, x.grad.data());
  for (size_t j = 0; j < x.grad.size(); ++j) {
    x.grad[j] = x.grad[j] / m.rows() + l2 * theta[j];
    x.gradient_norm = std::max(x.gradient_norm, std::fabs(x.grad[j]));
  }
  x.objective = softmax_objective(m, targets, weights, l2, theta);
  x.theta = std::move(theta);
  return x;
}
}  // namespace

SoftmaxFit fit_softmax_regression(const SoftmaxRegression& m, const std::vector<double>& targets,
                                  const std::vector<double>* weights, double l2, std::vector<double> theta,
                                  int max_iterations, double tolerance) {
  if (!(l2 > 0)) throw std::invalid_argument("softmax regression fit: the L2 weight must be > 0");
  const int P = m.size();
  SoftmaxFit fit;
  Point x = evaluate_at(m, targets, weights, l2, std::move(theta));
  std::vector<double> step(P), trial(P);
  for (; x.gradient_norm > tolerance && fit.iterations < max_iterations; ++fit.iterations) {
    poll_interrupt();  // fits have no forward passes to stop at
    SymmetricMatrix H = m.hessian(x.p, weights), L;
    for (double& v : H.a) v /= m.rows();
    for (int j = 0; j < P; ++j) H.at(j, j) += l2;
    if (!cholesky(H, L)) throw std::runtime_error("softmax regression fit: the Hessian is not positive definite");
    for (int j = 0; j < P; ++j) step[j] = -x.grad[j];
    cholesky_solve(L, step.data());
    double slope = 0;
    for (int j = 0; j < P; ++j) slope += x.grad[j] * step[j];
    // Backtracking (Armijo): Newton's full step is taken near the optimum.
    bool decreased = false;
    if (-slope > 1e-12 * std::max(1.0, std::fabs(x.objective))) {
      double t = 1;
      for (int tries = 0; tries < 40 && !decreased; ++tries, t /= 2) {
        for (int j = 0; j < P; ++j) trial[j] = x.theta[j] + t * step[j];
        decreased = softmax_objective(m, targets, weights, l2, trial) <= x.objective + 1e-4 * t * slope;
      }
    }
    if (decreased) {
      x = evaluate_at(m, targets, weights, l2, trial);
      continue;
    }
    // Near the optimum the decrease a Newton step promises, -slope / 2, is below what a mean of N
    // rounded terms resolves (about 1e-14 of an objective of 2.3 on 48,000 rows), and comparing
    // objectives rejects every step. There (and wherever backtracking found no decrease) a step is
    // taken when it lowers the largest gradient component, which is still exact enough to converge
    // quadratically: the full step first, then halves of it.
    bool lowered = false;
    double t = 1;
    for (int tries = 0; tries < 40 && !lowered; ++tries, t /= 2) {
      for (int j = 0; j < P; ++j) trial[j] = x.theta[j] + t * step[j];
      Point next = evaluate_at(m, targets, weights, l2, trial);
      if ((lowered = next.gradient_norm < x.gradient_norm)) x = std::move(next);
    }
    if (!lowered) break;  // at rounding's floor: no step lowers the objective or its gradient
  }
  fit.theta = std::move(x.theta);
  fit.gradient_norm = x.gradient_norm;
  fit.objective = x.objective;
  return fit;
}

}  // namespace gb::explain::instances
