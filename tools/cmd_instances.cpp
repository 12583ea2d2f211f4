// glassbox influence: which training examples a prediction rests on (nearest neighbours, influence
// functions, TracIn, representer points), as scores for every training point (.npy), a labelled
// grid of the most helpful and most harmful ones, and summary.json; --self ranks the training set
// by self-influence; --loo K plots Koh & Liang's leave-one-out check. glassbox prototypes:
// MMD-critic prototypes and criticisms per class or over the whole set, as a grid and
// prototypes.json. Both print their methods with --list.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/architecture.h"
#include "engine/argmax.h"
#include "explain/common/heatmap.h"
#include "explain/common/plot.h"
#include "explain/instances/instances.h"
#include "explain/instances/mmd_critic.h"
#include "tools/figures.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "train/fit.h"

namespace gb {

namespace {

namespace fs = std::filesystem;
namespace inst = explain::instances;
using nlohmann::json;

struct InfluenceArgs {
  std::string model, data, index = "0", split = "test", methods, target = "auto", out;
  std::vector<std::string> inputs, params, checkpoints;
  int top = 8, train_limit = 0, batch = 256, loo = 0;
  bool list = false, self = false;
  InputSpace input_space = InputSpace::pixels;
};

struct PrototypeArgs {
  std::string model, data, split = "train", group = "each", out;
  std::vector<std::string> params;
  int prototypes = 10, criticisms = 5, limit = 0, batch = 256;
  bool list = false;
};

// The training set in the model's input space, optionally its first `limit` samples.
inst::Examples training_set(const Model& m, const std::string& spec, int limit, Dataset& raw) {
  if (spec.empty()) throw std::invalid_argument("--data is required: the training set comes from it");
  raw = first_samples(load_dataset(spec, "train"), limit);
  if (raw.x.shape().sample() != m.graph.input_shape())
    throw ShapeError("--data " + spec + ": samples are " + raw.x.shape().sample().str() + ", the model takes " +
                     m.graph.input_shape().str());
  inst::Examples e{raw.x.clone(), raw.y};
  normalize_for(m, e.x, "--data " + spec);
  return e;
}

// [C,H,W] pixels for display from a sample in the model's input space.
Tensor display(const Tensor& sample, const Normalization& norm) {
  Tensor p = sample.clone();
  if (!norm.empty()) norm.invert(p);
  auto [lo, hi] = std::minmax_element(p.data(), p.data() + p.size());
  if (*lo < -0.05f || *hi > 1.05f)
    for (size_t i = 0; i < p.size(); ++i) p[i] = (p[i] - *lo) / std::max(*hi - *lo, 1e-12f);
  return p.reshaped(sample.shape().sample());
}

// The height a cell's bar and caption lines add under its picture.
constexpr int kCaptionLines = 3;
int caption_h() { return 6 + kCaptionLines * explain::line_height(); }

// A grid cell: the image scaled to `w` wide, a coloured bar (green: supports, red: opposes, none:
// 0), and up to three caption lines under it (a training point's index, its class, its score: on
// one line they were cut at a 112 px cell's edge).
explain::Image cell(const explain::Image& picture, int w, int h, const std::vector<std::string>& lines, int sign) {
  explain::Image c(w, h + caption_h());
  const explain::Image scaled = explain::resize_nearest(picture, w, h);
  for (int y = 0; y < h; ++y) std::copy(scaled.px(0, y), scaled.px(0, y) + 3 * w, c.px(0, y));
  const uint8_t green[3] = {20, 150, 60}, red[3] = {200, 30, 30}, black[3] = {0, 0, 0};
  if (sign)
    for (int y = h; y < h + 3; ++y)
      for (int x = 0; x < w; ++x) std::copy(sign > 0 ? green : red, (sign > 0 ? green : red) + 3, c.px(x, y));
  // A cut name is marked ("Pullover with a.."): it must not pass for a shorter class's.
  for (size_t l = 0; l < lines.size() && l < size_t(kCaptionLines); ++l)
    explain::draw_text(c, 1, h + 5 + int(l) * explain::line_height(),
                       explain::fit_text(lines[l], explain::kLabelScale, w - 2), black);
  return c;
}

// `figure` under a line saying what the cells' bars mean: a green and a red swatch, each with its
// words (the red one on a second line when both do not fit).
explain::Image with_bar_legend(const explain::Image& figure, const std::string& green_text, const std::string& red_text) {
  const uint8_t green[3] = {20, 150, 60}, red[3] = {200, 30, 30}, black[3] = {0, 0, 0};
  const int entry_g = 26 + explain::text_width(green_text), entry_r = 26 + explain::text_width(red_text);
  const bool one_line = 4 + entry_g + 12 + entry_r <= figure.w;
  const int line = explain::line_height(), band = (one_line ? 1 : 2) * line + 6;
  explain::Image out(std::max(figure.w, 4 + std::max(entry_g, entry_r)), figure.h + band);
  auto entry = [&](int x, int y, const uint8_t* col, const std::string& text) {
    for (int v = y + 4; v < y + 7; ++v)  // the bar as drawn under a cell, 20 px of it, beside the capitals
      for (int u = x; u < x + 20; ++u) std::copy(col, col + 3, out.px(u, v));
    explain::draw_text(out, x + 26, y, text, black);
  };
  entry(4, 4, green, green_text);
  if (one_line) entry(4 + entry_g + 12, 4, red, red_text);
  else entry(4, 4 + line, red, red_text);
  for (int y = 0; y < figure.h; ++y) std::copy(figure.px(0, y), figure.px(0, y) + 3 * figure.w, out.px(0, y + band));
  return out;
}

std::string score_text(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%+.3g", v);
  return b;
}

// The indices of the k largest (descending) or k smallest (ascending) scores.
std::vector<int> ranked(const float* s, int n, int k, bool largest) {
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, n);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int a, int b) { return largest ? s[a] > s[b] : s[a] < s[b]; });
  order.resize(k);
  return order;
}

