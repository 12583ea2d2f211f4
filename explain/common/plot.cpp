// Plots and colorbars. A figure is first described as a Canvas (rectangles, strokes, dots and texts
// in pixel coordinates, painted in order); two back ends then write it: SVG text, or an RGB8 Image.
// Geometry is clipped while the canvas is built, so both back ends draw exactly the same shapes.
#include "explain/common/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <variant>

namespace gb::explain {
namespace {

// ---- the canvas ----------------------------------------------------------------------------------

struct Pt {
  double x, y;
};
using Parts = std::vector<std::vector<Pt>>;  // one stroke's pieces, with breaks between them

struct Rect {
  double x0, y0, x1, y1;
  Rgb c;
  const char* cls;  // the SVG element's class, for styling and tests
};
struct Stroke {
  Parts parts;
  double width;
  bool dashed;
  Rgb c;
  const char* cls;
};
struct Dot {
  double x, y, r;
  Rgb c;
  const char* cls;
};
enum class Anchor { start, middle, end };
// Horizontal text: (x, y) is the anchor point at the top of the capitals. Vertical text reads upwards:
// x is where the capitals' tops are (its left edge), y its middle.
struct Text {
  double x, y;
  std::string s;
  double scale;
  Anchor anchor;
  bool vertical;
  Rgb c;
};
using Item = std::variant<Rect, Stroke, Dot, Text>;
struct Canvas {
  int w, h;
  std::vector<Item> items;
};

const Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kInk{51, 51, 51}, kGrid{225, 225, 225},
    kRef{110, 110, 110}, kWhisker{34, 34, 34};
const double kLine = 2.5;   // data lines: at least 2 px wide wherever they fall
const double kMarker = 4;   // scatter dot radius
const double kDash = 6, kGap = 4;

int width_of(const std::string& s, double scale) { return text_width(s, scale); }

}  // namespace

std::string fit_text(std::string s, double scale, double max_w) {
  if (width_of(s, scale) <= max_w) return s;
  while (!s.empty() && width_of(s + "..", scale) > max_w) {
    uint8_t last;
    do last = uint8_t(s.back()), s.pop_back();
    while (!s.empty() && (last & 0xC0) == 0x80);
  }
  return s.empty() ? s : s + "..";
}

namespace {

// Shortens text to fit max_w pixels by cutting its middle ("max..ol1"), keeping `tail` (0..1) of the
// kept code points at the end: names that differ only at the end (maxpool1, maxpool2) stay apart.
std::string fit_middle(const std::string& s, double scale, double max_w, double tail) {
  if (s.empty() || width_of(s, scale) <= max_w) return s;
  std::vector<std::string> cps;  // whole UTF-8 code points
  for (size_t i = 0; i < s.size(); ++i) {
    if ((uint8_t(s[i]) & 0xC0) != 0x80 || cps.empty()) cps.emplace_back();
    cps.back() += s[i];
  }
  for (size_t k = cps.size() - 1; k > 0; --k) {
    const size_t back = std::min(k, size_t(std::ceil(double(k) * tail))), front = k - back;
    std::string t;
    for (size_t i = 0; i < front; ++i) t += cps[i];
    t += "..";
    for (size_t i = cps.size() - back; i < cps.size(); ++i) t += cps[i];
    if (width_of(t, scale) <= max_w) return t;
  }
  return "..";
}

// ---- the SVG back end ----------------------------------------------------------------------------

std::string num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.2f", v);
  std::string s = b;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

std::string hex(Rgb c) {
  char b[8];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", c.r, c.g, c.b);
  return b;
}

std::string xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += (unsigned char)c < 32 ? ' ' : c;  // control characters are not XML
    }
  }
  return out;
}

std::string svg_item(const Rect& r) {
  return "<rect class=\"" + std::string(r.cls) + "\" x=\"" + num(r.x0) + "\" y=\"" + num(r.y0) + "\" width=\"" +
         num(r.x1 - r.x0) + "\" height=\"" + num(r.y1 - r.y0) + "\" fill=\"" + hex(r.c) + "\"/>";
}

std::string svg_item(const Stroke& s) {
  std::string d;
  for (auto& p : s.parts)
    for (size_t i = 0; i < p.size(); ++i) {
      d += (i ? "L" : "M") + num(p[i].x) + " " + num(p[i].y);
      if (p.size() == 1) d += "L" + num(p[i].x) + " " + num(p[i].y);  // a lone point: a round dot
    }
  // Dashes keep butt caps so their lengths are the raster's.
  return "<path class=\"" + std::string(s.cls) + "\" d=\"" + d + "\" fill=\"none\" stroke=\"" + hex(s.c) +
         "\" stroke-width=\"" + num(s.width) + "\" stroke-linejoin=\"round\"" +
         (s.dashed ? " stroke-linecap=\"butt\" stroke-dasharray=\"" + num(kDash) + " " + num(kGap) + "\""
                   : " stroke-linecap=\"round\"") +
         "/>";
}

std::string svg_item(const Dot& d) {
  return "<circle class=\"" + std::string(d.cls) + "\" cx=\"" + num(d.x) + "\" cy=\"" + num(d.y) + "\" r=\"" +
         num(d.r) + "\" fill=\"" + hex(d.c) + "\"/>";
}

std::string svg_item(const Text& t) {
  // The raster font's capitals are 7 units tall; a sans-serif's are ~0.72 em.
  const double cap = 7.0 * t.scale;
  const char* anchor = t.anchor == Anchor::start ? "start" : t.anchor == Anchor::middle ? "middle" : "end";
  std::string s = "<text x=\"" + num(t.x) + "\" y=\"" + num(t.y + cap) + "\" font-size=\"" + num(9.5 * t.scale) +
                  "\" fill=\"" + hex(t.c) + "\" text-anchor=\"" + anchor + "\"";
  if (t.vertical) s += " transform=\"rotate(-90 " + num(t.x) + " " + num(t.y) + ")\"";
  return s + ">" + xml(t.s) + "</text>";
}

std::string to_svg(const Canvas& c) {
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(c.w) + "\" height=\"" +
                    std::to_string(c.h) + "\" viewBox=\"0 0 " + std::to_string(c.w) + " " + std::to_string(c.h) +
                    "\" font-family=\"sans-serif\">\n";
  for (auto& it : c.items) out += std::visit([](auto& x) { return svg_item(x); }, it) + "\n";
  return out + "</svg>\n";
}

