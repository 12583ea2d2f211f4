#include "explain/surrogates/rules.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <stdexcept>
#include <tuple>

#include "engine/passes.h"
#include "engine/rng.h"
#include "explain/attribution/slic.h"
#include "explain/common/plot.h"
#include "explain/surrogates/anchors.h"
#include "explain/surrogates/distill.h"
#include "explain/surrogates/drawing.h"
#include "explain/surrogates/rule_tree.h"

namespace gb::explain::surrogates {

namespace {

constexpr int kBatch = 256;  // perturbed inputs per forward pass

std::string number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

std::string rule_class_name(const RulesRequest& q, int k) {
  return k < int(q.class_names.size()) ? q.class_names[k] : "class " + std::to_string(k);
}

// Data units of channel c's model-space value v.
float raw(const RulesRequest& q, int c, float v) {
  const float s = q.raw_scale.empty() ? 1.f : q.raw_scale[size_t(c) % q.raw_scale.size()];
  const float t = q.raw_shift.empty() ? 0.f : q.raw_shift[size_t(c) % q.raw_shift.size()];
  return v * s + t;
}

// One input as pixels in [0, 1] for display.
Tensor display_pixels(const RulesRequest& q, const Tensor& x) {
  const Shape s = x.shape().sample();
  Tensor p(s);
  const size_t plane = size_t(s[1]) * s[2];
  for (size_t i = 0; i < p.size(); ++i) p[i] = raw(q, int(i / plane), x[i]);
  return p;
}

AnchorOptions read_anchor_options(ParamReader& r) {
  AnchorOptions o;
  o.threshold = read_number(r, "threshold", 0.5, 1);
  o.delta = read_number(r, "delta", 1e-6, 0.5);
  o.epsilon = read_number(r, "tau", 1e-3, 0.5);
  o.batch = read_int(r, "batch", 1, 10000);
  o.beam = read_int(r, "beam", 1, 16);
  o.max_size = read_int(r, "max_size", 0, 64);
  o.coverage_samples = read_int(r, "coverage_samples", 100, 1000000);
  o.max_samples = read_int(r, "max_samples", 1000, 10000000);
  return o;
}

nlohmann::json anchor_json(const Anchor& a, const std::vector<std::string>& predicate_text, int target,
                           const RulesRequest& q) {
  nlohmann::json preds = nlohmann::json::array();
  for (size_t i = 0; i < a.predicates.size(); ++i)
    preds.push_back({{"predicate", a.predicates[i]},
                     {"text", predicate_text[a.predicates[i]]},
                     {"precision", std::isfinite(a.precision_by_size[i]) ? nlohmann::json(a.precision_by_size[i]) : nullptr},
                     {"coverage", a.coverage_by_size[i]}});
  return {{"class", target},      {"class_name", rule_class_name(q, target)}, {"anchor", preds},
          {"precision", a.precision}, {"coverage", a.coverage},         {"found", a.found},
          {"samples", a.samples},  {"budget_exhausted", a.budget_exhausted}};
}

std::string anchor_rule(const Anchor& a, const std::vector<std::string>& predicate_text, int target,
                        const RulesRequest& q) {
  std::string cond;
  for (int p : a.predicates) cond += (cond.empty() ? "" : " AND ") + predicate_text[p];
  return (cond.empty() ? std::string("ALWAYS") : "IF " + cond) + " THEN " + rule_class_name(q, target) + "  (precision " +
         number(a.precision) + ", coverage " + number(a.coverage) +
         (a.found               ? ""
          : a.budget_exhausted ? "; not established: the sample budget (max_samples) ran out"
                               : "; below the threshold") +
         ")";
}

// ---- anchors over superpixels ---------------------------------------------------------------------

// Perturbations of one image: each superpixel kept with probability ½ (always, for the anchor's),
// otherwise hidden: replaced by its mean colour, or by `fill` (a model-space value per channel)
// when given; a hit when the model still predicts `target`.
struct SuperpixelSampler {
  Graph& g;
  Tensor x;  // [1, C, H, W]
  int target;
  Segmentation seg;
  Tensor fudged;  // x with every superpixel hidden
  Rng rng;
  Tensor batch;

