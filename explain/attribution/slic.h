// SLIC superpixels (Achanta et al. 2012), written for LIME: k-means in (colour, y, x) space with
// each centre searching a 2S×2S window, then connectivity enforcement. Deterministic: centres start
// on a regular grid and ties go to the lower centre index, so an image always gets the same segments.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace gb::explain {

struct SlicOptions {
  int segments = 40;         // requested number of superpixels (about 20 pixels each on 28×28)
  double compactness = 10;   // m: larger gives squarer segments; colour is on a 0..100 scale
  int iterations = 10;
  double min_size_factor = 0.5;  // connected pieces smaller than this × H·W/segments join a neighbour
};

struct Segmentation {
  int height = 0, width = 0, count = 0;
  std::vector<int> labels;  // H·W, row-major, each in [0, count); every segment 4-connected
};

// image: one sample, [C,H,W] or [1,C,H,W]. Three channels are treated as RGB: min-max scaled to
// [0,1] and converted to CIELAB (D65), as skimage does. Any other channel count (grayscale) is
// min-max scaled to [0,100], the range of Lab's L, so `compactness` means the same for both.
Segmentation slic(const Tensor& image, const SlicOptions& o = {});

}  // namespace gb::explain