// ---- the raster back end: a pixel is painted when its centre lies inside the shape ---------------

int clamp_px(double v, int n) { return v > 0 ? int(std::min(v, double(n))) : 0; }

void paint(Image& im, int x, int y, Rgb c) {
  uint8_t* p = im.px(x, y);
  p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

void raster(Image& im, const Rect& r) {
  const int x0 = clamp_px(std::ceil(r.x0 - 0.5), im.w), x1 = clamp_px(std::ceil(r.x1 - 0.5), im.w);
  const int y0 = clamp_px(std::ceil(r.y0 - 0.5), im.h), y1 = clamp_px(std::ceil(r.y1 - 0.5), im.h);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) paint(im, x, y, r.c);
}

// One segment with round ends; `along` is the stroke's length before it (dash phase).
void raster_segment(Image& im, Pt a, Pt b, const Stroke& s, double along) {
  const double half = s.width / 2, dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
  const int x0 = clamp_px(std::floor(std::min(a.x, b.x) - half), im.w);
  const int x1 = clamp_px(std::ceil(std::max(a.x, b.x) + half), im.w);
  const int y0 = clamp_px(std::floor(std::min(a.y, b.y) - half), im.h);
  const int y1 = clamp_px(std::ceil(std::max(a.y, b.y) + half), im.h);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const double cx = x + 0.5 - a.x, cy = y + 0.5 - a.y;
      const double t = len2 > 0 ? std::clamp((cx * dx + cy * dy) / len2, 0.0, 1.0) : 0.0;
      const double ex = cx - t * dx, ey = cy - t * dy;
      if (ex * ex + ey * ey >= half * half) continue;
      if (s.dashed && std::fmod(along + t * std::sqrt(len2), kDash + kGap) >= kDash) continue;
      paint(im, x, y, s.c);
    }
}

void raster(Image& im, const Stroke& s) {
  for (auto& p : s.parts) {
    double along = 0;
    if (p.size() == 1) raster_segment(im, p[0], p[0], s, 0);
    for (size_t i = 1; i < p.size(); ++i) {
      raster_segment(im, p[i - 1], p[i], s, along);
      along += std::hypot(p[i].x - p[i - 1].x, p[i].y - p[i - 1].y);
    }
  }
}

void raster(Image& im, const Dot& d) {
  const int x0 = clamp_px(std::floor(d.x - d.r), im.w), x1 = clamp_px(std::ceil(d.x + d.r), im.w);
  const int y0 = clamp_px(std::floor(d.y - d.r), im.h), y1 = clamp_px(std::ceil(d.y + d.r), im.h);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      if (std::hypot(x + 0.5 - d.x, y + 0.5 - d.y) < d.r) paint(im, x, y, d.c);
}

void raster(Image& im, const Text& t) {
  const std::string s = printable(t.s);
  const int tw = text_width(s, t.scale);
  const uint8_t c[3] = {t.c.r, t.c.g, t.c.b};
  if (!t.vertical) {
    const double shift = t.anchor == Anchor::middle ? tw / 2.0 : t.anchor == Anchor::end ? tw : 0;
    draw_text(im, int(std::lround(t.x - shift)), int(std::lround(t.y)), s, c, t.scale);
    return;
  }
  // Drawn upright into a scratch image, then turned a quarter left: glyph tops face left. The text
  // reads upwards from `base`: its anchor (start, middle or end) is at y.
  Image up(std::max(tw, 1), font_px(10, t.scale));
  const uint8_t black[3] = {0, 0, 0};
  draw_text(up, 0, 0, s, black, t.scale);
  const double from_y = t.anchor == Anchor::middle ? tw / 2.0 : t.anchor == Anchor::end ? tw : 0;
  const int left = int(std::lround(t.x)), base = int(std::lround(t.y + from_y)) - 1;
  for (int v = 0; v < up.h; ++v)
    for (int u = 0; u < up.w; ++u) blend(im, left + v, base - u, c, 1 - up.px(u, v)[0] / 255.0);
}

Image to_image(const Canvas& c) {
  Image im(c.w, c.h);
  for (auto& it : c.items) std::visit([&](auto& x) { raster(im, x); }, it);
  return im;
}

// ---- clipping (in the canvas, so both back ends draw the same pieces) ----------------------------

struct Box {
  double x0, y0, x1, y1;
  bool holds(Pt p) const { return p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1; }
};

// Liang-Barsky: cuts the segment a-b to the box; false when nothing is left.
bool clip_segment(Pt& a, Pt& b, const Box& r) {
  const double dx = b.x - a.x, dy = b.y - a.y;
  const double p[4] = {-dx, dx, -dy, dy}, q[4] = {a.x - r.x0, r.x1 - a.x, a.y - r.y0, r.y1 - a.y};
  double t0 = 0, t1 = 1;
  int k0 = -1, k1 = -1;  // the box sides the ends were cut at
  for (int k = 0; k < 4; ++k) {
    if (p[k] == 0) {
      if (q[k] < 0) return false;
    } else if (p[k] < 0 && q[k] / p[k] > t0) {
      t0 = q[k] / p[k], k0 = k;
    } else if (p[k] > 0 && q[k] / p[k] < t1) {
      t1 = q[k] / p[k], k1 = k;
    }
  }
  if (t0 > t1) return false;
  // A cut end lies on its side exactly, and inside the box whatever the rounding (far-off points
  // lose every digit in a + t * d); uncut ends stay bit-identical, which is how clip() sees that
  // pieces still join.
  auto cut = [&](double t, int k) {
    Pt c{a.x + t * dx, a.y + t * dy};
    if (k == 0) c.x = r.x0;
    if (k == 1) c.x = r.x1;
    if (k == 2) c.y = r.y0;
    if (k == 3) c.y = r.y1;
    return Pt{std::clamp(c.x, r.x0, r.x1), std::clamp(c.y, r.y0, r.y1)};
  };
  const Pt na = k0 >= 0 ? cut(t0, k0) : a, nb = k1 >= 0 ? cut(t1, k1) : b;
  a = na, b = nb;
  return true;
}

