// What a filter detects (Zeiler & Fergus 2014): for each channel of a layer, the k dataset images
// where it responds most, the receptive-field patch around the maximum, and the DeconvNet (or
// Guided-Backprop) projection of that single activation back to pixels: a backward pass seeded
// one-hot at (channel, y, x), through the attribution family's rules, by name. Also the
// channel's activation maps over given images and the first layer's weights.
#include <algorithm>
#include <climits>
#include <cmath>
#include <queue>
#include <stdexcept>

#include "engine/layers.h"
#include "engine/target.h"
#include "explain/attribution/explain.h"
#include "explain/visualize/method.h"

namespace gb::visualize {

namespace {

Box window(const Box& b, int k, int s, int p) { return {b.y0 * s - p, b.x0 * s - p, (b.y1 - 1) * s - p + k, (b.x1 - 1) * s - p + k}; }

Box join(const Box& a, const Box& b) {
  if (a.h() <= 0) return b;
  return {std::min(a.y0, b.y0), std::min(a.x0, b.x0), std::max(a.y1, b.y1), std::max(a.x1, b.x1)};
}

int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// The inputs of a transposed convolution (or upsampling: k = s, p = 0) that reach outputs [y0, y1):
// input i writes outputs [i·s − p, i·s − p + k); clamped to the h inputs there are.
Box spread(const Box& b, int k, int s, int p, int h, int w) {
  auto lo = [&](int y0, int n) { return std::clamp(floor_div(y0 + p - k, s) + 1, 0, n); };
  auto hi = [&](int y1, int n) { return std::clamp(floor_div(y1 - 1 + p, s) + 1, 0, n); };
  return {lo(b.y0, h), lo(b.x0, w), hi(b.y1, h), hi(b.x1, w)};
}

// The input box of the output box b of `node`, through every path to the graph input.
Box field(const Graph& g, int node, const Box& b) {
  if (node < 0) return b;
  const Shape in_shape = g.input_shape();
  if (g.shape(node).rank != 4) return {0, 0, in_shape[1], in_shape[2]};  // flatten, dense, gap: everything
  const Layer& L = g.layer(node);
  const Shape x = g.shape(g.node(node).inputs[0]);
  Box in = b;
  if (auto* c = dynamic_cast<const Conv2d*>(&L)) in = window(b, c->k, c->stride, c->pad);
  if (auto* m = dynamic_cast<const MaxPool2d*>(&L)) in = window(b, m->k, m->stride, m->pad);
  if (auto* a = dynamic_cast<const AvgPool2d*>(&L)) in = window(b, a->k, a->stride, a->pad);
  if (auto* t = dynamic_cast<const ConvTranspose2d*>(&L)) in = spread(b, t->k, t->stride, t->pad, x[2], x[3]);
  if (auto* u = dynamic_cast<const Upsample2d*>(&L)) in = spread(b, u->scale, u->scale, 0, x[2], x[3]);
  Box out;
  for (int i : g.node(node).inputs) out = join(out, field(g, i, in));  // other layers are elementwise
  return out;
}

// The flat index of a plane's maximum, the first among ties: a max over 4-float vectors (GCC
// vector extensions: std::max_element's index tracking stays scalar), then the first element
// equal to it. NaNs are never the maximum.
typedef float Float4 __attribute__((vector_size(16)));
typedef float Float4u __attribute__((vector_size(16), aligned(4), may_alias));  // an unaligned load

int argmax(const float* p, int n) {
  constexpr float lowest = -__builtin_inff();  // not p[0]: a NaN there would stay the maximum
  Float4 a = {lowest, lowest, lowest, lowest}, b = a;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const Float4 u = *reinterpret_cast<const Float4u*>(p + i), v = *reinterpret_cast<const Float4u*>(p + i + 4);
    a = u > a ? u : a;
    b = v > b ? v : b;
  }
  a = b > a ? b : a;
  float m = a[0];
  for (int l = 1; l < 4; ++l) m = a[l] > m ? a[l] : m;
  for (; i < n; ++i) m = p[i] > m ? p[i] : m;
  for (int j = 0; j < n; ++j)
    if (p[j] == m) return j;
  return 0;
}

struct Hit {
  float value;
  int sample, y, x;
};
// Higher values first; among equal values the earlier sample.
bool better(const Hit& a, const Hit& b) { return a.value > b.value || (a.value == b.value && a.sample < b.sample); }

// The k best (sample, argmax position) per channel of `node` over the data: each sample counts
// once per channel, at its maximum (the first in row-major order among ties).
std::vector<std::vector<Hit>> top_hits(Graph& g, int node, const std::vector<int>& channels, const Tensor& data, int k,
                                       const Progress& progress) {
  auto worse_on_top = [](const Hit& a, const Hit& b) { return better(a, b); };
  std::vector<std::priority_queue<Hit, std::vector<Hit>, decltype(worse_on_top)>> heaps(
      channels.size(), std::priority_queue<Hit, std::vector<Hit>, decltype(worse_on_top)>(worse_on_top));
  ForwardOptions fo;
  fo.until = node;
  const int N = data.batch();
  for (int b = 0; b < N; b += kScanBatch) {
    const int e = std::min(N, b + kScanBatch);
    const Tensor& a = g.forward(data.slice(b, e), fo);
    const int C = a.dim(1), H = a.dim(2), W = a.dim(3);
    for (int n = 0; n < e - b; ++n)
      for (size_t ci = 0; ci < channels.size(); ++ci) {
        const float* p = a.data() + (size_t(n) * C + channels[ci]) * H * W;
        const int at = argmax(p, H * W);
        const Hit h{p[at], b + n, at / W, at % W};
        auto& heap = heaps[ci];
        if (int(heap.size()) < k) {
          heap.push(h);
        } else if (better(h, heap.top())) {
          heap.pop();
          heap.push(h);
        }
      }
    if (progress) progress(e, N);
  }
  std::vector<std::vector<Hit>> out(channels.size());
  for (size_t ci = 0; ci < channels.size(); ++ci) {
    for (auto& heap = heaps[ci]; !heap.empty(); heap.pop()) out[ci].push_back(heap.top());
    std::sort(out[ci].begin(), out[ci].end(), better);
  }
  return out;
}

// The box of row r of src ([R,C,H,W]) into the middle of row r of dst ([R,C,h,w], at least as
// large as the box); outside the image and around the box: fill.
void crop(const Tensor& src, int r, const Box& box, const std::vector<float>& fill, Tensor& dst) {
  const int C = src.dim(1), H = src.dim(2), W = src.dim(3), h = dst.dim(2), w = dst.dim(3);
  const int top = (h - box.h()) / 2, left = (w - box.w()) / 2;
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int by = y - top, bx = x - left, sy = box.y0 + by, sx = box.x0 + bx;
        const bool inside = by >= 0 && by < box.h() && bx >= 0 && bx < box.w() && sy >= 0 && sy < H && sx >= 0 && sx < W;
        dst[((size_t(r) * C + c) * h + y) * w + x] =
            inside ? src[((size_t(r) * C + c) * H + sy) * W + sx] : fill[size_t(c) % fill.size()];
      }
}

