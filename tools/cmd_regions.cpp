// glassbox regions: OpenBox on one model. For each input: region.json (configuration, active
// neurons per layer, constraint count, nearest boundary, logits from the network and from
// W_x x + b_x), W.npy, b.npy and decision-feature PNGs. --line walks the segment between two
// inputs, --plane maps the regions of a 2-D slice, --stats counts configurations over a dataset.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/argmax.h"
#include "engine/layers.h"
#include "explain/common/heatmap.h"
#include "explain/common/plot.h"
#include "explain/openbox/openbox.h"
#include "tools/commands.h"
#include "tools/inputs.h"

namespace gb {

namespace {

namespace ob = openbox;
using nlohmann::json;

struct RegionsArgs {
  std::string model, data, index, split = "test", out, line, pair, range;
  std::vector<std::string> inputs;
  bool plane = false, stats = false, polytope = false;
  InputSpace input_space = InputSpace::pixels;
  int limit = 1000, size = 512, max_regions = 20000;
  bool size_given = false, max_regions_given = false;
  double eps = 1e-6;
};

std::vector<int> ints(const std::string& s, const std::string& flag) {
  std::vector<int> v;
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    try {
      size_t used = 0;
      v.push_back(std::stoi(s.substr(p, q - p), &used));
      if (used != q - p) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw std::invalid_argument(flag + " '" + s + "': expected integers separated by commas");
    }
    p = q + 1;
  }
  return v;
}

std::vector<std::string> class_names(const Model& m) {
  std::vector<std::string> names;
  if (auto it = m.metadata.find("glassbox.classes"); it != m.metadata.end()) {
    try {
      names = json::parse(it->second).get<std::vector<std::string>>();
    } catch (const std::exception&) {
      names.clear();  // unreadable names: numbers instead
    }
  }
  for (int k = int(names.size()); k < m.graph.classes(); ++k) names.push_back(std::to_string(k));
  return names;
}

std::string safe(const std::string& s) {
  std::string o;
  for (char c : s) o += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ? c : '_';
  return o;
}

// A stable, light color per configuration id (so the same region has the same color in every image).
void id_color(uint64_t id, uint8_t rgb[3]) {
  uint64_t z = id * 0x9e3779b97f4a7c15ULL;
  z ^= z >> 31;
  const double h = double(z % 3600) / 600.0, s = 0.35 + 0.4 * double((z >> 12) % 100) / 100,
               v = 0.8 + 0.2 * double((z >> 24) % 100) / 100;
  const int i = int(h);
  const double f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r, g, b;
  switch (i % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
  rgb[0] = uint8_t(255 * r), rgb[1] = uint8_t(255 * g), rgb[2] = uint8_t(255 * b);
}

const uint8_t kClassColors[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                                     {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

// Figures for people: a raster framed with a title, axis names, tick values and a legend of the
// classes it shows (colour square and name), on white.
struct Frame {
  std::string title, xlabel, ylabel;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // the raster's left/right and bottom/top values
  bool yaxis = true;                      // false: no y ticks (a strip)
  std::vector<std::string> band_labels;   // strip only: one label per horizontal band, top down
  std::vector<int> band_heights;
};

explain::Image framed(const explain::Image& raster, const Frame& f, const std::vector<int>& shown,
                      const std::vector<std::string>& classes) {
  static const uint8_t black[3] = {0, 0, 0};
  const int ts = 2, line = 14 * ts / 2 + 4;  // text scale 2: 14 px capitals
  int left = 16;
  for (const std::string& b : f.band_labels) left = std::max(left, explain::text_width(b, ts) + 12);
  // About one tick per 60 pixels, so labels do not run into each other on a small raster; where
  // fewer than two of them fall inside the range (a 200 px raster kept only "0"), its ends instead.
  const auto ticks = [](double a, double b, int most, std::vector<std::string>& labels) {
    const double lo = std::min(a, b), hi = std::max(a, b);
    std::vector<double> t = explain::nice_ticks(lo, hi, most), inside;
    for (double v : t)
      if (v >= lo - 1e-12 && v <= hi + 1e-12) inside.push_back(v);
    if (inside.size() >= 2) {
      labels = explain::tick_labels(t);
      return t;
    }
    labels.clear();
    for (double v : {lo, hi}) {
      char s[32];
      std::snprintf(s, sizeof s, "%.3g", v);
      labels.push_back(s);
    }
    return std::vector<double>{lo, hi};
  };
  std::vector<std::string> xl, yl;
  const std::vector<double> xt = ticks(f.x0, f.x1, std::clamp(raster.w / 60, 2, 6), xl);
  const std::vector<double> yt = f.yaxis ? ticks(f.y0, f.y1, std::clamp(raster.h / 40, 2, 6), yl) : std::vector<double>{};
  if (f.yaxis) {
    int wmax = 0;
    for (const std::string& l : yl) wmax = std::max(wmax, explain::text_width(l, ts));
    left = std::max(left, wmax + line + 16);
  }
  const bool ylabel = f.yaxis && !f.ylabel.empty();
  const int title_gap = 8;  // between the title and the y axis's name (it read as a subtitle)
  const int top = (ylabel ? 2 * line + title_gap : line) + 12, legend_rows = shown.empty() ? 0 : 1;
  int legend_w = 0;
  for (int k : shown) legend_w += 18 + explain::text_width(classes[k], ts) + 16;
  const int width = std::max({left + raster.w + 24, left + legend_w + 8, explain::text_width(f.title, ts) + 12,
                              explain::text_width(f.ylabel, ts) + 12, left + explain::text_width(f.xlabel, ts) + 12});
  const int bottom = 8 + line + 4 + line + 8 + legend_rows * (line + 8);
  explain::Image im(width, top + raster.h + bottom);
  for (int y = 0; y < raster.h; ++y)
    std::copy(raster.px(0, y), raster.px(0, y) + 3 * raster.w, im.px(left, top + y));
  explain::draw_text(im, 4, 6, f.title, black, ts);
  auto tick_x = [&](double v) { return left + int(std::lround((v - f.x0) / (f.x1 - f.x0) * (raster.w - 1))); };
  for (size_t i = 0; i < xt.size(); ++i) {
    if (xt[i] < std::min(f.x0, f.x1) - 1e-12 || xt[i] > std::max(f.x0, f.x1) + 1e-12) continue;
    const int x = tick_x(xt[i]);
    for (int y = top + raster.h; y < top + raster.h + 6; ++y) std::copy(black, black + 3, im.px(x, y));
    const int w = explain::text_width(xl[i], ts);  // centred on its tick, inside the image
    explain::draw_text(im, std::clamp(x - w / 2, 0, std::max(0, im.w - w - 2)), top + raster.h + 8, xl[i], black, ts);
  }
  const int xlabel_y = top + raster.h + 8 + line + 4;
  explain::draw_text(im, left + std::max(0, (raster.w - explain::text_width(f.xlabel, ts)) / 2), xlabel_y, f.xlabel,
                     black, ts);
  for (size_t i = 0; i < yt.size(); ++i) {
    if (yt[i] < std::min(f.y0, f.y1) - 1e-12 || yt[i] > std::max(f.y0, f.y1) + 1e-12) continue;
    const int y = top + int(std::lround((f.y1 - yt[i]) / (f.y1 - f.y0) * (raster.h - 1)));
    for (int x = left - 6; x < left; ++x) std::copy(black, black + 3, im.px(x, y));
    explain::draw_text(im, left - 8 - explain::text_width(yl[i], ts), std::max(0, y - 6), yl[i], black, ts);
  }
  if (ylabel) explain::draw_text(im, 4, 6 + line + title_gap, f.ylabel, black, ts);  // above its ticks
  for (size_t b = 0, y = top; b < f.band_labels.size() && b < f.band_heights.size(); y += f.band_heights[b++])
    explain::draw_text(im, 4, int(y) + std::max(0, f.band_heights[b] / 2 - 7), f.band_labels[b], black, ts);
  int x = left, y = xlabel_y + line + 8;
  for (int k : shown) {
    for (int dy = 0; dy < 14; ++dy)
      for (int dx = 0; dx < 14; ++dx) std::copy(kClassColors[k % 10], kClassColors[k % 10] + 3, im.px(x + dx, y + dy));
    explain::draw_text(im, x + 18, y, classes[k], black, ts);
    x += 18 + explain::text_width(classes[k], ts) + 16;
  }
  return im;
}

void disc(explain::Image& im, int cx, int cy, int r, const uint8_t fill[3]) {
  static const uint8_t black[3] = {0, 0, 0};
  for (int y = cy - r - 1; y <= cy + r + 1; ++y)
    for (int x = cx - r - 1; x <= cx + r + 1; ++x) {
      if (x < 0 || y < 0 || x >= im.w || y >= im.h) continue;
      const int d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
      if (d2 > (r + 1) * (r + 1)) continue;
      std::copy(d2 > r * r ? black : fill, (d2 > r * r ? black : fill) + 3, im.px(x, y));
    }
}

void save(const std::string& path, const explain::Image& im) { write_png(path, im.w, im.h, 3, im.rgb.data()); }

// The position of a flat per-sample index in a shape, e.g. [c,h,w].
json position(const Shape& s, int index) {
  json p = json::array();
  std::vector<int> d = s.sample().vec();
  for (int k = int(d.size()) - 1; k >= 0; --k) {
    p.insert(p.begin(), index % d[k]);
    index /= d[k];
  }
  return p;
}

json constraint_json(const Graph& g, const ob::Constraint& k) {
  if (k.node < 0) return nullptr;
  const Layer& L = g.layer(k.node);
  json j = {{"layer", L.name}, {"kind", L.kind()}, {"distance", k.distance()}, {"slack", k.slack}, {"gradient_norm", k.norm}};
  if (k.other < 0) {
    j["neuron"] = k.index;
    j["position"] = position(g.shape(k.node), k.index);
    j["side"] = k.on ? "on" : "off";
  } else {
    const Shape in = g.shape(g.node(k.node).inputs[0]);
    j["window"] = k.window;
    j["winner"] = position(in, k.index);
    j["other"] = position(in, k.other);
  }
  return j;
}

// Per configuration layer: its size, active neurons (ReLU) or tied windows (max-pool).
json layers_json(const ob::Configuration& config) {
  json layers = json::array();
  for (auto& L : config.layers) {
    json j = {{"layer", L.name}, {"kind", L.kind}};
    if (L.max_pool)
      j["windows"] = L.units, j["ties"] = L.ties;
    else
      j["neurons"] = L.units, j["active"] = L.active;
    layers.push_back(j);
  }
  return layers;
}

// The logits from the network and from W_x x + b_x, and their largest difference.
json logits_json(const ob::Region& R, const Tensor& x, double& diff) {
  const std::vector<double> aff = R.affine_logits(x.data());
  json net = json::array(), lin = json::array();
  diff = 0;
  for (int k = 0; k < R.logits.dim(0); ++k) {
    net.push_back(R.logits[k]);
    lin.push_back(aff[k]);
    diff = std::max(diff, std::fabs(aff[k] - R.logits[k]));
  }
  return {{"network", net}, {"affine", lin}, {"max_abs_difference", diff}};
}

// W.npy, b.npy (and with --polytope A.npy, c.npy) into dir; their names are added to files.
void write_matrices(const RegionsArgs& a, const ob::Region& R, const std::string& dir, json& files) {
  write_npy(dir + "/W.npy", R.W);
  write_npy(dir + "/b.npy", R.b);
  files.push_back("W.npy"), files.push_back("b.npy");
  if (a.polytope) {
    write_npy(dir + "/A.npy", R.A);
    write_npy(dir + "/c.npy", R.c);
    files.push_back("A.npy"), files.push_back("c.npy");
  }
}

// The class pair of the decision-feature difference: --pair, else the prediction against the
// runner-up.
std::pair<int, int> feature_pair(const RegionsArgs& a, const ob::Region& R, int pred) {
  if (!a.pair.empty()) {
    auto v = ints(a.pair, "--pair");
    if (v.size() != 2) throw std::invalid_argument("--pair '" + a.pair + "': expected C,C'");
    const int K = R.logits.dim(0);
    for (int c : v)
      if (c < 0 || c >= K)
        throw std::out_of_range("--pair '" + a.pair + "': class " + std::to_string(c) + " is not one of the model's " +
                                std::to_string(K) + " classes (0.." + std::to_string(K - 1) + ")");
    if (v[0] == v[1])  // W_c − W_c is zero everywhere
      throw std::invalid_argument("--pair '" + a.pair + "': two different classes (C,C' with C != C')");
    return {v[0], v[1]};
  }
  int c2 = -1;
  for (int k = 0; k < R.logits.dim(0); ++k)
    if (k != pred && (c2 < 0 || R.logits[k] > R.logits[c2])) c2 = k;
  return {pred, c2};
}

// Decision features of an image model: each row of W_x as an image, W_c1 - W_c2, and all of
// them side by side in features.png. Their names are added to files.
void write_feature_images(const Graph& g, const ob::Region& R, const std::vector<std::string>& classes, int c1,
                          int c2, const std::string& dir, json& files) {
  const Shape s = g.input_shape();
  const int K = g.classes(), D = int(s.numel());
  const int scale = std::max(1, 112 / std::max(s[1], s[2]));
  // One colour scale for every panel (each was scaled to its own maximum, so panels could not be
  // compared), shown by the colorbar: the largest |Σ_channels value| of them all.
  explain::HeatmapOptions ho;
  for (int k = 0; k <= K; ++k) {
    const std::vector<float> v = k < K ? std::vector<float>(R.W.data() + size_t(k) * D, R.W.data() + size_t(k + 1) * D)
                                       : ob::feature_difference(R, c1, c2);
    for (float m : explain::reduce_channels(Tensor::from(s, v), true)) ho.scale = std::max(ho.scale, double(std::fabs(m)));
  }
  if (!(ho.scale > 0)) ho.scale = 1;
  std::vector<explain::Image> row;
  std::vector<std::string> labels;
  auto add = [&](const std::vector<float>& values, const std::string& file, const std::string& label) {
    explain::Image im = explain::heatmap(Tensor::from(s, values), ho);
    im = explain::resize_nearest(im, im.w * scale, im.h * scale);
    save(dir + "/" + file, im);
    files.push_back(file);
    row.push_back(im);
    labels.push_back(label);
  };
  for (int k = 0; k < K; ++k)
    add(std::vector<float>(R.W.data() + size_t(k) * D, R.W.data() + size_t(k + 1) * D),
        "W_" + std::to_string(k) + ".png", classes[k]);
  add(ob::feature_difference(R, c1, c2), "W_" + std::to_string(c1) + "_minus_" + std::to_string(c2) + ".png",
      classes[c1] + "-" + classes[c2]);
  const explain::Image& last = row.back();
  const explain::Image panels = explain::grid({row}, labels, {"rows of W_x, and W_c - W_c'"}, last.w, last.h);
  save(dir + "/features.png",
       explain::beside(panels, {explain::colorbar_image("bwr", -ho.scale, ho.scale, std::max(120, panels.h - 20),
                                                        "weight")}));
  files.push_back("features.png");
}

void write_region(const RegionsArgs& a, Model& model, const Tensor& x, const std::string& name, int label,
                  const std::string& dir) {
  Graph& g = model.graph;
  const auto classes = class_names(model);
  ob::RegionOptions opt;
  opt.polytope = a.polytope;
  opt.keep_constraints = false;
  ob::Region R = ob::region(g, x, opt);
  std::filesystem::create_directories(dir);
  const int K = g.classes();
  double diff = 0;
  const json logits = logits_json(R, x, diff);
  const int pred = argmax(R.logits.data(), K);
  json files = json::array();
  const auto [c1, c2] = feature_pair(a, R, pred);  // a bad --pair is refused before any file is written
  write_matrices(a, R, dir, files);
  if (g.input_shape().rank == 3 && K >= 2) write_feature_images(g, R, classes, c1, c2, dir, files);
  json j = {{"model", a.model},
            {"input", name},
            {"label", label},
            {"predicted", pred},
            {"predicted_class", classes[pred]},
            {"configuration_id", R.config.hex()},
            {"layers", layers_json(R.config)},
            {"constraints", {{"count", R.constraint_count}, {"degenerate_maxpool_pairs", R.degenerate},
                             {"through_x", R.through_x},
                             {"box", R.box_constraints}}},
            {"nearest_boundary", constraint_json(g, R.nearest)},
            {"nearest_boundary_not_through_x", constraint_json(g, R.nearest_beyond)},
            {"logits", logits},
            // W, b, the constraints and distances act on normalized inputs (pixels through the model's
            // normalization), whatever --input-space the inputs were given in.
            {"space", "model input space"},
            {"feature_pair", {c1, c2}},
            {"files", files}};
  write_json(dir + "/region.json", j);
  std::printf("%s: configuration %s, %d constraints, nearest boundary %.4g (%s), |W x + b - logits| %.2g\n",
              name.c_str(), R.config.hex().c_str(), R.constraint_count, R.nearest_distance,
              ob::describe(g, R.nearest).c_str(), diff);
}

void write_line(const RegionsArgs& a, Model& model, const Inputs& in) {
  Graph& g = model.graph;
  ob::WalkOptions wo;
  wo.eps = a.eps;
  if (std::equal(in.x.sample(0).data(), in.x.sample(0).data() + in.x.sample_size(), in.x.sample(1).data()))
    throw std::invalid_argument("--line: inputs " + in.names[0] + " and " + in.names[1] +
                                " are the same point: the segment has no length");
  ob::Walk w = ob::walk(g, in.x.sample(0), in.x.sample(1), wo);
  json pieces = json::array();
  for (auto& p : w.pieces)
    pieces.push_back({{"t0", p.t0}, {"t1", p.t1}, {"configuration_id", ob::hex_id(p.id)}, {"predicted", p.label},
                      {"affine_map", p.map}});
  json j = {{"model", a.model},   {"from", in.names[0]}, {"to", in.names[1]},
            {"regions", w.regions}, {"affine_maps", w.affine_maps}, {"pieces", pieces},
            {"decision_changes", w.decision_changes}, {"degenerate_pieces", w.degenerate}};
  write_json(a.out + "/line.json", j);
  // The strip: top band one color per region, bottom band the predicted class, black ticks at
  // decision changes; framed with the segment's ends, t and the classes' colours.
  const int W = 1000, H = 60;
  std::vector<int> shown;
  for (auto& p : w.pieces)
    if (p.label >= 0 && std::find(shown.begin(), shown.end(), p.label) == shown.end()) shown.push_back(p.label);
  std::sort(shown.begin(), shown.end());
  explain::Image im(W, H);
  size_t k = 0;
  for (int x = 0; x < W; ++x) {
    const double t = (x + 0.5) / W;
    while (k + 1 < w.pieces.size() && w.pieces[k].t1 <= t) ++k;
    uint8_t c[3];
    id_color(w.pieces[k].id, c);
    for (int y = 0; y < 40; ++y) std::copy(c, c + 3, im.px(x, y));
    const uint8_t* cc = kClassColors[std::max(0, w.pieces[k].label) % 10];
    for (int y = 44; y < H; ++y) std::copy(cc, cc + 3, im.px(x, y));
  }
  for (double t : w.decision_changes) {
    const int x = std::clamp(int(t * W), 0, W - 1);
    for (int y = 0; y < H; ++y) std::fill(im.px(x, y), im.px(x, y) + 3, 0);
  }
  Frame f;
  f.title = "Linear regions along " + in.names[0] + " -> " + in.names[1] + " (black: class changes)";
  f.xlabel = "t (0: " + in.names[0] + ", 1: " + in.names[1] + ")";
  f.yaxis = false;
  f.band_labels = {"region", "class"};
  f.band_heights = {42, 18};
  save(a.out + "/line.png", framed(im, f, shown, model_classes(model)));
  std::printf("line %s -> %s: %zu pieces, %d regions, %d distinct affine maps, %zu class changes\n",
              in.names[0].c_str(), in.names[1].c_str(), w.pieces.size(), w.regions, w.affine_maps,
              w.decision_changes.size());
}

// Data points of a plane image, in plane coordinates, with their labels.
struct PlanePoints {
  std::vector<std::pair<double, double>> uv;
  std::vector<int> labels;
};

// --range U0,U1,V0,V1.
std::array<double, 4> parse_range(const std::string& range) {
  std::vector<double> r;
  size_t p = 0;
  while (p <= range.size()) {
    size_t q = range.find(',', p);
    if (q == std::string::npos) q = range.size();
    double v = 0;
    if (!parse_number(range.substr(p, q - p), v) || !std::isfinite(v) || std::fabs(v) > 1e15)
      throw std::invalid_argument("--range '" + range + "': '" + range.substr(p, q - p) +
                                  "' is not a finite number within ±1e15 (expected U0,U1,V0,V1)");
    r.push_back(v);
    p = q + 1;
  }
  if (r.size() != 4 || r[1] <= r[0] || r[3] <= r[2])
    throw std::invalid_argument("--range '" + range + "': expected U0,U1,V0,V1 with U0<U1, V0<V1");
  return {r[0], r[1], r[2], r[3]};
}

// The input plane of a 2-D model: --range, else the data's bounding box with a 10% margin, else
// [-3,3]^2. The data are the points drawn.
ob::Plane input_plane_of(const RegionsArgs& a, const Graph& g, const Inputs& in, PlanePoints& pts) {
  double u0 = -3, u1 = 3, v0 = -3, v1 = 3;
  if (in.x.batch() > 0) {
    u0 = v0 = INFINITY, u1 = v1 = -INFINITY;
    for (int n = 0; n < in.x.batch(); ++n) {
      u0 = std::min(u0, double(in.x[2 * n])), u1 = std::max(u1, double(in.x[2 * n]));
      v0 = std::min(v0, double(in.x[2 * n + 1])), v1 = std::max(v1, double(in.x[2 * n + 1]));
      pts.uv.emplace_back(in.x[2 * n], in.x[2 * n + 1]);
      pts.labels.push_back(in.labels[n]);
    }
    // A margin of a tenth of the span, but at least a twentieth of the larger span (or 1 for one
    // point): one point, or points on a line, made a window of 0.002 in that direction.
    const double span = std::max(u1 - u0, v1 - v0), least = span > 0 ? 0.05 * span : 1.0;
    const double mu = std::max(0.1 * (u1 - u0) + 1e-3, least), mv = std::max(0.1 * (v1 - v0) + 1e-3, least);
    u0 -= mu, u1 += mu, v0 -= mv, v1 += mv;
  }
  if (!a.range.empty()) {
    const std::array<double, 4> r = parse_range(a.range);
    u0 = r[0], u1 = r[1], v0 = r[2], v1 = r[3];
  }
  ob::Plane P = ob::input_plane(u0, u1, v0, v1);
  P.origin = P.origin.reshaped(Shape::batch_of(1, g.input_shape()));
  P.d1 = P.d1.reshaped(P.origin.shape());
  P.d2 = P.d2.reshaped(P.origin.shape());
  return P;
}

// The plane through three inputs, which are the points drawn.
ob::Plane plane_through_inputs(const Inputs& in, PlanePoints& pts) {
  // (a 4th was listed in plane.json and left out of the plane)
  if (in.x.batch() != 3)
    throw std::invalid_argument("--plane needs exactly three inputs (e.g. --index I,J,K), not " +
                                std::to_string(in.x.batch()));
  pts.uv = {{0, 0}, {1, 0}, {0, 1}};
  pts.labels = {in.labels[0], in.labels[1], in.labels[2]};
  try {
    return ob::plane_through(in.x.sample(0), in.x.sample(1), in.x.sample(2));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--plane: inputs " + in.names[0] + ", " + in.names[1] + " and " + in.names[2] + ": " +
                                e.what());
  }
}

// Per pixel of the W x H raster: its configuration id, and (in lab) its class. Pixels in no
// enumerated polygon (the enumeration stopped at --max-regions, or a sliver was stepped over)
// get theirs straight from the network; `missing` counts them.
std::vector<uint64_t> pixel_ids(Graph& g, const ob::Plane& P, const ob::SliceRegions& S, int W, int H,
                                std::vector<int>& lab, size_t& missing_count) {
  std::vector<int> reg;
  ob::rasterize(S, P, W, H, reg, lab);
  std::vector<size_t> missing;
  for (size_t q = 0; q < reg.size(); ++q)
    if (reg[q] < 0) missing.push_back(q);
  std::vector<uint64_t> ids(reg.size());
  for (size_t q = 0; q < reg.size(); ++q) ids[q] = reg[q] >= 0 ? S.regions[reg[q]].id : 0;
  missing_count = missing.size();
  if (missing.empty()) return ids;
  const size_t D = P.origin.size();
  Tensor xs(Shape::batch_of(int(missing.size()), g.input_shape()));
  for (size_t m = 0; m < missing.size(); ++m) {
    const double u = P.u0 + (double(missing[m] % W) + 0.5) * (P.u1 - P.u0) / W;
    const double v = P.v1 - (double(missing[m] / W) + 0.5) * (P.v1 - P.v0) / H;
    for (size_t d = 0; d < D; ++d) xs[m * D + d] = float(P.origin[d] + u * P.d1[d] + v * P.d2[d]);
  }
  std::vector<int> labels;
  const std::vector<uint64_t> missing_id = ob::configuration_ids(g, xs, &labels);
  for (size_t m = 0; m < missing.size(); ++m) {
    lab[missing[m]] = labels[m];
    ids[missing[m]] = missing_id[m];
  }
  return ids;
}

// One color per region, region edges a little darker, the decision boundary black, and the
// points as discs in their class's color.
explain::Image draw_plane(const ob::Plane& P, const std::vector<uint64_t>& pixel_id, const std::vector<int>& lab,
                          int W, int H, const PlanePoints& pts, bool two_d) {
  explain::Image im(W, H);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const uint64_t r = pixel_id[size_t(y) * W + x];
      uint8_t c[3];
      id_color(r, c);
      const bool edge =
          (x + 1 < W && pixel_id[size_t(y) * W + x + 1] != r) || (y + 1 < H && pixel_id[size_t(y + 1) * W + x] != r);
      const int l = lab[size_t(y) * W + x];
      const bool decision = (x + 1 < W && lab[size_t(y) * W + x + 1] != l) || (y + 1 < H && lab[size_t(y + 1) * W + x] != l);
      for (int ch = 0; ch < 3; ++ch) im.px(x, y)[ch] = decision ? 0 : edge ? uint8_t(c[ch] * 0.7) : c[ch];
    }
  for (size_t n = 0; n < pts.uv.size(); ++n) {
    const int x = int((pts.uv[n].first - P.u0) / (P.u1 - P.u0) * W);
    const int y = int((P.v1 - pts.uv[n].second) / (P.v1 - P.v0) * H);
    static const uint8_t white[3] = {255, 255, 255};
    disc(im, x, y, two_d ? 2 : 4, pts.labels[n] >= 0 ? kClassColors[pts.labels[n] % 10] : white);
  }
  return im;
}

void write_plane(const RegionsArgs& a, Model& model, const Inputs& in) {
  Graph& g = model.graph;
  PlanePoints pts;
  const bool two_d = g.input_shape().numel() == 2;
  const ob::Plane P = two_d ? input_plane_of(a, g, in, pts) : plane_through_inputs(in, pts);
  ob::SliceRegions S = ob::slice_regions(g, P, a.eps, a.max_regions);
  const int W = a.size, H = a.size;
  std::vector<int> lab;
  size_t missing = 0;
  const std::vector<uint64_t> pixel_id = pixel_ids(g, P, S, W, H, lab, missing);
  std::vector<int> shown;
  for (int l : lab)
    if (l >= 0 && std::find(shown.begin(), shown.end(), l) == shown.end()) shown.push_back(l);
  std::sort(shown.begin(), shown.end());
  Frame f;
  f.title = "Linear regions (colours) and decision boundaries (black)";
  f.x0 = P.u0, f.x1 = P.u1, f.y0 = P.v0, f.y1 = P.v1;
  if (two_d) {
    f.xlabel = "feature 0 (model input space)";
    f.ylabel = "feature 1";
  } else {
    f.xlabel = "u: from " + in.names[0] + " (0) to " + in.names[1] + " (1)";
    f.ylabel = "v: from " + in.names[0] + " (0) to " + in.names[2] + " (1)";
  }
  save(a.out + "/plane.png", framed(draw_plane(P, pixel_id, lab, W, H, pts, two_d), f, shown, model_classes(model)));
  double area = 0;
  for (auto& q : S.regions) area += q.area();
  json j = {{"model", a.model},
            {"regions", S.regions.size()},
            {"complete", !S.truncated},
            {"pixels_outside_enumerated_regions", missing},
            {"probes", S.probes},
            {"window", {P.u0, P.u1, P.v0, P.v1}},
            {"eps", a.eps},
            {"covered_area_fraction", area / ((P.u1 - P.u0) * (P.v1 - P.v0))},
            {"points", in.names}};
  write_json(a.out + "/plane.json", j);
  std::printf("plane: %s%zu regions in the window (%d graph passes)%s\n", S.truncated ? "at least " : "",
              S.regions.size(), S.probes, S.truncated ? "; stopped at --max-regions" : "");
}

void write_stats(const RegionsArgs& a, Model& model) {
  if (a.data.empty()) throw std::invalid_argument("--stats needs --data SPEC");
  Dataset probe = load_dataset(a.data, a.split);
  const int n = std::min(a.limit > 0 ? a.limit : probe.size(), probe.size());
  Inputs in = read_inputs(model, {}, a.data, "0:" + std::to_string(n), a.split, a.input_space);
  ob::ConfigStats st = ob::config_stats(model.graph, in.x);
  json top = json::array();
  for (auto& [id, c] : st.top) top.push_back({{"configuration_id", ob::hex_id(id)}, {"inputs", c}});
  json j = {{"model", a.model},          {"data", a.data},
            {"inputs", st.inputs},       {"distinct_configurations", st.distinct},
            {"largest_group", st.largest}, {"inputs_sharing", st.shared_inputs},
            {"singletons", st.singletons}, {"top", top}};
  write_json(a.out + "/stats.json", j);
  std::printf("%d inputs fall in %d distinct configurations; %d share one with another input (largest group %d)\n",
              st.inputs, st.distinct, st.shared_inputs, st.largest);
}

void run_regions(const RegionsArgs& a) {
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  // One mode per run: the first of --stats, --line, --plane ran and the others were ignored.
  const int modes = int(a.stats) + int(!a.line.empty()) + int(a.plane);
  if (modes > 1) throw std::invalid_argument("--stats, --line and --plane are modes of their own: give one of them");
  if (!a.range.empty() && !a.plane) throw std::invalid_argument("--range: the window of --plane, which was not given");
  // Flags of one mode given with another were ignored without a word (--plane --pair 0,0 ran).
  if (modes > 0 && (!a.pair.empty() || a.polytope))
    throw std::invalid_argument(std::string(!a.pair.empty() ? "--pair" : "--polytope") +
                                ": for the regions of single inputs, not with --stats, --line or --plane");
  if (!a.plane && (a.size_given || a.max_regions_given))
    throw std::invalid_argument(std::string(a.size_given ? "--size" : "--max-regions") + ": for --plane, which was not given");
  Model model = open_model(a.model);
  ob::check_piecewise_linear(model.graph);
  if (!a.range.empty() && model.graph.input_shape().numel() != 2)  // (it was ignored, even reversed)
    throw std::invalid_argument("--range: the window of a 2-D model's input plane; this model's plane goes through "
                                "the three --index inputs");
  make_out_dir(a.out);
  if (a.stats) return write_stats(a, model);
  // Logits that overflow float32 are refused, naming the input, as predict does (the figures failed
  // on an infinite colorbar range).
  const auto finite_logits = [&](const Inputs& in) {
    if (!in.x.empty()) all_logits(model.graph, in, a.model);
  };
  if (!a.line.empty()) {
    auto v = ints(a.line, "--line");
    if (v.size() != 2) throw std::invalid_argument("--line '" + a.line + "': expected I,J");
    Inputs in;
    if (!a.data.empty()) {
      in = read_inputs(model, {}, a.data, a.line, a.split, a.input_space, "--line");
    } else {
      Inputs all = read_inputs(model, a.inputs, "", "", a.split, a.input_space);
      for (int i : v)
        if (i < 0 || i >= all.x.batch())
          throw std::out_of_range("--line " + std::to_string(i) + ": only " + std::to_string(all.x.batch()) + " inputs");
      in.x = concat({all.x.sample(v[0]), all.x.sample(v[1])});
      in.names = {all.names[v[0]], all.names[v[1]]};
      in.labels = {all.labels[v[0]], all.labels[v[1]]};
    }
    finite_logits(in);
    return write_line(a, model, in);
  }
  if (a.plane) {
    Inputs in;
    if (model.graph.input_shape().numel() == 2) {
      if (!a.inputs.empty()) {  // the points drawn and spanned (--input was ignored)
        in = read_inputs(model, a.inputs, "", "", a.split, a.input_space);
      } else if (!a.data.empty()) {
        Dataset probe = load_dataset(a.data, a.split);
        if (a.limit < 1) throw std::invalid_argument("--limit " + std::to_string(a.limit) + ": --plane draws at least 1 point");
        const int n = std::min(a.limit, probe.size());
        in = read_inputs(model, {}, a.data, a.index.empty() ? "0:" + std::to_string(n) : a.index, a.split, a.input_space);
      }
    } else {
      in = read_inputs(model, a.inputs, a.inputs.empty() ? a.data : "", a.index.empty() ? "0,1,2" : a.index, a.split,
                       a.input_space);
    }
    finite_logits(in);
    return write_plane(a, model, in);
  }
  // With --input files no dataset sample is added (sample 0 was).
  Inputs in = read_inputs(model, a.inputs, a.inputs.empty() ? a.data : "", a.index.empty() ? "0" : a.index, a.split,
                          a.input_space);
  finite_logits(in);
  const int N = in.x.batch();
  for (int n = 0; n < N; ++n)
    write_region(a, model, in.x.sample(n), in.names[n], in.labels[n], N == 1 ? a.out : a.out + "/" + safe(in.names[n]));
}

}  // namespace

void add_regions_command(Command& app) {
  auto args = std::make_shared<RegionsArgs>();
  auto* cmd = app.add_subcommand(
      "regions", "OpenBox: the exact linear region and local linear classifier of inputs, segment walks, 2-D slices");
  cmd->add_option("--model", args->model, "model file, preset or architecture text")->required();
  cmd->add_option("--input", args->inputs, "image or .npy file (pixels; see --input-space)");
  add_input_space_flag(cmd, &args->input_space);
  cmd->add_option("--data", args->data, "dataset spec (see glassbox train --help)");
  cmd->add_option("--index", args->index, "dataset samples: I, I:J or I,J,K (default 0; --plane: 0,1,2)");
  cmd->add_option("--split", args->split, "dataset split")->default_val("test");
  cmd->add_option("--out", args->out, "output folder")->required();
  cmd->add_option("--line", args->line,
                  "I,J: walk the segment between two inputs (dataset indices with --data, else positions among --input)");
  cmd->add_flag("--plane", args->plane,
                "region map of a 2-D slice: the input plane of a 2-D model, else the plane through three inputs");
  cmd->add_option("--range", args->range, "U0,U1,V0,V1: the window of --plane for 2-D models (default: the data)");
  cmd->add_option("--size", args->size, "--plane image size in pixels (at most 8192)")
      ->default_val(512)
      ->check(int_in(1, 8192));
  cmd->add_option("--max-regions", args->max_regions, "--plane: stop enumerating after this many regions (at most 10^7)")
      ->default_val(20000)
      ->check(int_in(1, 10000000));
  cmd->add_flag("--stats", args->stats, "configuration statistics over --data");
  cmd->add_option("--limit", args->limit, "samples for --stats (and data points for --plane)")
      ->default_val(1000)
      ->check(at_least(0));
  cmd->add_option("--pair", args->pair, "C,C': the class pair of the decision-feature difference (default: top two)");
  cmd->add_flag("--polytope", args->polytope, "also write the region's A.npy and c.npy (A z <= c)");
  // eps <= 0 never leaves a region (a walk that hangs); the walk makes at least 1/eps steps at most.
  cmd->add_option("--eps", args->eps,
                  "step past a boundary in walks and slices (fraction of the segment/window, in [1e-12, 0.1])")
      ->default_val(1e-6)
      ->check(finite(1e-12, 0.1, false, false));
  cmd->callback([args, cmd] {
    args->size_given = cmd->count("--size") > 0;
    args->max_regions_given = cmd->count("--max-regions") > 0;
    run_regions(*args);
  });
}

}  // namespace gb
