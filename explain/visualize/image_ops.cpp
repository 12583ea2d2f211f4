#include "explain/visualize/image_ops.h"

#include <algorithm>
#include <cmath>

namespace gb::visualize {

namespace {
void require_images(const Tensor& x, const char* what) {
  if (x.rank() != 4) throw ShapeError(std::string(what) + " needs images [R,C,H,W], got " + x.shape().str());
}
}  // namespace

void clip(Tensor& x, const Bounds& b) {
  require_images(x, "clip");
  const int R = x.dim(0), C = x.dim(1);
  const size_t HW = size_t(x.dim(2)) * x.dim(3);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float* p = x.data() + (size_t(r) * C + c) * HW;
      const float lo = b.low(c), hi = b.high(c);
      for (size_t i = 0; i < HW; ++i) p[i] = std::clamp(p[i], lo, hi);
    }
}

Tensor to_pixels(const Tensor& x, const Bounds& b) {
  require_images(x, "to_pixels");
  Tensor p = x.clone();
  const int R = x.dim(0), C = x.dim(1);
  const size_t HW = size_t(x.dim(2)) * x.dim(3);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float* q = p.data() + (size_t(r) * C + c) * HW;
      for (size_t i = 0; i < HW; ++i) q[i] = b.to_pixel(c, q[i]);
    }
  return p;
}

void roll(const Tensor& x, const std::vector<int>& dy, const std::vector<int>& dx, Tensor& out, int sign) {
  require_images(x, "roll");
  out.resize(x.shape());
  const int R = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  for (int r = 0; r < R; ++r) {
    // out[y, x] = in[y - dy, x - dx] (numpy.roll by +dy, +dx), indices taken modulo the size.
    const int sy = ((sign * dy[r]) % H + H) % H, sx = ((sign * dx[r]) % W + W) % W;
    for (int c = 0; c < C; ++c) {
      const float* in = x.data() + (size_t(r) * C + c) * H * W;
      float* o = out.data() + (size_t(r) * C + c) * H * W;
      for (int y = 0; y < H; ++y) {
        const float* row = in + size_t((y - sy + H) % H) * W;
        float* orow = o + size_t(y) * W;
        std::copy(row + (W - sx), row + W, orow);
        std::copy(row, row + (W - sx), orow + sx);
      }
    }
  }
}

Resize::Resize(int h, int w, int H, int W) : h(h), w(w), H(H), W(W) {
  auto taps = [](int in, int out) {
    std::vector<Tap> v(out);
    const double scale = double(in) / out;
    for (int d = 0; d < out; ++d) {
      const double s = std::max(0.0, (d + 0.5) * scale - 0.5);  // PyTorch clamps negative source coordinates
      const int i0 = std::min(int(s), in - 1);
      v[d] = {i0, std::min(i0 + 1, in - 1), float(s - i0)};
    }
    return v;
  };
  ty_ = taps(h, H);
  tx_ = taps(w, W);
}

void Resize::forward(const Tensor& in, Tensor& out) const {
  require_images(in, "resize");
  if (in.dim(2) != h || in.dim(3) != w) shape_error("resize input", Shape{in.dim(0), in.dim(1), h, w}, in.shape());
  out.resize(Shape{in.dim(0), in.dim(1), H, W});
  const size_t planes = size_t(in.dim(0)) * in.dim(1);
  for (size_t p = 0; p < planes; ++p) {
    const float* src = in.data() + p * h * w;
    float* dst = out.data() + p * H * W;
    for (int y = 0; y < H; ++y) {
      const float *r0 = src + size_t(ty_[y].i0) * w, *r1 = src + size_t(ty_[y].i1) * w;
      const float a = ty_[y].t;
      for (int x = 0; x < W; ++x) {
        const Tap& c = tx_[x];
        const float top = r0[c.i0] + c.t * (r0[c.i1] - r0[c.i0]);
        const float bot = r1[c.i0] + c.t * (r1[c.i1] - r1[c.i0]);
        dst[size_t(y) * W + x] = top + a * (bot - top);
      }
    }
  }
}