  SuperpixelSampler(Graph& g, const Tensor& x, int target, const SlicOptions& so, const Tensor& pixels, uint64_t seed,
                    const std::vector<float>& fill)
      : g(g), x(x), target(target), seg(slic(pixels, so)), fudged(x.clone()), rng(seed) {
    const int C = x.dim(1);
    const size_t HW = size_t(x.dim(2)) * x.dim(3);
    for (int c = 0; c < C; ++c) {
      std::vector<double> sum(seg.count, 0.0);
      std::vector<int> n(seg.count, 0);
      for (size_t i = 0; i < HW; ++i) sum[seg.labels[i]] += x[c * HW + i], ++n[seg.labels[i]];
      for (size_t i = 0; i < HW; ++i)
        fudged[c * HW + i] = fill.empty() ? float(sum[seg.labels[i]] / n[seg.labels[i]]) : fill[c];
    }
  }
  // Images for rows of on/off superpixels.
  void compose(const uint8_t* rows, int n, Tensor& out) const {
    const int C = x.dim(1), P = seg.count;
    const size_t HW = size_t(x.dim(2)) * x.dim(3);
    out.resize(Shape::batch_of(n, x.shape().sample()));
    for (int s = 0; s < n; ++s)
      for (int c = 0; c < C; ++c)
        for (size_t i = 0; i < HW; ++i) {
          const size_t at = c * HW + i;
          out[size_t(s) * C * HW + at] = rows[size_t(s) * P + seg.labels[i]] ? x[at] : fudged[at];
        }
  }
  void draw(const std::vector<int>& anchor, int n, bool labels, std::vector<uint8_t>& rows, std::vector<uint8_t>& hits) {
    const int P = seg.count;
    const size_t first = rows.size() / P;
    for (int s = 0; s < n; ++s) {
      for (int p = 0; p < P; ++p) rows.push_back(rng.uniform() < 0.5f);
      for (int p : anchor) rows[(first + s) * P + p] = 1;
    }
    if (!labels) return;
    for (int b = 0; b < n; b += kBatch) {
      const int m = std::min(n, b + kBatch) - b;
      compose(rows.data() + (first + b) * P, m, batch);
      for (int k : predictions(g.forward(batch))) hits.push_back(k == target);
    }
  }
};

Image superpixel_figure(const RulesRequest& q, SuperpixelSampler& s, const Anchor& a, const std::string& title) {
  const Tensor px = display_pixels(q, s.x);
  const int H = px.dim(1), W = px.dim(2), scale = std::max(2, 112 / W), w = W * scale, h = H * scale, gap = 10;
  const int examples = 4, cells = 3 + examples, lh = line_height(), label = 2 * lh + 2;
  // The rule (a long IF ... THEN line) wrapped to the cells' width; each cell's label on two lines.
  const int fig_w = std::max(cells * (w + gap) + gap, 640);
  const std::vector<std::string> title_lines = wrap_text(title, fig_w - 2 * gap);
  const int y = 6 + int(title_lines.size()) * lh + 8 + label;
  Image im(fig_w, y + h + lh + 10);
  for (size_t l = 0; l < title_lines.size(); ++l) text(im, gap, 6 + int(l) * lh, title_lines[l], kBlack);
  // A cell's label above it on up to two lines (the second shortened with ".." if need be).
  const auto cell_label = [&](int x, const std::string& s, Color c) {
    std::vector<std::string> lines = wrap_text(s, w);
    for (size_t l = 2; l < lines.size(); ++l) lines[1] += " " + lines[l];
    lines.resize(std::min<size_t>(lines.size(), 2));
    const int top = y - 2 - int(lines.size()) * lh;  // bottom-aligned: one-line labels sit on the cell
    for (size_t l = 0; l < lines.size(); ++l) text(im, x, top + int(l) * lh, lines[l], c, w);
  };
  auto cell_x = [&](int i) { return gap + i * (w + gap); };
  // The input; its superpixels' borders in red; the anchor's superpixels tinted red, the rest dimmed.
  paste(im, pixels(px, w, h), cell_x(0), y);
  cell_label(cell_x(0), "input", kBlack);
  Image borders = pixels(px, w, h), anchored = pixels(px, w, h);
  std::vector<uint8_t> in_anchor(s.seg.count, 0);
  for (int p : a.predicates) in_anchor[p] = 1;
  for (int yy = 0; yy < h; ++yy)
    for (int xx = 0; xx < w; ++xx) {
      const int l = s.seg.labels[size_t(yy / scale) * W + xx / scale];
      const bool edge = (xx + 1 < w && s.seg.labels[size_t(yy / scale) * W + (xx + 1) / scale] != l) ||
                        (yy + 1 < h && s.seg.labels[size_t((yy + 1) / scale) * W + xx / scale] != l);
      if (edge) fill_rect(borders, xx, yy, xx + 1, yy + 1, kRed);
      uint8_t* p = anchored.px(xx, yy);
      if (in_anchor[l]) {  // tinted red, so it shows on white and on black
        const uint8_t red[3] = {kRed.r, kRed.g, kRed.b};
        for (int c = 0; c < 3; ++c) p[c] = uint8_t((p[c] + 2 * red[c]) / 3);
      } else {
        for (int c = 0; c < 3; ++c) p[c] = uint8_t(p[c] / 4);
      }
    }
  paste(im, borders, cell_x(1), y);
  cell_label(cell_x(1), std::to_string(s.seg.count) + " superpixels", kBlack);
  paste(im, anchored, cell_x(2), y);
  cell_label(cell_x(2), "anchor", kRed);
  // Perturbations under the anchor, with the model's class for each.
  std::vector<uint8_t> rows, unused;
  s.draw(a.predicates, examples, false, rows, unused);
  Tensor imgs;
  s.compose(rows.data(), examples, imgs);
  const std::vector<int> pred = predictions(s.g.forward(imgs));
  for (int e = 0; e < examples; ++e) {
    paste(im, pixels(display_pixels(q, imgs.sample(e)), w, h), cell_x(3 + e), y);
    cell_label(cell_x(3 + e), rule_class_name(q, pred[e]), pred[e] == s.target ? kBlack : kRed);
  }
  text(im, cell_x(3), y + h + 4, "perturbations that keep the anchor", kGray, im.w - cell_x(3));
  return im;
}

std::vector<RuleSet> image_anchors(Graph& g, const RulesRequest& q, ParamReader& r) {
  const AnchorOptions o = read_anchor_options(r);
  SlicOptions so;
  so.segments = read_int(r, "segments", 2, 400);
  so.compactness = read_number(r, "compactness", 0.01, 1000);
  const uint64_t seed = uint64_t(read_int(r, "seed", 0, 1 << 30));
  read_int(r, "bins", 2, 10);  // flat features only
  // fill: "mean", or a pixel value in data units, put through the model's normalization per channel.
  std::vector<float> fill;
  if (r.text("fill") != "mean") {
    const float v = float(read_number(r, "fill", -1e6, 1e6));
    for (int c = 0; c < g.input_shape()[0]; ++c) {
      const float s = q.raw_scale.empty() ? 1.f : q.raw_scale[size_t(c) % q.raw_scale.size()];
      const float t = q.raw_shift.empty() ? 0.f : q.raw_shift[size_t(c) % q.raw_shift.size()];
      fill.push_back((v - t) / s);
    }
  }
  std::vector<RuleSet> out;
  const std::vector<int> targets = predict(g, q.inputs);
  for (int n = 0; n < q.inputs.batch(); ++n) {
    const Tensor x = q.inputs.sample(n).clone();
    SuperpixelSampler s(g, x, targets[n], so, display_pixels(q, x), seed + uint64_t(n), fill);
    AnchorSampler sampler{s.seg.count, [&s](const std::vector<int>& a, int m, bool labels, std::vector<uint8_t>& rows,
                                            std::vector<uint8_t>& hits) { s.draw(a, m, labels, rows, hits); }};
    const Anchor a = anchor_beam(sampler, o);
    std::vector<std::string> text;
    for (int p = 0; p < s.seg.count; ++p) text.push_back("superpixel " + std::to_string(p));
    RuleSet rs;
    rs.name = n < int(q.input_names.size()) ? q.input_names[n] : "input" + std::to_string(n);
    rs.rules = {anchor_rule(a, text, targets[n], q)};
    rs.details = anchor_json(a, text, targets[n], q);
    rs.details["superpixels"] = s.seg.count;
    Tensor labels({s.seg.height, s.seg.width});
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = float(s.seg.labels[i]);
    rs.arrays["segments"] = labels;
    rs.figure = superpixel_figure(q, s, a, rs.name + ": " + rs.rules[0]);
    out.push_back(std::move(rs));
  }
  return out;
}

// ---- anchors over quantile ranges of flat features --------------------------------------------------

// Perturbations of one row of flat features, as the anchor package's tabular explainer: rows of
// the data, each feature an anchor constrains replaced, where it falls outside the constraint, by
// that feature's value in a random data row inside it. Predicates (per feature f and boundary v of
// its quantile bins, on the side the input is): bin(x_f) <= v, or bin(x_f) > v.
struct QuantileSampler {
  struct Predicate {
    int feature, v;
    bool at_most;  // bin <= v; else bin > v
  };
  Graph& g;
  const Tensor& data;  // [M, F]
  int target, F, bins;
  std::vector<std::vector<float>> bounds;  // per feature, the bins-1 quantiles (model space)
  std::vector<float> lo, hi;               // per feature, the data's range
  std::vector<Predicate> preds;
  std::map<std::tuple<int, int, int>, std::vector<int>> inside;  // (feature, above, at most) -> data rows
  Rng rng;
  Tensor batch;

