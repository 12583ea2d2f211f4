// Heatmaps and the labeled grid. Text comes from stb_easy_font, which emits axis-aligned quads;
// each pixel takes the part of it the quads cover (anti-aliasing at fractional scales).
#include "explain/common/heatmap.h"

#include <algorithm>
#include <cstring>
#include <cctype>
#include <cmath>
#include <stdexcept>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

namespace gb::explain {

static void chw_dims(const Tensor& t, int& C, int& H, int& W) {
  if (t.rank() == 4 && t.dim(0) == 1)
    C = t.dim(1), H = t.dim(2), W = t.dim(3);
  else if (t.rank() == 3)
    C = t.dim(0), H = t.dim(1), W = t.dim(2);
  else
    throw ShapeError("heatmap expects a [C,H,W] map, got " + t.shape().str());
}

std::vector<float> reduce_channels(const Tensor& chw, bool is_signed) {
  int C, H, W;
  chw_dims(chw, C, H, W);
  const size_t HW = size_t(H) * W;
  std::vector<float> m(HW, 0.f);
  for (int c = 0; c < C; ++c)
    for (size_t i = 0; i < HW; ++i) {
      float v = chw[c * HW + i];
      m[i] = is_signed ? m[i] + v : std::max(m[i], std::fabs(v));
    }
  return m;
}

double abs_percentile(const std::vector<float>& v, double p) {
  if (v.empty()) return 0;
  std::vector<float> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  std::sort(a.begin(), a.end());
  const double pos = std::clamp(p, 0.0, 100.0) / 100.0 * double(a.size() - 1);
  const size_t lo = size_t(pos);
  const size_t hi = std::min(lo + 1, a.size() - 1);
  return a[lo] + (pos - double(lo)) * (a[hi] - a[lo]);
}

static uint8_t byte(double v) { return uint8_t(std::lround(std::clamp(v, 0.0, 1.0) * 255)); }

void colormap_rgb(const std::string& name, double t, uint8_t q[3]) {
  if (name == "bwr") {
    t = std::clamp(t, -1.0, 1.0);
    q[0] = byte(t < 0 ? 1 + t : 1);
    q[1] = byte(1 - std::fabs(t));
    q[2] = byte(t > 0 ? 1 - t : 1);
  } else if (name == "gray") {
    q[0] = q[1] = q[2] = byte(std::clamp(t, 0.0, 1.0));
  } else if (name == "hot") {  // matplotlib's "hot": black -> red -> yellow -> white
    t = std::clamp(t, 0.0, 1.0);
    q[0] = byte(t / 0.365);
    q[1] = byte((t - 0.365) / 0.381);
    q[2] = byte((t - 0.746) / 0.254);
  } else {
    throw std::invalid_argument("colormap '" + name + "' (known: bwr, gray, hot)");
  }
}

Image to_image(const Tensor& pixels) {
  int C, H, W;
  chw_dims(pixels, C, H, W);
  const size_t HW = size_t(H) * W;
  Image im(W, H);
  for (size_t i = 0; i < HW; ++i) {
    uint8_t* p = im.rgb.data() + i * 3;
    if (C == 3) {
      for (int c = 0; c < 3; ++c) p[c] = byte(pixels[c * HW + i]);
    } else {
      double s = 0;
      for (int c = 0; c < C; ++c) s += pixels[c * HW + i];
      p[0] = p[1] = p[2] = byte(s / C);
    }
  }
  return im;
}

Image heatmap(const Tensor& attribution, const HeatmapOptions& o, const Tensor* pixels) {
  int C, H, W;
  chw_dims(attribution, C, H, W);
  std::vector<float> m = reduce_channels(attribution, o.is_signed);
  const double p = o.percentile >= 0 ? o.percentile : o.is_signed ? 100.0 : 99.5;
  double scale = o.scale > 0 ? o.scale : abs_percentile(m, p);
  if (!(scale > 0)) scale = 1;  // an all-zero map stays white/black
  std::string cmap = o.colormap.empty() ? (o.is_signed ? "bwr" : "hot") : o.colormap;
  if (cmap != "bwr" && cmap != "gray" && cmap != "hot")
    throw std::invalid_argument("colormap '" + cmap + "' (known: bwr, gray, hot)");
  Image im(W, H);
  // Unsigned maps read magnitudes; a signed map drawn in gray/hot shows |a|.
  for (size_t i = 0; i < m.size(); ++i)
    colormap_rgb(cmap, cmap == "bwr" ? m[i] / scale : std::fabs(m[i]) / scale, im.rgb.data() + i * 3);
  if (o.overlay > 0) {
    if (!pixels) throw std::invalid_argument("heatmap overlay needs the input image");
    Image base = resize_nearest(to_image(*pixels), W, H);
    const float a = std::min(o.overlay, 1.f);
    for (size_t i = 0; i < m.size(); ++i) {
      const uint8_t* b = base.rgb.data() + i * 3;
      const double gray = (b[0] + b[1] + b[2]) / 3.0;
      for (int c = 0; c < 3; ++c) {
        uint8_t& q = im.rgb[i * 3 + c];
        q = uint8_t(std::lround((1 - a) * gray + a * q));
      }
    }
  }
  return im;
}

Image resize_nearest(const Image& im, int w, int h) {
  if (im.w == w && im.h == h) return im;
  Image out(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const uint8_t* s = im.px(int(int64_t(x) * im.w / w), int(int64_t(y) * im.h / h));
      std::copy(s, s + 3, out.px(x, y));
    }
  return out;
}

std::string printable(const std::string& s) {
  static const char* const spelt[][2] = {{"ε", "eps"}, {"σ", "sigma"}, {"α", "alpha"}, {"β", "beta"},
                                         {"δ", "delta"}, {"λ", "lambda"}, {"μ", "mu"}, {"±", "+-"},
                                         {"×", "x"}, {"−", "-"}, {"…", "..."}, {"²", "^2"},
                                         {"\xc2\xa0", " "}};  // (U+00A0, a no-break space)
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    if (c < 128) {
      out += c >= 32 && c < 127 ? char(c) : ' ';
      ++i;
      continue;
    }
    const char* const* hit = nullptr;
    for (auto& p : spelt)
      if (s.compare(i, std::strlen(p[0]), p[0]) == 0) hit = p;
    if (hit) {
      out += hit[1];
      i += std::strlen(hit[0]);
    } else {
      out += '?';
      for (++i; i < s.size() && (uint8_t(s[i]) & 0xC0) == 0x80; ++i) {}  // the code point's tail
    }
  }
  return out;
}