int cell_scale(const Graph& g) { return std::max(1, (112 + g.input_shape()[2] - 1) / g.input_shape()[2]); }

// What one influence run shares between its methods.
struct Run {
  const InfluenceArgs& a;
  Model& model;
  const inst::Examples& train;
  const Inputs& tests;
  const Tensor& logits;              // of the test inputs
  std::vector<std::string> classes;  // names
  Normalization norm;
  bool images;
};

json entries(const Run& r, const float* scores, const std::vector<int>& idx) {
  json out = json::array();
  for (int i : idx)
    out.push_back({{"index", i}, {"label", r.train.y[i]}, {"class", r.classes[r.train.y[i]]}, {"score", scores[i]}});
  return out;
}

explain::Image training_cell(const Run& r, int i, float score, int w, int h) {
  const Tensor px = display(r.train.x.sample(i), r.norm);
  return cell(explain::to_image(px), w, h, {"#" + std::to_string(i), r.classes[r.train.y[i]], score_text(score)},
              score > 0 ? 1 : score < 0 ? -1 : 0);
}

// The targets of a method: auto is the label for losses (influence, tracin) when it is known, the
// prediction otherwise (and for representer and knn).
std::vector<int> targets_for(const Run& r, const std::string& method) {
  const int N = r.tests.x.batch(), K = r.model.graph.classes();
  std::vector<int> t(N);
  for (int n = 0; n < N; ++n) {
    const float* z = r.logits.data() + size_t(n) * K;
    const int pred = argmax(z, K), label = r.tests.labels[n];
    const bool loss = method == "influence" || method == "tracin";
    if (r.a.target == "auto") {
      t[n] = loss && label >= 0 ? label : pred;
    } else if (r.a.target == "pred") {
      t[n] = pred;
    } else if (r.a.target == "label") {
      if (label < 0) throw std::invalid_argument("--target label: input " + r.tests.names[n] + " has no label");
      t[n] = label;
    } else {
      long k = -1;
      if (!parse_number(r.a.target, k) || k < 0 || k >= K)
        throw std::invalid_argument("--target '" + r.a.target + "': expected auto, pred, label or a class in [0," +
                                    std::to_string(K) + ")");
      t[n] = int(k);
    }
  }
  return t;
}

