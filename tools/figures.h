// Writing figures: PNG files of explain::Image, and grids of many rows split into pages, so that
// 200 inputs give readable pages instead of one 8,000-pixel-tall strip.
#pragma once
#include <string>
#include <vector>

#include "explain/common/heatmap.h"

namespace gb {

void write_image(const std::string& path, const explain::Image& im);

// explain::grid of `cells` with `legends` (colorbars) beside each page and `title` (if any) above
// it: `path` holds the first `rows_per_page` rows, then <stem>_2.png, <stem>_3.png, ... the rest.
// Returns the files written.
std::vector<std::string> write_grid_pages(const std::string& path, const std::vector<std::vector<explain::Image>>& cells,
                                          const std::vector<std::string>& column_labels,
                                          const std::vector<std::string>& row_captions, int cell_w, int cell_h,
                                          const std::vector<explain::Image>& legends, const std::string& title = "",
                                          int rows_per_page = 16);

// A confusion matrix as a figure: rows the true classes (numbered and named), columns the predicted
// ones, each cell coloured by its share of the row (white 0 to red 1) and labelled with its count;
// a colorbar beside it.
explain::Image confusion_image(const std::vector<std::vector<int>>& counts, const std::vector<std::string>& names,
                               const std::string& title);

// The integer enlargement that makes a w-pixel-wide image at least `min_side` pixels wide.
int enlargement_for(int w, int min_side = 112);

}  // namespace gb
