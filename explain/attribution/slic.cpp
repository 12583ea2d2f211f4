#include "explain/attribution/slic.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace gb::explain {

namespace {

// Per-pixel features, F values per pixel (F = 3 for Lab, else C).
std::vector<double> features(const float* img, int C, int H, int W, int& F) {
  const size_t HW = size_t(H) * W, n = HW * C;
  auto [lo, hi] = std::minmax_element(img, img + n);
  const double a = *lo, span = *hi > *lo ? double(*hi) - a : 1.0;
  F = C;
  std::vector<double> f(HW * F);
  if (C != 3) {
    for (size_t i = 0; i < HW; ++i)
      for (int c = 0; c < C; ++c) f[i * F + c] = (img[c * HW + i] - a) / span * 100.0;
    return f;
  }
  auto lin = [](double v) { return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4); };
  auto g = [](double t) { return t > 0.008856 ? std::cbrt(t) : 7.787 * t + 16.0 / 116.0; };
  for (size_t i = 0; i < HW; ++i) {
    const double r = lin((img[i] - a) / span), gr = lin((img[HW + i] - a) / span), b = lin((img[2 * HW + i] - a) / span);
    const double X = (0.412453 * r + 0.357580 * gr + 0.180423 * b) / 0.950456;
    const double Y = 0.212671 * r + 0.715160 * gr + 0.072169 * b;
    const double Z = (0.019334 * r + 0.119193 * gr + 0.950227 * b) / 1.088754;
    const double fx = g(X), fy = g(Y), fz = g(Z);
    f[i * 3] = 116.0 * fy - 16.0;
    f[i * 3 + 1] = 500.0 * (fx - fy);
    f[i * 3 + 2] = 200.0 * (fy - fz);
  }
  return f;
}

// Relabels so that every segment is one 4-connected component: pieces of a k-means label become
// their own segments, and pieces smaller than min_size join the segment left of (or above) their
// first pixel in raster order. That segment is already final and touches the piece, so the union
// stays connected. Labels come out as 0..count-1 in raster order.
int enforce_connectivity(std::vector<int>& labels, int H, int W, int min_size) {
  const int N = H * W;
  std::vector<int> out(N, -1), queue;
  queue.reserve(N);
  int count = 0;
  const int dy[4] = {-1, 1, 0, 0}, dx[4] = {0, 0, -1, 1};
  for (int start = 0; start < N; ++start) {
    if (out[start] >= 0) continue;
    int adjacent = -1;
    const int sy = start / W, sx = start % W;
    if (sx > 0) adjacent = out[start - 1];
    else if (sy > 0) adjacent = out[start - W];
    const int orig = labels[start], id = count++;
    queue.clear();
    queue.push_back(start);
    out[start] = id;
    for (size_t q = 0; q < queue.size(); ++q) {
      const int p = queue[q], py = p / W, px = p % W;
      for (int d = 0; d < 4; ++d) {
        const int ny = py + dy[d], nx = px + dx[d];
        if (ny < 0 || ny >= H || nx < 0 || nx >= W) continue;
        const int np = ny * W + nx;
        if (out[np] < 0 && labels[np] == orig) {
          out[np] = id;
          queue.push_back(np);
        }
      }
    }
    if (int(queue.size()) < min_size && adjacent >= 0) {
      for (int p : queue) out[p] = adjacent;
      --count;
    }
  }
  labels.swap(out);
  return count;
}

}  // namespace

