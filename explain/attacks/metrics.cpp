#include "explain/attacks/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace gb::attacks {

Tensor importance(const Tensor& a) {
  if (a.rank() != 4) throw ShapeError("importance maps need [N, C, H, W] attributions, got " + a.shape().str());
  const int N = a.dim(0), C = a.dim(1);
  const size_t P = size_t(a.dim(2)) * a.dim(3);
  Tensor m(Shape{N, 1, a.dim(2), a.dim(3)});
  for (int n = 0; n < N; ++n) {
    float* out = m.data() + n * P;
    double total = 0;
    for (size_t i = 0; i < P; ++i) {
      double s = 0;
      for (int c = 0; c < C; ++c) s += std::fabs(a[(size_t(n) * C + c) * P + i]);
      out[i] = float(s);
      total += s;
    }
    if (total > 0)
      for (size_t i = 0; i < P; ++i) out[i] = float(out[i] * double(P) / total);
  }
  return m;
}

void importance_backward(const Tensor& m, const Tensor& I, const Tensor& dI, Tensor& dm) {
  if (m.rank() != 4 || I.shape() != Shape{m.dim(0), 1, m.dim(2), m.dim(3)} || dI.shape() != I.shape())
    throw ShapeError("importance_backward: attribution " + m.shape().str() + ", map " + I.shape().str() +
                     ", map gradient " + dI.shape().str());
  const int R = m.dim(0), C = m.dim(1);
  const size_t P = size_t(m.dim(2)) * m.dim(3);
  dm.resize(m.shape());
  for (int r = 0; r < R; ++r) {
    const float* mr = m.data() + size_t(r) * C * P;
    const float *ir = I.data() + r * P, *dr = dI.data() + r * P;
    double total = 0, mix = 0;
    for (size_t i = 0; i < C * P; ++i) total += std::fabs(mr[i]);
    for (size_t i = 0; i < P; ++i) mix += double(dr[i]) * ir[i] / double(P);
    const double k = total > 0 ? double(P) / total : 0.0;
    float* out = dm.data() + size_t(r) * C * P;
    for (int c = 0; c < C; ++c)
      for (size_t i = 0; i < P; ++i) {
        const float v = mr[c * P + i];
        const float sign = v > 0 ? 1.f : v < 0 ? -1.f : 0.f;
        out[c * P + i] = float(sign * k * (dr[i] - mix));
      }
  }
}

std::vector<int> top_k(const float* m, int n, int k) {
  k = std::clamp(k, 0, n);
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [m](int i, int j) { return m[i] > m[j] || (m[i] == m[j] && i < j); });
  idx.resize(k);
  return idx;
}

double topk_intersection(const float* a, const float* b, int n, int k) {
  std::vector<int> ta = top_k(a, n, k), tb = top_k(b, n, k);
  if (ta.empty()) return 1;
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  std::vector<int> both;
  std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(both));
  return double(both.size()) / double(ta.size());
}

// Ranks 1..n with ties given their average rank.
template <class T>
static std::vector<double> ranks(const T* v, int n) {
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [v](int i, int j) { return v[i] < v[j]; });
  std::vector<double> r(n);
  for (int i = 0; i < n;) {
    int j = i;
    while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (int t = i; t <= j; ++t) r[idx[t]] = (i + j) / 2.0 + 1;
    i = j + 1;
  }
  return r;
}

double spearman(const float* a, const float* b, int n) {
  const std::vector<double> ra = ranks(a, n), rb = ranks(b, n);
  const double mean = (n + 1) / 2.0;
  double sab = 0, saa = 0, sbb = 0;
  for (int i = 0; i < n; ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

std::array<double, 2> center_of_mass(const float* m, int H, int W) {
  double total = 0, y = 0, x = 0;
  for (int i = 0; i < H; ++i)
    for (int j = 0; j < W; ++j) {
      const double v = m[i * W + j];
      total += v, y += v * i, x += v * j;
    }
  if (total <= 0) return {(H - 1) / 2.0, (W - 1) / 2.0};
  return {y / total, x / total};
}

double roc_auc(const std::vector<double>& negatives, const std::vector<double>& positives) {
  if (negatives.empty() || positives.empty()) throw std::invalid_argument("ROC-AUC needs scores of both classes");
  // Average ranks over the pooled scores: AUC = (R⁺ − n⁺(n⁺ + 1)/2) / (n⁺ n⁻).
  std::vector<double> pooled = positives;
  pooled.insert(pooled.end(), negatives.begin(), negatives.end());
  for (double v : pooled)
    if (std::isnan(v)) throw std::invalid_argument("ROC-AUC: a score is NaN");
  const std::vector<double> r = ranks(pooled.data(), int(pooled.size()));
  const double np = double(positives.size()), nn = double(negatives.size());
  double rp = 0;
  for (size_t i = 0; i < positives.size(); ++i) rp += r[i];
  return (rp - np * (np + 1) / 2) / (np * nn);
}

}  // namespace gb::attacks