  int bin(int f, float v) const {
    return int(std::lower_bound(bounds[f].begin(), bounds[f].end(), v) - bounds[f].begin());
  }
  QuantileSampler(Graph& g, const Tensor& data, const float* x, int target, int bins, uint64_t seed)
      : g(g), data(data), target(target), F(data.dim(1)), bins(bins), rng(seed) {
    const int M = data.batch();
    for (int f = 0; f < F; ++f) {
      std::vector<float> col(M);
      for (int i = 0; i < M; ++i) col[i] = data[size_t(i) * F + f];
      std::sort(col.begin(), col.end());
      lo.push_back(col.front()), hi.push_back(col.back());
      bounds.emplace_back();
      for (int b = 1; b < bins; ++b) {  // numpy's percentile (linear interpolation)
        const double at = double(M - 1) * b / bins;
        const int i = int(at);
        bounds[f].push_back(float(col[i] + (at - i) * (col[std::min(i + 1, M - 1)] - col[i])));
      }
      const int xb = bin(f, x[f]);
      for (int v = 0; v + 1 < bins; ++v) preds.push_back({f, v, xb <= v});
    }
  }
  // Features' constraints: bin in (above, at_most].
  void constraints(const std::vector<int>& anchor, std::vector<int>& above, std::vector<int>& at_most) const {
    above.assign(F, -1);
    at_most.assign(F, bins - 1);
    for (int p : anchor) {
      const Predicate& d = preds[p];
      if (d.at_most)
        at_most[d.feature] = std::min(at_most[d.feature], d.v);
      else
        above[d.feature] = std::max(above[d.feature], d.v);
    }
  }
  const std::vector<int>& rows_inside(int f, int a, int m) {
    auto [it, added] = inside.try_emplace({f, a, m});
    if (added)
      for (int i = 0; i < data.batch(); ++i) {
        const int b = bin(f, data[size_t(i) * F + f]);
        if (b > a && b <= m) it->second.push_back(i);
      }
    return it->second;
  }
  void draw(const std::vector<int>& anchor, int n, bool labels, std::vector<uint8_t>& rows, std::vector<uint8_t>& hits) {
    std::vector<int> above, at_most;
    constraints(anchor, above, at_most);
    batch.resize({n, F});
    for (int s = 0; s < n; ++s) {
      float* row = batch.data() + size_t(s) * F;
      std::copy_n(data.data() + size_t(rng.below(uint32_t(data.batch()))) * F, F, row);
      for (int f = 0; f < F; ++f) {
        const int b = bin(f, row[f]);
        if (b > above[f] && b <= at_most[f]) continue;
        const std::vector<int>& ok = rows_inside(f, above[f], at_most[f]);
        if (!ok.empty()) {
          row[f] = data[size_t(ok[rng.below(uint32_t(ok.size()))]) * F + f];
        } else {  // no data row inside: uniform between the constraint's bounds
          const float a = above[f] >= 0 ? bounds[f][above[f]] : lo[f], m = at_most[f] < bins - 1 ? bounds[f][at_most[f]] : hi[f];
          row[f] = a + rng.uniform() * (m - a);
        }
      }
      for (const Predicate& d : preds) {
        const int b = bin(d.feature, row[d.feature]);
        rows.push_back(d.at_most ? b <= d.v : b > d.v);
      }
    }
    if (labels)
      for (int k : predict(g, batch, kBatch)) hits.push_back(k == target);
  }
  std::string text(const RulesRequest& q, int p) const {
    const Predicate& d = preds[p];
    return "x" + std::to_string(d.feature) + (d.at_most ? " <= " : " > ") + number(raw(q, d.feature, bounds[d.feature][d.v]));
  }
};

// Flat inputs with two features: the data coloured by the model's class, the anchor's box, the input.
Image quantile_figure(const RulesRequest& q, QuantileSampler& s, const Anchor& a, const float* x,
                      const std::string& title) {
  const std::vector<int> pred = predict(s.g, q.data);
  const int K = *std::max_element(pred.begin(), pred.end()) + 1, M = std::min(q.data.batch(), 1500);
  std::vector<Series> series(K);
  for (int k = 0; k < K; ++k) series[k].label = rule_class_name(q, k);
  for (int i = 0; i < M; ++i) {
    series[pred[i]].x.push_back(raw(q, 0, q.data[size_t(i) * 2]));
    series[pred[i]].y.push_back(raw(q, 1, q.data[size_t(i) * 2 + 1]));
  }
  PlotOptions o;
  o.kind = PlotKind::scatter;
  o.title = title;
  o.xlabel = "x0";
  o.ylabel = "x1";
  o.text_scale = kLabelScale;
  o.width = 640, o.height = 520;
  Image im = plot_image(series, o);
  const PlotFrame f = plot_frame(series, o);
  std::vector<int> above, at_most;
  s.constraints(a.predicates, above, at_most);
  double box[2][2];
  for (int d = 0; d < 2; ++d) {
    box[d][0] = raw(q, d, above[d] >= 0 ? s.bounds[d][above[d]] : s.lo[d]);
    box[d][1] = raw(q, d, at_most[d] < s.bins - 1 ? s.bounds[d][at_most[d]] : s.hi[d]);
  }
  const int x0 = int(f.px(box[0][0])), x1 = int(f.px(box[0][1])), y0 = int(f.py(box[1][1])), y1 = int(f.py(box[1][0]));
  frame(im, x0, y0, x1, y1, kBlack, 2);
  const int cx = int(f.px(raw(q, 0, x[0]))), cy = int(f.py(raw(q, 1, x[1])));
  line(im, cx - 7, cy - 7, cx + 7, cy + 7, kBlack, 3);
  line(im, cx - 7, cy + 7, cx + 7, cy - 7, kBlack, 3);
  return im;
}

std::vector<RuleSet> quantile_anchors(Graph& g, const RulesRequest& q, ParamReader& r) {
  const AnchorOptions o = read_anchor_options(r);
  read_int(r, "segments", 2, 400);  // images only
  read_number(r, "compactness", 0.01, 1000);
  r.text("fill");
  const uint64_t seed = uint64_t(read_int(r, "seed", 0, 1 << 30));
  const int bins = read_int(r, "bins", 2, 10);
  if (q.data.empty() || q.data.batch() < bins)
    throw std::invalid_argument("anchors on flat features need data to perturb with (--data, at least " +
                                std::to_string(bins) + " samples)");
  std::vector<RuleSet> out;
  const std::vector<int> targets = predict(g, q.inputs);
  for (int n = 0; n < q.inputs.batch(); ++n) {
    const float* x = q.inputs.data() + q.inputs.sample_size() * n;
    QuantileSampler s(g, q.data, x, targets[n], bins, seed + uint64_t(n));
    AnchorSampler sampler{int(s.preds.size()), [&s](const std::vector<int>& a, int m, bool labels,
                                                    std::vector<uint8_t>& rows, std::vector<uint8_t>& hits) {
                            s.draw(a, m, labels, rows, hits);
                          }};
    const Anchor a = anchor_beam(sampler, o);
    std::vector<std::string> text;
    for (size_t p = 0; p < s.preds.size(); ++p) text.push_back(s.text(q, int(p)));
    RuleSet rs;
    rs.name = n < int(q.input_names.size()) ? q.input_names[n] : "input" + std::to_string(n);
    rs.rules = {anchor_rule(a, text, targets[n], q)};
    rs.details = anchor_json(a, text, targets[n], q);
    if (s.F == 2) rs.figure = quantile_figure(q, s, a, x, rs.name + ": " + rs.rules[0]);
    out.push_back(std::move(rs));
  }
  return out;
}

std::vector<RuleSet> run_anchors(Graph& g, const RulesRequest& q, ParamReader& r) {
  if (q.inputs.empty()) throw std::invalid_argument("anchors explains inputs: give --data with --index, or --input");
  const int rank = g.input_shape().rank;
  if (rank == 3) return image_anchors(g, q, r);
  if (rank == 1) return quantile_anchors(g, q, r);
  throw std::invalid_argument("anchors takes images [C,H,W] or flat features [F], not " + g.input_shape().str());
}

// ---- the rule tree ----------------------------------------------------------------------------------

struct FeatureTable {
  Tensor values;  // [N, F]
  std::vector<std::string> names;
};

// Interpretable features of inputs x: "input" (each element, in data units), "pool:S" (images:
// the mean pixel of each S x S block), or a layer's name (its units; channel means of conv maps).
FeatureTable features(Graph& g, const RulesRequest& q, const Tensor& x, const std::string& spec) {
  const Shape in = g.input_shape();
  const int N = x.batch();
  FeatureTable f;
  if (spec == "input") {
    const size_t D = in.numel(), plane = in.rank == 3 ? size_t(in[1]) * in[2] : 1;
    f.values = Tensor({N, int(D)});
    for (int n = 0; n < N; ++n)
      for (size_t j = 0; j < D; ++j) f.values[n * D + j] = raw(q, int(j / plane), x[n * D + j]);
    for (size_t j = 0; j < D; ++j)
      f.names.push_back(in.rank == 3 ? "px(" + std::to_string(j / plane) + "," + std::to_string(j % plane / in[2]) + "," +
                                           std::to_string(j % in[2]) + ")"
                                     : "x" + std::to_string(j));
    return f;
  }
  if (spec.rfind("pool:", 0) == 0) {
    int S = 0;
    const std::string digits = spec.substr(5);  // all of it: stoi read "4abc" and " 6" as numbers
    if (!digits.empty() && digits.size() <= 6 && digits.find_first_not_of("0123456789") == std::string::npos)
      S = std::stoi(digits);
    if (in.rank != 3 || S < 1 || S > std::max(in[1], in[2]))
      throw std::invalid_argument("tree: features=" + spec + " needs an image model and 1 <= S <= its size");
    const int C = in[0], H = in[1], W = in[2], by = (H + S - 1) / S, bx = (W + S - 1) / S;
    f.values = Tensor({N, C * by * bx});
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c)
        for (int i = 0; i < by; ++i)
          for (int j = 0; j < bx; ++j) {
            double s = 0;
            int cnt = 0;
            for (int y = i * S; y < std::min(H, (i + 1) * S); ++y)
              for (int xx = j * S; xx < std::min(W, (j + 1) * S); ++xx, ++cnt)
                s += raw(q, c, x[((size_t(n) * C + c) * H + y) * W + xx]);
            f.values[size_t(n) * C * by * bx + (size_t(c) * by + i) * bx + j] = float(s / cnt);
          }
    for (int c = 0; c < C; ++c)
      for (int i = 0; i < by; ++i)
        for (int j = 0; j < bx; ++j)
          f.names.push_back("mean px " + (C > 1 ? "c" + std::to_string(c) + " " : std::string()) + "y" +
                            std::to_string(i * S) + "-" + std::to_string(std::min(H, (i + 1) * S) - 1) + " x" +
                            std::to_string(j * S) + "-" + std::to_string(std::min(W, (j + 1) * S) - 1));
    return f;
  }
  const int node = g.find(spec);
  if (node < 0)
    throw std::invalid_argument("tree: features=" + spec + " is neither input, pool:S nor a layer of the model");
  const Tensor a = activations(g, x, {node})[0];
  const Shape s = a.shape();
  const int C = s[1];
  const size_t plane = s.rank == 4 ? size_t(s[2]) * s[3] : 1;
  f.values = Tensor({N, C});
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      const float* p = a.data() + (size_t(n) * C + c) * plane;
      f.values[size_t(n) * C + c] = float(sum(p, plane) / double(plane));
    }
  for (int c = 0; c < C; ++c) f.names.push_back(spec + (s.rank == 4 ? " c" : "[") + std::to_string(c) + (s.rank == 4 ? "" : "]"));
  return f;
}