void Resize::adjoint(const Tensor& g, Tensor& g_in) const {
  require_images(g, "resize adjoint");
  if (g.dim(2) != H || g.dim(3) != W) shape_error("resize adjoint input", Shape{g.dim(0), g.dim(1), H, W}, g.shape());
  g_in.resize(Shape{g.dim(0), g.dim(1), h, w});
  g_in.fill(0.f);
  const size_t planes = size_t(g.dim(0)) * g.dim(1);
  for (size_t p = 0; p < planes; ++p) {
    const float* src = g.data() + p * H * W;
    float* dst = g_in.data() + p * h * w;
    for (int y = 0; y < H; ++y) {
      float *r0 = dst + size_t(ty_[y].i0) * w, *r1 = dst + size_t(ty_[y].i1) * w;
      const float a = ty_[y].t;
      for (int x = 0; x < W; ++x) {
        const Tap& c = tx_[x];
        const float v = src[size_t(y) * W + x];
        const float top = (1 - a) * v, bot = a * v;  // the forward's weights, transposed
        r0[c.i0] += (1 - c.t) * top;
        r0[c.i1] += c.t * top;
        r1[c.i0] += (1 - c.t) * bot;
        r1[c.i1] += c.t * bot;
      }
    }
  }
}

Tensor resize(const Tensor& x, int H, int W) {
  require_images(x, "resize");
  Tensor out;
  Resize(x.dim(2), x.dim(3), H, W).forward(x, out);
  return out;
}

Spectrum::Spectrum(int H, int W, double decay) : H_(H), W_(W), cas_h_(size_t(H) * H), cas_w_(size_t(W) * W), scale_(size_t(H) * W) {
  auto cas = [](int n, std::vector<float>& m) {
    for (int k = 0; k < n; ++k)
      for (int j = 0; j < n; ++j) {
        const double t = 2 * M_PI * double(k) * j / n;
        m[size_t(k) * n + j] = float((std::cos(t) + std::sin(t)) / std::sqrt(double(n)));
      }
  };
  cas(H, cas_h_);
  cas(W, cas_w_);
  auto freq = [](int k, int n) { return double(k <= (n - 1) / 2 ? k : k - n) / n; };  // numpy.fft.fftfreq
  for (int i = 0; i < H; ++i)
    for (int j = 0; j < W; ++j) {
      const double f = std::hypot(freq(i, H), freq(j, W));
      scale_[size_t(i) * W + j] = float(1.0 / std::pow(std::max(f, 1.0 / std::max(H, W)), decay));
    }
}

void Spectrum::transform(const float* in, float* out, std::vector<float>& tmp) const {
  tmp.assign(size_t(H_) * W_, 0.f);
  for (int i = 0; i < H_; ++i)  // rows: tmp = in · cas_w
    for (int k = 0; k < W_; ++k) {
      float s = 0;
      for (int j = 0; j < W_; ++j) s += in[size_t(i) * W_ + j] * cas_w_[size_t(j) * W_ + k];
      tmp[size_t(i) * W_ + k] = s;
    }
  for (int k = 0; k < H_; ++k)  // columns: out = cas_h · tmp
    for (int j = 0; j < W_; ++j) {
      float s = 0;
      for (int i = 0; i < H_; ++i) s += cas_h_[size_t(k) * H_ + i] * tmp[size_t(i) * W_ + j];
      out[size_t(k) * W_ + j] = s;
    }
}

void Spectrum::image(const Tensor& p, Tensor& x) const {
  require_images(p, "spectrum");
  x.resize(p.shape());
  std::vector<float> scaled(size_t(H_) * W_), tmp;
  const size_t planes = size_t(p.dim(0)) * p.dim(1), n = size_t(H_) * W_;
  for (size_t q = 0; q < planes; ++q) {
    for (size_t i = 0; i < n; ++i) scaled[i] = scale_[i] * p[q * n + i];
    transform(scaled.data(), x.data() + q * n, tmp);
  }
}

void Spectrum::adjoint(const Tensor& gx, Tensor& gp) const {
  require_images(gx, "spectrum");
  gp.resize(gx.shape());
  std::vector<float> tmp;
  const size_t planes = size_t(gx.dim(0)) * gx.dim(1), n = size_t(H_) * W_;
  for (size_t q = 0; q < planes; ++q) {
    transform(gx.data() + q * n, gp.data() + q * n, tmp);  // T is symmetric
    for (size_t i = 0; i < n; ++i) gp[q * n + i] *= scale_[i];
  }
}

