#include "explain/metrics/similarity.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace gb::metrics {

std::vector<double> average_ranks(const float* v, size_t n) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [v](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && v[order[j]] == v[order[i]]) ++j;
    const double r = 0.5 * double(i + j + 1);  // the mean of ranks i+1 .. j
    for (size_t k = i; k < j; ++k) rank[order[k]] = r;
    i = j;
  }
  return rank;
}

double pearson(const double* a, const double* b, size_t n) {
  if (n < 2) return NAN;
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i], mb += b[i];
  ma /= double(n), mb /= double(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    const double da = a[i] - ma, db = b[i] - mb;
    sab += da * db, saa += da * da, sbb += db * db;
  }
  if (saa == 0 || sbb == 0) return NAN;
  return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

double pearson(const float* a, const float* b, size_t n) {
  std::vector<double> da(a, a + n), db(b, b + n);
  return pearson(da.data(), db.data(), n);
}

double spearman(const float* a, const float* b, size_t n) {
  const std::vector<double> ra = average_ranks(a, n), rb = average_ranks(b, n);
  return pearson(ra.data(), rb.data(), n);
}

// Means of v over every win×win window that fits, row-major ((H−win+1)×(W−win+1) values), by
// summed-area table.
static std::vector<double> window_means(const std::vector<double>& v, int H, int W, int win) {
  std::vector<double> s(size_t(H + 1) * (W + 1), 0.0);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      s[size_t(y + 1) * (W + 1) + x + 1] =
          v[size_t(y) * W + x] + s[size_t(y) * (W + 1) + x + 1] + s[size_t(y + 1) * (W + 1) + x] - s[size_t(y) * (W + 1) + x];
  const int h = H - win + 1, w = W - win + 1;
  std::vector<double> m(size_t(h) * w);
  const double area = double(win) * win;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      m[size_t(y) * w + x] = (s[size_t(y + win) * (W + 1) + x + win] - s[size_t(y) * (W + 1) + x + win] -
                              s[size_t(y + win) * (W + 1) + x] + s[size_t(y) * (W + 1) + x]) /
                             area;
  return m;
}

double ssim(const float* a, const float* b, int H, int W, double data_range) {
  const int win = 7;
  if (H < win || W < win || !(data_range > 0)) return NAN;
  const size_t n = size_t(H) * W;
  std::vector<double> A(a, a + n), B(b, b + n), AA(n), BB(n), AB(n);
  for (size_t i = 0; i < n; ++i) AA[i] = A[i] * A[i], BB[i] = B[i] * B[i], AB[i] = A[i] * B[i];
  const std::vector<double> ma = window_means(A, H, W, win), mb = window_means(B, H, W, win),
                            maa = window_means(AA, H, W, win), mbb = window_means(BB, H, W, win),
                            mab = window_means(AB, H, W, win);
  const double np = double(win) * win, cov = np / (np - 1);  // sample covariances, as skimage
  const double c1 = (0.01 * data_range) * (0.01 * data_range), c2 = (0.03 * data_range) * (0.03 * data_range);
  // skimage filters with "reflect" borders and then crops (win − 1)/2 pixels on every side, which
  // leaves exactly the windows that lie inside the image.
  double total = 0;
  for (size_t i = 0; i < ma.size(); ++i) {
    const double vx = cov * (maa[i] - ma[i] * ma[i]), vy = cov * (mbb[i] - mb[i] * mb[i]),
                 vxy = cov * (mab[i] - ma[i] * mb[i]);
    total += ((2 * ma[i] * mb[i] + c1) * (2 * vxy + c2)) / ((ma[i] * ma[i] + mb[i] * mb[i] + c1) * (vx + vy + c2));
  }
  return total / double(ma.size());
}

std::vector<float> hog(const float* img, int H, int W, int cell, int bins, int block) {
  const int cy = H / cell, cx = W / cell;
  if (cy < block || cx < block) return {};
  // Cell histograms of gradient magnitude by unsigned orientation (skimage: no interpolation
  // between bins or cells; rows and columns at the border have zero gradient along their axis).
  std::vector<double> hist(size_t(cy) * cx * bins, 0.0);
  for (int y = 0; y < cy * cell; ++y)
    for (int x = 0; x < cx * cell; ++x) {
      const double gr = (y > 0 && y < H - 1) ? double(img[(y + 1) * W + x]) - img[(y - 1) * W + x] : 0.0;
      const double gc = (x > 0 && x < W - 1) ? double(img[y * W + x + 1]) - img[y * W + x - 1] : 0.0;
      const double mag = std::hypot(gr, gc);
      double deg = std::atan2(gr, gc) * 180.0 / M_PI;
      if (deg < 0) deg += 180.0;
      if (deg >= 180.0) deg -= 180.0;
      const int bin = std::min(bins - 1, int(deg / (180.0 / bins)));
      hist[(size_t(y / cell) * cx + x / cell) * bins + bin] += mag / (double(cell) * cell);
    }
  std::vector<float> out;
  const double eps = 1e-5;
  std::vector<double> v(size_t(block) * block * bins);
  for (int by = 0; by + block <= cy; ++by)
    for (int bx = 0; bx + block <= cx; ++bx) {
      size_t i = 0;
      for (int y = by; y < by + block; ++y)
        for (int x = bx; x < bx + block; ++x)
          for (int k = 0; k < bins; ++k) v[i++] = hist[(size_t(y) * cx + x) * bins + k];
      for (int pass = 0; pass < 2; ++pass) {  // L2-Hys: normalise, clip at 0.2, normalise again
        double ss = 0;
        for (double e : v) ss += e * e;
        const double norm = std::sqrt(ss + eps * eps);
        for (double& e : v) e = pass == 0 ? std::min(e / norm, 0.2) : e / norm;
      }
      for (double e : v) out.push_back(float(e));
    }
  return out;
}

double trapezoid(const double* y, size_t n, double dx) {
  double s = 0;
  for (size_t i = 1; i < n; ++i) s += 0.5 * (y[i - 1] + y[i]) * dx;
  return s;
}

}  // namespace gb::metrics