// The I_pert grids: per test input, one cell per chosen training point (helpful, then harmful),
// its map overlaid on the training image (pert_top: the gradient is in the training image's
// pixels) or on the test input (pert_test: in the test input's pixels).
void write_pert(const Run& r, const std::string& m, const inst::Scores& s, const std::string& key,
                const std::string& path) {
  const Tensor& pert = s.extra.at(key);
  const Tensor& index = s.extra.at(key + "_index");
  const bool on_test = key == "pert_test";
  const int M = index.batch(), k2 = index.dim(1), sc = cell_scale(r.model.graph);
  const int w = r.model.graph.input_shape()[2] * sc, h = r.model.graph.input_shape()[1] * sc;
  std::vector<std::vector<explain::Image>> cells(M);
  std::vector<std::string> cols, caps;
  for (int j = 0; j < k2; ++j) cols.push_back(j < k2 / 2 ? "helpful " + std::to_string(j + 1) : "harmful " + std::to_string(j - k2 / 2 + 1));
  for (int t = 0; t < M; ++t) {
    caps.push_back(r.tests.names[t] + (on_test ? ": pert_test, red = brighter pixel lowers the score ("
                                               : ": I_pert, red = brighter pixel raises the test loss (") + m + ")");
    for (int j = 0; j < k2; ++j) {
      const int i = int(index[size_t(t) * k2 + j]);
      const Tensor map = pert.sample(t * k2 + j).reshaped(r.model.graph.input_shape());
      explain::HeatmapOptions o;
      o.overlay = 0.6f;
      const Tensor px = display(on_test ? r.tests.x.sample(t) : r.train.x.sample(i), r.norm);
      const float score = s.scores[size_t(t) * r.train.size() + i];
      cells[t].push_back(cell(explain::heatmap(map, o, &px), w, h,
                              {"#" + std::to_string(i), r.classes[r.train.y[i]], score_text(score)}, score > 0 ? 1 : -1));
    }
  }
  write_image(path, with_bar_legend(explain::grid(cells, cols, caps, w, h + caption_h()), "bar: score > 0 (helpful)",
                                    "bar: score < 0 (harmful)"));
}

// One method's scores (over the test inputs, or self-influence) and how long they took.
struct MethodRun {
  std::string method;
  explain::Params params;
  inst::Scores s;
  double secs = 0;
};

MethodRun compute_method(const Run& r, const std::string& m, const explain::Params& params, const inst::Context& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  inst::Scores s = r.a.self ? inst::self_influence(r.model.graph, r.train, m, params, ctx)
                            : inst::explain(r.model.graph, r.train, {r.tests.x, targets_for(r, m)}, m, params, ctx);
  return {m, params, std::move(s), seconds_since(t0)};
}

// One method over the test inputs: scores, grid, extra arrays and the summary entries.
void write_instance_method(const Run& r, const MethodRun& run, json& summary) {
  const std::string& m = run.method;
  const explain::Params& params = run.params;
  const inst::Scores& s = run.s;
  const double secs = run.secs;
  const inst::Examples tests{r.tests.x, targets_for(r, m)};
  const int M = tests.size(), N = r.train.size(), k = std::min(r.a.top, N / 2);
  write_npy(r.a.out + "/" + m + "_scores.npy", s.scores);
  json arrays = json::object();
  for (auto& [key, t] : s.extra) {
    write_npy(r.a.out + "/" + m + "_" + key + ".npy", t);
    if (!key.ends_with("_index")) arrays[key] = {{"file", m + "_" + key + ".npy"}, {"shape", t.shape().str()}};
  }
  // The I_pert maps: rows t·2k .. t·2k + 2k − 1 of the array belong to test input t, in the order of
  // its _index row (k most helpful, then k most harmful).
  for (const char* key : {"pert", "pert_test"})
    if (s.extra.count(key)) {
      arrays[key]["index"] = m + "_" + key + "_index.npy";
      arrays[key]["maps_over"] = std::string(key) == "pert" ? "training image pixels" : "test input pixels";
      if (r.images) arrays[key]["figure"] = m + "_" + key + ".png";
    }
  summary["methods"][m] = {{"params", json(static_cast<const std::map<std::string, std::string>&>(params))},
                           {"time_s", secs}, {"info", s.info}, {"scores", m + "_scores.npy"}, {"arrays", arrays}};
  const int sc = cell_scale(r.model.graph), w = r.model.graph.input_shape()[2] * sc, h = r.model.graph.input_shape()[1] * sc;
  std::vector<std::vector<explain::Image>> cells(M);
  std::vector<std::string> cols = {"test input"}, caps;
  for (int j = 0; j < k; ++j) cols.push_back("top " + std::to_string(j + 1));
  for (int j = 0; j < k; ++j) cols.push_back("bottom " + std::to_string(j + 1));
  for (int t = 0; t < M; ++t) {
    const float* row = s.scores.data() + size_t(t) * N;
    const std::vector<int> best = ranked(row, N, k, true), worst = ranked(row, N, k, false);
    json& e = summary["tests"][t]["methods"][m];
    e = {{"target", tests.y[t]}, {"target_class", r.classes[tests.y[t]]}, {"top", entries(r, row, best)},
         {"bottom", entries(r, row, worst)}, {"details", t < int(s.details.size()) ? json(s.details[t]) : json::object()}};
    for (const char* key : {"pert", "pert_test"})  // the training points of the I_pert maps, in row order
      if (s.extra.count(std::string(key) + "_index")) {
        const Tensor& index = s.extra.at(std::string(key) + "_index");
        std::vector<int> points;
        for (int j = 0; j < index.dim(1); ++j) points.push_back(int(index[size_t(t) * index.dim(1) + j]));
        e[std::string(key) + "_points"] = entries(r, row, points);
      }
    std::printf("%-12s %-20s top:", m.c_str(), r.tests.names[t].c_str());
    for (int j = 0; j < std::min(k, 3); ++j) std::printf(" #%d %s (%s)", best[j], r.classes[r.train.y[best[j]]].c_str(), score_text(row[best[j]]).c_str());
    std::printf("\n");
    if (!r.images) continue;
    const int label = r.tests.labels[t];
    caps.push_back(r.tests.names[t] + ": " + m + " for class " + r.classes[tests.y[t]] +
                   (label >= 0 ? ", label " + r.classes[label] : ""));
    cells[t].push_back(cell(explain::to_image(display(r.tests.x.sample(t), r.norm)), w, h,
                            {r.tests.names[t], "target", r.classes[tests.y[t]]}, 0));
    for (int i : best) cells[t].push_back(training_cell(r, i, row[i], w, h));
    for (int i : worst) cells[t].push_back(training_cell(r, i, row[i], w, h));
  }
  if (r.images) {
    write_image(r.a.out + "/" + m + "_grid.png",
                with_bar_legend(explain::grid(cells, cols, caps, w, h + caption_h()), "bar: score > 0 (supports the target)",
                                "bar: score < 0 (opposes it)"));
    if (s.extra.count("pert")) write_pert(r, m, s, "pert", r.a.out + "/" + m + "_pert.png");
    if (s.extra.count("pert_test")) write_pert(r, m, s, "pert_test", r.a.out + "/" + m + "_pert_test.png");
  }
}

