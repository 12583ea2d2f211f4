#include "tools/figures.h"

#include <algorithm>

#include "data/images.h"

namespace gb {

void write_image(const std::string& path, const explain::Image& im) { write_png(path, im.w, im.h, 3, im.rgb.data()); }

std::vector<std::string> write_grid_pages(const std::string& path, const std::vector<std::vector<explain::Image>>& cells,
                                          const std::vector<std::string>& column_labels,
                                          const std::vector<std::string>& row_captions, int cell_w, int cell_h,
                                          const std::vector<explain::Image>& legends, int rows_per_page) {
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
    write_image(file, explain::beside(explain::grid(rows, column_labels, caps, cell_w, cell_h), legends));
    written.push_back(file);
  }
  return written;
}

int enlargement_for(int w, int min_side) { return std::max(1, (min_side + w - 1) / std::max(1, w)); }

}  // namespace gb
