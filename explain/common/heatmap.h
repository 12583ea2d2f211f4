// Heatmaps of attributions and a labeled grid of them, as RGB8 images (writing PNG files is the
// caller's business: data/images.h).
//
// Conventions (see explain/METHODS.md):
// - Channels are reduced first: sum for signed maps, max of |a| for unsigned maps.
// - Signed maps: blue-white-red centered at zero, scaled by the abs-max (percentile 100) unless a
//   percentile is given. Unsigned maps: gray or hot, scaled by the 99.5th percentile by default.
//   Values beyond the scale saturate.
// - Overlay: the heatmap blended over the input's gray level (alpha = overlay).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace gb::explain {

struct Image {
  int w = 0, h = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
  Image() = default;
  Image(int w, int h, uint8_t fill = 255) : w(w), h(h), rgb(size_t(w) * h * 3, fill) {}
  uint8_t* px(int x, int y) { return rgb.data() + (size_t(y) * w + x) * 3; }
  const uint8_t* px(int x, int y) const { return rgb.data() + (size_t(y) * w + x) * 3; }
};

struct HeatmapOptions {
  bool is_signed = true;
  std::string colormap;     // "bwr" (signed) | "gray" | "hot"; empty: bwr for signed, hot for unsigned
  double percentile = -1;   // scale = this percentile of |values|; < 0: 100 (signed) / 99.5 (unsigned)
  float overlay = 0.f;      // > 0: blend over the input with this alpha (needs the input)
  double scale = 0;         // > 0: the |value| at the colormap's end, in place of the percentile
                            // (one scale for maps drawn side by side, with one colorbar)
};

// The colour of a colormap at t, which is clamped: "bwr" takes t in [-1, 1] (blue, white at 0, red),
// "gray" and "hot" t in [0, 1] (black to white). Throws std::invalid_argument for other names.
void colormap_rgb(const std::string& name, double t, uint8_t rgb[3]);

// [C,H,W] (or [1,C,H,W]) -> H*W: sum over channels (signed) or max |a| over channels (unsigned).
std::vector<float> reduce_channels(const Tensor& chw, bool is_signed);
// The value at percentile p (0..100) of |v| (linear interpolation between order statistics).
double abs_percentile(const std::vector<float>& v, double p);

// The heatmap of one sample's attribution [C,H,W]. `pixels` ([C,H,W] in [0,1]) is needed for overlay.
Image heatmap(const Tensor& attribution, const HeatmapOptions& o = {}, const Tensor* pixels = nullptr);
// An image in [0,1] ([C,H,W], C = 1 or 3; other C: the channel mean as gray), clamped.
Image to_image(const Tensor& pixels);
// Nearest-neighbour resize.
Image resize_nearest(const Image& im, int w, int h);

// stb_easy_font draws printable ASCII only (other bytes would index past its tables): a few common
// symbols are spelt out (ε -> "eps", × -> "x", − -> "-", ...), other characters become '?'.
std::string printable(const std::string& text);
// Labels, captions and headers are drawn at 1.5 times stb_easy_font's size: capitals 10.5 px tall,
// about 9 px per character (at 1, capitals are 7 px: too small to read comfortably).
constexpr double kLabelScale = 1.5;
// Draws text (through printable(); stb_easy_font at `scale`, anti-aliased: each pixel takes the
// part of it the strokes cover, so fractional scales keep even strokes) with its top-left at (x, y).
void draw_text(Image& im, int x, int y, const std::string& text, const uint8_t color[3],
               double scale = kLabelScale);
int text_width(const std::string& text, double scale = kLabelScale);
// Paints `color` over the pixel (x, y) with opacity alpha (0..1); outside the image: nothing.
void blend(Image& im, int x, int y, const uint8_t color[3], double alpha);
// One line of text at `scale`, descenders and the gap to the next line included (12 units).
int line_height(double scale = kLabelScale);
// A length in font units at `scale`, in whole pixels (rounded up).
int font_px(double units, double scale);
// The words of `text` (between spaces; a no-break space U+00A0 joins two) on lines at most `width`
// pixels wide at `scale`; a word wider than that goes on over the next lines (after a hyphen or one
// of , ; : / = _ where one fits) rather than being cut, as a long method's or class's name was. A
// number does not begin a line while the word before it fits there too ("error 0.12" stays whole).
std::vector<std::string> wrap_text(const std::string& text, int width, double scale = kLabelScale);

// A grid: rows of cells (the same count per row), a header with the column labels (wrapped at
// spaces onto as many lines as the longest needs), and one caption line above each row. Cells are
// resized (nearest) to cell_w x cell_h.
Image grid(const std::vector<std::vector<Image>>& cells, const std::vector<std::string>& column_labels,
           const std::vector<std::string>& row_captions, int cell_w, int cell_h);

// `figure` with `legends` (colorbars) to its right, top-aligned, on white.
Image beside(const Image& figure, const std::vector<Image>& legends);
// `figure` under `title`, wrapped to the figure's width, on white.
Image titled(const Image& figure, const std::string& title);

// Draws the boundaries between regions of a label image (labels: h x w, row-major) onto im, an
// enlargement of it by an integer factor: a pixel on the edge of a region whose neighbour to the
// right or below has another label.
void draw_boundaries(Image& im, const std::vector<float>& labels, int w, int h, const uint8_t color[3]);

}  // namespace gb::explain