Parts clip(const Parts& in, const Box& r) {
  Parts out;
  for (auto& p : in) {
    if (p.size() == 1) {
      if (r.holds(p[0])) out.push_back(p);
      continue;
    }
    std::vector<Pt> cur;
    for (size_t i = 1; i < p.size(); ++i) {
      Pt a = p[i - 1], b = p[i];
      const bool kept = clip_segment(a, b, r);
      if (!kept || cur.empty() || cur.back().x != a.x || cur.back().y != a.y) {
        if (!cur.empty()) out.push_back(std::move(cur));
        cur.clear();
        if (!kept) continue;
        cur.push_back(a);
      }
      cur.push_back(b);
    }
    if (!cur.empty()) out.push_back(std::move(cur));
  }
  return out;
}

// ---- axes ----------------------------------------------------------------------------------------

double pow10(int e) { return std::pow(10.0, e); }

std::string fixed(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", std::min(decimals, 9), v);
  return b;
}

// Scientific with the mantissa's trailing zeros and the exponent's padding dropped: 2.5e-4, 1e6.
std::string sci(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*e", std::clamp(digits, 0, 9), v);
  std::string s = b;
  const size_t e = s.find('e');
  std::string mant = s.substr(0, e);
  if (mant.find('.') != std::string::npos) {
    while (mant.back() == '0') mant.pop_back();
    if (mant.back() == '.') mant.pop_back();
  }
  return mant + "e" + std::to_string(std::atoi(s.c_str() + e + 1));
}