double agreement_of(const std::vector<int>& a, const std::vector<int>& b) {
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return a.empty() ? NAN : double(same) / double(a.size());
}

// Two flat features: the tree's regions (light) under the data coloured by the model's class.
Image tree_figure(const RulesRequest& q, const RuleTree& t, const FeatureTable& fit, const std::vector<int>& model_pred,
                  int K, const std::string& title) {
  std::vector<Series> series(K);
  for (int k = 0; k < K; ++k) series[k].label = rule_class_name(q, k);
  for (int i = 0; i < std::min(fit.values.batch(), 1500); ++i) {
    series[model_pred[i]].x.push_back(fit.values[size_t(i) * 2]);
    series[model_pred[i]].y.push_back(fit.values[size_t(i) * 2 + 1]);
  }
  PlotOptions o;
  o.kind = PlotKind::scatter;
  o.title = title;
  o.xlabel = fit.names[0];
  o.ylabel = fit.names[1];
  o.text_scale = kLabelScale;
  o.width = 640, o.height = 520;
  Image im = plot_image(series, o);
  const PlotFrame f = plot_frame(series, o);
  for (int y = int(f.top) + 1; y < int(f.bottom); ++y)
    for (int x = int(f.left) + 1; x < int(f.right); ++x) {
      uint8_t* p = im.px(x, y);
      if (p[0] != 255 || p[1] != 255 || p[2] != 255) continue;  // keep points and grid lines
      const float v[2] = {float(f.xlo + (x - f.left) / (f.right - f.left) * (f.xhi - f.xlo)),
                          float(f.ylo + (f.bottom - y) / (f.bottom - f.top) * (f.yhi - f.ylo))};
      const Rgb c = series_color(size_t(t.predict(v)));
      p[0] = uint8_t(255 - (255 - c.r) / 5), p[1] = uint8_t(255 - (255 - c.g) / 5), p[2] = uint8_t(255 - (255 - c.b) / 5);
    }
  return im;
}