// Self-influence of every training point: scores, a grid of the highest, the summary entries.
void write_self(const Run& r, const MethodRun& run, json& summary) {
  const std::string& m = run.method;
  const explain::Params& params = run.params;
  const inst::Scores& s = run.s;
  const double secs = run.secs;
  const int N = r.train.size(), k = std::min(r.a.top * 4, N), per_row = std::max(1, r.a.top);
  write_npy(r.a.out + "/" + m + "_self_influence.npy", s.scores);
  const std::vector<int> best = ranked(s.scores.data(), N, k, true);
  summary["methods"][m] = {{"params", json(static_cast<const std::map<std::string, std::string>&>(params))},
                           {"time_s", secs}, {"info", s.info}, {"scores", m + "_self_influence.npy"},
                           {"top", entries(r, s.scores.data(), best)}};
  std::printf("%-12s highest self-influence:", m.c_str());
  for (int j = 0; j < std::min(k, 5); ++j) std::printf(" #%d %s", best[j], r.classes[r.train.y[best[j]]].c_str());
  std::printf("\n");
  if (!r.images) return;
  const int sc = cell_scale(r.model.graph), w = r.model.graph.input_shape()[2] * sc, h = r.model.graph.input_shape()[1] * sc;
  std::vector<std::vector<explain::Image>> cells;
  std::vector<std::string> caps, cols;
  for (int j = 0; j < per_row; ++j) cols.push_back("");
  for (int j = 0; j < k; j += per_row) {
    caps.push_back("self-influence (" + m + "), ranks " + std::to_string(j + 1) + "-" + std::to_string(std::min(k, j + per_row)) +
                   ": labels that may be wrong first");
    cells.emplace_back();
    for (int q = j; q < j + per_row; ++q)
      cells.back().push_back(q < k ? training_cell(r, best[q], s.scores[best[q]], w, h) : explain::Image(1, 1));
  }
  cols[0] = "highest self-influence";
  write_image(r.a.out + "/" + m + "_self_influence.png",
              with_bar_legend(explain::grid(cells, cols, caps, w, h + caption_h()), "bar: score > 0", "bar: score < 0"));
}