std::string compact(double v) {  // colorbar ends: 3 significant digits
  if (v == 0) return "0";
  const int e = int(std::floor(std::log10(std::fabs(v))));
  if (e < -3 || e >= 6) return sci(v, 2);
  std::string s = fixed(v, std::max(0, 2 - e));
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

struct Extent {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
};

double spread(double v) { return std::max(1.0, 0.1 * std::fabs(v)); }

// An axis over the data (or the given ends), widened to the nice ticks around it.
void make_axis(Extent e, std::optional<double> umin, std::optional<double> umax, int max_ticks, double& lo,
               double& hi, std::vector<double>& ticks) {
  // Bounded so that spans and pixel positions stay finite (no data leaves the infinities).
  auto bound = [](double v) { return std::isfinite(v) ? std::clamp(v, -1e300, 1e300) : v; };
  lo = bound(umin.value_or(e.lo)), hi = bound(umax.value_or(e.hi));
  if (!(lo < hi)) {  // one value, none, or a given end beyond the data
    if (umin && !umax) hi = lo + spread(lo);
    else if (umax && !umin) lo = hi - spread(hi);
    else if (std::isfinite(lo)) lo -= spread(lo), hi += spread(hi);
    else lo = 0, hi = 1;
  }
  ticks = nice_ticks(lo, hi, max_ticks);
  if (!umin) lo = ticks.front();
  if (!umax) hi = ticks.back();
  const double tol = 1e-9 * (hi - lo);
  std::erase_if(ticks, [&](double t) { return t < lo - tol || t > hi + tol; });
}

double x_of(const Series& s, size_t i) { return s.x.empty() ? double(i) : s.x[i]; }

void check(const std::vector<Series>& series, const PlotOptions& o) {
  for (auto& s : series) {
    if (!s.x.empty() && s.x.size() != s.y.size())
      throw std::invalid_argument("plot: series '" + s.label + "' has " + std::to_string(s.x.size()) + " x and " +
                                  std::to_string(s.y.size()) + " y values");
    if (!s.err.empty() && s.err.size() != s.y.size())
      throw std::invalid_argument("plot: series '" + s.label + "' has " + std::to_string(s.err.size()) +
                                  " error values for " + std::to_string(s.y.size()) + " y values");
  }
  if (o.width < 160 || o.height < 120 || !(o.text_scale >= 1 && o.text_scale <= 8))
    throw std::invalid_argument("plot: size " + std::to_string(o.width) + "x" + std::to_string(o.height) +
                                " (at least 160x120) or text_scale " + num(o.text_scale) + " (1 to 8)");
  for (auto* end : {&o.xmin, &o.xmax, &o.ymin, &o.ymax})
    if (*end && !std::isfinite(**end)) throw std::invalid_argument("plot: a given axis end is not finite");
  auto bad = [](auto& a, auto& b) { return a && b && !(*a < *b); };
  if (bad(o.xmin, o.xmax) || bad(o.ymin, o.ymax))
    throw std::invalid_argument("plot: xmin/ymin must be below xmax/ymax");
}

size_t category_count(const std::vector<Series>& series, const PlotOptions& o) {
  double n = double(o.categories.size());
  for (auto& s : series)
    for (size_t i = 0; i < s.y.size(); ++i)
      if (std::isfinite(x_of(s, i))) n = std::max(n, std::floor(x_of(s, i)) + 1);
  return size_t(std::clamp(n, 1.0, 1e6));
}

// Text sizes: capitals are 7 px at scale 1; a plot's text line (descenders and a small gap) is 10,
// tighter than line_height()'s 12 for running text.
struct Metrics {
  double s;
  int cap, line;
  static constexpr int pad = 8, tick = 5;
  explicit Metrics(double scale)
      : s(scale), cap(font_px(7, scale)), line(font_px(10, scale)) {}
};

// Text on at most `most` lines no wider than max_w (the rest shortened onto the last), so an axis
// title keeps every word rather than being cut at the figure's edge.
std::vector<std::string> wrap(const std::string& s, const Metrics& m, double max_w, size_t most = 3) {
  if (s.empty()) return {};
  std::vector<std::string> lines = wrap_text(s, std::max(1, int(max_w)), m.s);
  if (lines.size() > most) {
    std::string rest;
    for (size_t i = most - 1; i < lines.size(); ++i) rest += (rest.empty() ? "" : " ") + lines[i];
    lines.resize(most);
    lines.back() = fit_text(rest, m.s, max_w);
  }
  return lines;
}

// A title on at most 3 lines no wider than max_w; on 2 or 3, each as wide as the narrowest width
// that gives as many, so no word is left alone on the last line ("... 0.92 held" / "out").
std::vector<std::string> balanced(const std::string& text, const Metrics& m, double max_w) {
  const std::vector<std::string> lines = wrap_text(text, std::max(1, int(max_w)), m.s);
  if (lines.size() < 2 || lines.size() > 3) return wrap(text, m, max_w);
  double widest = 0;
  for (const std::string& l : lines) widest = std::max(widest, double(width_of(l, m.s)));
  int lo = int(widest / double(lines.size())), hi = int(widest);  // hi gives lines.size() lines
  while (lo + 1 < hi) {
    const int mid = (lo + hi) / 2;
    (wrap_text(text, mid, m.s).size() <= lines.size() ? hi : lo) = mid;
  }
  return wrap_text(text, hi, m.s);
}

// Room right of the plot area for the hlines' labels (at most a quarter of the figure); none for a
// line that is not drawn (not finite, or outside a given ymin/ymax).
double hline_label_room(const PlotOptions& o, const Metrics& m) {
  double w = 0;
  for (size_t i = 0; i < o.hlines.size() && i < o.hline_labels.size(); ++i) {
    const double h = o.hlines[i];
    if (o.hline_labels[i].empty() || !std::isfinite(h) || (o.ymin && h < *o.ymin) || (o.ymax && h > *o.ymax)) continue;
    w = std::max(w, double(width_of(fit_text(o.hline_labels[i], m.s, o.width / 4.0), m.s)));
  }
  return w > 0 ? w + 6 : 0;
}

// Legend entries (series indices) in rows no wider than max_w: one row when they all fit, else
// in the most columns that fit, each as wide as its widest entry, so the rows' entries line up.
// widths[i] is then the width of series i's column.
std::vector<std::vector<size_t>> legend_rows(const std::vector<Series>& series, const Metrics& m, double max_w,
                                             std::vector<double>& widths) {
  widths.assign(series.size(), 0);
  std::vector<size_t> entries;
  for (size_t i = 0; i < series.size(); ++i) {
    if (series[i].label.empty()) continue;
    widths[i] = 16 * m.s + width_of(fit_text(series[i].label, m.s, max_w - 16 * m.s), m.s) + 10 * m.s;
    entries.push_back(i);
  }
  const size_t n = entries.size();
  std::vector<double> column_w;
  for (size_t columns = n; columns >= 1; --columns) {
    column_w.assign(columns, 0);
    for (size_t e = 0; e < n; ++e) column_w[e % columns] = std::max(column_w[e % columns], widths[entries[e]]);
    double total = 0;
    for (double w : column_w) total += w;
    if (total <= max_w || columns == 1) break;
  }
  std::vector<std::vector<size_t>> rows;
  for (size_t e = 0; e < n; ++e) {
    if (e % column_w.size() == 0) rows.emplace_back();
    rows.back().push_back(entries[e]);
    widths[entries[e]] = column_w[e % column_w.size()];
  }
  return rows;
}

// How bar names are set under the axis: on one line, wrapped, or upright.
struct NameLayout {
  bool vertical = false;
  size_t lines = 0;   // > 0: wrapped onto at most this many lines, each at most wrap_w wide
  double wrap_w = 0;
  double room = 0;    // the height the names take under the ticks
};

// Names that do not fit on one line go on up to three lines where a slot holds six characters and
// no word (between spaces and , ; : / = _ -) needs splitting, else stand upright where a slot is a
// text line wide, up to half the figure's height: shortened names ("m..1") were hard to read.
NameLayout name_layout(const std::vector<std::string>& names, double slot, const PlotOptions& o, const Metrics& m) {
  NameLayout L;
  L.room = m.line;
  double widest = 0;
  for (const std::string& c : names) widest = std::max(widest, double(width_of(c, m.s)));
  if (names.empty() || widest <= slot - 4) return L;
  L.wrap_w = slot - 8;
  if (L.wrap_w >= width_of("mmmmmm", m.s)) {
    size_t most = 1;
    bool whole_words = true;
    for (const std::string& c : names) {
      most = std::max(most, wrap_text(c, int(L.wrap_w), m.s).size());
      for (size_t p = 0, q; p < c.size(); p = q + 1) {
        q = std::min(c.find_first_of(" ,;:/=_-", p), c.size());
        whole_words = whole_words && width_of(c.substr(p, q - p + 1), m.s) <= L.wrap_w;
      }
    }
    if (whole_words && most <= 3) {
      L.lines = most, L.room = double(most * m.line);
      return L;
    }
  }
  if (slot >= m.line) L.vertical = true, L.room = std::min(widest, o.height / 2.0);
  return L;
}

// The x axis of a bar chart: categories at 0, 1, ...; every k-th labelled when they are many and unnamed.
void bar_axis(PlotFrame& f, const std::vector<Series>& series, const PlotOptions& o, const Metrics& m) {
  const size_t n = category_count(series, o);
  f.xlo = o.xmin.value_or(-0.5), f.xhi = o.xmax.value_or(double(n) - 0.5);
  const double slot = (f.right - f.left) / std::max(f.xhi - f.xlo, 1e-9);
  size_t k = 1;
  if (o.categories.empty()) {
    const double need = width_of(std::to_string(n - 1), m.s) + 2 * m.cap;
    const int mants[] = {1, 2, 5};
    for (int e = 1; double(k) * slot < need && k < n; ++e) k = size_t(mants[e % 3] * pow10(e / 3));
  }
  std::vector<std::string> names(o.categories.begin(), o.categories.begin() + long(std::min(n, o.categories.size())));
  for (std::string& c : names) std::replace(c.begin(), c.end(), '\n', ' ');  // '\n' parts a wrapped name's lines
  const NameLayout layout = name_layout(names, slot, o, m);
  f.xtick_vertical = layout.vertical, f.xtick_room = layout.room;
  const double max_w = layout.vertical ? layout.room : slot * double(k) - 4;
  auto label = [&](const std::string& name, double tail) {
    if (!layout.lines) return fit_middle(name, m.s, max_w, tail);
    std::string joined;  // lines joined by '\n', drawn one under the other
    for (const std::string& l : wrap_text(name, int(layout.wrap_w), m.s)) joined += (joined.empty() ? "" : "\n") + l;
    return joined;
  };
  // Names too wide for their slot lose their middle; when that makes two of them read the same, the
  // ends are kept longer instead.
  for (double tail : {0.5, 0.75, 1.0}) {
    f.xticks.clear(), f.xtick_labels.clear();
    for (size_t i = 0; i < n; i += k) {
      if (double(i) < f.xlo || double(i) > f.xhi) continue;
      f.xticks.push_back(double(i));
      f.xtick_labels.push_back(i < names.size() ? label(names[i], tail) : std::to_string(i));
    }
    bool distinct = true;
    for (size_t a = 0; a < f.xticks.size() && distinct; ++a)
      for (size_t b = a + 1; b < f.xticks.size() && distinct; ++b) {
        const size_t ia = size_t(f.xticks[a]), ib = size_t(f.xticks[b]);
        distinct = f.xtick_labels[a] != f.xtick_labels[b] ||
                   (ia < o.categories.size() && ib < o.categories.size() && o.categories[ia] == o.categories[ib]);
      }
    if (distinct) break;
  }
}

// What the axes must show: every drawn point, its error bar, the hlines, and 0 under bars.
void data_extents(const std::vector<Series>& series, const PlotOptions& o, Extent& ex, Extent& ey) {
  for (auto& s : series)
    for (size_t i = 0; i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(x_of(s, i))) continue;
      ex.add(x_of(s, i)), ey.add(s.y[i]);
      const double e = s.err.empty() ? 0 : std::fabs(s.err[i]);
      if (std::isfinite(e)) ey.add(s.y[i] - e), ey.add(s.y[i] + e);
    }
  for (double h : o.hlines) ey.add(h);
  if (o.kind == PlotKind::bars) ey.add(0);
}