std::vector<RuleSet> run_tree(Graph& g, const RulesRequest& q, ParamReader& r) {
  std::string spec = r.text("features");
  TreeOptions o;
  o.max_depth = read_int(r, "max_depth", 1, 20);
  o.min_leaf = read_int(r, "min_leaf", 1, 1000000);
  if (q.data.empty()) throw std::invalid_argument("tree fits the model's predictions on data: give --data");
  if (spec == "auto") spec = g.input_shape().rank == 3 ? "pool:4" : "input";
  const int K = g.classes();
  const std::vector<int> fit_pred = predict(g, q.data);
  const FeatureTable fit = features(g, q, q.data, spec);
  const RuleTree t = fit_tree(fit.values, fit_pred, K, o);
  RuleSet rs;
  rs.name = "tree";
  rs.rules = t.rules(fit.names, q.class_names);
  const double fit_fidelity = agreement_of(t.predict(fit.values), fit_pred);
  rs.details = {{"features", spec},          {"feature_count", fit.names.size()}, {"max_depth", o.max_depth},
                {"min_leaf", o.min_leaf},    {"fit_samples", q.data.batch()},     {"fit_fidelity", fit_fidelity},
                {"nodes", t.to_json(fit.names, q.class_names)}, {"rules", rs.rules}};
  int leaves = 0;
  for (const TreeNode& n : t.nodes) leaves += n.leaf();
  rs.details["leaves"] = leaves;
  std::string title = "rule tree (depth <= " + std::to_string(o.max_depth) + ", " + std::to_string(leaves) +
                      " leaves): fidelity " + number(fit_fidelity) + " on the fitting set";
  if (!q.test.empty()) {
    const double test_fidelity = agreement_of(t.predict(features(g, q, q.test, spec).values), predict(g, q.test));
    rs.details["test_samples"] = q.test.batch();
    rs.details["test_fidelity"] = test_fidelity;
    title += ", " + number(test_fidelity) + " held out";
  }
  if (fit.names.size() == 2) rs.figure = tree_figure(q, t, fit, fit_pred, K, title);
  return {rs};
}

