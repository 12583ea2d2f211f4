#include "engine/loss.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace gb {

namespace {

void check_logits(const Tensor& logits, const char* what) {
  if (logits.rank() != 2 || logits.batch() < 1)
    throw ShapeError(std::string(what) + " expects [N,K] logits, got " + logits.shape().str());
}

// log-sum-exp of z[0..K) / T, and softmax(z / T) into p.
double log_softmax(const float* z, int K, double T, std::vector<double>& p) {
  double m = z[0];
  for (int k = 1; k < K; ++k) m = std::max(m, double(z[k]));
  double s = 0;
  for (int k = 0; k < K; ++k) s += std::exp((double(z[k]) - m) / T);
  const double lse = m / T + std::log(s);
  p.resize(K);
  for (int k = 0; k < K; ++k) p[k] = std::exp(double(z[k]) / T - lse);
  return lse;
}

// What the gradient of one sample is divided by: N for the mean (in double, before rounding to
// float, so training sees exactly the rounding it always had), 1 for the sum.
double divisor(int N, Reduction red) { return red == Reduction::mean ? N : 1; }

void reduce(LossResult& r, Reduction red) {
  r.loss = 0;
  for (double v : r.per_sample) r.loss += v;
  if (red == Reduction::mean) r.loss /= double(r.per_sample.size());
}

}  // namespace

LossResult softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels, Tensor* grad, Reduction red) {
  check_logits(logits, "cross-entropy");
  const int N = logits.dim(0), K = logits.dim(1);
  if (int(labels.size()) != N)
    throw ShapeError("cross-entropy: " + std::to_string(labels.size()) + " labels for " + std::to_string(N) + " logits");
  if (grad) grad->resize(logits.shape());
  const double div = divisor(N, red);
  LossResult r;
  std::vector<double> p;
  for (int n = 0; n < N; ++n) {
    const int y = labels[n];
    if (y < 0 || y >= K)
      throw std::out_of_range("label " + std::to_string(y) + " of sample " + std::to_string(n) + " outside [0," +
                              std::to_string(K) + ")");
    const float* z = logits.data() + size_t(n) * K;
    const double lse = log_softmax(z, K, 1.0, p);
    r.per_sample.push_back(lse - z[y]);
    r.correct += argmax(z, K) == y;
    if (grad) {
      float* g = grad->data() + size_t(n) * K;
      for (int k = 0; k < K; ++k) g[k] = float((p[k] - (k == y)) / div);
    }
  }
  reduce(r, red);
  return r;
}

LossResult mse(const Tensor& out, const Tensor& target, Tensor* grad, Reduction red) {
  check_shape(target, out.shape(), "mse target");
  if (out.rank() < 1 || out.batch() < 1) throw ShapeError("mse expects a batch, got " + out.shape().str());
  const int N = out.batch();
  const size_t D = out.sample_size();
  if (grad) grad->resize(out.shape());
  const double div = divisor(N, red);
  LossResult r;
  for (int n = 0; n < N; ++n) {
    double s = 0;
    for (size_t i = n * D; i < (n + 1) * D; ++i) {
      const double d = double(out[i]) - target[i];
      s += d * d;
      if (grad) (*grad)[i] = float(2 * d / double(D) / div);
    }
    r.per_sample.push_back(s / double(D));
  }
  reduce(r, red);
  return r;
}

LossResult distillation_kl(const Tensor& student, const Tensor& teacher, double T, Tensor* grad, Reduction red) {
  check_logits(student, "distillation loss");
  check_shape(teacher, student.shape(), "distillation teacher logits");
  if (!(T > 0) || !std::isfinite(T))
    throw std::invalid_argument("distillation temperature must be a finite number > 0, got " + std::to_string(T));
  const int N = student.dim(0), K = student.dim(1);
  if (grad) grad->resize(student.shape());
  const double div = divisor(N, red);
  LossResult r;
  std::vector<double> ps, pt;
  for (int n = 0; n < N; ++n) {
    const float *zs = student.data() + size_t(n) * K, *zt = teacher.data() + size_t(n) * K;
    const double ls = log_softmax(zs, K, T, ps), lt = log_softmax(zt, K, T, pt);
    double kl = 0;  // Σ p_t (log p_t − log p_s), with log p = z/T − lse
    for (int k = 0; k < K; ++k)
      if (pt[k] > 0) kl += pt[k] * ((zt[k] / T - lt) - (zs[k] / T - ls));
    r.per_sample.push_back(T * T * kl);
    r.correct += argmax(zs, K) == argmax(zt, K);
    if (grad) {
      float* g = grad->data() + size_t(n) * K;
      for (int k = 0; k < K; ++k) g[k] = float(T * (ps[k] - pt[k]) / div);
    }
  }
  reduce(r, red);
  return r;
}

}  // namespace gb
