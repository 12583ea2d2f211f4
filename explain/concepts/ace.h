// ACE, automatic concept discovery (Ghorbani et al. 2019, "Towards Automatic Concept-based
// Explanations"; amiratag/ACE's ace.py): segment a class's images into superpixels at several
// resolutions, turn every segment into a patch the size of the model's input, cluster the patches'
// activations at a bottleneck layer with k-means, keep the clusters that recur across many images,
// and score each kept cluster as a concept with TCAV (tcav() here: the same CAVs, random sets and
// t-test as `glassbox concepts`).
//
// Defaults are ace.py's: SLIC n_segments 15, 50, 80 with compactness 20; a patch is the segment's
// bounding box, the rest of the box filled with 117/255 (their average_image_value), resized to the
// input size (bicubic); channel means of the bottleneck for clustering; KMeans(n_clusters=25);
// max_imgs 40, min_imgs 20 and the three "common / populated" rules of discover_concepts; 20 random
// runs; a paired t-test (ttest_rel) at p < 0.01. Differences (also in --list and METHODS.md):
// glassbox's SLIC (no Gaussian pre-smoothing: ace.py passes sigma=1), every segment kept (ace.py's
// range(segments.max()) drops the last label), the bounding box inclusive (ace.py's slice drops its
// last row and column), patches kept in float (ace.py rounds to uint8), TCAV's S > 0 on the logit's
// gradient (ace.py counts S < 0 on the loss's gradient: the same sign), k-means in double precision
// with sklearn's k-means++ and tolerance but a deterministic seeded stream.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "explain/concepts/concepts.h"

namespace gb::concepts {

// ---- k-means (sklearn.cluster.KMeans: k-means++ init, Lloyd iterations, best of n_init) ----------

struct KMeansOptions {
  int clusters = 25;
  int n_init = 10;       // restarts; the run with the least inertia wins
  int max_iter = 300;    // Lloyd iterations per run
  double tol = 1e-4;     // stop when the centres move by less than tol × mean feature variance (squared)
  uint64_t seed = 0;
};

struct KMeansResult {
  Tensor centers;              // [k, D]
  std::vector<int> labels;     // N: the nearest centre of each row
  std::vector<double> distance;  // N: Euclidean distance to it (ace.py's "cost")
  double inertia = 0;          // Σ distance²
  int iterations = 0;          // of the winning run
};

// Rows of X ([N, D], N >= clusters) into `clusters` groups. Deterministic for a seed (one thread
// computes each run's sums in a fixed order). An empty cluster takes the row farthest from its centre.
KMeansResult kmeans(const Tensor& X, const KMeansOptions& o);

// ---- patches ---------------------------------------------------------------------------------

struct PatchOptions {
  std::vector<int> n_segments = {15, 50, 80};  // one SLIC run per resolution
  double compactness = 20;
  float fill = 117.f / 255.f;  // outside the segment, in pixel units
  double min_area = 0.001;     // segments covering at most this fraction of the image are dropped
  double max_jaccard = 0.5;    // a segment whose IoU with a kept one from an earlier resolution is above this is a duplicate
};

struct Patches {
  Tensor x;                   // [P, C, H, W]: each segment's box, filled outside it, resized to H×W
  std::vector<int> image;     // P: which image it came from
  std::vector<uint8_t> masks; // P·H·W: its segment in the original image
  int height = 0, width = 0;
};

// The patch of one segment: the mask's bounding box of `image` ([C, H, W]) with `fill` outside the
// mask, resized to [C, out_h, out_w] (bicubic, PIL's kernel a = -0.5, half-pixel centres, edges
// clamped, values clamped to the box's range). Throws on an empty mask.
void patch_from_mask(const float* image, int C, int H, int W, const uint8_t* mask, float fill, int out_h, int out_w,
                     float* out);

// The patches of every image ([N, C, H, W], pixel space), image by image in order.
Patches extract_patches(const Tensor& images, const PatchOptions& o, const std::function<void(int, int)>& progress = {});

// ---- ACE ---------------------------------------------------------------------------------------

struct AceRequest {
  Tensor images;   // [N, C, H, W] in pixel space: the class's discovery images (segmented)
  // Pixel space -> the model's input space (its normalization), applied to patches; empty: identity.
  std::function<void(Tensor&)> to_input;
  Tensor inputs;       // the class's images whose predictions TCAV explains, in input space
  Tensor random_pool;  // the random sets' examples, in input space (as TcavRequest)
  Target target;       // a class logit
  int layer = -1;      // the bottleneck (node id)
  StageProgress progress;
};

struct AceConcept {
  std::string name;     // concept1, concept2, ... in cluster order
  int cluster = -1;
  int size = 0;         // patches in the cluster
  int images = 0;       // distinct discovery images they come from
  std::vector<int> members;  // patch ids, nearest the centre first, at most max_imgs (the concept's examples)
  ConceptScores scores;      // its TCAV scores against the random runs; sign_test is the configured test
};

struct AceResult {
  Patches patches;
  KMeansResult clusters;
  std::vector<AceConcept> concepts;  // kept clusters, highest mean TCAV score first
  ConceptScores random;              // the random-vs-random baseline
  std::string layer;
  int runs = 0;
  double p_threshold = 0.01;
};

// Throws on an unknown key or a value out of range, images that do not fit the model, non-finite
// values, fewer patches than clusters, or a layer the target's signal does not reach. No concept
// passing the filter is not an error: the result then has none.
AceResult ace(Graph& model, const AceRequest& request, const Params& params = {});

// The cluster filter of ace.py's discover_concepts: a cluster of `size` patches (size > min_imgs)
// from `images` distinct images out of `discovery` is kept when it is highly common (images > size/2),
// or mildly common and populated (images > size/4 and > discovery/4), or present in most images
// (images > size/10 and > discovery/2).
bool keep_cluster(int size, int images, int discovery, int min_imgs);

}  // namespace gb::concepts