// ---- the registry -----------------------------------------------------------------------------------

struct RuleMethod {
  MethodInfo info;
  std::function<std::vector<RuleSet>(Graph&, const RulesRequest&, ParamReader&)> run;
};

const MethodTable<RuleMethod>& rule_table() {
  static const MethodTable<RuleMethod> t("rule method", {
      {{"anchors",
        "an if-then rule over superpixels (images) or quantile ranges (flat features) that keeps the model's class "
        "with precision >= threshold, covering as much of the perturbations as possible (KL-LUCB beam search)",
        {{"threshold", "0.95", "the precision an anchor must reach (0.5..1)"},
         {"delta", "0.1", "confidence 1 - delta of the precision bounds [1e-6, 0.5]"},
         {"tau", "0.15", "KL-LUCB's tolerance when choosing the beam (the package's tau)"},
         {"batch", "100", "perturbations drawn per step (1..10000)"},
         {"beam", "1", "candidates kept per rule size (1..16)"},
         {"max_size", "0", "most predicates in a rule (0: no limit; up to 64)"},
         {"coverage_samples", "10000", "unconditioned perturbations coverage is measured on (100..1000000)"},
         {"max_samples", "200000", "a budget of model evaluations per input (1000..10000000): the best rule so far"},
         explain::seed_param("0", "seed of the perturbations"),
         {"segments", "40", "images: SLIC superpixels requested (2..400)"},
         {"compactness", "10", "images: SLIC compactness"},
         {"fill", "mean", "images: hidden superpixels take their mean colour ('mean', the package's default) or this "
                          "pixel value in data units (e.g. 0: black, the background of Fashion-MNIST)"},
         {"bins", "4", "flat features: quantile bins per feature (4: quartiles, as the anchor package; 2..10)"}},
        "Ribeiro et al. 2018 / the anchor package's anchor_beam (KL-LUCB with its beta, epsilon_stop 0.05, coverage "
        "on 10000 samples); its effective beam of 1 (the tabular explainer declares 4 but does not pass it on); KL "
        "bounds bisected to 1e-9 (the package takes one bisection step); superpixels from SLIC (the package: "
        "quickshift), hidden by their mean colour or fill; a sample budget. As the package, a longer rule reuses the "
        "perturbations of the rules it extends that satisfy it; for flat features the empty rule's perturbations are "
        "training rows, so a rule's precision is over those rows and over draws conditioned on the rule"},
       run_anchors},
      {{"tree",
        "a CART tree fitted to the model's predictions over interpretable features, its rules, and its fidelity "
        "(agreement with the model) on the fitting set and on held-out inputs",
        {{"features", "auto", "input (flat coordinates or pixels), pool:S (images: mean pixel of S x S blocks), or "
                              "a layer name (its units; channel means of conv maps); auto: input for flat models, pool:4 "
                              "for images"},
         {"max_depth", "4", "deepest rule (1..20)"},
         {"min_leaf", "5", "samples a leaf keeps (1..1000000)"}},
        "CART as scikit-learn's DecisionTreeClassifier(criterion='gini', splitter='best'), thresholds halfway between "
        "values, fitted to the model's predicted classes (a global surrogate, as the rule-extraction literature's "
        "pedagogical approach); ties to the lower feature; differences: a split must lower the impurity "
        "(scikit-learn's default min_impurity_decrease=0 also takes zero-gain splits, e.g. on XOR) and values "
        "are compared exactly (scikit-learn: equal within FEATURE_THRESHOLD 1e-7)"},
       run_tree},
  });
  return t;
}

}  // namespace

const std::vector<MethodInfo>& rule_methods() { return rule_table().infos(); }

const MethodInfo& rule_method(const std::string& name) { return rule_table().find(name).info; }

std::vector<RuleSet> rules(Graph& model, const RulesRequest& q, const std::string& method, const Params& params) {
  const RuleMethod& m = rule_table().find(method);
  for (const Tensor* t : {&q.inputs, &q.data, &q.test})
    if (!t->empty() && (t->rank() != model.input_shape().rank + 1 || t->shape().sample() != model.input_shape()))
      shape_error(t == &q.inputs ? "rules inputs" : t == &q.data ? "rules data" : "rules held-out data",
                  Shape::batch_of(t->batch(), model.input_shape()), t->shape());
  if (model.shape(model.output()).rank != 2)
    throw std::invalid_argument("rules: the model's output " + model.shape(model.output()).str() + " is not [N, classes]");
  ParamReader reader(params, m.info);
  std::vector<RuleSet> out = m.run(model, q, reader);
  reader.done();
  return out;
}

}  // namespace gb::explain::surrogates
