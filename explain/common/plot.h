// Figures for people: line plots, scatter plots, bar charts with error bars, and colorbars, each
// drawn as a standalone SVG document (for reports and files) and as an RGB8 Image (for PNG files and
// grids). Both come from one description of the figure (shapes and texts in pixel coordinates), so
// they never disagree; text is laid out with the Image's font (stb_easy_font), whose width the SVG's
// generic sans-serif roughly matches.
//
// Conventions:
// - Axes run over "nice" ticks (1, 2 or 5 x 10^k steps): by default the data range (with error bars,
//   hlines, and 0 for bars) widened to the ticks around it; a given xmin/xmax/ymin/ymax is kept exactly.
// - Non-finite values are skipped (a line breaks there); equal or no values give a range of +-1 around
//   the value (or [0, 1]).
// - Series colours are the Okabe-Ito colour-blind-safe palette, then 12 more distinct colours (20 in
//   all), in series order.
// - Bar category labels too wide for their slots wrap onto up to three lines where a slot holds six
//   characters, else stand upright (read upwards, hanging from the axis), as long as the longest up
//   to half the figure's height; the figure grows taller for them. Past that, or where a slot is
//   narrower than a line of text, they are shortened in the middle ("max..ol1"), so layer names
//   that differ at the end stay distinct. Titles wrap onto up to three balanced lines.
// - A legend that does not fit on one row is set in the most columns that fit, each as wide as its
//   widest entry.
// - Text is ASCII in the Image (a few Greek letters and signs are spelt out, others become '?'); the
//   SVG keeps it as given, XML-escaped.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "explain/common/heatmap.h"

namespace gb::explain {

struct Series {
  std::string label;          // legend entry (empty: no legend entry)
  std::vector<double> x, y;   // the same length; x empty: 0, 1, 2, ... (bars: category indices)
  std::vector<double> err;    // optional: +-err whiskers, the same length as y
};

enum class PlotKind { line, scatter, bars };

struct PlotOptions {
  std::string title, xlabel, ylabel;
  PlotKind kind = PlotKind::line;
  std::vector<std::string> categories;           // bars: x-axis labels of indices 0, 1, ...
  std::optional<double> xmin, xmax, ymin, ymax;  // fixed axis ends (default: from the data)
  std::vector<double> hlines;                    // dashed horizontal reference lines (e.g. chance level)
  std::vector<std::string> hline_labels;         // what each hline is ("chance"), beside its right end
  std::string note;                              // a line in the middle of the plot area (why it is empty)
  int width = 640, height = 420;                 // pixels (SVG user units), at least 160 x 120; taller when
                                                 // the legend would leave the plot less than half of it
  double text_scale = 2;                         // font scale 1..8: 2 gives 14 px capitals, 1.5 10.5 px
};

std::string plot_svg(const std::vector<Series>& series, const PlotOptions& o);
Image plot_image(const std::vector<Series>& series, const PlotOptions& o);

// The legend of `series` alone, as plot_image draws it (its block of rows centred in `width`): one
// legend for small multiples whose plots share their series.
Image legend_image(const std::vector<Series>& series, PlotKind kind, int width, double text_scale = 2);

// A vertical colorbar for a heatmap colormap ("bwr", "gray", "hot": colormap_rgb), `height` pixels
// tall, labelled with lo (bottom) and hi (top), with 0 for "bwr" (when clear of the ends), and a
// caption along its side.
// "bwr" maps v to v / max(|lo|, |hi|), so white is 0 as in a signed heatmap; "gray" and "hot" map
// lo..hi to their ends.
Image colorbar_image(const std::string& colormap, double lo, double hi, int height, const std::string& caption = "");
std::string colorbar_svg(const std::string& colormap, double lo, double hi, int height, const std::string& caption = "");

// The pieces the figures are made of, for callers that annotate a plot (and for tests).
struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};
Rgb series_color(size_t i);  // the palette, cycling
// Text shortened to fit max_w pixels at `scale`, the cut marked with ".." (whole UTF-8 code points).
std::string fit_text(std::string text, double scale, double max_w);

// Ticks k * step (step = 1, 2 or 5 x 10^j, the smallest giving at most max_ticks ticks) from the
// largest one <= lo to the smallest one >= hi. Needs lo < hi, both finite.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks);
// Labels for evenly spaced ticks, in one style for the whole axis: plain with the step's decimals
// (0.25, 1200), k/M suffixes from 10^4 (12k, 1.5M), scientific below 10^-3 steps (2e-4).
std::vector<std::string> tick_labels(const std::vector<double>& ticks);

// Where a plot's axes are: the plot area [left, right] x [top, bottom] in pixels (origin top-left)
// and the data range it spans.
struct PlotFrame {
  int width = 0, height = 0;  // the figure's
  double left = 0, top = 0, right = 0, bottom = 0;
  double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  std::vector<double> xticks, yticks;
  std::vector<std::string> xtick_labels, ytick_labels;
  std::vector<std::string> title_lines, xlabel_lines, ylabel_lines;  // wrapped (at most 3 lines each)
  bool xtick_vertical = false;  // bars: category labels upright (they did not fit side by side);
                                // a wrapped label's lines are joined by '\n' in xtick_labels
  double xtick_room = 0;        // the height under the axis's ticks that their labels take
  double px(double x) const { return left + (x - xlo) / (xhi - xlo) * (right - left); }
  double py(double y) const { return bottom - (y - ylo) / (yhi - ylo) * (bottom - top); }
};
PlotFrame plot_frame(const std::vector<Series>& series, const PlotOptions& o);

// Where a mark (text `h` pixels tall, e.g. "n.s.") over the value span [lo, hi] (a bar's whisker) goes
// in frame f: the top of the text, 4 px above the span's top, or above a dashed line of o.hlines
// that would cross it there, or else below the span (or below such a line); never across a line or
// the span, and inside the plot area when any of these fit (else just above the span, clamped).
double mark_top(const PlotFrame& f, const PlotOptions& o, double lo, double hi, double h);

}  // namespace gb::explain