// Koh & Liang's Fig. 2 on the last layer: predicted against actual leave-one-out changes of the test
// loss.
struct LooRun {
  double damping = 0.01;  // influence's default
  std::vector<inst::LeaveOneOut> loo;
};

LooRun compute_loo(const Run& r, const explain::Params& params, const inst::Context& ctx) {
  LooRun out;
  if (auto it = params.find("damping"); it != params.end() && !parse_number(it->second, out.damping))
    throw std::invalid_argument("--param damping=" + it->second + " is not a number");
  const inst::Examples tests{r.tests.x, targets_for(r, "influence")};
  out.loo = inst::leave_one_out(r.model.graph, r.train, tests, out.damping, r.a.loo, ctx);
  return out;
}

// The leave-one-out check as a scatter plot (loo.png, loo.svg) and in the summary.
void write_loo(const Run& r, const LooRun& run, json& summary) {
  const std::vector<inst::LeaveOneOut>& loo = run.loo;
  std::vector<explain::Series> series;
  json entries = json::array();
  for (size_t t = 0; t < loo.size(); ++t) {
    char r_text[32];
    std::snprintf(r_text, sizeof r_text, " (r = %.3f)", loo[t].pearson);
    series.push_back({r.tests.names[t] + r_text, loo[t].predicted, loo[t].actual, {}});
    entries.push_back({{"name", r.tests.names[t]}, {"index", loo[t].index}, {"predicted", loo[t].predicted},
                       {"actual", loo[t].actual}, {"pearson", loo[t].pearson}});
    std::printf("leave-one-out %-20s Pearson r = %.4f over %d refits\n", r.tests.names[t].c_str(), loo[t].pearson, r.a.loo);
  }
  summary["leave_one_out"] = {{"damping", run.damping}, {"tests", entries}};
  explain::PlotOptions o;
  o.kind = explain::PlotKind::scatter;
  o.title = "Leave-one-out, last layer (Koh & Liang Fig. 2)";
  o.xlabel = "predicted change of the test loss (influence)";
  o.ylabel = "actual change after refitting";
  o.hlines = {0.0};
  o.hline_labels = {"no change"};
  const explain::Image im = explain::plot_image(series, o);
  write_image(r.a.out + "/influence_loo.png", im);
  atomic_write(r.a.out + "/influence_loo.svg", explain::plot_svg(series, o));
}

// TracIn's checkpoints: the files given, or MODEL.epochE.safetensors beside the model, by epoch.
std::vector<inst::Checkpoint> load_checkpoints(const InfluenceArgs& a, const Model& model) {
  std::vector<std::string> files = a.checkpoints;
  if (files.empty() && fs::exists(a.model)) {
    int skipped = 0;
    for (auto& [epoch, f] : epoch_models(a.model, model.metadata, &skipped)) files.push_back(f);
    if (skipped)
      std::fprintf(stderr, "tracin: %d epoch model(s) beside %s are from another training run (train.run, or past "
                   "the model's epoch); left out\n",
                   skipped, a.model.c_str());
  }
  const json arch = architecture_json(model.graph);
  std::vector<inst::Checkpoint> out;
  for (const std::string& f : files) {
    Model c = open_model_file(f);
    if (architecture_json(c.graph) != arch)
      throw std::invalid_argument("--checkpoints " + f + ": its architecture differs from --model's");
    inst::Checkpoint ck{f, {}, 0};
    for (auto& [name, p] : c.graph.named_params()) ck.params[name] = p->value;
    if (auto it = c.metadata.find("train.lr"); it != c.metadata.end()) {
      double lr = 0;
      if (!parse_number(it->second, lr) || !(lr > 0) || !explain::float32_finite(lr))  // (1e300: every score NaN)
        throw std::invalid_argument("--checkpoints " + f + ": train.lr '" + it->second + "' is not a rate > 0");
      ck.lr = lr;
    }
    out.push_back(std::move(ck));
  }
  return out;
}