// The largest receptive field of a layer's positions: the patches' size. A convolution's fields
// are all alike (the padding cuts none: they keep their size, filled); an upsampling or
// transposed convolution's are smaller at the image's border.
Box largest_field(const Graph& g, int node) {
  const Shape s = g.shape(node);
  Box most = receptive_field(g, node, 0, 0);
  for (int y = 0; y < s[2]; ++y)
    for (int x = 0; x < s[3]; ++x) {
      const Box b = receptive_field(g, node, y, x);
      if (b.h() > most.h()) most.y0 = b.y0, most.y1 = b.y1;
      if (b.w() > most.w()) most.x0 = b.x0, most.x1 = b.x1;
    }
  return most;
}

// Channel units of one [N,C,H,W] layer: their node and channels.
int channel_units(const Graph& g, const Request& q, const std::string& method, std::vector<int>& channels) {
  if (q.units.empty()) throw std::invalid_argument(method + " needs channels (--unit LAYER:all or LAYER:C)");
  const int node = q.units[0].at(g);
  if (g.shape(node).rank != 4)
    throw std::invalid_argument(method + ": layer " + g.layer(node).name + " has no channels of positions (output " +
                                g.shape(node).sample().str() + ")");
  for (const Unit& u : q.units) {
    if (u.at(g) != node) throw std::invalid_argument(method + ": units of one layer at a time");
    if (u.kind == Unit::Kind::layer)
      for (int c = 0; c < g.shape(node)[1]; ++c) channels.push_back(c);
    else if (u.kind == Unit::Kind::channel)
      channels.push_back(u.index);
    else
      throw std::invalid_argument(method + " takes channels (LAYER:all, LAYER:C or LAYER), not " + u.describe(g));
  }
  return node;
}