// ---- the figures ---------------------------------------------------------------------------------

// Okabe-Ito's 8, then 12 more (Tol's muted and others) at least ~50 apart in RGB from every other
// and from the plot's greys, so that up to 20 series (a class per series) never share a colour.
const Rgb kPalette[] = {{0, 114, 178},  {213, 94, 0},    {0, 158, 115},  {230, 159, 0},  {86, 180, 233},
                        {204, 121, 167}, {0, 0, 0},      {240, 228, 66}, {136, 34, 85},  {51, 34, 136},
                        {17, 119, 51},  {153, 153, 51},  {204, 102, 119}, {68, 170, 153}, {170, 68, 153},
                        {140, 86, 75},  {100, 190, 70},  {165, 0, 38},   {23, 190, 207}, {188, 189, 34}};

// Error whiskers of one series: a vertical line and two caps per value, on whole pixels so they are
// crisp in both back ends.
Parts whiskers(const PlotFrame& f, const Series& s, const std::vector<double>& xs, double cap_half) {
  Parts out;
  for (size_t i = 0; i < s.err.size(); ++i) {
    const double e = std::fabs(s.err[i]);
    const double x = std::round(f.px(xs[i])), y0 = std::round(f.py(s.y[i] - e)), y1 = std::round(f.py(s.y[i] + e));
    if (!std::isfinite(x) || !std::isfinite(y0) || !std::isfinite(y1)) continue;
    out.push_back({{x, y0}, {x, y1}});
    out.push_back({{x - cap_half, y0}, {x + cap_half, y0}});
    out.push_back({{x - cap_half, y1}, {x + cap_half, y1}});
  }
  return out;
}

void draw_series(Canvas& c, const PlotFrame& f, const std::vector<Series>& series, const PlotOptions& o) {
  const double margin = kMarker;  // lines and dots reach a little past the axes rather than being cut at them
  const Box area{f.left - margin, f.top - margin, f.right + margin, f.bottom + margin};
  const Box bars{f.left, f.top, f.right, f.bottom};
  const size_t n = series.size();
  std::vector<Item> whisker_items;  // over every bar, so a neighbour's bar never hides them
  for (size_t j = 0; j < n; ++j) {
    const Series& s = series[j];
    const Rgb col = series_color(j);
    std::vector<double> xs(s.y.size());
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = x_of(s, i);
    if (o.kind == PlotKind::bars) {
      // Bars of one category side by side, 80% of its slot together.
      const double bw = 0.8 / double(n), base = f.py(std::clamp(0.0, f.ylo, f.yhi));
      for (size_t i = 0; i < xs.size(); ++i) {
        if (!std::isfinite(s.y[i]) || !std::isfinite(xs[i])) continue;
        xs[i] += -0.4 + (double(j) + 0.5) * bw;
        const double y = std::clamp(f.py(s.y[i]), bars.y0, bars.y1);
        const double x0 = std::clamp(f.px(xs[i] - bw / 2), bars.x0, bars.x1);
        const double x1 = std::clamp(f.px(xs[i] + bw / 2), bars.x0, bars.x1);
        if (x1 > x0) c.items.push_back(Rect{x0, std::min(y, base), x1, std::max(y, base), col, "bar"});
      }
      const double cap_half = std::clamp((f.px(bw) - f.px(0)) * 0.2, 2.0, 8.0);
      whisker_items.push_back(Stroke{clip(whiskers(f, s, xs, cap_half), bars), 2, false, kWhisker, "errorbar"});
      continue;
    }
    c.items.push_back(Stroke{clip(whiskers(f, s, xs, 4), area), 2, false, col, "errorbar"});
    Parts parts(1);
    for (size_t i = 0; i < xs.size(); ++i) {
      const Pt p{f.px(xs[i]), f.py(s.y[i])};
      if (std::isfinite(p.x) && std::isfinite(p.y)) {
        parts.back().push_back(p);
      } else if (!parts.back().empty()) {
        parts.emplace_back();  // a break in the line
      }
    }
    if (o.kind == PlotKind::line) {
      c.items.push_back(Stroke{clip(parts, area), kLine, false, col, "series"});
    } else {
      for (auto& p : parts)
        for (auto& q : p)
          if (area.holds(q)) c.items.push_back(Dot{q.x, q.y, kMarker, col, "marker"});
    }
  }
  c.items.insert(c.items.end(), whisker_items.begin(), whisker_items.end());
}

// 1 px lines sit on pixel centres, so they are crisp in both back ends.
double tick_x(const PlotFrame& f, double t) { return std::floor(f.px(t)) + 0.5; }
double tick_y(const PlotFrame& f, double t) { return std::floor(f.py(t)) + 0.5; }

void draw_grid(Canvas& c, const PlotFrame& f, const PlotOptions& o) {
  Parts grid;
  for (double t : f.yticks) grid.push_back({{f.left, tick_y(f, t)}, {f.right, tick_y(f, t)}});
  if (o.kind != PlotKind::bars)
    for (double t : f.xticks) grid.push_back({{tick_x(f, t), f.top}, {tick_x(f, t), f.bottom}});
  c.items.push_back(Stroke{grid, 1, false, kGrid, "grid"});
}

