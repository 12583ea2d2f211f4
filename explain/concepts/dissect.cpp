// Network Dissection: one batched pass for every chosen layer's activations over the segmentation
// set, then per layer the units' thresholds (exact upper quantiles) and, unit by unit on the
// threads, the upsampled masks' intersections with every concept's masks summed over the set.
#include "explain/concepts/dissect.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>

#include "engine/interrupt.h"
#include "engine/threads.h"
#include "explain/common/resize.h"
#include "explain/concepts/method.h"

namespace gb::concepts {

namespace {

// Activations kept for one pass over the set: N × (units × h × w) summed over the layers.
constexpr double kMaxActivations = 256e6;

struct DissectOptions {
  double quantile = 0.005, iou_threshold = 0.04;
  int top = 8, batch = 256;
};

DissectOptions read_dissect_options(ParamReader& r) {
  DissectOptions o;
  o.quantile = read_number(r, "quantile", 1e-6, 0.5);
  o.iou_threshold = read_number(r, "iou_threshold", 0, 1);
  o.top = read_int(r, "top", 1, 100);
  o.batch = read_int(r, "batch", 1, 65536);
  return o;
}

}  // namespace

void add_dissect_methods(std::vector<Method>& registry) {
  registry.push_back(
      {{"netdissect",
        "Network Dissection: per conv unit, the IoU of its top-quantile activation region (upsampled to the image) "
        "with every concept's pixel masks over a segmentation set; the best concept, detectors above a cut",
        {{"quantile", "0.005", "P(a_k > T_k): the fraction of a unit's activations above its threshold, 1e-6..0.5"},
         {"iou_threshold", "0.04", "a unit is a detector of its best concept when IoU > this (the paper's 0.04), [0, 1]"},
         {"top", "8", "images kept per unit, by its largest activation (figures), 1..100"},
         {"batch", "256", "images per forward pass, 1..65536"}},
        "Bau et al. 2017 / NetDissect-Lite: T_k the (1 - quantile) quantile over all positions of all images, "
        "bilinear upsampling (align_corners=False), IoU summed over the set with a unit's area counted on the images "
        "annotated for the concept's category. Differences: exact quantile (NetDissect-Lite: a sketch read at 1000 "
        "points); bilinear as PyTorch's F.interpolate (NetDissect-Lite: scipy's imresize); no minimum concept size"},
       Kind::dissect,
       [](ParamReader& r) { read_dissect_options(r); }});
}

void check_segmentation(const SegmentationSet& s) {
  if (s.x.rank() != 4 || s.size() == 0) throw std::invalid_argument("segmentation set: images must be [N, C, H, W], N > 0");
  if (s.categories.empty() || s.concepts.empty()) throw std::invalid_argument("segmentation set: no concepts");
  std::set<std::string> names;  // a unit's label is a concept's name: two alike could not be told apart
  for (const SegConcept& c : s.concepts) {
    if (c.category < 0 || c.category >= int(s.categories.size()))
      throw std::invalid_argument("segmentation set: concept '" + c.name + "' has no category");
    if (c.name.empty()) throw std::invalid_argument("segmentation set: a concept without a name");
    if (!names.insert(c.name).second) throw std::invalid_argument("segmentation set: concept '" + c.name + "' given twice");
  }
  const size_t HW = size_t(s.height()) * s.width();
  if (s.masks.size() != size_t(s.size()) * s.concepts.size() * HW)
    throw std::invalid_argument("segmentation set: " + std::to_string(s.masks.size()) + " mask pixels, expected " +
                                std::to_string(size_t(s.size()) * s.concepts.size() * HW));
  if (!s.annotated.empty() && s.annotated.size() != size_t(s.size()) * s.categories.size())
    throw std::invalid_argument("segmentation set: annotation flags do not match images x categories");
  for (size_t i = 0; i < s.masks.size(); ++i)
    if (s.masks[i] > 1)
      throw std::invalid_argument("segmentation set: mask value " + std::to_string(s.masks[i]) + " (not 0/1) of image " +
                                  std::to_string(i / (s.concepts.size() * HW)));
}

double upper_quantile(std::vector<float> v, double q) {
  if (v.empty()) throw std::invalid_argument("upper_quantile: no values");
  const double pos = (1 - q) * double(v.size() - 1);
  const size_t lo = size_t(pos);
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  const double a = v[lo];
  if (lo + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + lo + 1, v.end());
  return a + (pos - double(lo)) * (b - a);
}

void unit_mask(const float* map, int h, int w, double threshold, int H, int W, float* upsampled, uint8_t* mask) {
  explain::resize_bilinear(map, h, w, upsampled, H, W);
  for (int p = 0; p < H * W; ++p) mask[p] = upsampled[p] > threshold;
}

namespace {

// The pixels of every concept over the images annotated for its category.
std::vector<int64_t> label_areas(const SegmentationSet& s) {
  const size_t HW = size_t(s.height()) * s.width();
  std::vector<int64_t> area(s.concepts.size(), 0);
  for (int n = 0; n < s.size(); ++n)
    for (size_t c = 0; c < s.concepts.size(); ++c)
      if (s.is_annotated(n, s.concepts[c].category)) {
        const uint8_t* m = s.mask(n, int(c));
        area[c] += std::accumulate(m, m + HW, int64_t(0));
      }
  return area;
}

// One unit: threshold, per-image maxima and top images, IoU with every concept.
UnitResult dissect_unit(const Tensor& a, int k, const SegmentationSet& s, const std::vector<int64_t>& label_area,
                        const DissectOptions& o) {
  const int N = a.batch(), U = a.dim(1), h = a.dim(2), w = a.dim(3), H = s.height(), W = s.width();
  const size_t hw = size_t(h) * w, HW = size_t(H) * W, C = s.concepts.size();
  UnitResult u;
  u.unit = k;
  std::vector<float> values(size_t(N) * hw), maxima(N);
  for (int n = 0; n < N; ++n) {
    const float* m = a.data() + (size_t(n) * U + k) * hw;
    std::copy_n(m, hw, values.data() + size_t(n) * hw);
    maxima[n] = *std::max_element(m, m + hw);
  }
  u.threshold = upper_quantile(std::move(values), o.quantile);

  std::vector<int> order(N);
  std::iota(order.begin(), order.end(), 0);
  const int top = std::min(o.top, N);
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [&](int i, int j) { return maxima[i] > maxima[j] || (maxima[i] == maxima[j] && i < j); });
  for (int i = 0; i < top; ++i) u.top_images.push_back(order[i]), u.top_maxima.push_back(maxima[order[i]]);

