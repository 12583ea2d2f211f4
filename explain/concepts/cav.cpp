#include "explain/concepts/cav.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "engine/interrupt.h"
#include "engine/rng.h"
#include "explain/concepts/patterns.h"

namespace gb::concepts {

namespace {

// sklearn's Hinge(threshold=1) and Log losses at margin z = y·p, with dloss = ∂loss/∂p.
double loss_at(Loss l, double p, double y) {
  const double z = p * y;
  if (l == Loss::hinge) return z <= 1 ? 1 - z : 0;
  if (z > 18) return std::exp(-z);
  if (z < -18) return -z;
  return std::log1p(std::exp(-z));
}

double dloss_at(Loss l, double p, double y) {
  const double z = p * y;
  if (l == Loss::hinge) return z <= 1 ? -y : 0;
  if (z > 18) return std::exp(-z) * -y;
  if (z < -18) return -y;
  return -y / (std::exp(z) + 1);
}

// In four running sums, which the compiler vectorizes (one sum would be a chain of dependent adds);
// the order is fixed, so results are the same on every run.
double dot(const double* w, const float* x, int D) {
  double s[4] = {0, 0, 0, 0};
  int d = 0;
  for (; d + 4 <= D; d += 4)
    for (int k = 0; k < 4; ++k) s[k] += w[d + k] * x[d + k];
  for (; d < D; ++d) s[0] += w[d] * x[d];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

}  // namespace

LinearFit fit_sgd(const Tensor& X, const std::vector<int>& y, const std::vector<int>& rows_given, const SgdOptions& o) {
  if (X.rank() != 2) throw ShapeError("fit_sgd: expected rows [N, D], got " + X.shape().str());
  const int N = X.batch(), D = X.dim(1);
  if (int(y.size()) != N) throw std::invalid_argument("fit_sgd: one label per row needed");
  if (!(o.alpha > 0) || o.max_iter < 1 || o.n_iter_no_change < 1)
    throw std::invalid_argument("fit_sgd: alpha must be > 0, max_iter and n_iter_no_change >= 1");
  std::vector<int> rows = rows_given;
  if (rows.empty()) {
    rows.resize(N);
    std::iota(rows.begin(), rows.end(), 0);
  }
  for (int r : rows)
    if (r < 0 || r >= N || (y[r] != 1 && y[r] != -1))
      throw std::invalid_argument("fit_sgd: rows must index X and labels must be -1 or +1");

  // sklearn's "optimal" schedule: typw = sqrt(1/sqrt(α)), η0 = typw / max(1, dloss(−typw, 1)),
  // t0 = 1/(α η0); η at step t (from 1) = 1/(α (t0 + t − 1)). dloss(−typw, 1) is −1 (hinge) or
  // in (−1, 0) (log), so η0 = typw for both losses.
  const double typw = std::sqrt(1 / std::sqrt(o.alpha));
  const double eta0 = typw / std::max(1.0, dloss_at(o.loss, -typw, 1));
  const double t0 = 1 / (eta0 * o.alpha);

  LinearFit f;
  f.w.assign(D, 0.0);
  double scale = 1;  // w = scale · v, so the L2 shrink costs one multiply (sklearn's WeightVector)
  std::vector<double>& v = f.w;
  Rng rng(o.seed);
  double best = std::numeric_limits<double>::infinity(), t = 1;
  int no_improvement = 0;
  const int n = int(rows.size());
  for (int epoch = 1; epoch <= o.max_iter; ++epoch) {
    poll_interrupt();  // fits have no forward passes to stop at
    for (int i = n - 1; i > 0; --i) std::swap(rows[i], rows[rng.below(uint32_t(i + 1))]);  // Fisher-Yates
    double sumloss = 0;
    for (int r : rows) {
      const float* x = X.data() + size_t(r) * D;
      const double p = scale * dot(v.data(), x, D) + f.b, yy = y[r];
      const double eta = 1 / (o.alpha * (t0 + t - 1));
      sumloss += loss_at(o.loss, p, yy);
      const double update = -eta * std::clamp(dloss_at(o.loss, p, yy), -1e12, 1e12);
      scale *= std::max(0.0, 1 - eta * o.alpha);
      if (scale < 1e-9) {  // fold the scale back in before it underflows
        for (double& e : v) e *= scale;
        scale = 1;
      }
      if (update != 0) {
        const double u = update / scale;
        for (int d = 0; d < D; ++d) v[d] += u * x[d];
        f.b += update;
      }
      t += 1;
    }
    f.epochs = epoch;
    if (!std::isfinite(sumloss)) throw std::runtime_error("fit_sgd: the loss is not finite (activations too large?)");
    no_improvement = sumloss > best - o.tol * n ? no_improvement + 1 : 0;
    best = std::min(best, sumloss);
    if (no_improvement >= o.n_iter_no_change) {
      f.converged = true;
      break;
    }
  }
  for (double& e : v) e *= scale;
  return f;
}

namespace {

// Row indices of one set split at random into training and held-out rows.
void split_set(int first, int count, double test_fraction, Rng& rng, std::vector<int>& train, std::vector<int>& test) {
  std::vector<int> idx(count);
  std::iota(idx.begin(), idx.end(), first);
  for (int i = count - 1; i > 0; --i) std::swap(idx[i], idx[rng.below(uint32_t(i + 1))]);
  const int held = std::clamp(int(std::lround(test_fraction * count)), 1, count - 1);
  test.insert(test.end(), idx.begin(), idx.begin() + held);
  train.insert(train.end(), idx.begin() + held, idx.end());
}

double accuracy(const Tensor& X, const std::vector<int>& y, const std::vector<int>& rows, const LinearFit& f) {
  if (rows.empty()) return 0;
  int right = 0;
  for (int r : rows) {
    const double p = dot(f.w.data(), X.data() + size_t(r) * X.dim(1), X.dim(1)) + f.b;
    right += (p > 0 ? 1 : -1) == y[r];
  }
  return double(right) / double(rows.size());
}

}  // namespace

Cav train_cav(const Tensor& positive, const Tensor& other, const CavOptions& o) {
  if (positive.rank() != 2 || other.rank() != 2 || positive.dim(1) != other.dim(1))
    throw ShapeError("train_cav: expected [n1, D] and [n2, D] activations, got " + positive.shape().str() + " and " +
                     other.shape().str());
  const int n1 = positive.batch(), n2 = other.batch(), D = positive.dim(1);
  if (n1 < 2 || n2 < 2) throw std::invalid_argument("train_cav: each set needs at least 2 examples");
  if (!(o.test_fraction > 0 && o.test_fraction < 1)) throw std::invalid_argument("train_cav: test_fraction must be in (0, 1)");
  Tensor X({n1 + n2, D});
  std::copy_n(positive.data(), positive.size(), X.data());
  std::copy_n(other.data(), other.size(), X.data() + positive.size());
  std::vector<int> y(n1 + n2, -1);
  std::fill(y.begin(), y.begin() + n1, 1);
  Rng rng(mix_seed(o.sgd.seed, 0x73706c6974));  // the split's stream, apart from the epochs'
  Cav c;
  std::vector<int> train, test;
  split_set(0, n1, o.test_fraction, rng, train, test);
  split_set(n1, n2, o.test_fraction, rng, train, test);
  c.fit = fit_sgd(X, y, train, o.sgd);
  double norm = 0, scale = 0, lo = HUGE_VAL, hi = -HUGE_VAL;  // scale: the largest activation row's norm
  for (double w : c.fit.w) norm += w * w;
  norm = std::sqrt(norm);
  for (int r = 0; r < n1 + n2; ++r) {
    double s = 0, p = 0;
    for (int d = 0; d < D; ++d) {
      const double x = X[size_t(r) * D + d];
      s += x * x, p += c.fit.w[d] * x;
    }
    scale = std::max(scale, std::sqrt(s));
    lo = std::min(lo, p), hi = std::max(hi, p);
  }
  // Where every row's projection on the weights is the same (the activations of both sets identical,
  // or the weights zero), the weights separate nothing: normalized, they were a unit CAV of consistent
  // sign that scored 0 or 1 in every run, and TCAV called the concept significant.
  if (!(hi - lo > 1e-9 * norm * scale))
    throw std::runtime_error("the CAV classifier's weights separate nothing: the concept's and the other set's "
                             "activations cannot be told apart at this layer");
  c.direction.resize(D);
  for (int d = 0; d < D; ++d) c.direction[d] = float(c.fit.w[d] / norm);
  c.accuracy = accuracy(X, y, test, c.fit);
  c.train_accuracy = accuracy(X, y, train, c.fit);
  c.n_train = int(train.size());
  c.n_test = int(test.size());
  return c;
}

}  // namespace gb::concepts