void draw_axes(Canvas& c, const PlotFrame& f, const PlotOptions& o, const Metrics& m) {
  const double L = f.left - 0.5, B = f.bottom + 0.5;  // just outside the plot area
  Parts ticks;
  for (double t : f.yticks) ticks.push_back({{L - m.tick, tick_y(f, t)}, {L, tick_y(f, t)}});
  for (double t : f.xticks) ticks.push_back({{tick_x(f, t), B}, {tick_x(f, t), B + m.tick}});
  Parts refs;
  for (double h : o.hlines)
    if (std::isfinite(h) && h >= f.ylo && h <= f.yhi)
      refs.push_back({{f.left, std::round(f.py(h))}, {f.right, std::round(f.py(h))}});
  c.items.push_back(Stroke{refs, 2, true, kRef, "hline"});
  // Each labelled line says what it is just right of its end (the frame left room there); labels of
  // lines closer than a text line are pushed apart downwards (they were drawn over each other).
  std::vector<std::pair<double, std::string>> labels;
  for (size_t i = 0; i < o.hlines.size() && i < o.hline_labels.size(); ++i) {
    const double h = o.hlines[i];
    if (o.hline_labels[i].empty() || !std::isfinite(h) || h < f.ylo || h > f.yhi) continue;
    labels.push_back({std::round(f.py(h)) - m.cap / 2.0, fit_text(o.hline_labels[i], m.s, o.width / 4.0)});
  }
  std::stable_sort(labels.begin(), labels.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < labels.size(); ++i) labels[i].first = std::max(labels[i].first, labels[i - 1].first + m.line);
  double lowest = f.bottom - m.cap;  // then up again from the plot's bottom, so none sinks below it
  for (size_t i = labels.size(); i-- > 0; lowest = labels[i].first - m.line) labels[i].first = std::min(labels[i].first, lowest);
  for (const auto& [y, text] : labels) c.items.push_back(Text{f.right + 6, y, text, m.s, Anchor::start, false, kRef});
  c.items.push_back(Stroke{{{{L, f.top}, {L, B}, {f.right, B}}}, 1, false, kBlack, "axis"});
  c.items.push_back(Stroke{ticks, 1, false, kBlack, "tick"});
  for (size_t i = 0; i < f.yticks.size(); ++i) {
    const double y = f.py(f.yticks[i]) - m.cap / 2.0;
    c.items.push_back(Text{L - m.tick - 4, y, f.ytick_labels[i], m.s, Anchor::end, false, kInk});
  }
  for (size_t i = 0; i < f.xticks.size(); ++i) {
    const double x = f.px(f.xticks[i]), top = B + m.tick + 4;
    if (f.xtick_vertical)  // upright, its end under the tick (in SVG too, whatever the font's widths)
      c.items.push_back(Text{x - m.cap / 2.0, top, f.xtick_labels[i], m.s, Anchor::end, true, kInk});
    else  // one line, or a wrapped name's lines ('\n' between them)
      for (size_t p = 0, l = 0; p <= f.xtick_labels[i].size(); ++l) {
        const size_t q = std::min(f.xtick_labels[i].find('\n', p), f.xtick_labels[i].size());
        c.items.push_back(Text{x, top + double(l * m.line), f.xtick_labels[i].substr(p, q - p), m.s, Anchor::middle, false, kInk});
        p = q + 1;
      }
  }
  // The x title centred under the plot area but inside the figure.
  for (size_t i = 0; i < f.xlabel_lines.size(); ++i) {
    const double w = width_of(f.xlabel_lines[i], m.s);
    const double x = std::clamp((f.left + f.right) / 2, m.pad + w / 2, std::max(m.pad + w / 2, f.width - m.pad - w / 2));
    c.items.push_back(Text{x, B + m.tick + 8 + f.xtick_room + m.line * double(i), f.xlabel_lines[i], m.s, Anchor::middle,
                           false, kBlack});
  }
  for (size_t i = 0; i < f.ylabel_lines.size(); ++i)
    c.items.push_back(Text{double(m.pad + m.line * int(i)), (f.top + f.bottom) / 2, f.ylabel_lines[i], m.s,
                           Anchor::middle, true, kBlack});
  if (!o.note.empty()) {
    const std::string t = fit_text(o.note, m.s, f.right - f.left - 8);
    c.items.push_back(Text{(f.left + f.right) / 2, (f.top + f.bottom - m.cap) / 2, t, m.s, Anchor::middle, false, kInk});
  }
}

// The legend rows from y down, in columns: the block of them at left_of(the first row's width).
template <class LeftOf>
void draw_legend(Canvas& c, const std::vector<Series>& series, PlotKind kind, double y, double max_w,
                   const LeftOf& left_of, const Metrics& m) {
  std::vector<double> widths;
  const std::vector<std::vector<size_t>> rows = legend_rows(series, m, max_w, widths);
  double block_w = 0;  // the first row is the widest: every row starts where it does
  if (!rows.empty())
    for (size_t i : rows[0]) block_w += widths[i];
  const double left = left_of(block_w - 10 * m.s);
  for (auto& row : rows) {
    double x = left;
    for (size_t i : row) {
      const Rgb col = series_color(i);
      const double mid = y + m.cap / 2.0, sw = 12.0 * m.s;
      if (kind == PlotKind::line)
        c.items.push_back(Stroke{{{{x, std::round(mid)}, {x + sw, std::round(mid)}}}, kLine, false, col, "legend"});
      else if (kind == PlotKind::scatter)
        c.items.push_back(Dot{x + sw / 2, mid, kMarker, col, "legend"});
      else
        c.items.push_back(Rect{x + sw / 2 - m.cap / 2.0, y, x + sw / 2 + m.cap / 2.0, y + m.cap, col, "legend"});
      const std::string label = fit_text(series[i].label, m.s, max_w - 16 * m.s);
      c.items.push_back(Text{x + sw + 4 * m.s, y, label, m.s, Anchor::start, false, kBlack});
      x += widths[i];
    }
    y += m.line;
  }
}

// The title, then the legend rows, centred over the plot area but kept inside the figure.
void draw_header(Canvas& c, const PlotFrame& f, const std::vector<Series>& series, const PlotOptions& o,
                 const Metrics& m) {
  const double cx = (f.left + f.right) / 2, max_w = o.width - 2.0 * m.pad;
  auto centred = [&](double w) {  // the left end
    return std::clamp(cx - w / 2, double(m.pad), std::max(double(m.pad), o.width - m.pad - w));
  };
  double y = m.pad;
  for (const std::string& t : f.title_lines) {  // a long title wraps (it was cut: "0.92 hel..")
    const double w = width_of(t, m.s);
    c.items.push_back(Text{centred(w) + w / 2, y, t, m.s, Anchor::middle, false, kBlack});
    y += m.line + 3;
  }
  if (!f.title_lines.empty()) y += 1;
  draw_legend(c, series, o.kind, y, max_w, centred, m);
}