  std::vector<int64_t> inter(C, 0), unit_area(s.categories.size(), 0);
  std::vector<float> up(HW);
  std::vector<uint8_t> mask(HW);
  for (int n = 0; n < N; ++n) {
    if (maxima[n] <= u.threshold) continue;  // bilinear upsampling never exceeds the map's maximum
    unit_mask(a.data() + (size_t(n) * U + k) * hw, h, w, u.threshold, H, W, up.data(), mask.data());
    const int64_t area = std::accumulate(mask.begin(), mask.end(), int64_t(0));
    if (area == 0) continue;
    for (size_t cat = 0; cat < s.categories.size(); ++cat)
      if (s.is_annotated(n, int(cat))) unit_area[cat] += area;
    for (size_t c = 0; c < C; ++c) {
      if (!s.is_annotated(n, s.concepts[c].category)) continue;
      const uint8_t* l = s.mask(n, int(c));
      int64_t both = 0;
      for (size_t p = 0; p < HW; ++p) both += mask[p] & l[p];
      inter[c] += both;
    }
  }
  u.ious.assign(C, 0.0);
  for (size_t c = 0; c < C; ++c) {
    const int64_t uni = unit_area[s.concepts[c].category] + label_area[c] - inter[c];
    u.ious[c] = uni > 0 ? double(inter[c]) / double(uni) : 0.0;
    if (u.ious[c] > u.iou) u.iou = u.ious[c], u.best = int(c);
  }
  u.detector = u.best >= 0 && u.iou > o.iou_threshold;
  return u;
}

}  // namespace

DissectResult dissect(Graph& g, const DissectRequest& q, const Params& params, const std::string& method) {
  const Method& m = find_method(method, Kind::dissect);
  ParamReader reader(params, m.info);
  const DissectOptions o = read_dissect_options(reader);
  reader.done();
  if (!q.data) throw std::invalid_argument("dissect: no segmentation set");
  const SegmentationSet& s = *q.data;
  check_segmentation(s);
  check_examples(g, s.x, "dissection images");
  if (q.layers.empty()) throw std::invalid_argument("dissect: no layers given");
  double total = 0;
  std::set<int> seen;
  for (int node : q.layers) {
    if (node < -1 || node >= g.size()) throw std::invalid_argument("dissect: node " + std::to_string(node) + " is not a layer");
    if (!seen.insert(node).second) throw std::invalid_argument("dissect: layer " + layer_name(g, node) + " given twice");
    const Shape sh = node < 0 ? g.input_shape() : g.shape(node).sample();
    if (sh.rank != 3)
      throw std::invalid_argument("dissect: layer " + layer_name(g, node) + " outputs " + sh.str() +
                                  ", not maps [channels, height, width] (dissect conv layers)");
    total += double(s.size()) * double(sh.numel());
  }
  if (total > kMaxActivations)
    throw std::invalid_argument("dissect: " + std::to_string(int64_t(total)) +
                                " activations over the set, more than 256M (fewer images or layers)");

  const std::vector<Tensor> acts = activations(g, s.x, q.layers, o.batch, [&](int d, int t) {
    if (q.progress) q.progress("activations", d, t);
  });
  const std::vector<int64_t> label_area = label_areas(s);
  DissectResult r;
  r.quantile = o.quantile;
  r.iou_threshold = o.iou_threshold;
  for (size_t l = 0; l < q.layers.size(); ++l) {
    const Tensor& a = acts[l];
    LayerDissection d;
    d.node = q.layers[l];
    d.layer = layer_name(g, d.node);
    const int U = a.dim(1);
    d.units.resize(U);
    const int T = std::max(1, std::min(threads(), U));
    parallel_polled(T, size_t(U), [&](size_t k) { d.units[k] = dissect_unit(a, int(k), s, label_area, o); });
    if (q.progress) q.progress("units of " + d.layer, U, U);
    d.detectors_by_category.assign(s.categories.size(), 0);
    std::set<int> unique;
    for (const UnitResult& u : d.units)
      if (u.detector) ++d.detectors_by_category[s.concepts[u.best].category], unique.insert(u.best);
    d.unique_concepts = int(unique.size());
    r.layers.push_back(std::move(d));
  }
  return r;
}

}  // namespace gb::concepts
