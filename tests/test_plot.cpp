// Plots and colorbars (explain/common/plot.h): nice ticks, the data-to-pixel map, well-formed and
// escaped SVG, the raster's colours and determinism, non-finite data, and colorbar ends.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "engine/rng.h"
#include "explain/common/plot.h"

using namespace gb;
using namespace gb::explain;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

size_t count(const std::string& s, const std::string& sub) {
  size_t n = 0;
  for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
  return n;
}

// As much of XML well-formedness as a few lines can check: tags nest and close, attribute quotes
// pair up, and text holds no raw '<', '>' or '&' that does not start an entity.
bool well_formed(const std::string& s) {
  std::vector<std::string> open;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '<') {
      if (s[i] == '>') return false;
      if (s[i] == '&') {
        bool entity = false;
        for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"}) entity |= s.compare(i, std::strlen(e), e) == 0;
        if (!entity) return false;
      }
      ++i;
      continue;
    }
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return false;
    const std::string tag = s.substr(i + 1, end - i - 1);
    if (tag.find('<') != std::string::npos || count(tag, "\"") % 2) return false;
    const std::string name = tag.substr(tag[0] == '/', tag.find_first_of(" />", 1) - (tag[0] == '/'));
    if (tag[0] == '/') {
      if (open.empty() || open.back() != name) return false;
      open.pop_back();
    } else if (tag.back() != '/') {
      if (open.empty() && name != "svg") return false;  // one root
      open.push_back(name);
    }
    i = end + 1;
  }
  return open.empty();
}

size_t count_color(const Image& im, Rgb c) {
  size_t n = 0;
  for (int y = 0; y < im.h; ++y)
    for (int x = 0; x < im.w; ++x) n += Rgb{im.px(x, y)[0], im.px(x, y)[1], im.px(x, y)[2]} == c;
  return n;
}

Rgb at(const Image& im, double x, double y) {
  const uint8_t* p = im.px(int(std::floor(x)), int(std::floor(y)));
  return {p[0], p[1], p[2]};
}

std::string xml_escaped(const std::string& s) {
  std::string out;
  for (char c : s)
    out += c == '\'' ? "&apos;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
  return out;
}

Series make(const std::string& label, std::vector<double> x, std::vector<double> y) {
  Series s;
  s.label = label, s.x = std::move(x), s.y = std::move(y);
  return s;
}

}  // namespace

TEST_CASE("nice ticks step by 1, 2 or 5 x 10^k and cover the range") {
  const std::vector<double> t = nice_ticks(0, 0.93, 7);
  const std::vector<double> want = {0, 0.2, 0.4, 0.6, 0.8, 1.0};
  REQUIRE(t.size() == want.size());
  for (size_t i = 0; i < t.size(); ++i) CHECK(t[i] == doctest::Approx(want[i]).epsilon(1e-12));
  for (int max_ticks = 5; max_ticks <= 11; ++max_ticks) {
    const std::vector<double> u = nice_ticks(-3, 1234, max_ticks);
    CAPTURE(max_ticks);
    const double step = u[1] - u[0];
    CHECK((step == 200 || step == 500));
    CHECK(u.front() <= -3);
    CHECK(u.back() >= 1234);
  }
  // Random ranges over many decades: a 1/2/5 step, evenly spaced, covering, tight, not too many.
  Rng rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    const double scale = std::pow(10.0, -6 + 12 * rng.uniform());
    const double lo = (rng.uniform() - 0.5) * scale, hi = lo + scale * (0.01 + rng.uniform());
    const int max_ticks = 3 + trial % 8;
    const std::vector<double> v = nice_ticks(lo, hi, max_ticks);
    CAPTURE(lo);
    CAPTURE(hi);
    REQUIRE(v.size() >= 2);
    CHECK(int(v.size()) <= max_ticks);
    const double step = v[1] - v[0];
    const double mant = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    CHECK((std::fabs(mant - 1) < 1e-9 || std::fabs(mant - 2) < 1e-9 || std::fabs(mant - 5) < 1e-9));
    for (size_t i = 1; i < v.size(); ++i) CHECK(v[i] - v[i - 1] == doctest::Approx(step).epsilon(1e-9));
    CHECK(v.front() <= lo + 1e-9 * step);
    CHECK(v.back() >= hi - 1e-9 * step);
    CHECK(v.front() > lo - step);
    CHECK(v.back() < hi + step);
  }
  CHECK(nice_ticks(1, 1, 5).size() == 2);  // no range: no loop, no crash
}

