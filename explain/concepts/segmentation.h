// A built-in segmentation set with exact pixel masks, so Network Dissection runs on any image size
// with no annotated data (Broden's role, in miniature). Each image: a dark background (level in
// [0, 0.2]); a texture (stripes-h, stripes-v, checkerboard, dots from patterns.h, level in [0.5, 1])
// filling a random rectangle of half to all of each side; over it one shape (disc, square,
// triangle, bar; level in [0.6, 1], size a sixth to a third of the shorter side) at a random place.
// Categories and their concepts' masks:
//   texture    the rectangle's pixels the shape does not cover (one texture per image)
//   shape      the shape's pixels
//   intensity  dark (< 1/3), mid, bright (>= 2/3): the final image's pixels by gray level
// Every image is annotated for every category. Gray, copied to every channel; pixels in [0, 1].
// Image i comes from the stream (seed, i), so it does not depend on n.
#pragma once
#include <cstdint>

#include "explain/concepts/dissect.h"

namespace gb::concepts {

SegmentationSet make_segmentation(const Shape& sample, int n, uint64_t seed);

}  // namespace gb::concepts