Segmentation slic(const Tensor& image, const SlicOptions& o) {
  int C, H, W;
  if (image.rank() == 4 && image.dim(0) == 1) {
    C = image.dim(1), H = image.dim(2), W = image.dim(3);
  } else if (image.rank() == 3) {
    C = image.dim(0), H = image.dim(1), W = image.dim(2);
  } else {
    throw ShapeError("slic needs one image [C,H,W] or [1,C,H,W], got " + image.shape().str());
  }
  if (o.segments < 1 || o.compactness <= 0 || o.iterations < 0)
    throw std::invalid_argument("slic: needs segments ≥ 1, compactness > 0, iterations ≥ 0");
  int F = 0;
  const std::vector<double> f = features(image.data(), C, H, W, F);
  const int N = H * W;

  // Grid with ny·nx ≈ segments, cells as square as the image allows.
  const int ny = std::clamp(int(std::lround(std::sqrt(double(o.segments) * H / W))), 1, H);
  const int nx = std::clamp(int(std::lround(double(o.segments) / ny)), 1, W);
  const int K = ny * nx;
  const double S = std::sqrt(double(N) / K);
  const int R = int(std::ceil(S));  // search ±S around each centre: the 2S×2S window of the paper
  const double wspace = 1.0 / (S * S), wcol = 1.0 / (o.compactness * o.compactness);

  const int D = F + 2;  // centre: features, then y, x
  std::vector<double> ctr(size_t(K) * D);
  std::vector<int> labels(N);
  for (int i = 0; i < ny; ++i)
    for (int j = 0; j < nx; ++j) {
      double* c = &ctr[size_t(i * nx + j) * D];
      const double cy = (i + 0.5) * H / ny, cx = (j + 0.5) * W / nx;
      const int p = int(cy) * W + int(cx);
      for (int q = 0; q < F; ++q) c[q] = f[size_t(p) * F + q];
      c[F] = cy, c[F + 1] = cx;
    }
  for (int y = 0; y < H; ++y)  // a pixel no centre reaches keeps its grid cell
    for (int x = 0; x < W; ++x) labels[y * W + x] = (y * ny / H) * nx + x * nx / W;

  std::vector<double> dist(N), sum(size_t(K) * D);
  std::vector<int> cnt(K);
  for (int it = 0; it < o.iterations; ++it) {
    std::fill(dist.begin(), dist.end(), std::numeric_limits<double>::infinity());
    for (int k = 0; k < K; ++k) {
      const double* c = &ctr[size_t(k) * D];
      const int y0 = std::max(0, int(std::floor(c[F])) - R), y1 = std::min(H - 1, int(std::floor(c[F])) + R);
      const int x0 = std::max(0, int(std::floor(c[F + 1])) - R), x1 = std::min(W - 1, int(std::floor(c[F + 1])) + R);
      for (int y = y0; y <= y1; ++y)
        for (int x = x0; x <= x1; ++x) {
          const int p = y * W + x;
          double dc = 0;
          for (int q = 0; q < F; ++q) {
            const double d = f[size_t(p) * F + q] - c[q];
            dc += d * d;
          }
          // Pixel centres sit at +0.5, like the grid centres.
          const double ddy = y + 0.5 - c[F], ddx = x + 0.5 - c[F + 1];
          const double dd = dc * wcol + (ddy * ddy + ddx * ddx) * wspace;
          if (dd < dist[p]) dist[p] = dd, labels[p] = k;
        }
    }
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(cnt.begin(), cnt.end(), 0);
    for (int p = 0; p < N; ++p) {
      double* s = &sum[size_t(labels[p]) * D];
      for (int q = 0; q < F; ++q) s[q] += f[size_t(p) * F + q];
      s[F] += p / W + 0.5, s[F + 1] += p % W + 0.5;
      cnt[labels[p]]++;
    }
    for (int k = 0; k < K; ++k)
      if (cnt[k])  // an empty cluster keeps its centre
        for (int q = 0; q < D; ++q) ctr[size_t(k) * D + q] = sum[size_t(k) * D + q] / cnt[k];
  }

  Segmentation seg;
  seg.height = H, seg.width = W;
  const int min_size = std::max(1, int(o.min_size_factor * N / std::max(1, o.segments)));
  seg.count = enforce_connectivity(labels, H, W, min_size);
  seg.labels = std::move(labels);
  return seg;
}

}  // namespace gb::explain
