#include "explain/surrogates/drawing.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "engine/argmax.h"
#include "explain/common/plot.h"

namespace gb::explain::surrogates {

void paste(Image& dst, const Image& src, int x, int y) {
  for (int yy = 0; yy < src.h; ++yy) {
    if (y + yy < 0 || y + yy >= dst.h) continue;
    for (int xx = 0; xx < src.w; ++xx)
      if (x + xx >= 0 && x + xx < dst.w) std::copy_n(src.px(xx, yy), 3, dst.px(x + xx, y + yy));
  }
}

void fill_rect(Image& im, int x0, int y0, int x1, int y1, Color c) {
  for (int y = std::max(0, y0); y < std::min(im.h, y1); ++y)
    for (int x = std::max(0, x0); x < std::min(im.w, x1); ++x) {
      uint8_t* p = im.px(x, y);
      p[0] = c.r, p[1] = c.g, p[2] = c.b;
    }
}

void frame(Image& im, int x0, int y0, int x1, int y1, Color c, int t) {
  fill_rect(im, x0 - t, y0 - t, x1 + t, y0, c);
  fill_rect(im, x0 - t, y1, x1 + t, y1 + t, c);
  fill_rect(im, x0 - t, y0, x0, y1, c);
  fill_rect(im, x1, y0, x1 + t, y1, c);
}

// Bresenham, each point a t x t square.
void line(Image& im, int x0, int y0, int x1, int y1, Color c, int t) {
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    fill_rect(im, x0 - t / 2, y0 - t / 2, x0 - t / 2 + t, y0 - t / 2 + t, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

// Cut to max_width with the cut marked (".."): "Pullover wit" passed for a whole name.
static std::string cut(const std::string& s, int max_width) {
  return max_width > 0 ? fit_text(s, kLabelScale, max_width) : s;
}

void text(Image& im, int x, int y, const std::string& s, Color c, int max_width) {
  const uint8_t rgb[3] = {c.r, c.g, c.b};
  draw_text(im, x, y, cut(s, max_width), rgb);
}

void text_centred(Image& im, int x, int y, const std::string& s, Color c, int max_width) {
  const std::string t = cut(s, max_width);
  text(im, x - text_width(t) / 2, y, t, c);
}

Image signed_map(const Tensor& chw, int w, int h) {
  const Shape s = chw.rank() == 4 ? chw.shape().sample() : chw.shape();
  const int C = s[0], H = s[1], W = s[2];
  std::vector<double> v(size_t(H) * W, 0.0);
  double m = 0;
  for (int i = 0; i < H * W; ++i) {
    for (int c = 0; c < C; ++c) v[i] += chw[size_t(c) * H * W + i];
    m = std::max(m, std::fabs(v[i]));
  }
  Image small(W, H);
  for (int i = 0; i < H * W; ++i) colormap_rgb("bwr", m > 0 ? v[i] / m : 0.0, small.rgb.data() + size_t(i) * 3);
  return resize_nearest(small, w, h);
}

Image pixels(const Tensor& chw, int w, int h) {
  const Shape s = chw.rank() == 4 ? chw.shape().sample() : chw.shape();
  return resize_nearest(to_image(chw.reshaped(s)), w, h);
}

Image distribution_bars(const std::vector<float>& p, int w, int h, Color highlight) {
  Image im(w, h);
  const int K = int(p.size());
  if (!K) return im;
  const int top = argmax(p.data(), int(p.size()));
  const double bw = double(w - 2) / K;
  fill_rect(im, 0, h - 1, w, h, kGray);  // the baseline
  for (int k = 0; k < K; ++k) {
    const int x0 = 1 + int(k * bw), x1 = std::max(x0 + 1, 1 + int((k + 1) * bw) - (bw > 3 ? 1 : 0));
    const int bh = int(std::lround(std::clamp(double(p[k]), 0.0, 1.0) * (h - 1)));
    fill_rect(im, x0, h - 1 - bh, x1, h - 1, k == top ? highlight : kGray);
  }
  return im;
}

Shape display_shape(int features, const Shape& image) {
  if (image.rank == 3 && int(image.numel()) == features) return image;
  return Shape{1, 1, features};
}

}  // namespace gb::explain::surrogates