TEST_CASE("tick labels are compact and in one style per axis") {
  CHECK(tick_labels({0, 0.2, 0.4, 0.6, 0.8, 1.0}) == std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1.0"});
  CHECK(tick_labels({0.2, 0.25, 0.3}) == std::vector<std::string>{"0.20", "0.25", "0.30"});
  CHECK(tick_labels({-500, 0, 500, 1000, 1500}) == std::vector<std::string>{"-500", "0", "500", "1000", "1500"});
  CHECK(tick_labels({0, 4000, 8000, 12000}) == std::vector<std::string>{"0", "4k", "8k", "12k"});
  CHECK(tick_labels({0, 5e5, 1e6, 1.5e6}) == std::vector<std::string>{"0", "0.5M", "1.0M", "1.5M"});
  CHECK(tick_labels({0, 2e-4, 4e-4, 6e-4}) == std::vector<std::string>{"0", "2e-4", "4e-4", "6e-4"});
  CHECK(tick_labels({1e-3, 1.2e-3}) == std::vector<std::string>{"1e-3", "1.2e-3"});
  CHECK(tick_labels({0, 0.001, 0.002}) == std::vector<std::string>{"0", "0.001", "0.002"});
}

TEST_CASE("the frame maps data coordinates to the pixels where points are drawn") {
  PlotOptions o;
  o.kind = PlotKind::scatter;
  o.xmin = 0, o.xmax = 10, o.ymin = 0, o.ymax = 1;
  o.title = "t", o.xlabel = "x", o.ylabel = "y";
  const std::vector<Series> s = {make("", {2.5}, {0.75})};
  const PlotFrame f = plot_frame(s, o);
  CHECK(f.xlo == 0);
  CHECK(f.xhi == 10);
  CHECK(f.px(0) == f.left);
  CHECK(f.px(10) == f.right);
  CHECK(f.px(5) == doctest::Approx((f.left + f.right) / 2));
  CHECK(f.py(0) == f.bottom);
  CHECK(f.py(1) == f.top);
  CHECK(f.py(0.25) == doctest::Approx(f.bottom - 0.25 * (f.bottom - f.top)));
  CHECK((f.left > 0 && f.right < o.width && f.top > 0 && f.bottom < o.height));
  CHECK(f.xticks == std::vector<double>{0, 2, 4, 6, 8, 10});
  const Image im = plot_image(s, o);
  CHECK(at(im, f.px(2.5), f.py(0.75)) == series_color(0));
  CHECK(at(im, f.px(7.5), f.py(0.25)) == Rgb{255, 255, 255});

  o.kind = PlotKind::line;  // a line through known points passes their pixels
  const std::vector<Series> line = {make("", {0, 10}, {0.5, 0.5})};
  const Image im2 = plot_image(line, o);
  for (double x : {1.0, 5.0, 9.0}) CHECK(at(im2, f.px(x), f.py(0.5)) == series_color(0));
}

TEST_CASE("default axes run from the data to the ticks around it; degenerate data still gets a range") {
  PlotOptions o;
  PlotFrame f = plot_frame({make("", {0, 0.5, 1}, {0.03, 0.5, 0.93})}, o);
  CHECK(f.ylo == 0);
  CHECK(f.yhi == doctest::Approx(1));
  CHECK(f.yticks.front() == f.ylo);
  CHECK(f.yticks.back() == f.yhi);
  CHECK(f.xlo == 0);
  CHECK(f.xhi == 1);

  f = plot_frame({make("", {}, {3, 3, 3})}, o);  // all equal (x empty: 0, 1, 2)
  CHECK((f.ylo <= 2 && f.yhi >= 4 && f.yhi - f.ylo <= 4));
  CHECK((f.xlo == 0 && f.xhi == 2));
  for (const std::vector<Series>& none : {std::vector<Series>{}, std::vector<Series>{Series{}},
                                          std::vector<Series>{make("", {kNaN}, {kNaN})}}) {
    f = plot_frame(none, o);
    CHECK((f.xlo == 0 && f.xhi == 1 && f.ylo == 0 && f.yhi == 1));
  }
  Series e = make("", {0}, {1});
  e.err = {5};
  o.hlines = {-7};
  f = plot_frame({e}, o);
  CHECK(f.yhi >= 6);
  CHECK(f.ylo <= -7);  // hlines are in range too
  o = PlotOptions{};
  o.kind = PlotKind::bars;
  f = plot_frame({make("", {}, {2, 3})}, o);
  CHECK(f.ylo == 0);  // bars grow from zero
  CHECK((f.xlo == -0.5 && f.xhi == 1.5));
  o.ymin = 1;  // a given end is kept even where data lies beyond it
  f = plot_frame({make("", {}, {2, 3})}, o);
  CHECK(f.ylo == 1);
}

TEST_CASE("the SVG is a standalone, well-formed document with every text escaped") {
  PlotOptions o;
  o.title = "Title <&> \"q\"";
  o.xlabel = "x label & more";
  o.ylabel = "y 'label'";
  o.hlines = {0.5};
  const std::vector<Series> s = {make("first <&>", {0, 1, 2}, {0, 1, 0.5}), make("second", {0, 1, 2}, {1, 0, 0.2}),
                                 make("", {0, 1, 2}, {0.3, 0.3, 0.3})};
  const std::string svg = plot_svg(s, o);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.find("width=\"640\" height=\"420\" viewBox=\"0 0 640 420\"") != std::string::npos);
  CHECK(svg.find("font-family=\"sans-serif\"") != std::string::npos);
  CHECK(well_formed(svg));
  CHECK_FALSE(well_formed("<svg><g></svg></g>"));  // the checker checks
  CHECK_FALSE(well_formed("<svg><text>a & b</text></svg>"));
  for (const char* text : {"Title &lt;&amp;&gt; &quot;q&quot;", "x label &amp; more", "y &apos;label&apos;",
                           ">first &lt;&amp;&gt;</text>", ">second</text>"})
    CHECK_MESSAGE(svg.find(text) != std::string::npos, text);
  CHECK(svg.find("<&>") == std::string::npos);
  for (const char* external : {"href", "url(", "<image", "@import", "<script"}) CHECK(svg.find(external) == std::string::npos);
  // Legible: text at least 12 px.
  CHECK(count(svg, "font-size=\"19\"") == count(svg, "<text"));

  // A title too wide is cut between whole characters (UTF-8 code points) and marked.
  PlotOptions wide;
  for (int i = 0; i < 200; ++i) wide.title += "ε";
  CHECK(plot_svg({}, wide).find("εε..</text>") != std::string::npos);

  CHECK(count(svg, "<path class=\"series\"") == 3);  // one path per line series
  CHECK(count(svg, "class=\"hline\"") == 1);
  CHECK(count(svg, "stroke-dasharray") == 1);
  for (size_t j = 0; j < 3; ++j) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "#%02x%02x%02x", series_color(j).r, series_color(j).g, series_color(j).b);
    CHECK(svg.find(std::string("stroke=\"") + hex) != std::string::npos);
  }
  CHECK(count(svg, "class=\"legend\"") == 2);  // the unlabelled series has no entry

  o.kind = PlotKind::scatter;
  CHECK(count(plot_svg(s, o), "<circle class=\"marker\"") == 9);

  o.kind = PlotKind::bars;
  o.categories = {"a", "b<c", "c", "d"};
  std::vector<Series> bars = {make("A", {}, {1, 2, 3, 4}), make("B", {}, {2, kNaN, 1, 3}), make("C", {}, {1, 1, 1, 1})};
  bars[0].err = {0.1, 0.2, kNaN, 0.1};
  const std::string b = plot_svg(bars, o);
  CHECK(well_formed(b));
  CHECK(count(b, "<rect class=\"bar\"") == 11);  // 12 values, one NaN
  CHECK(count(b, "<rect class=\"legend\"") == 3);
  CHECK(b.find(">b&lt;c</text>") != std::string::npos);
  // Whiskers: 3 pieces (a line and two caps) per finite error, in one path.
  const size_t p = b.find("<path class=\"errorbar\"");
  REQUIRE(p != std::string::npos);
  CHECK(count(b.substr(p, b.find("/>", p) - p), "M") == 9);
}

