#include "explain/common/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace gb::explain {

namespace {
// Source index pair and weight of the second one for each destination coordinate.
struct Tap {
  int i0, i1;
  float t;
};
std::vector<Tap> taps(int in, int out) {
  std::vector<Tap> v(out);
  const double scale = double(in) / out;
  for (int d = 0; d < out; ++d) {
    double s = std::max(0.0, (d + 0.5) * scale - 0.5);  // PyTorch clamps negative source coords to 0
    int i0 = std::min(int(s), in - 1);
    v[d] = {i0, std::min(i0 + 1, in - 1), float(s - i0)};
  }
  return v;
}
}  // namespace

void resize_bilinear(const float* src, int h, int w, float* dst, int H, int W) {
  if (h == H && w == W) {
    std::memcpy(dst, src, sizeof(float) * size_t(h) * w);
    return;
  }
  const auto ty = taps(h, H), tx = taps(w, W);
  for (int y = 0; y < H; ++y) {
    const float* r0 = src + size_t(ty[y].i0) * w;
    const float* r1 = src + size_t(ty[y].i1) * w;
    const float a = ty[y].t;
    for (int x = 0; x < W; ++x) {
      const Tap& c = tx[x];
      float top = r0[c.i0] + c.t * (r0[c.i1] - r0[c.i0]);
      float bot = r1[c.i0] + c.t * (r1[c.i1] - r1[c.i0]);
      dst[size_t(y) * W + x] = top + a * (bot - top);
    }
  }
}

Tensor resize_bilinear(const Tensor& maps, int H, int W) {
  if (maps.rank() != 4) throw ShapeError("resize_bilinear needs [N,C,h,w], got " + maps.shape().str());
  const int h = maps.dim(2), w = maps.dim(3);
  Tensor out({maps.dim(0), maps.dim(1), H, W});
  const size_t planes = size_t(maps.dim(0)) * maps.dim(1);
  for (size_t p = 0; p < planes; ++p)
    resize_bilinear(maps.data() + p * h * w, h, w, out.data() + p * H * W, H, W);
  return out;
}

Tensor broadcast_channels(const Tensor& map, int C) {
  if (map.rank() != 4 || map.dim(1) != 1) throw ShapeError("broadcast_channels needs [N,1,H,W], got " + map.shape().str());
  const int N = map.dim(0);
  const size_t HW = size_t(map.dim(2)) * map.dim(3);
  Tensor out({N, C, map.dim(2), map.dim(3)});
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) std::memcpy(out.data() + (size_t(n) * C + c) * HW, map.data() + n * HW, sizeof(float) * HW);
  return out;
}

void require_images(const Tensor& x, const char* method) {
  if (x.rank() != 4)
    throw ShapeError(std::string(method) + " needs image inputs [N,C,H,W], got " + x.shape().str());
}

void gaussian_blur(Tensor& x, double sigma) {
  if (sigma <= 0) return;
  require_images(x, "gaussian_blur");
  const int radius = int(4.0 * sigma + 0.5);
  std::vector<float> k(2 * radius + 1);
  double total = 0;
  for (int i = -radius; i <= radius; ++i) total += k[i + radius] = float(std::exp(-0.5 * i * i / (sigma * sigma)));
  for (float& v : k) v = float(v / total);
  const int H = x.dim(2), W = x.dim(3);
  // scipy's 'reflect' mirrors about the edge between samples: index -1 is 0, -2 is 1, n is n-1.
  auto mirror = [](int i, int n) {
    const int period = 2 * n;
    i = ((i % period) + period) % period;
    return i < n ? i : period - 1 - i;
  };
  // Each line is copied once into a buffer padded with its mirror images, then convolved.
  std::vector<float> padded(std::max(H, W) + 2 * radius);
  auto blur_line = [&](const float* in, size_t stride, int n, float* out) {
    for (int i = -radius; i < n + radius; ++i) padded[i + radius] = in[size_t(mirror(i, n)) * stride];
    for (int i = 0; i < n; ++i) {
      float s = 0;
      for (int t = 0; t <= 2 * radius; ++t) s += k[t] * padded[i + t];
      out[size_t(i) * stride] = s;
    }
  };
  const size_t planes = size_t(x.dim(0)) * x.dim(1);
  for (size_t p = 0; p < planes; ++p) {
    float* plane = x.data() + p * H * W;
    for (int y = 0; y < H; ++y) blur_line(plane + size_t(y) * W, 1, W, plane + size_t(y) * W);  // rows
    for (int c = 0; c < W; ++c) blur_line(plane + c, W, H, plane + c);                        // columns
  }
}

}  // namespace gb::explain