int text_width(const std::string& text, double scale) {
  std::string t = printable(text);
  return font_px(stb_easy_font_width(t.data()), scale);
}

int font_px(double units, double scale) { return int(std::ceil(units * scale - 1e-9)); }

int line_height(double scale) { return font_px(12, scale); }

void draw_text(Image& im, int x, int y, const std::string& text, const uint8_t color[3], double scale) {
  std::string t = printable(text);
  if (t.empty() || !(scale > 0)) return;
  // A glyph takes up to 11 quads of 4 vertices of 16 bytes (stb's own estimate of ~270 bytes per
  // character drops the last strokes of wide glyphs such as '0', '8' or 'k').
  std::vector<char> buf(t.size() * 11 * 64 + 64);
  const int quads = stb_easy_font_print(0, 0, t.data(), nullptr, buf.data(), int(buf.size()));
  // Coverage of each pixel of the text's box, summed over the strokes' quads (which touch at
  // corners), then blended once: at a whole-number scale every pixel is covered fully or not at all.
  const int bw = text_width(t, scale) + 2, bh = line_height(scale) + 2;
  std::vector<float> cover(size_t(bw) * size_t(bh), 0.f);
  // stb_easy_font draws '|' as the same stroke as 'l' ("|a|" read "lal"): a bar reaches down
  // through the descenders here, as in other fonts. The x ranges (font units) of the bars:
  std::vector<std::pair<int, int>> bars;
  for (size_t i = t.find('|'); i != std::string::npos; i = t.find('|', i + 1))
    bars.push_back({stb_easy_font_width(t.substr(0, i).data()), stb_easy_font_width(t.substr(0, i + 1).data())});
  for (int q = 0; q < quads; ++q) {
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    for (int v = 0; v < 4; ++v) {
      const float* p = reinterpret_cast<const float*>(buf.data() + (q * 4 + v) * 16);
      x0 = std::min(x0, p[0]), x1 = std::max(x1, p[0]);
      y0 = std::min(y0, p[1]), y1 = std::max(y1, p[1]);
    }
    for (const auto& [from, to] : bars)
      if (x0 >= from && x1 <= to) y1 += 2;
    const double ax = x0 * scale, bx = x1 * scale, ay = y0 * scale, by = y1 * scale;
    for (int v = std::max(0, int(std::floor(ay))); v < std::min(bh, int(std::ceil(by))); ++v) {
      const double cy = std::min(by, v + 1.0) - std::max(ay, double(v));
      for (int u = std::max(0, int(std::floor(ax))); u < std::min(bw, int(std::ceil(bx))); ++u)
        cover[size_t(v) * bw + u] += float(cy * (std::min(bx, u + 1.0) - std::max(ax, double(u))));
    }
  }
  for (int v = 0; v < bh; ++v)
    for (int u = 0; u < bw; ++u) blend(im, x + u, y + v, color, std::min(1.f, cover[size_t(v) * bw + u]));
}