TEST_CASE("the raster has the requested size, each series' colour, legible text, and the same bits every run") {
  PlotOptions o;
  o.width = 500, o.height = 300;
  o.title = "HHHH";
  std::vector<Series> s;
  for (int j = 0; j < 4; ++j) s.push_back(make("s" + std::to_string(j), {0, 1, 2, 3}, {double(j), j + 1.0, j + 0.5, j + 2.0}));
  const Image im = plot_image(s, o);
  CHECK(im.w == 500);
  CHECK(im.h == 300);
  REQUIRE(im.rgb.size() == size_t(500) * 300 * 3);
  for (size_t j = 0; j < s.size(); ++j) CHECK(count_color(im, series_color(j)) > 100);
  const Image again = plot_image(s, o);
  CHECK(again.rgb == im.rgb);
  CHECK(plot_svg(s, o) == plot_svg(s, o));
  // The title's capitals ("HHHH": black in every row they span) are at least 12 px tall.
  auto black_row = [&](int y) {
    for (int x = 0; x < im.w; ++x)
      if (at(im, x, y) == Rgb{0, 0, 0}) return true;
    return false;
  };
  int first = 0, rows = 0;
  while (first < im.h && !black_row(first)) ++first;
  while (first + rows < im.h && black_row(first + rows)) ++rows;
  CHECK(rows >= 12);
  // The raster's font is ASCII: a few symbols are spelt out, other bytes drawn as '?', never read past.
  PlotOptions greek = o, spelt = o;
  greek.xlabel = "accuracy vs ε (×1000)", spelt.xlabel = "accuracy vs eps (x1000)";
  CHECK(plot_image(s, greek).rgb == plot_image(s, spelt).rgb);
  greek.ylabel = "\xff\xfe\x01 \xe2\x82";
  CHECK_NOTHROW(plot_image(s, greek));
  CHECK(plot_svg(s, greek).find("accuracy vs ε (×1000)") != std::string::npos);
  // Lines are at least 2 px wide: a horizontal line covers 2 rows at every column.
  o.ymin = 0, o.ymax = 1;
  const std::vector<Series> flat = {make("", {0, 1}, {0.37, 0.37})};
  const Image fl = plot_image(flat, o);
  const PlotFrame f = plot_frame(flat, o);
  for (double x = f.left + 2; x < f.right - 2; x += 7) {
    int covered = 0;
    for (int y = int(f.top); y < int(f.bottom); ++y) covered += at(fl, x, y) == series_color(0);
    CHECK(covered >= 2);
  }
}

