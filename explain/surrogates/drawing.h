// Small drawing helpers for the family's figures (the soft tree, kept vs pruned filters, anchors):
// pasting images, lines and frames, signed filter images and class-distribution bars, on the
// RGB8 Image of explain/common/heatmap.h.
#pragma once
#include <string>
#include <vector>

#include "explain/common/heatmap.h"

namespace gb::explain::surrogates {

struct Color {
  uint8_t r, g, b;
};
inline constexpr Color kBlack{0, 0, 0}, kGray{105, 105, 105}, kLight{215, 215, 215}, kRed{215, 25, 28},
    kBlue{44, 123, 182};

void paste(Image& dst, const Image& src, int x, int y);  // clipped to dst
void fill_rect(Image& im, int x0, int y0, int x1, int y1, Color c);
void frame(Image& im, int x0, int y0, int x1, int y1, Color c, int thickness = 1);
void line(Image& im, int x0, int y0, int x1, int y1, Color c, int thickness = 1);
// Text at kLabelScale (explain/common/heatmap.h; line_height() per line), shortened to max_width
// with the cut marked "..".
void text(Image& im, int x, int y, const std::string& s, Color c = kBlack, int max_width = 0);
// Text centred on x (shortened to max_width).
void text_centred(Image& im, int x, int y, const std::string& s, Color c = kBlack, int max_width = 0);

// A signed map (one sample's [C,H,W] values summed over channels) in blue-white-red scaled by its
// own abs-max, enlarged to w x h.
Image signed_map(const Tensor& chw, int w, int h);
// Pixels in [0,1] ([C,H,W]) enlarged to w x h.
Image pixels(const Tensor& chw, int w, int h);
// A bar chart of a distribution (values in [0,1]) in a w x h box: one bar per class, the largest
// in `highlight`, the others gray.
Image distribution_bars(const std::vector<float>& p, int w, int h, Color highlight = kBlue);

// A [C,H,W] shape for F values: `image` when it has F elements, else one row [1,1,F].
Shape display_shape(int features, const Shape& image);

}  // namespace gb::explain::surrogates
