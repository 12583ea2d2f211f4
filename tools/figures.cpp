#include "tools/figures.h"

#include <algorithm>

#include "data/images.h"
#include "explain/common/plot.h"

namespace gb {

void write_image(const std::string& path, const explain::Image& im) { write_png(path, im.w, im.h, 3, im.rgb.data()); }

std::vector<std::string> write_grid_pages(const std::string& path, const std::vector<std::vector<explain::Image>>& cells,
                                          const std::vector<std::string>& column_labels,
                                          const std::vector<std::string>& row_captions, int cell_w, int cell_h,
                                          const std::vector<explain::Image>& legends, const std::string& title,
                                          int rows_per_page) {
  std::vector<std::string> written;
  const size_t dot = path.rfind('.');
  const std::string stem = path.substr(0, dot), ext = dot == std::string::npos ? "" : path.substr(dot);
  const size_t per = size_t(std::max(1, rows_per_page));
  for (size_t first = 0, page = 1; first < std::max<size_t>(cells.size(), 1); first += per, ++page) {
    const size_t last = std::min(cells.size(), first + per);
    std::vector<std::vector<explain::Image>> rows(cells.begin() + long(first), cells.begin() + long(last));
    std::vector<std::string> caps;
    for (size_t r = first; r < last && r < row_captions.size(); ++r) caps.push_back(row_captions[r]);
    const std::string file = page == 1 ? path : stem + "_" + std::to_string(page) + ext;
    const explain::Image page_image = explain::beside(explain::grid(rows, column_labels, caps, cell_w, cell_h), legends);
    write_image(file, title.empty() ? page_image : explain::titled(page_image, title));
    written.push_back(file);
  }
  return written;
}

explain::Image confusion_image(const std::vector<std::vector<int>>& counts, const std::vector<std::string>& names,
                               const std::string& title) {
  // Labels at explain::kLabelScale (capitals 10.5 px); a cell holds a five-digit count.
  const int K = int(counts.size()), cell = 52, line = explain::line_height() + 2, pad = 8;
  const int text_mid = cell / 2 - 5;  // the capitals' top, centred in a cell
  // A row's label: its index and name ("0 0" when the names are the indices: just "0").
  const auto row_label = [&](int k) {
    const std::string& name = names[size_t(k)];
    return name == std::to_string(k) ? name : std::to_string(k) + " " + name;
  };
  int label_w = 0;
  for (int k = 0; k < K; ++k) label_w = std::max(label_w, explain::text_width(row_label(k)));
  const int x0 = pad + label_w + pad;
  // The title and the subtitle wrap to the matrix's width (at least 360 px): a small matrix sat
  // beside 500 px of white under a long title.
  const int w = std::max(x0 + K * cell + pad, 360);
  std::vector<std::string> lines = explain::wrap_text(title, w - 2 * pad);
  for (const std::string& l : explain::wrap_text("predicted class; rows: true class; colour: share of the row", w - 2 * pad))
    lines.push_back(l);
  const int y0 = pad + (int(lines.size()) + 1) * line;
  explain::Image im(w, y0 + K * cell + pad + line);
  const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255};
  for (size_t l = 0; l < lines.size(); ++l) explain::draw_text(im, pad, pad + int(l) * line, lines[l], black);
  for (int k = 0; k < K; ++k) {
    explain::draw_text(im, pad, y0 + k * cell + text_mid, row_label(k), black);
    explain::draw_text(im, x0 + k * cell + cell / 2 - explain::text_width(std::to_string(k)) / 2, y0 - line + 2,
                       std::to_string(k), black);
  }
  for (int r = 0; r < K; ++r) {
    long total = 0;
    for (int c = 0; c < K; ++c) total += counts[size_t(r)][size_t(c)];
    for (int c = 0; c < K; ++c) {
      const int n = counts[size_t(r)][size_t(c)];
      const double share = total ? double(n) / double(total) : 0;
      uint8_t rgb[3];
      explain::colormap_rgb("bwr", share, rgb);
      for (int y = 1; y < cell; ++y)
        for (int x = 1; x < cell; ++x) std::copy(rgb, rgb + 3, im.px(x0 + c * cell + x, y0 + r * cell + y));
      const std::string text = std::to_string(n);
      explain::draw_text(im, x0 + c * cell + (cell - explain::text_width(text)) / 2, y0 + r * cell + text_mid, text,
                         share > 0.6 ? white : black);
    }
  }
  return explain::beside(im, {explain::colorbar_image("bwr", 0, 1, std::max(220, K * cell), "share of the row")});
}

int enlargement_for(int w, int min_side) { return std::max(1, (min_side + w - 1) / std::max(1, w)); }

}  // namespace gb