TEST_CASE("non-finite values are skipped and break the line; bad input is refused by name") {
  PlotOptions o;
  o.ymin = 0, o.ymax = 2;
  const std::vector<Series> s = {make("gap", {0, 1, 2, 3, 4}, {1, 1, kNaN, 1, 1}),
                                 make("inf", {0, kInf, 2, 3, 4}, {0.5, 0.5, 0.5, -kInf, 0.5})};
  const std::string svg = plot_svg(s, o);
  const size_t p = svg.find("<path class=\"series\"");
  REQUIRE(p != std::string::npos);
  CHECK(count(svg.substr(p, svg.find("/>", p) - p), "M") == 2);  // two pieces
  const Image im = plot_image(s, o);
  const PlotFrame f = plot_frame(s, o);
  CHECK(at(im, f.px(0.5), f.py(1)) == series_color(0));
  CHECK(at(im, f.px(3.5), f.py(1)) == series_color(0));
  CHECK(at(im, f.px(2), f.py(1)) != series_color(0));  // the gap
  CHECK(at(im, f.px(2), f.py(0.5)) == series_color(1));  // an isolated point is still a dot
  CHECK((f.xlo == 0 && f.xhi == 4));

  // Everything non-finite, or far outside given ends: no crash, nothing drawn outside the plot area.
  Series wild = make("", {0, 1, 2, 3}, {1e300, -1e300, 1, 1e9});  // no legend swatch in its colour
  wild.err = {kInf, kNaN, 1e200, 1};
  const std::vector<Series> all = {make("nan", {kNaN, kNaN}, {kNaN, kNaN}), wild};
  const Image w = plot_image(all, o);
  CHECK(well_formed(plot_svg(all, o)));
  const PlotFrame g = plot_frame(all, o);
  for (int y = 0; y < w.h; ++y)
    for (int x = 0; x < w.w; ++x)
      if (at(w, x, y) == series_color(1)) CHECK((x >= g.left - 6 && x <= g.right + 6 && y >= g.top - 6 && y <= g.bottom + 6));

  // Magnitudes near the largest double: every coordinate written is still a finite number.
  const std::vector<Series> huge = {make("", {-1.7e308, 0, 1.7e308}, {1.7e308, -1.7e308, 0})};
  for (PlotKind kind : {PlotKind::line, PlotKind::scatter, PlotKind::bars}) {
    PlotOptions h;
    h.kind = kind;
    const std::string hs = plot_svg(huge, h);
    CHECK(well_formed(hs));
    CHECK(hs.find("nan") == std::string::npos);
    CHECK(hs.find("inf") == std::string::npos);
    CHECK(plot_image(huge, h).w == h.width);
  }

  CHECK_THROWS_AS(plot_svg({make("bad", {0, 1}, {0})}, o), std::invalid_argument);
  Series err = make("e", {0}, {0});
  err.err = {1, 2};
  CHECK_THROWS_AS(plot_image({err}, o), std::invalid_argument);
  o.ymin = 3;
  CHECK_THROWS_AS(plot_image({}, o), std::invalid_argument);
  o.ymin = kNaN;
  CHECK_THROWS_AS(plot_image({}, o), std::invalid_argument);
}

TEST_CASE("zero series still give labelled axes") {
  PlotOptions o;
  o.title = "nothing yet", o.xlabel = "epoch", o.ylabel = "loss";
  const std::string svg = plot_svg({}, o);
  CHECK(well_formed(svg));
  CHECK(svg.find(">epoch</text>") != std::string::npos);
  CHECK(count(svg, "class=\"legend\"") == 0);
  const Image im = plot_image({}, o);
  CHECK(count_color(im, Rgb{0, 0, 0}) > 100);  // axes and text
}

