// The generated segmentation set: draw the texture into its rectangle, the shape over it, then read
// every mask off what was drawn (nothing is estimated, so the masks are exact).
#include "explain/concepts/segmentation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/rng.h"
#include "explain/concepts/patterns.h"

namespace gb::concepts {

namespace {

const char* const kTextures[] = {"stripes-h", "stripes-v", "checkerboard", "dots"};
const char* const kShapes[] = {"disc", "square", "triangle", "bar"};
const char* const kIntensities[] = {"dark", "mid", "bright"};

// Whether (x, y) lies in shape s of half-size r centred at (cx, cy).
bool in_shape(int s, double x, double y, double cx, double cy, double r) {
  const double dx = x - cx, dy = y - cy;
  switch (s) {
    case 0: return dx * dx + dy * dy <= r * r;                              // disc
    case 1: return std::fabs(dx) <= r && std::fabs(dy) <= r;                 // square
    case 2: return dy >= -r && dy <= r && std::fabs(dx) <= (dy + r) / 2;     // triangle, apex up
    default: return std::fabs(dy) <= r / 3 && std::fabs(dx) <= 1.5 * r;     // horizontal bar
  }
}

}  // namespace

SegmentationSet make_segmentation(const Shape& sample, int n, uint64_t seed) {
  if (sample.rank != 3 || sample[1] < 8 || sample[2] < 8 || n < 1)
    throw std::invalid_argument("generated segmentation set: needs images [C, H, W] of at least 8x8, got " + sample.str());
  const int C = sample[0], H = sample[1], W = sample[2], S = std::min(H, W);
  const size_t HW = size_t(H) * W;
  SegmentationSet s;
  s.categories = {"texture", "shape", "intensity"};
  for (const char* t : kTextures) s.concepts.push_back({t, 0});
  for (const char* t : kShapes) s.concepts.push_back({t, 1});
  for (const char* t : kIntensities) s.concepts.push_back({t, 2});
  const size_t K = s.concepts.size();
  s.x = Tensor(Shape::batch_of(n, sample));
  s.masks.assign(size_t(n) * K * HW, 0);
  std::vector<float> gray(HW);
  for (int i = 0; i < n; ++i) {
    Rng rng(mix_seed(seed, uint64_t(i)));
    const float bg = 0.2f * rng.uniform();
    std::fill(gray.begin(), gray.end(), bg);
    // The texture in a rectangle of half to all of each side.
    const int tex = int(rng.below(4));
    PatternSpec ps = parse_pattern(kTextures[tex]);
    const double level_t = 0.5 + 0.5 * rng.uniform();
    ps.level = {level_t, level_t, true};
    ps.background = {bg, bg, true};
    const Tensor fill = make_patterns(ps, Shape{1, H, W}, 1, rng.next());
    const int rw = W / 2 + int(rng.below(uint32_t(W - W / 2 + 1))), rh = H / 2 + int(rng.below(uint32_t(H - H / 2 + 1)));
    const int rx = int(rng.below(uint32_t(W - rw + 1))), ry = int(rng.below(uint32_t(H - rh + 1)));
    uint8_t* texture = s.masks.data() + (size_t(i) * K + tex) * HW;
    for (int y = ry; y < ry + rh; ++y)
      for (int x = rx; x < rx + rw; ++x) gray[size_t(y) * W + x] = fill[size_t(y) * W + x], texture[size_t(y) * W + x] = 1;
    // The shape over it.
    const int shp = int(rng.below(4));
    const double r = S / 12.0 + (S / 6.0 - S / 12.0) * rng.uniform();
    const double cx = r + (W - 1 - 2 * r) * rng.uniform(), cy = r + (H - 1 - 2 * r) * rng.uniform();
    const float level = 0.6f + 0.4f * rng.uniform();
    uint8_t* shape = s.masks.data() + (size_t(i) * K + 4 + shp) * HW;
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        if (in_shape(shp, x, y, cx, cy, r)) {
          const size_t p = size_t(y) * W + x;
          gray[p] = level, shape[p] = 1, texture[p] = 0;
        }
    // Intensity bins of the final image.
    for (size_t p = 0; p < HW; ++p) {
      const int bin = gray[p] < 1.f / 3 ? 0 : gray[p] < 2.f / 3 ? 1 : 2;
      s.masks[(size_t(i) * K + 8 + bin) * HW + p] = 1;
    }
    for (int c = 0; c < C; ++c) std::copy(gray.begin(), gray.end(), s.x.data() + (size_t(i) * C + c) * HW);
  }
  return s;
}

}  // namespace gb::concepts