void blend(Image& im, int x, int y, const uint8_t color[3], double alpha) {
  if (!(alpha > 0) || x < 0 || x >= im.w || y < 0 || y >= im.h) return;
  uint8_t* px = im.px(x, y);
  for (int k = 0; k < 3; ++k) px[k] = uint8_t(std::lround(px[k] + std::min(alpha, 1.0) * (color[k] - px[k])));
}

std::vector<std::string> wrap_text(const std::string& label, int width, double scale) {
  std::vector<std::string> lines;
  std::string line;
  // A number does not begin a line while the word before it can come along: "data" / "9.36" read
  // as a label without a value and a value without a label. (Not when that word is a number too:
  // a list of numbers went one per line.)
  const auto numeric = [](const std::string& w) {
    const size_t i = w.find_first_not_of("+-.(");
    return i != std::string::npos && std::isdigit(uint8_t(w[i]));
  };
  auto add = [&](const std::string& word) {
    if (!line.empty() && text_width(line + " " + word, scale) <= width) {
      line += " " + word;
      return;
    }
    const size_t last = line.rfind(' ');
    if (numeric(word) && last != std::string::npos && !numeric(line.substr(last + 1)) &&
        text_width(line.substr(last + 1) + " " + word, scale) <= width) {
      lines.push_back(line.substr(0, last));
      line = line.substr(last + 1) + " " + word;
      return;
    }
    if (!line.empty()) lines.push_back(line);
    line = word;
  };
  for (size_t p = 0; p < label.size();) {
    size_t q = label.find(' ', p);
    if (q == std::string::npos) q = label.size();
    std::string word = label.substr(p, q - p);
    p = q + 1;
    while (word.size() > 1 && text_width(word, scale) > width) {
      size_t n = 1;  // the longest head that fits (one character at least), cut between UTF-8 code points
      while (n + 1 < word.size() && text_width(word.substr(0, n + 1), scale) <= width) ++n;
      const auto inside = [&](size_t i) { return i < word.size() && (uint8_t(word[i]) & 0xC0) == 0x80; };
      while (n > 1 && inside(n)) --n;
      while (inside(n)) ++n;
      // After a hyphen or a separator where one fits ("integrated-" "gradients", not "integrated-gr"
      // "adients"; "conv=gamma:0.25," "dense=...").
      const size_t mark = word.find_last_of("-,;:/=_", n - 1);
      if (mark != std::string::npos && mark > 0 && mark + 1 < n) n = mark + 1;
      add(word.substr(0, n));
      if (!line.empty()) lines.push_back(line), line.clear();
      word.erase(0, n);
    }
    if (!word.empty()) add(word);
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

Image grid(const std::vector<std::vector<Image>>& cells, const std::vector<std::string>& column_labels,
           const std::vector<std::string>& row_captions, int cell_w, int cell_h) {
  const int rows = int(cells.size()), cols = rows ? int(cells[0].size()) : int(column_labels.size());
  const int pad = 4, line = line_height() + 2;
  std::vector<std::vector<std::string>> headers;
  size_t header_lines = 1;
  for (int c = 0; c < cols && c < int(column_labels.size()); ++c) {
    headers.push_back(wrap_text(column_labels[c], cell_w - 8));  // clear of the next column's header
    header_lines = std::max(header_lines, headers.back().size());
  }
  const int top = int(header_lines) * line;
  const int W = pad + cols * (cell_w + pad);
  // Each row's caption wrapped to the grid's width (one line at least): it was cut at the edge.
  std::vector<std::vector<std::string>> captions(rows);
  int H = top + pad;
  for (int r = 0; r < rows; ++r) {
    if (r < int(row_captions.size())) captions[r] = wrap_text(row_captions[r], W - 2 * pad);
    H += std::max<int>(1, int(captions[r].size())) * line + cell_h + pad;
  }
  Image im(W, H);
  const uint8_t black[3] = {0, 0, 0};
  for (size_t c = 0; c < headers.size(); ++c)
    for (size_t l = 0; l < headers[c].size(); ++l) draw_text(im, pad + int(c) * (cell_w + pad), 3 + int(l) * line, headers[c][l], black);
  int y = top + pad;
  for (int r = 0; r < rows; ++r) {
    if (int(cells[r].size()) != cols) throw std::invalid_argument("grid: rows of different lengths");
    for (size_t l = 0; l < captions[r].size(); ++l) draw_text(im, pad, y + 2 + int(l) * line, captions[r][l], black);
    y += std::max<int>(1, int(captions[r].size())) * line;
    for (int c = 0; c < cols; ++c) {
      Image cell = resize_nearest(cells[r][c], cell_w, cell_h);
      const int x0 = pad + c * (cell_w + pad);
      for (int yy = 0; yy < cell_h; ++yy) std::copy(cell.px(0, yy), cell.px(0, yy) + 3 * cell_w, im.px(x0, y + yy));
    }
    y += cell_h + pad;
  }
  return im;
}

Image beside(const Image& figure, const std::vector<Image>& legends) {
  const int pad = 8;
  int W = figure.w, H = figure.h;
  for (const Image& l : legends) W += pad + l.w, H = std::max(H, l.h + pad);
  Image im(W, H);
  auto paste = [&](const Image& part, int x0, int y0) {
    for (int y = 0; y < part.h; ++y) std::copy(part.px(0, y), part.px(0, y) + 3 * part.w, im.px(x0, y0 + y));
  };
  paste(figure, 0, 0);
  int x = figure.w;
  for (const Image& l : legends) {
    paste(l, x + pad, pad);
    x += pad + l.w;
  }
  return im;
}

Image titled(const Image& figure, const std::string& title) {
  const int pad = 4, line = line_height() + 2;
  const std::vector<std::string> lines = wrap_text(title, figure.w - 2 * pad);
  const int top = 2 * pad + int(lines.size()) * line;
  Image im(figure.w, top + figure.h);
  const uint8_t black[3] = {0, 0, 0};
  for (size_t l = 0; l < lines.size(); ++l) draw_text(im, pad, pad + 2 + int(l) * line, lines[l], black);
  for (int y = 0; y < figure.h; ++y) std::copy(figure.px(0, y), figure.px(0, y) + 3 * figure.w, im.px(0, top + y));
  return im;
}

void draw_boundaries(Image& im, const std::vector<float>& labels, int w, int h, const uint8_t color[3]) {
  if (w <= 0 || h <= 0 || labels.size() != size_t(w) * h || im.w % w || im.h % h)
    throw std::invalid_argument("draw_boundaries: the image is not an enlargement of the label image");
  const int sx = im.w / w, sy = im.h / h;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const float l = labels[size_t(y) * w + x];
      if (x + 1 < w && labels[size_t(y) * w + x + 1] != l)  // a vertical edge at the right of (x, y)
        for (int yy = y * sy; yy < (y + 1) * sy; ++yy) std::copy(color, color + 3, im.px((x + 1) * sx - 1, yy));
      if (y + 1 < h && labels[size_t(y + 1) * w + x] != l)  // a horizontal edge below
        for (int xx = x * sx; xx < (x + 1) * sx; ++xx) std::copy(color, color + 3, im.px(xx, (y + 1) * sy - 1));
    }
}

}  // namespace gb::explain