TEST_CASE("bar labels too wide for their slot stand upright, or stay distinct past that; axis titles wrap") {
  PlotOptions o;
  o.kind = PlotKind::bars;
  o.width = 700;  // 13 layers: slots of ~45 px, 3 or 4 characters side by side
  o.categories = {"input", "conv1", "relu1", "maxpool1", "conv2", "relu2", "maxpool2", "flatten1",
                  "dense1", "relu3", "dense2", "relu4", "dense3"};
  std::vector<double> y(o.categories.size(), 0.5);
  o.ylabel = "mean shift of the explanation's center of mass (pixels)";
  o.xlabel = "layer";
  PlotOptions flat = o;
  flat.categories = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"};
  const PlotFrame side_by_side = plot_frame({make("a", {}, y)}, flat);
  CHECK(!side_by_side.xtick_vertical);
  CHECK(side_by_side.height == o.height);
  // Whole names, upright (they were shortened to "m..1"); the figure grows by their length, the plot
  // area keeps its size.
  const PlotFrame f = plot_frame({make("a", {}, y)}, o);
  CHECK(f.xtick_vertical);
  CHECK(f.xtick_labels == o.categories);
  CHECK(f.xtick_room == text_width("maxpool1", 2));
  CHECK(f.height == o.height + int(std::ceil(f.xtick_room - 20)));
  CHECK(f.bottom - f.top == side_by_side.bottom - side_by_side.top);
  // Past half the figure's height, upright names lose their middle and keep their ends apart.
  PlotOptions longer = o;
  for (std::string& c : longer.categories) c = "activation of " + c;
  const PlotFrame l = plot_frame({make("a", {}, y)}, longer);
  REQUIRE(l.xtick_labels.size() == longer.categories.size());
  CHECK(l.xtick_vertical);
  CHECK(l.xtick_room <= o.height / 2.0);
  for (size_t a = 0; a < l.xtick_labels.size(); ++a) {
    CAPTURE(l.xtick_labels[a]);
    CHECK(text_width(l.xtick_labels[a], 2) <= l.xtick_room);
    for (size_t b = a + 1; b < l.xtick_labels.size(); ++b) CHECK(l.xtick_labels[a] != l.xtick_labels[b]);
  }
  // The shortened names keep their distinguishing ends: maxpool1 and maxpool2 end in 1 and 2.
  CHECK(l.xtick_labels[3].back() == '1');
  CHECK(l.xtick_labels[6].back() == '2');
  CHECK(l.xtick_labels[3].find("..") != std::string::npos);
  // Wide slots: a long name goes on up to three lines, flat, whole (TCAV's concept names were cut
  // upright as "stripes-h..long-name").
  PlotOptions few = o;
  few.width = 900;
  few.categories = {"stripes-horizontal-with-a-long-name", "vertical stripes concept", "dots", "random"};
  const PlotFrame w = plot_frame({make("a", {}, std::vector<double>(4, 0.5))}, few);
  CHECK(!w.xtick_vertical);
  REQUIRE(w.xtick_labels.size() == 4);
  const double slot = (w.right - w.left) / 4;
  size_t most = 0;
  for (size_t i = 0; i < 4; ++i) {
    std::string joined, line;
    size_t count = 0;
    for (char ch : w.xtick_labels[i] + "\n")
      if (ch == '\n') {
        CHECK(text_width(line, 2) <= slot - 8);
        joined += (joined.empty() || joined.back() == '-' ? "" : " ") + line, line.clear(), ++count;
      } else {
        line += ch;
      }
    CHECK(joined == few.categories[i]);
    most = std::max(most, count);
  }
  CHECK(most >= 2);
  CHECK(most <= 3);
  CHECK(w.xtick_room == 20.0 * double(most));
  CHECK(w.height == o.height + int(w.xtick_room) - 20);
  CHECK(plot_svg({make("a", {}, std::vector<double>(4, 0.5))}, few).find(">concept</text>") != std::string::npos);
  // Slots narrower than a line of text: shortened side by side, in one line's room.
  PlotOptions narrow = o;
  narrow.width = 160, narrow.categories.resize(8);
  const PlotFrame n = plot_frame({make("a", {}, std::vector<double>(8, 0.5))}, narrow);
  CHECK(!n.xtick_vertical);
  CHECK(n.xtick_room == 20);
  CHECK(n.height == o.height);
  // Every word of the y title is drawn, on more than one line, each within the plot's height.
  REQUIRE(f.ylabel_lines.size() >= 2);
  std::string joined;
  for (const std::string& l : f.ylabel_lines) {
    joined += (joined.empty() ? "" : " ") + l;
    CHECK(text_width(l, 2) <= f.bottom - f.top + 20);
  }
  CHECK(joined == o.ylabel);
  const std::string svg = plot_svg({make("a", {}, y)}, o);
  for (const std::string& l : f.ylabel_lines) CHECK(svg.find(">" + xml_escaped(l) + "</text>") != std::string::npos);
  CHECK(svg.find(">" + f.xtick_labels[6] + "</text>") != std::string::npos);
  // The upright name's element ends at its tick (text-anchor end, turned a quarter).
  const size_t name = svg.find(">maxpool1</text>");
  REQUIRE(name != std::string::npos);
  const std::string element = svg.substr(svg.rfind("<text", name), name - svg.rfind("<text", name));
  CHECK(element.find("text-anchor=\"end\"") != std::string::npos);
  CHECK(element.find("rotate(-90") != std::string::npos);
  // In the PNG, the upright names' ink is under the axis, none of it above the ticks' ends.
  const Image im = plot_image({make("a", {}, y)}, o);
  int top_ink = im.h, ink = 0;
  for (int v = int(f.bottom) + 1; v < int(f.bottom + 9 + f.xtick_room); ++v)
    for (size_t t = 0; t < f.xticks.size(); ++t)
      for (int u = int(f.px(f.xticks[t])) - 10; u <= int(f.px(f.xticks[t])) + 10; ++u) {
        const Rgb p = at(im, u, v);
        if (p.r == p.g && p.g == p.b && p.r < 200 && v > int(f.bottom) + 6) top_ink = std::min(top_ink, v), ++ink;
      }
  CHECK(ink > 200);
  CHECK(top_ink >= int(f.bottom) + 5 + 4);  // the axis, the 5 px tick, a 4 px gap
  // An empty name in a slot narrower than ".." (it read past the end of the name).
  PlotOptions tiny = o;
  tiny.width = 234, tiny.text_scale = 7, tiny.categories = {"a", "", "b", "c", "d", "e", "f", "g"};
  CHECK_NOTHROW(plot_frame({make("a", {}, std::vector<double>(8, 0.5))}, tiny));
  CHECK(fit_text("Pullover with an extraordinarily long descriptive name", 1, 100).ends_with(".."));
  CHECK(text_width(fit_text("Pullover with an extraordinarily long descriptive name", 1, 100), 1) <= 100);
  CHECK(fit_text("Bag", 1, 100) == "Bag");
}

TEST_CASE("a long title wraps above the plot, which starts lower; every word is drawn") {
  PlotOptions o;
  o.kind = PlotKind::scatter;
  o.width = 640, o.height = 520, o.text_scale = kLabelScale;
  const std::vector<Series> s = {make("0", {0, 1}, {0, 1})};
  o.title = "rule tree";
  const PlotFrame one = plot_frame(s, o);
  o.title = "rule tree (depth <= 3, 4 leaves): fidelity 0.928 on the fitting set, 0.92 held out, 0.91 on test";
  const PlotFrame f = plot_frame(s, o);
  REQUIRE(one.title_lines.size() == 1);
  REQUIRE(f.title_lines.size() == 2);
  CHECK(f.top - one.top == 18);  // one more title line: 10 units at 1.5x and 3 px
  std::string joined;
  for (const std::string& l : f.title_lines) {
    CHECK(text_width(l, kLabelScale) <= o.width - 16);
    joined += (joined.empty() ? "" : " ") + l;
  }
  CHECK(joined == o.title);
  // Balanced: the shorter line is not an orphan (greedy filling left "out" alone on a second line).
  CHECK(text_width(f.title_lines[1], kLabelScale) >= 0.7 * text_width(f.title_lines[0], kLabelScale));
  const std::string svg = plot_svg(s, o);
  for (const std::string& l : f.title_lines) CHECK(svg.find(">" + xml_escaped(l) + "</text>") != std::string::npos);
}