void run_influence(const InfluenceArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(inst::methods()).c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  const std::vector<std::string> methods = split_list(a.methods, "--method");
  if (methods.empty()) throw std::invalid_argument("--method is required (see glassbox influence --list)");
  for (const std::string& m : methods) {
    inst::method_info(m);  // unknown names fail here, listing the known ones
    if (a.self && !inst::has_self_influence(m))
      throw std::invalid_argument("--self: " + m + " has no self-influence (influence and tracin have)");
  }
  const std::vector<explain::Params> params = route_params(
      a.params, methods, [](const std::string& m) -> const auto& { return inst::method_info(m).params; }, "method",
      "glassbox influence --list");
  const auto influence = std::find(methods.begin(), methods.end(), "influence");
  if (a.loo > 0 && (a.self || influence == methods.end()))
    throw std::invalid_argument("--loo checks influence on test inputs: use it with --method influence, without --self");
  Model model = open_model(a.model);
  Dataset raw;
  const inst::Examples train = training_set(model, a.data, a.train_limit, raw);
  if (train.size() < 2)  // one point has nothing to be ranked against
    throw std::invalid_argument((a.train_limit > 0 && a.train_limit < 2 ? "--train-limit " + std::to_string(a.train_limit)
                                                                         : "--data " + a.data) +
                                ": the training set holds " + std::to_string(train.size()) +
                                " point(s); influence ranks at least 2");
  if (a.loo > train.size())
    throw std::invalid_argument("--loo " + std::to_string(a.loo) + ": the training set holds only " +
                                std::to_string(train.size()) + " points");
  const Inputs tests = a.self ? Inputs{} : read_inputs(model, a.inputs, a.inputs.empty() ? a.data : "", a.index, a.split, a.input_space);
  Tensor logits;
  if (!a.self) logits = model.graph.forward(tests.x).clone();
  const bool images = model.graph.input_shape().rank == 3;
  Run r{a, model, train, tests, logits, model_classes(model, raw.class_names), Normalization::of_model(model.metadata), images};
  std::vector<inst::Checkpoint> checkpoints;
  if (std::count(methods.begin(), methods.end(), "tracin"))
    checkpoints = load_checkpoints(a, model);
  else if (!a.checkpoints.empty())  // (it was ignored)
    throw std::invalid_argument("--checkpoints: TracIn's saved models, and --method has no tracin");
  inst::Context ctx{&checkpoints, a.batch, stage_progress()};

  // Every method runs before anything is written: a method that fails (a bad value, a solver that
  // diverges) leaves --out as it was, not half rewritten beside an older summary.json.
  std::vector<MethodRun> runs;
  for (size_t m = 0; m < methods.size(); ++m) {
    std::fprintf(stderr, "%s over %d training points\n", methods[m].c_str(), train.size());
    runs.push_back(compute_method(r, methods[m], params[m], ctx));
  }
  LooRun loo;
  if (a.loo > 0) loo = compute_loo(r, params[influence - methods.begin()], ctx);

  make_out_dir(a.out);
  json summary = {{"model", a.model}, {"data", a.data}, {"training_points", train.size()}, {"methods", json::object()}};
  if (!checkpoints.empty()) {
    summary["checkpoints"] = json::array();
    for (auto& c : checkpoints) summary["checkpoints"].push_back({{"file", c.name}, {"lr", c.lr}});
  }
  if (!a.self) {
    summary["tests"] = json::array();
    const int K = model.graph.classes();
    for (int t = 0; t < tests.x.batch(); ++t) {
      const float* z = logits.data() + size_t(t) * K;
      const int pred = argmax(z, K);
      summary["tests"].push_back({{"name", tests.names[t]}, {"label", tests.labels[t]}, {"predicted", pred},
                                  {"predicted_class", r.classes[pred]}, {"methods", json::object()}});
    }
  }
  for (const MethodRun& run : runs) {
    if (a.self)
      write_self(r, run, summary);
    else
      write_instance_method(r, run, summary);
  }
  if (a.loo > 0) write_loo(r, loo, summary);
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
  std::printf("wrote scores, %ssummary.json to %s\n", images ? "grids, " : "", a.out.c_str());
}

// The rows of each group: every class on its own, the whole set, or one class.
std::vector<std::pair<std::string, std::vector<int>>> groups(const Dataset& d, const std::string& spec) {
  std::vector<std::pair<std::string, std::vector<int>>> out;
  if (spec == "all") {
    std::vector<int> all(d.size());
    std::iota(all.begin(), all.end(), 0);
    out.emplace_back("all classes", all);
    return out;
  }
  std::vector<int> classes;
  if (spec == "each") {
    for (int c = 0; c < d.classes(); ++c) classes.push_back(c);
  } else {
    long c = -1;
    if (!parse_number(spec, c) || c < 0 || c >= d.classes())
      throw std::invalid_argument("--class '" + spec + "': expected each, all or a class in [0," +
                                  std::to_string(d.classes()) + ")");
    classes.push_back(int(c));
  }
  for (int c : classes) {
    std::vector<int> rows;
    for (int i = 0; i < d.size(); ++i)
      if (d.y[i] == c) rows.push_back(i);
    if (!rows.empty()) out.emplace_back(d.class_names[c], rows);
  }
  return out;
}

