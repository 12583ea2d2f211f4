// Built-in concept images: seeded generated patterns (stripes, checkerboards, dots, edges, lines,
// blobs, solid intensity, noise) at any image size and channel count, so a lab can run TCAV on
// Fashion-MNIST without collecting concept images. Images are in pixel space [0, 1] (the caller puts
// them through the model's normalization); every channel holds the same gray pattern.
//
// Each image draws its own phase, period, position... from a stream seeded by (seed, image index),
// so image i of a set never depends on how many images the set has.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace gb::concepts {

// A number or a range A:B drawn uniformly per image.
struct Range {
  double lo = 0, hi = 0;
  bool given = false;
};

enum class PatternKind { stripes_h, stripes_v, checkerboard, dots, edges, lines, blobs, solid, noise };

struct PatternSpec {
  PatternKind kind = PatternKind::stripes_h;
  Range period;      // pixels per cycle (stripes, checkerboard: two cells; dots: grid spacing); default by image size
  Range level{1, 1};       // foreground intensity in [0, 1]
  Range background{0, 0};  // background intensity in [0, 1]
  Range count;       // dots per row is set by the period; blobs 1:4 and lines 1:3 by default
};

// "stripes-h", "stripes-v", "checkerboard", "dots", "edges", "lines", "blobs", "solid", "noise".
const std::vector<std::string>& pattern_names();
std::string pattern_name(PatternKind k);

// "KIND[,period=P|A:B][,level=..][,background=..][,count=..]". Throws naming the text, the key and
// the accepted values.
PatternSpec parse_pattern(const std::string& text);

// n images [n, C, H, W] for sample = [C, H, W]: image i from the stream (seed, i).
Tensor make_patterns(const PatternSpec& spec, const Shape& sample, int n, uint64_t seed);

// A derived stream's seed (splitmix64 of a combination).
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace gb::concepts