TEST_CASE("up to 20 series get distinct colours; a long legend makes the figure taller, not the plot a sliver") {
  for (size_t a = 0; a < 20; ++a)
    for (size_t b = a + 1; b < 20; ++b) {
      const Rgb p = series_color(a), q = series_color(b);
      const double d = std::hypot(double(p.r) - q.r, double(p.g) - q.g, double(p.b) - q.b);
      CAPTURE(a);
      CAPTURE(b);
      CHECK(d > 40);
    }
  PlotOptions o;
  o.title = "invert: objective";
  std::vector<Series> few, many;
  for (int j = 0; j < 12; ++j) {
    Series s = make("ankle-boot-very-long-class-label_0_layer" + std::to_string(j), {0, 1, 2}, {0, -1.0 * j, 2});
    if (j < 2) few.push_back(s);
    many.push_back(s);
  }
  const Image small = plot_image(few, o), tall = plot_image(many, o);
  CHECK(small.h == o.height);  // a short legend changes nothing
  CHECK(small.w == o.width);
  CHECK(tall.w == o.width);
  CHECK(tall.h > o.height);
  const PlotFrame f = plot_frame(many, o);
  CHECK(f.height == tall.h);
  CHECK(f.bottom - f.top >= o.height / 2.0);
  CHECK(plot_svg(many, o).find("height=\"" + std::to_string(tall.h) + "\"") != std::string::npos);
  for (size_t j = 0; j < many.size(); ++j) CHECK(count_color(tall, series_color(j)) > 20);
}

TEST_CASE("a dashed line's label is drawn right of its end; a note sits in the plot area") {
  PlotOptions o;
  o.ymin = 0, o.ymax = 1;
  o.hlines = {0.1};
  const std::vector<Series> s = {make("acc", {0, 1, 2}, {0.9, 0.8, 0.95})};
  const PlotFrame bare = plot_frame(s, o);
  o.hline_labels = {"chance"};
  const PlotFrame f = plot_frame(s, o);
  CHECK(f.right < bare.right);  // room for the label
  const Image im = plot_image(s, o);
  const Rgb ref{110, 110, 110};
  int ink = 0;
  const int y = int(std::round(f.py(0.1)));
  for (int v = y - 10; v <= y + 10; ++v)
    for (int u = int(f.right) + 2; u < im.w; ++u) ink += at(im, u, v) == ref;
  CHECK(ink > 20);  // the label's strokes, in the lines' grey, beside the line
  CHECK(plot_svg(s, o).find(">chance</text>") != std::string::npos);
  CHECK(plot_svg(s, o).find("#6e6e6e\" text-anchor=\"start\">chance") != std::string::npos);
  // A line that is not drawn (outside the given range, or not finite) takes no room for its label.
  PlotOptions off = o;
  off.hlines = {1.5};
  CHECK(plot_frame(s, off).right == bare.right);
  off.hlines = {NAN};
  CHECK(plot_frame(s, off).right == bare.right);
  // Two lines closer than a text line: their labels are a line apart, in the lines' order.
  PlotOptions close = o;
  close.hlines = {0.52, 0.5};
  close.hline_labels = {"upper", "lower"};
  const std::string svg = plot_svg(s, close);
  auto text_y = [&](const std::string& word) {
    const size_t end = svg.find(">" + word + "</text>");
    REQUIRE(end != std::string::npos);
    const size_t y = svg.rfind(" y=\"", end);
    return std::stod(svg.substr(y + 4));
  };
  CHECK(text_y("lower") - text_y("upper") >= 20);  // a line at text_scale 2

  o.note = "no unit passed IoU > 0.04";
  CHECK(plot_svg(s, o).find(">no unit passed IoU &gt; 0.04</text>") != std::string::npos);
}

TEST_CASE("a mark over a whisker keeps clear of the whisker and of the dashed line") {
  PlotOptions o;
  o.kind = PlotKind::bars;
  o.ymin = 0, o.ymax = 1.12;
  o.hlines = {0.5};
  const std::vector<Series> s = {make("a", {}, {0.3, 0.5, 0.9})};
  const PlotFrame f = plot_frame(s, o);
  const double h = 14, line = std::round(f.py(0.5));
  struct Span {
    double lo, hi;
  };
  // Just under the line (the audit's overlap), across it, reaching 1 or past it, just over it.
  for (Span sp : {Span{0.1, 0.49}, Span{0.45, 0.55}, Span{0.7, 1.0}, Span{0.3, 1.1}, Span{0.51, 0.6}}) {
    CAPTURE(sp.lo);
    CAPTURE(sp.hi);
    const double y = mark_top(f, o, sp.lo, sp.hi, h);
    CHECK(y >= f.top);
    CHECK(y + h <= f.bottom);
    CHECK((y + h < line - 2 || y > line + 2));                        // off the dashed line
    CHECK((y + h < f.py(sp.hi) - 2 || y > f.py(sp.lo) + 2));          // off the whisker and its caps
  }
}