void run_prototypes(const PrototypeArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(inst::prototype_methods()).c_str(), stdout);
    return;
  }
  if (a.data.empty()) throw std::invalid_argument("--data is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  const std::vector<explain::Params> routed =
      route_params(a.params, {"mmd-critic"}, [](const std::string&) -> const auto& { return inst::prototype_methods()[0].params; },
                   "method", "glassbox prototypes --list");
  const explain::Params& params = routed[0];
  const bool by_layer = params.count("layer") && !params.at("layer").empty();
  std::unique_ptr<Model> model;
  if (!a.model.empty()) model = std::make_unique<Model>(open_model(a.model));
  Dataset d = first_samples(load_dataset(a.data, a.split), a.limit);
  Normalization norm;
  if (model) {
    if (d.x.shape().sample() != model->graph.input_shape())
      throw ShapeError("--data " + a.data + ": samples are " + d.x.shape().sample().str() + ", the model takes " +
                       model->graph.input_shape().str());
    norm = Normalization::of_model(model->metadata);
  }
  inst::Context ctx{nullptr, a.batch, stage_progress()};
  make_out_dir(a.out);
  json summary = {{"data", a.data}, {"split", a.split}, {"model", a.model}, {"params", json(static_cast<const std::map<std::string, std::string>&>(params))},
                  {"groups", json::array()}};
  const bool images = d.x.rank() == 4;
  const int sc = images ? std::max(1, (112 + d.x.dim(3) - 1) / d.x.dim(3)) : 1;
  const int w = images ? d.x.dim(3) * sc : 1, h = images ? d.x.dim(2) * sc : 1;
  std::vector<std::vector<explain::Image>> cells;
  std::vector<std::string> caps;
  for (auto& [name, rows] : groups(d, a.group)) {
    Dataset part = take(d, rows);
    if (by_layer && !norm.empty()) norm.apply(part.x);  // the model's input space; pixels stay pixels
    std::fprintf(stderr, "mmd-critic on %s: %zu points\n", name.c_str(), rows.size());
    const inst::Prototypes p = inst::mmd_critic(model ? &model->graph : nullptr, part.x, a.prototypes, a.criticisms, params, ctx);
    json g = {{"group", name}, {"points", rows.size()}, {"gamma", p.gamma}, {"prototypes", json::array()},
              {"criticisms", json::array()}, {"objective", p.objective}};
    for (int i : p.prototypes) g["prototypes"].push_back({{"index", rows[i]}, {"label", d.y[rows[i]]}});
    for (size_t c = 0; c < p.criticisms.size(); ++c)
      g["criticisms"].push_back({{"index", rows[p.criticisms[c]]}, {"label", d.y[rows[p.criticisms[c]]]}, {"witness", p.witness[c]}});
    summary["groups"].push_back(g);
    std::printf("%-14s prototypes:", name.c_str());
    for (int i : p.prototypes) std::printf(" #%d", rows[i]);
    std::printf("  criticisms:");
    for (int i : p.criticisms) std::printf(" #%d", rows[i]);
    std::printf("\n");
    if (!images) continue;
    caps.push_back(name + ": " + std::to_string(p.prototypes.size()) + " prototypes, then " +
                   std::to_string(p.criticisms.size()) + " criticisms (witness: + under-, - over-represented)");
    cells.emplace_back();
    for (int i : p.prototypes) {
      const int j = rows[i];
      cells.back().push_back(cell(explain::to_image(d.x.sample(j).reshaped(d.x.shape().sample())), w, h,
                                  {"#" + std::to_string(j), d.class_names[d.y[j]]}, 1));
    }
    for (size_t c = 0; c < p.criticisms.size(); ++c) {
      const int j = rows[p.criticisms[c]];
      cells.back().push_back(cell(explain::to_image(d.x.sample(j).reshaped(d.x.shape().sample())), w, h,
                                  {"#" + std::to_string(j), d.class_names[d.y[j]], "w " + score_text(p.witness[c])}, -1));
    }
  }
  if (images && !cells.empty()) {
    std::vector<std::string> cols;
    for (int j = 0; j < a.prototypes; ++j) cols.push_back("prototype " + std::to_string(j + 1));
    for (int j = 0; j < a.criticisms; ++j) cols.push_back("criticism " + std::to_string(j + 1));
    write_image(a.out + "/prototypes.png", with_bar_legend(explain::grid(cells, cols, caps, w, h + caption_h()),
                                                          "bar: prototype", "bar: criticism"));
  }
  atomic_write(a.out + "/prototypes.json", summary.dump(2) + "\n");
  std::printf("wrote prototypes.json%s to %s\n", images ? " and prototypes.png" : "", a.out.c_str());
}