Result run_top_patches(Graph& g, const Request& q, ParamReader& r) {
  require_data(q, "top-patches");
  const int k = read_int(r, "k", 1, 100);
  const std::string projection = read_choice(r, "projection", {"deconvnet", "guided-backprop", "none"});
  if (q.data.batch() < k)
    throw std::invalid_argument("top-patches: k=" + std::to_string(k) + " patches from " + std::to_string(q.data.batch()) +
                                " samples");
  std::vector<int> channels;
  const int node = channel_units(g, q, "top-patches", channels);
  const auto hits = top_hits(g, node, channels, q.data, k, q.progress);
  const Box any = largest_field(g, node);
  const int C = g.input_shape()[0], R = int(channels.size()) * k;
  Tensor images(Shape::batch_of(R, g.input_shape()));
  Target target;
  target.node = node;
  const Shape s = g.shape(node);
  const size_t D = images.sample_size();
  for (size_t ci = 0; ci < channels.size(); ++ci)
    for (int j = 0; j < k; ++j) {
      const int i = int(ci) * k + j;
      const Hit& h = hits[ci][j];
      std::copy_n(q.data.data() + size_t(h.sample) * D, D, images.data() + size_t(i) * D);
      target.index.push_back((channels[ci] * s[2] + h.y) * s[3] + h.x);
    }
  Tensor proj;
  if (projection != "none") proj = explain::explain(g, images, target, projection).attribution;
  Result res;
  res.panels.push_back({"image", Tensor(Shape{R, C, any.h(), any.w()}), Draw::pixels});
  if (projection != "none") res.panels.push_back({"projection", Tensor(Shape{R, C, any.h(), any.w()}), Draw::signed_map});
  std::vector<float> black;
  for (int c = 0; c < C; ++c) black.push_back(q.bounds.low(c));
  res.per_line = k;
  for (size_t ci = 0; ci < channels.size(); ++ci)
    for (int j = 0; j < k; ++j) {
      const int i = int(ci) * k + j;
      const Hit& h = hits[ci][j];
      const Box box = receptive_field(g, node, h.y, h.x);
      crop(images, i, box, black, res.panels[0].values);
      if (projection != "none") crop(proj, i, box, {0.f}, res.panels[1].values);
      Row row;
      row.name = g.layer(node).name + "_c" + std::to_string(channels[ci]) + "_top" + std::to_string(j);
      row.caption = g.layer(node).name + " c" + std::to_string(channels[ci]) + " #" + std::to_string(j) + "\nsample " +
                    std::to_string(h.sample) + " a=" + number(h.value);
      row.values = {{"sample", h.sample}, {"value", h.value}, {"y", h.y}, {"x", h.x}, {"channel", channels[ci]},
                    {"box_y0", box.y0}, {"box_x0", box.x0}, {"box_y1", box.y1}, {"box_x1", box.x1}};
      res.rows.push_back(std::move(row));
    }
  return res;
}

int first_conv(const Graph& g) {
  for (int i = 0; i < g.size(); ++i)
    if (dynamic_cast<const Conv2d*>(&g.layer(i))) return i;
  throw std::invalid_argument("filters: the model has no convolution");
}

// The weights of a convolution as images: signed maps (one scale for all filters) for gray
// inputs; for colour inputs, each filter min-max scaled to [0, 1] as RGB (the usual display).
Result run_filters(Graph& g, const Request& q, ParamReader& r) {
  if (!q.units.empty()) throw std::invalid_argument("filters takes --param layer=NAME, not --unit");
  const std::string name = r.text("layer");
  const int node = name.empty() ? first_conv(g) : g.at(name);
  const auto* conv = dynamic_cast<const Conv2d*>(&g.layer(node));
  if (!conv) throw std::invalid_argument("filters: layer " + g.layer(node).name + " is not a convolution");
  const Tensor& w = conv->weight.value;
  const int O = w.dim(0), C = w.dim(1);
  Result res;
  res.panels.push_back({"filter", w.clone(), C == 3 ? Draw::unit_range : Draw::signed_map});
  const size_t D = w.sample_size();
  for (int o = 0; o < O; ++o) {
    float* f = res.panels[0].values.data() + size_t(o) * D;
    const auto [lo, hi] = std::minmax_element(f, f + D);
    const double l = *lo, h = *hi;
    if (C == 3)
      for (size_t i = 0; i < D; ++i) f[i] = h > l ? float((f[i] - l) / (h - l)) : 0.5f;
    double norm = 0;
    for (size_t i = 0; i < D; ++i) norm += double(w[size_t(o) * D + i]) * w[size_t(o) * D + i];
    Row row;
    row.name = g.layer(node).name + "_f" + std::to_string(o);
    row.caption = g.layer(node).name + " filter " + std::to_string(o) + "\n|w|=" + number(std::sqrt(norm));
    if (C == 3) row.caption += "\nmin " + number(l) + " max " + number(h);
    row.values = {{"filter", o}, {"min", l}, {"max", h}, {"norm", std::sqrt(norm)}};
    res.rows.push_back(std::move(row));
  }
  res.per_line = std::min(O, 8);
  if (C == 3)  // no colorbar can say it
    res.note = "colour: each filter's weights as RGB = (w - min) / (max - min), its own min and max under it";
  return res;
}