TEST_CASE("colormap_rgb gives the heatmap's colours and the colorbar shows its ends") {
  uint8_t q[3];
  auto rgb = [&](const char* name, double t) {
    colormap_rgb(name, t, q);
    return Rgb{q[0], q[1], q[2]};
  };
  CHECK(rgb("bwr", 1) == Rgb{255, 0, 0});
  CHECK(rgb("bwr", -1) == Rgb{0, 0, 255});
  CHECK(rgb("bwr", 0) == Rgb{255, 255, 255});
  CHECK(rgb("bwr", 7) == Rgb{255, 0, 0});  // clamped
  CHECK(rgb("hot", 0) == Rgb{0, 0, 0});
  CHECK(rgb("hot", 1) == Rgb{255, 255, 255});
  CHECK(rgb("gray", 0.5) == Rgb{128, 128, 128});
  CHECK_THROWS_AS(rgb("jet", 0), std::invalid_argument);

  // A heatmap's pixels are colormap_rgb of its scaled values.
  Tensor a = Tensor::from({1, 2, 2}, {1.f, -0.5f, 0.f, -1.f});
  const Image h = heatmap(a);
  CHECK(at(h, 0, 0) == rgb("bwr", 1));
  CHECK(at(h, 1, 0) == rgb("bwr", -0.5));
  CHECK(at(h, 1, 1) == rgb("bwr", -1));

  // The bar's top row is hi and its bottom row lo; the frame is the first non-white pixel around it.
  struct Case {
    const char* cmap;
    double lo, hi, t_top, t_bottom;
  };
  for (const Case& c : {Case{"bwr", -3, 3, 1, -1}, Case{"bwr", -1, 4, 1, -0.25}, Case{"hot", 0, 2, 1, 0},
                        Case{"gray", -5, 5, 1, 0}}) {
    CAPTURE(c.cmap);
    const Image im = colorbar_image(c.cmap, c.lo, c.hi, 240, "signed <units>");
    CHECK(im.h == 240);
    int x = 0;
    while (at(im, x, 120) == Rgb{255, 255, 255}) ++x;  // the frame's left edge
    x += 5;
    int top = 0, bottom = im.h - 1;
    while (at(im, x, top) == Rgb{255, 255, 255}) ++top;
    while (at(im, x, bottom) == Rgb{255, 255, 255}) --bottom;
    CHECK(at(im, x, top + 1) == rgb(c.cmap, c.t_top));
    CHECK(at(im, x, bottom - 1) == rgb(c.cmap, c.t_bottom));
    CHECK(colorbar_image(c.cmap, c.lo, c.hi, 240, "signed <units>").rgb == im.rgb);
  }
  const std::string svg = colorbar_svg("bwr", -0.02, 0.035, 300, "signed <units>");
  CHECK(well_formed(svg));
  CHECK(svg.find("signed &lt;units&gt;") != std::string::npos);
  CHECK(svg.find(">0.035</text>") != std::string::npos);
  CHECK(svg.find(">-0.02</text>") != std::string::npos);
  CHECK(svg.find(">0</text>") != std::string::npos);
  CHECK(svg.find("fill=\"#ff0000\"") != std::string::npos);
  CHECK_NOTHROW(colorbar_image("hot", 1, 1, 100));  // an empty range is widened
  CHECK_THROWS_AS(colorbar_image("hot", 0, kNaN, 100), std::invalid_argument);
  CHECK_THROWS_AS(colorbar_svg("viridis", 0, 1, 100), std::invalid_argument);
}

TEST_CASE("draw_text draws every stroke of wide glyphs and takes any text") {
  // stb_easy_font needs up to 11 quads per glyph; a smaller buffer dropped the right side of '0'.
  for (const char* glyph : {"0", "8", "k", "00000000"}) {
    CAPTURE(glyph);
    gb::explain::Image im(80, 20);
    const uint8_t black[3] = {0, 0, 0};
    gb::explain::draw_text(im, 0, 0, glyph, black, 1);
    int right = -1;
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < im.w; ++x)
        if (im.px(x, y)[0] == 0) right = std::max(right, x);
    CHECK(right >= gb::explain::text_width(glyph, 1) - 3);  // the last glyph's right stroke is there
  }
  gb::explain::Image im(40, 20);
  const uint8_t black[3] = {0, 0, 0};
  CHECK_NOTHROW(gb::explain::draw_text(im, 0, 0, "\xc3\xa9t\xe9\x80", black, 1));  // é, a broken sequence
  CHECK(gb::explain::printable("ε×\xc3\xa9") == "epsx?");
}

TEST_CASE("labels are drawn at 1.5x, anti-aliased: whole-number scales stay two-tone") {
  using namespace gb::explain;
  const uint8_t black[3] = {0, 0, 0};
  auto tones = [&](double scale, size_t& gray, int& right, int& bottom) {
    Image im(200, 40);
    draw_text(im, 0, 0, "Ankle boot 08", black, scale);
    gray = 0, right = -1, bottom = -1;
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < im.w; ++x) {
        const uint8_t v = im.px(x, y)[0];
        CHECK(im.px(x, y)[1] == v);  // black on white: every pixel a gray
        gray += v > 0 && v < 255;
        if (v < 255) right = std::max(right, x), bottom = std::max(bottom, y);
      }
  };
  size_t gray1, gray2, gray15;
  int r1, r2, r15, b1, b2, b15;
  tones(1, gray1, r1, b1);
  tones(2, gray2, r2, b2);
  tones(kLabelScale, gray15, r15, b15);
  CHECK(gray1 == 0);
  CHECK(gray2 == 0);
  CHECK(gray15 > 20);  // strokes 1.5 px wide: their edges are partly covered
  CHECK(std::abs(r15 + 1 - 1.5 * (r1 + 1)) <= 2);  // 1.5 times as wide and as tall
  CHECK(std::abs(b15 + 1 - 1.5 * (b1 + 1)) <= 2);
  CHECK(std::abs(r2 + 1 - 2 * (r1 + 1)) <= 1);
  CHECK(text_width("Ankle boot 08") == text_width("Ankle boot 08", kLabelScale));
  CHECK(text_width("Ankle boot 08", 1.5) == int(std::ceil(1.5 * text_width("Ankle boot 08", 1))));
  CHECK(line_height() == 18);
  CHECK(line_height(1) == 12);
  // '|' reaches below the line, so "|a|" does not read "lal" (stb_easy_font draws both alike).
  auto lowest_ink = [&](const char* s) {
    Image im(40, 40);
    draw_text(im, 0, 0, s, black, 2);
    int bottom = -1;
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < im.w; ++x)
        if (im.px(x, y)[0] < 255) bottom = y;
    return bottom;
  };
  CHECK(lowest_ink("|") >= lowest_ink("l") + 3);
  CHECK(lowest_ink("a|") == lowest_ink("|"));
  CHECK(text_width("|a|") == text_width("lal"));
}