void add_instances_commands(Command& app) {
  {
    auto a = std::make_shared<InfluenceArgs>();
    auto* c = app.add_subcommand("influence", "Training examples behind a prediction: knn, influence functions, "
                                              "TracIn, representer points (scores .npy, grid, summary)");
    c->add_flag("--list", a->list, "list the methods with their parameters, defaults and conventions");
    c->add_option("--model", a->model, "a model file (or a preset or architecture text)");
    c->add_option("--data", a->data, "dataset spec: its train split is the training set; test inputs come from "
                                     "--split unless --input is given");
    c->add_option("--index", a->index, "test samples of --split: I, I:J (half-open) or I,J,K")->capture_default_str();
    c->add_option("--split", a->split, "split the test inputs come from")->capture_default_str();
    c->add_option("--input", a->inputs, "test inputs as image files or .npy arrays (pixels; see --input-space)");
    add_input_space_flag(c, &a->input_space);
    c->add_option("--method", a->methods, "knn, influence, tracin, representer (comma-separated)");
    c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable); goes to the methods that declare KEY");
    c->add_option("--target", a->target,
                  "class of each test input: auto (influence, tracin: the label when known; knn, representer: the "
                  "prediction), pred, label or a class number")
        ->capture_default_str();
    c->add_option("--top", a->top, "most and least supportive training examples shown per test input")
        ->capture_default_str()
        ->check(in_range(1, 64));
    c->add_option("--train-limit", a->train_limit, "use only the first N training samples (0: all)")->check(at_least(0));
    c->add_option("--checkpoints", a->checkpoints, "TracIn checkpoints (default: MODEL.epochE.safetensors beside "
                                                   "--model, written by glassbox train --save-every N)");
    c->add_flag("--self", a->self, "rank the training set by self-influence (influence, tracin) instead");
    c->add_option("--loo", a->loo, "Koh & Liang's leave-one-out check: refit the last layer without each of the K "
                                   "training points of largest |influence| per test input; influence_loo.png/svg")
        ->check(in_range(0, 100));
    c->add_option("--batch", a->batch, "samples per pass")->capture_default_str()->check(in_range(1, 4096));
    c->add_option("--out", a->out, "output folder");
    c->callback([a, c] {
      // The test inputs are the --input files, whole, or --data's samples at --index.
      refuse_index_with_inputs(*c, a->inputs, false);
      run_influence(*a);
    });
  }
  {
    auto a = std::make_shared<PrototypeArgs>();
    auto* c = app.add_subcommand("prototypes", "MMD-critic prototypes and criticisms of a dataset, per class or over "
                                               "the whole set (grid and prototypes.json)");
    c->add_flag("--list", a->list, "list the method with its parameters, defaults and convention");
    c->add_option("--data", a->data, "dataset spec");
    c->add_option("--split", a->split, "dataset split")->capture_default_str();
    c->add_option("--model", a->model, "model whose activations --param layer= compares (pixels without one)");
    c->add_option("--class", a->group, "each (every class on its own), all (the whole set) or a class number")
        ->capture_default_str();
    c->add_option("--prototypes", a->prototypes, "prototypes per group")->capture_default_str()->check(in_range(1, 1000));
    c->add_option("--criticisms", a->criticisms, "criticisms per group")->capture_default_str()->check(in_range(0, 1000));
    c->add_option("--param", a->params, "method parameter KEY=VALUE (see --list)");
    c->add_option("--limit", a->limit, "use only the first N samples of the split (0: all)")->check(at_least(0));
    c->add_option("--batch", a->batch, "samples per pass")->capture_default_str()->check(in_range(1, 4096));
    c->add_option("--out", a->out, "output folder");
    c->callback([a] { run_prototypes(*a); });
  }
}

}  // namespace

static const RegisterCommand registered_instances_cmd("instances", add_instances_commands);

}  // namespace gb