Canvas plot_canvas(const std::vector<Series>& series, const PlotOptions& o) {
  const PlotFrame f = plot_frame(series, o);
  const Metrics m(o.text_scale);
  Canvas c{f.width, f.height, {}};
  c.items.push_back(Rect{0, 0, double(f.width), double(f.height), kWhite, "background"});
  draw_grid(c, f, o);
  draw_series(c, f, series, o);
  draw_axes(c, f, o, m);
  draw_header(c, f, series, o, m);
  return c;
}

Canvas colorbar_canvas(const std::string& cmap, double lo, double hi, int height, const std::string& caption) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
    throw std::invalid_argument("colorbar: needs finite lo <= hi, got " + std::to_string(lo) + ", " +
                                std::to_string(hi));
  if (lo == hi) lo -= spread(lo), hi += spread(hi);
  const Metrics m(2);
  if (height < 4 * m.line) throw std::invalid_argument("colorbar: height " + std::to_string(height) + " (at least 80)");
  const bool bwr = cmap == "bwr";
  const double x0 = m.pad, x1 = x0 + 10 * m.s, y0 = m.pad, y1 = height - m.pad;
  const int rows = int(y1 - y0);
  auto row_y = [&](double v) { return y0 + (hi - v) / (hi - lo) * (rows - 1) + 0.5; };  // the centre of v's row
  std::vector<std::pair<double, std::string>> marks = {{hi, compact(hi)}, {lo, compact(lo)}};
  if (bwr && row_y(0) > y0 + m.line && row_y(0) < y1 - m.line) marks.push_back({0.0, "0"});  // clear of the ends
  double label_w = 0;
  for (auto& mk : marks) label_w = std::max(label_w, double(width_of(mk.second, m.s)));
  const double lx = x1 + m.tick + 6;  // clear of the tick: "-1" read "--1"
  const int width = int(std::ceil(lx + label_w + (caption.empty() ? 0 : 6 + m.line) + m.pad));
  Canvas c{width, height, {}};
  c.items.push_back(Rect{0, 0, double(width), double(height), kWhite, "background"});
  // One row per pixel, top = hi and bottom = lo exactly; rows of one colour merged.
  const double scale = std::max(std::fabs(lo), std::fabs(hi));
  Rgb prev{};
  for (int r = 0; r < rows; ++r) {
    const double v = hi - (rows > 1 ? double(r) / (rows - 1) : 0.0) * (hi - lo);
    uint8_t q[3];
    colormap_rgb(cmap, bwr ? v / scale : (v - lo) / (hi - lo), q);
    const Rgb col{q[0], q[1], q[2]};
    auto* last = r ? std::get_if<Rect>(&c.items.back()) : nullptr;
    if (last && col == prev) last->y1 += 1;
    else c.items.push_back(Rect{x0, y0 + r, x1, y0 + r + 1, col, "colorbar"});
    prev = col;
  }
  Parts ticks;
  for (auto& [v, label] : marks) {
    const double y = row_y(v);
    ticks.push_back({{x1, y}, {x1 + m.tick, y}});
    const double ty = std::clamp(y - m.cap / 2.0, 0.0, height - m.cap - 2.0);
    c.items.push_back(Text{lx, ty, label, m.s, Anchor::start, false, kInk});
  }
  const double a = x0 - 0.5, b = x1 + 0.5, top = y0 - 0.5, bottom = y1 + 0.5;  // a frame just outside
  c.items.push_back(Stroke{{{{a, top}, {b, top}, {b, bottom}, {a, bottom}, {a, top}}}, 1, false, kInk, "axis"});
  c.items.push_back(Stroke{ticks, 1, false, kInk, "tick"});
  if (!caption.empty()) {
    const std::string t = fit_text(caption, m.s, height - 2 * m.pad);
    c.items.push_back(Text{lx + label_w + 6, height / 2.0, t, m.s, Anchor::middle, true, kBlack});
  }
  return c;
}

}  // namespace

Rgb series_color(size_t i) { return kPalette[i % std::size(kPalette)]; }

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  max_ticks = std::max(max_ticks, 3);  // 3 ticks can always cover a range that straddles a tick
  const double span = hi - lo;
  if (!(span > 0) || !std::isfinite(span)) return {lo, hi};
  const int e0 = int(std::floor(std::log10(span / max_ticks)));
  for (int e = e0; e < e0 + 40; ++e)
    for (int mant : {1, 2, 5}) {
      const double step = mant * pow10(e);
      const double a = std::floor(lo / step + 1e-9), b = std::ceil(hi / step - 1e-9);
      if (b - a + 1 > max_ticks) continue;
      // k * mant / 10^-e rather than k * step: 0.6, not 0.6000000000000001.
      std::vector<double> ticks;
      for (double k = a; k <= b; ++k) ticks.push_back(e >= 0 ? k * mant * pow10(e) : k * mant / pow10(-e));
      return ticks;
    }
  return {lo, hi};
}

std::vector<std::string> tick_labels(const std::vector<double>& ticks) {
  double big = 0;
  for (double t : ticks) big = std::max(big, std::fabs(t));
  double step = ticks.size() > 1 ? std::fabs(ticks[1] - ticks[0]) : big;
  if (!(step > 0) || !std::isfinite(step)) step = big > 0 && std::isfinite(big) ? big : 1;
  const int e = int(std::floor(std::log10(step) + 1e-9));  // the step's decade sets the decimals
  std::vector<std::string> out;
  for (double v : ticks) {
    if (std::fabs(v) < step * 1e-9) out.push_back("0");
    else if (big >= 1e9 || e <= -4) out.push_back(sci(v, int(std::floor(std::log10(std::fabs(v)) + 1e-9)) - e));
    else if (big >= 1e6) out.push_back(fixed(v / 1e6, std::max(0, 6 - e)) + "M");
    else if (big >= 1e4) out.push_back(fixed(v / 1e3, std::max(0, 3 - e)) + "k");
    else out.push_back(fixed(v, std::max(0, -e)));
  }
  return out;
}