TEST_CASE("titled puts the wrapped title above the figure, the figure unchanged below it") {
  Image fig(240, 30, 0);
  fig.px(5, 7)[0] = 200;
  const std::string title = "fgsm (eps 0.1): succeeded on 3 of 4 inputs";  // two lines at 232 px
  const int lines = int(wrap_text(title, 240 - 8).size());
  REQUIRE(lines == 2);
  const Image t = titled(fig, title);
  CHECK(t.w == fig.w);
  const int top = t.h - fig.h;
  CHECK(top == 8 + lines * (line_height() + 2));
  for (int y = 0; y < fig.h; ++y)
    for (int x = 0; x < fig.w; ++x) REQUIRE(std::memcmp(t.px(x, top + y), fig.px(x, y), 3) == 0);
  int ink_rows = 0;  // both lines are drawn, inside the band
  for (int y = 0; y < top; ++y) {
    bool ink = false;
    for (int x = 0; x < t.w; ++x) ink |= t.px(x, y)[0] < 128;
    ink_rows += ink;
  }
  CHECK(ink_rows >= 2 * 10);  // 10.5 px capitals on each line
}

TEST_CASE("legend_image draws each labelled series' colour and name once, in rows that fit the width") {
  std::vector<Series> s(3);
  s[0].label = "T-shirt/top", s[1].label = "Trouser", s[2].label = "Pullover";
  auto has_colour = [](const Image& im, Rgb c) {
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < im.w; ++x)
        if (im.px(x, y)[0] == c.r && im.px(x, y)[1] == c.g && im.px(x, y)[2] == c.b) return true;
    return false;
  };
  const Image wide = legend_image(s, PlotKind::line, 900, kLabelScale);
  CHECK(wide.w == 900);
  CHECK(wide.h == 2 * 8 + font_px(10, kLabelScale));  // one row of text, 8 px around it
  for (size_t i = 0; i < 3; ++i) CHECK(has_colour(wide, series_color(i)));
  CHECK_FALSE(has_colour(wide, series_color(3)));
  const Image narrow = legend_image(s, PlotKind::line, 200, kLabelScale);  // one name per row
  CHECK(narrow.h == wide.h + 2 * font_px(10, kLabelScale));
  s[1].label.clear();  // an unlabelled series has no entry
  CHECK_FALSE(has_colour(legend_image(s, PlotKind::line, 900, kLabelScale), series_color(1)));
}

TEST_CASE("a legend of several rows keeps its entries in columns") {
  // Each row centred on its own put the second row's entries between the first's.
  std::vector<Series> s(5);
  const char* names[] = {"a", "a much longer name", "mid", "b", "c"};
  for (size_t i = 0; i < 5; ++i) s[i].label = names[i];
  const Image im = legend_image(s, PlotKind::bars, 420, kLabelScale);
  auto where = [&](size_t i) {  // the top-left pixel of series i's swatch
    const Rgb c = series_color(i);
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < im.w; ++x)
        if (im.px(x, y)[0] == c.r && im.px(x, y)[1] == c.g && im.px(x, y)[2] == c.b) return std::pair{x, y};
    return std::pair{-1, -1};
  };
  std::vector<std::pair<int, int>> at;
  for (size_t i = 0; i < 5; ++i) at.push_back(where(i));
  size_t columns = 1;  // entries on the first row
  while (columns < 5 && at[columns].second == at[0].second) ++columns;
  REQUIRE(columns >= 2);
  REQUIRE(columns < 5);  // (the names do not fit on one row)
  for (size_t i = columns; i < 5; ++i) {
    CHECK(at[i].second > at[0].second);
    CHECK(at[i].first == at[i % columns].first);  // under the entry of its column
  }
}

TEST_CASE("a legend's columns are as wide as their own widest entry: one long name does not make one column") {
  std::vector<Series> s(8);
  s[0].label = "a much longer series name";
  for (size_t i = 1; i < 8; ++i) s[i].label = std::string(1, char('a' + i));
  // 264 px for the long entry, 48 for each short one: five columns (264 + 4 x 48 = 456) fit in
  // 480 - 16; columns as wide as the widest (264) would fit one, eight rows.
  const Image im = legend_image(s, PlotKind::line, 480, kLabelScale);
  CHECK(im.h == 2 * 8 + 2 * font_px(10, kLabelScale));
}
