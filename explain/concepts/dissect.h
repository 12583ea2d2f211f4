// Network Dissection (Bau et al. 2017, survey eq. 5; NetDissect-Lite): which units of a conv layer
// are detectors of which concepts. Per unit k:
//   T_k      the threshold with P(a_k > T_k) = quantile (0.005) over every position of every image's
//            activation map (exact, numpy.percentile's linear interpolation at 1 − quantile);
//   M_k(x)   the activation map bilinearly upsampled to the image size (align_corners=False), > T_k;
//   IoU_k,c  = Σ_x |M_k(x) ∧ L_c(x)| / Σ_x |M_k(x) ∨ L_c(x)|, summed over the images x annotated for
//            concept c's category (NetDissect-Lite's tally: a unit's area counts only on those images);
// the unit's best concept is the argmax of IoU_k,c, a detector when that IoU > iou_threshold (0.04).
//
// Concept masks are per image and concept, 0/1 bytes at the image size; `segmentation.h` generates a
// set with exact masks, the command line reads folders of masks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "explain/concepts/concepts.h"

namespace gb::concepts {

struct SegConcept {
  std::string name;
  int category = 0;  // index into SegmentationSet::categories
};

// Images with per-concept pixel masks (Broden's role).
struct SegmentationSet {
  Tensor x;  // [N, C, H, W] in the model's input space (pixels on the command line)
  std::vector<std::string> categories;  // "texture", "shape", "intensity", ...
  std::vector<SegConcept> concepts;
  // masks[(n * concepts + c) * H * W + p]: pixel p of image n belongs to concept c (0/1).
  std::vector<uint8_t> masks;
  // annotated[n * categories + k]: image n is labelled for category k (its pixels of that
  // category's concepts are known). Empty: every image is labelled for every category.
  std::vector<uint8_t> annotated;

  int size() const { return x.empty() ? 0 : x.batch(); }
  int height() const { return x.rank() == 4 ? x.dim(2) : 0; }
  int width() const { return x.rank() == 4 ? x.dim(3) : 0; }
  bool is_annotated(int n, int category) const {
    return annotated.empty() || annotated[size_t(n) * categories.size() + category];
  }
  const uint8_t* mask(int n, int c) const {
    return masks.data() + (size_t(n) * concepts.size() + c) * height() * width();
  }
};

// Throws naming what is wrong: sizes, categories, mask values other than 0/1, non-finite pixels.
void check_segmentation(const SegmentationSet& s);

struct DissectRequest {
  const SegmentationSet* data = nullptr;  // x in the model's input space
  std::vector<int> layers;                // conv-like nodes: outputs [C, h, w]
  StageProgress progress;
};

struct UnitResult {
  int unit = 0;
  double threshold = 0;           // T_k
  int best = -1;                  // the concept of the largest IoU (-1: every IoU is 0)
  double iou = 0;                 // its IoU
  bool detector = false;          // iou > iou_threshold
  std::vector<double> ious;       // IoU with every concept
  std::vector<int> top_images;    // images by the unit's largest activation, highest first
  std::vector<float> top_maxima;  // those maxima
};

struct LayerDissection {
  int node = -1;
  std::string layer;
  std::vector<UnitResult> units;
  std::vector<int> detectors_by_category;  // per category: units whose best concept is a detector in it
  int unique_concepts = 0;                 // distinct concepts among the detectors
};

struct DissectResult {
  std::vector<LayerDissection> layers;
  double quantile = 0.005, iou_threshold = 0.04;
};

// Throws on an unknown method or key, a parameter outside its range, a set that does not fit the
// model, a layer whose output is not [C, h, w], or more activations than allowed (documented in
// --list: at most 256M floats over all layers).
DissectResult dissect(Graph& model, const DissectRequest& request, const Params& params = {},
                      const std::string& method = "netdissect");

// The pieces, public for tests and the command line's figures:
// the value v with P(a > v) = q over `values` (numpy.percentile(values, 100 (1 − q)), linear).
double upper_quantile(std::vector<float> values, double q);
// mask[p] = (bilinear upsampling of the h×w map to H×W)[p] > threshold; `upsampled` (H×W floats)
// receives the upsampled map (the caller's buffer: no allocation per map).
void unit_mask(const float* map, int h, int w, double threshold, int H, int W, float* upsampled, uint8_t* mask);

}  // namespace gb::concepts