PlotFrame plot_frame(const std::vector<Series>& series, const PlotOptions& o) {
  check(series, o);
  const Metrics m(o.text_scale);
  PlotFrame f;
  // Top: the title and legend rows, then half a label so the top tick's label fits.
  std::vector<double> widths;
  const size_t legend = legend_rows(series, m, o.width - 2.0 * m.pad, widths).size();
  f.width = o.width, f.height = o.height;
  f.xlabel_lines = wrap(o.xlabel, m, o.width - 2.0 * m.pad);
  const double xlabel_h = f.xlabel_lines.empty() ? 0 : double(f.xlabel_lines.size() * m.line) + 4;
  f.title_lines = balanced(o.title, m, o.width - 2.0 * m.pad);
  const double title_h = f.title_lines.empty() ? 0 : double(f.title_lines.size() * (m.line + 3)) + 1;
  f.top = m.pad + title_h + double(legend * m.line) + (legend ? 4 : 0) + m.cap / 2.0 + 2;
  f.bottom = o.height - m.pad - xlabel_h - m.line - m.tick - 4;
  f.top = std::ceil(f.top), f.bottom = std::floor(f.bottom);
  // A long legend (many or long series names) makes the figure taller rather than the plot a sliver.
  const double least = std::max(100.0, o.height / 2.0);
  if (f.bottom - f.top < least) {
    const int grow = int(std::ceil(least - (f.bottom - f.top)));
    f.height += grow, f.bottom += grow;
  }
  f.ylabel_lines = wrap(o.ylabel, m, f.bottom - f.top + m.line);
  f.xtick_room = m.line;

  Extent ex, ey;
  data_extents(series, o, ex, ey);
  make_axis(ey, o.ymin, o.ymax, std::clamp(int((f.bottom - f.top) / (3 * m.cap)), 3, 12), f.ylo, f.yhi, f.yticks);
  f.ytick_labels = tick_labels(f.yticks);

  double label_w = 0;
  for (auto& l : f.ytick_labels) label_w = std::max(label_w, double(width_of(l, m.s)));
  f.left = std::ceil(m.pad + (f.ylabel_lines.empty() ? 0 : double(f.ylabel_lines.size() * m.line) + 4) + label_w +
                     m.tick + 5);
  const double room = hline_label_room(o, m);
  f.right = o.width - m.pad - room;
  if (o.kind == PlotKind::bars) {
    f.right = std::max(f.right, f.left + 10);
    bar_axis(f, series, o, m);
    f.height += std::max(0, int(std::ceil(f.xtick_room - m.line)));  // upright or wrapped names: the figure grows, not the plot
    return f;
  }
  // Fewer x ticks until their labels fit side by side; the outer labels' halves must fit the margins.
  for (int max_ticks = std::clamp(int((f.right - f.left) / (4 * m.cap)), 3, 12);; --max_ticks) {
    make_axis(ex, o.xmin, o.xmax, max_ticks, f.xlo, f.xhi, f.xticks);
    f.xtick_labels = tick_labels(f.xticks);
    double widest = 0;
    for (auto& l : f.xtick_labels) widest = std::max(widest, double(width_of(l, m.s)));
    const double first = f.xtick_labels.empty() ? 0 : width_of(f.xtick_labels.front(), m.s) / 2.0;
    const double last = f.xtick_labels.empty() ? 0 : width_of(f.xtick_labels.back(), m.s) / 2.0;
    f.left = std::max(f.left, std::ceil(m.pad + first));
    f.right = std::max(std::floor(o.width - std::max(m.pad + room, last + 2)), f.left + 10);
    const double gap = f.xticks.size() > 1 ? f.px(f.xticks[1]) - f.px(f.xticks[0]) : 1e9;
    if (gap >= widest + 2 * m.cap || max_ticks <= 3) return f;
  }
}

double mark_top(const PlotFrame& f, const PlotOptions& o, double lo, double hi, double h) {
  const double top = std::min(f.py(hi), f.py(lo)), bottom = std::max(f.py(hi), f.py(lo)), gap = 4;
  std::vector<double> lines;  // the dashed lines' rows
  for (double v : o.hlines)
    if (std::isfinite(v) && v >= f.ylo && v <= f.yhi) lines.push_back(std::round(f.py(v)));
  auto clear = [&](double y) {
    if (!std::isfinite(y) || y < f.top + 2 || y + h > f.bottom - 2) return false;
    if (y < bottom + gap && y + h > top - gap) return false;  // on the span or its caps
    for (double l : lines)
      if (y < l + gap && y + h > l - gap) return false;
    return true;
  };
  std::vector<double> tries = {top - gap - h};
  for (double l : lines)
    if (l < top) tries.push_back(l - gap - h);
  tries.push_back(bottom + gap);
  for (double l : lines)
    if (l > bottom) tries.push_back(l + gap);
  std::stable_sort(tries.begin() + 1, tries.end(), [&](double a, double b) {  // nearest the span first, above first
    return (a < top) != (b < top) ? a < top : std::fabs(a - top) < std::fabs(b - top);
  });
  for (double y : tries)
    if (clear(y)) return y;
  return std::max(f.top + 2, tries.front());
}

std::string plot_svg(const std::vector<Series>& series, const PlotOptions& o) { return to_svg(plot_canvas(series, o)); }
Image plot_image(const std::vector<Series>& series, const PlotOptions& o) { return to_image(plot_canvas(series, o)); }

Image legend_image(const std::vector<Series>& series, PlotKind kind, int width, double text_scale) {
  const Metrics m(text_scale);
  const double max_w = width - 2.0 * m.pad;
  std::vector<double> widths;
  const size_t rows = legend_rows(series, m, max_w, widths).size();
  Canvas c{width, int(std::ceil(2 * m.pad + double(rows * m.line))), {}};
  c.items.push_back(Rect{0, 0, double(c.w), double(c.h), kWhite, "background"});
  auto centred = [&](double w) { return std::max(double(m.pad), (width - w) / 2); };
  draw_legend(c, series, kind, m.pad, max_w, centred, m);
  return to_image(c);
}

Image colorbar_image(const std::string& colormap, double lo, double hi, int height, const std::string& caption) {
  return to_image(colorbar_canvas(colormap, lo, hi, height, caption));
}
std::string colorbar_svg(const std::string& colormap, double lo, double hi, int height, const std::string& caption) {
  return to_svg(colorbar_canvas(colormap, lo, hi, height, caption));
}

}  // namespace gb::explain