// Each channel's activation map over each input.
Result run_maps(Graph& g, const Request& q, ParamReader& r) {
  require_inputs(q, "maps");
  (void)r;
  std::vector<int> channels;
  const int node = channel_units(g, q, "maps", channels);
  const Tensor a = activations(g, q.inputs, {node})[0];
  const int N = q.inputs.batch(), K = int(channels.size()), C = a.dim(1), H = a.dim(2), W = a.dim(3);
  if (long(N) * K > 16384) throw std::out_of_range("maps: " + std::to_string(N * K) + " maps, at most 16384");
  bool negative = false;
  for (size_t i = 0; i < a.size(); ++i) negative |= a[i] < 0;
  Result res;
  res.panels.push_back({"input", Tensor(Shape::batch_of(N * K, g.input_shape())), Draw::pixels, true});
  res.panels.push_back({"map", Tensor(Shape{N * K, 1, H, W}), negative ? Draw::signed_map : Draw::unsigned_map});
  res.per_line = K;
  const size_t D = q.inputs.sample_size(), P = size_t(H) * W;
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < K; ++j) {
      const int i = n * K + j;
      std::copy_n(q.inputs.data() + size_t(n) * D, D, res.panels[0].values.data() + size_t(i) * D);
      const float* m = a.data() + (size_t(n) * C + channels[j]) * P;
      std::copy_n(m, P, res.panels[1].values.data() + size_t(i) * P);
      Row row;
      row.name = input_name(q, n) + "_" + g.layer(node).name + "_c" + std::to_string(channels[j]);
      const double mx = *std::max_element(m, m + P), mean = sum(m, P) / double(P);
      row.caption = g.layer(node).name + " c" + std::to_string(channels[j]) + "\nmax " + number(mx);
      row.values = {{"channel", channels[j]}, {"max", mx}, {"mean", mean}};
      res.rows.push_back(std::move(row));
    }
  return res;
}

}  // namespace

Box receptive_field(const Graph& g, int node, int y, int x) {
  const Shape s = g.shape(node);
  if (s.rank == 4 && (y < 0 || y >= s[2] || x < 0 || x >= s[3]))
    throw std::out_of_range("position (" + std::to_string(y) + "," + std::to_string(x) + ") outside layer " +
                            g.layer(node).name + "'s output " + s.sample().str());
  return field(g, node, {y, x, y + 1, x + 1});
}

void add_patch_methods(std::vector<Method>& reg) {
  reg.push_back({{"top-patches",
                  "what a filter detects: per channel, the k dataset images where it responds most, the receptive-field "
                  "patch around the maximum and the DeconvNet projection of that one activation",
                  {{"k", "9", "patches per channel (1..100)"},
                   {"projection", "deconvnet", "deconvnet, guided-backprop or none: the attribution method seeded "
                                               "one-hot at the maximum"}},
                  "Zeiler & Fergus 2014: one patch per image (its maximum; ties: the first in row-major order, then "
                  "the earlier image); the projection is seeded with 1 (not the activation's value: the same "
                  "picture up to scale) and runs through max-pool switches and ReLU rules of the attribution family"},
                 run_top_patches});
  reg.push_back({{"filters",
                  "a convolution's weights as an image grid (the first convolution by default)",
                  {{"layer", "", "the convolution (default: the first)"}},
                  "gray inputs: signed maps on one scale for all filters; colour inputs: each filter min-max scaled "
                  "to RGB (as the usual first-layer figures)"},
                 run_filters});
  reg.push_back({{"maps",
                  "activation maps: each channel of a layer over each input",
                  {},
                  "the layer's output as it is (no upsampling); maps share one colour scale"},
                 run_maps});
}

}  // namespace gb::visualize