void Spectrum::coefficients(const Tensor& x, Tensor& p) const {
  require_images(x, "spectrum");
  p.resize(x.shape());
  std::vector<float> tmp;
  const size_t planes = size_t(x.dim(0)) * x.dim(1), n = size_t(H_) * W_;
  for (size_t q = 0; q < planes; ++q) {
    transform(x.data() + q * n, p.data() + q * n, tmp);  // T is its own inverse
    for (size_t i = 0; i < n; ++i) p[q * n + i] /= scale_[i];
  }
}

void penalties(const Tensor& x, const Penalties& p, double* values, Tensor* grad) {
  require_images(x, "penalties");
  const int R = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const size_t D = x.sample_size();
  const double eps = p.tv_beta < 2 ? 1e-8 : 0.0;
  for (int r = 0; r < R; ++r) {
    const float* v = x.data() + size_t(r) * D;
    float* g = grad ? grad->data() + size_t(r) * D : nullptr;
    double total = 0;
    for (size_t i = 0; i < D; ++i) {
      const double a = v[i], m = std::fabs(a), sgn = a > 0 ? 1.0 : a < 0 ? -1.0 : 0.0;
      double d = 0;
      if (p.l2 != 0) total += p.l2 * a * a, d += 2 * p.l2 * a;
      if (p.l1 != 0) total += p.l1 * m, d += p.l1 * sgn;
      if (p.alpha_norm != 0 && m > 0)  // |x|^α and its gradient are 0 at 0 (α > 1)
        total += p.alpha_norm * std::pow(m, p.alpha), d += p.alpha_norm * p.alpha * std::pow(m, p.alpha - 1) * sgn;
      if (g) g[i] -= float(d);
    }
    if (p.tv != 0)
      for (int c = 0; c < C; ++c) {
        const float* q = v + size_t(c) * H * W;
        float* gq = g ? g + size_t(c) * H * W : nullptr;
        for (int i = 0; i < H; ++i)
          for (int j = 0; j < W; ++j) {
            // A missing neighbour's difference is 0 (the image continued by its edge).
            const size_t at = size_t(i) * W + j;
            const double dx = j + 1 < W ? q[at + 1] - q[at] : 0.0, dy = i + 1 < H ? q[at + W] - q[at] : 0.0;
            const double s = dx * dx + dy * dy + eps;
            if (s == 0) continue;  // β >= 2 here: value and gradient are 0
            total += p.tv * std::pow(s, p.tv_beta / 2);
            if (!gq) continue;
            // d/dq of s^{β/2} = (β/2) s^{β/2-1} · ds, ds/dq[at+1] = 2dx, ds/dq[at+W] = 2dy, ds/dq[at] = -2(dx+dy)
            const double k = p.tv * p.tv_beta * std::pow(s, p.tv_beta / 2 - 1);
            if (j + 1 < W) gq[at + 1] -= float(k * dx);
            if (i + 1 < H) gq[at + W] -= float(k * dy);
            gq[at] += float(k * (dx + dy));
          }
      }
    values[r] = total;
  }
}

double tv_mean(const float* m, int H, int W, double beta, float* grad, double scale) {
  double rows = 0, cols = 0;
  const double nr = double(H - 1) * W, nc = double(H) * (W - 1);
  for (int i = 0; i < H; ++i)
    for (int j = 0; j < W; ++j) {
      const size_t at = size_t(i) * W + j;
      if (i + 1 < H && nr > 0) {
        const double d = m[at + W] - m[at], a = std::fabs(d);
        rows += std::pow(a, beta) / nr;
        if (grad && a > 0) {
          const double k = scale * beta * std::pow(a, beta - 1) * (d > 0 ? 1 : -1) / nr;
          grad[at + W] += float(k);
          grad[at] -= float(k);
        }
      }
      if (j + 1 < W && nc > 0) {
        const double d = m[at + 1] - m[at], a = std::fabs(d);
        cols += std::pow(a, beta) / nc;
        if (grad && a > 0) {
          const double k = scale * beta * std::pow(a, beta - 1) * (d > 0 ? 1 : -1) / nc;
          grad[at + 1] += float(k);
          grad[at] -= float(k);
        }
      }
    }
  return rows + cols;
}

}  // namespace gb::visualize
