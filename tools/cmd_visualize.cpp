// glassbox visualize: feature visualization (explain/visualize) from the command line. One method
// per run; per output row <name>.npy (in the model's input space, loadable with --input) and
// <name>.png (pixels, enlarged), a labelled grid.png over all rows, and summary.json with every
// row's numbers and objective curves. `--list` prints every method with its parameters.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <nlohmann/json.hpp>
#include <set>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/argmax.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "explain/common/heatmap.h"
#include "explain/common/plot.h"
#include "explain/visualize/visualize.h"
#include "tools/figures.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "train/optimizer.h"
#include "train/regress.h"

namespace gb {

namespace {

namespace vz = visualize;

struct VisualizeArgs {
  std::string model, method, unit, data, index, split = "test", scan = "all", scan_split, out;
  std::vector<std::string> inputs, params;
  bool list = false;
  InputSpace input_space = InputSpace::pixels;
};

// Methods that scan a dataset (--data, --scan): top patches and facets need one; am reports each
// unit's top dataset value for scale when one is there.
// The split scanned is --scan-split, by default: the training split for multifaceted (Nguyen et al.
// cluster a unit's top training images) and the decoder (which always trains on it), --split for
// the others. --split itself only picks the --index inputs.
const std::set<std::string> kScans = {"top-patches", "multifaceted", "am", "decoder"};
const std::set<std::string> kScansTrain = {"multifaceted", "decoder"};
const std::set<std::string> kNeedsScan = {"top-patches", "multifaceted", "decoder"};

// The class names the model stores, none for unnamed classes (captions then show numbers only).
std::vector<std::string> named_classes(const Model& m) {
  std::vector<std::string> names;
  if (auto it = m.metadata.find("glassbox.classes"); it != m.metadata.end()) {
    try {
      names = nlohmann::json::parse(it->second).get<std::vector<std::string>>();
    } catch (const std::exception&) {
      names.clear();  // unreadable names: numbers only
    }
  }
  return names;
}

// Pixel 0 and pixel 1 of each channel through the model's normalization.
vz::Bounds model_bounds(const Model& m) {
  const Normalization norm = Normalization::of_model(m.metadata);
  const int C = m.graph.input_shape()[0];
  vz::Bounds b;
  for (int c = 0; c < C; ++c) {
    const float mean = norm.empty() ? 0.f : norm.mean[size_t(c) % norm.mean.size()];
    const float sd = norm.empty() ? 1.f : norm.std[size_t(c) % norm.std.size()];
    b.lo.push_back((0.f - mean) / sd);
    b.hi.push_back((1.f - mean) / sd);
  }
  return b;
}

Tensor read_direction(const std::string& path) {
  Tensor d = read_npy_f32(path);
  for (size_t i = 0; i < d.size(); ++i)
    if (!std::isfinite(d[i])) throw std::invalid_argument("--unit " + path + ": not finite at element " + std::to_string(i));
  return d;
}

// --unit, with class:pred and class:label resolved per input (for methods that do not explain
// inputs: the distinct classes among them, in input order).
std::vector<vz::Unit> read_units(const VisualizeArgs& a, Graph& g, const Inputs& in) {
  std::string spec = a.unit;
  if (spec.empty() && vz::explains_each_input(a.method)) spec = "class:pred";
  if (spec.empty()) return {};
  if (spec != "class:pred" && spec != "class:label") return vz::parse_units(g, spec, read_direction);
  if (in.x.empty()) throw std::invalid_argument("--unit " + spec + " needs inputs (--data with --index, or --input)");
  if (spec == "class:pred") return vz::predicted_units(g, in.x, a.method);
  std::vector<vz::Unit> units;
  const int N = in.x.batch(), K = g.classes();
  for (int n = 0; n < N; ++n) {
    const int k = in.labels[n];
    if (k < 0) throw std::invalid_argument("--unit class:label: input " + in.names[n] + " has no label");
    if (k >= K) throw std::out_of_range("--unit class:label: label " + std::to_string(k) + " outside the model's classes");
    const bool seen = std::any_of(units.begin(), units.end(), [k](const vz::Unit& u) { return u.index == k; });
    // Methods that explain inputs pair input n with unit n; the others visualize each class once.
    if (vz::explains_each_input(a.method) || !seen) units.push_back(vz::Unit::cls(k));
  }
  return units;
}

// --data, or the dataset the model was trained on.
std::string visualize_data_spec(const VisualizeArgs& a, const Model& m) {
  return a.data.empty() ? model_dataset(m) : a.data;
}

// The split a method scans (see kScansTrain).
std::string scan_split(const VisualizeArgs& a) {
  if (!a.scan_split.empty() && a.scan_split != "train" && a.scan_split != "test" && a.scan_split != "all")
    throw std::invalid_argument("--scan-split '" + a.scan_split + "': expected train, test or all");
  if (a.method == "decoder") {
    if (!a.scan_split.empty() && a.scan_split != "train")
      throw std::invalid_argument("--scan-split " + a.scan_split + ": the decoder trains on the train split only");
    return "train";
  }
  if (!a.scan_split.empty()) return a.scan_split;
  return kScansTrain.count(a.method) ? "train" : a.split;
}

// What was scanned, for summary.json.
struct ScanInfo {
  std::string dataset, split;
  int begin = 0, end = 0;
};

// The dataset a method scans: --data (or the model's own dataset), split scan_split(), samples --scan.
Tensor read_scan(const VisualizeArgs& a, const Model& m, bool required, ScanInfo& info) {
  const std::string split = scan_split(a);  // a bad --scan-split fails whether or not a scan happens
  if (!kScans.count(a.method) || a.scan == "none") {
    if (required) throw std::invalid_argument(a.method + " needs a dataset to scan (--data, --scan)");
    return {};
  }
  const std::string spec = visualize_data_spec(a, m);
  if (spec.empty() || !dataset_available(spec)) {
    if (required) throw std::invalid_argument(a.method + " needs a dataset to scan: give --data" +
                                              (spec.empty() ? "" : " ('" + spec + "' is not installed)"));
    return {};
  }
  Dataset d = load_dataset(spec, split);
  int b = 0, e = d.size();
  if (a.scan != "all") {
    const size_t colon = a.scan.find(':');
    long lo = 0, hi = 0;
    if (colon == std::string::npos || !parse_number(a.scan.substr(0, colon), lo) ||
        !parse_number(a.scan.substr(colon + 1), hi) || lo < 0 || hi <= lo || lo >= d.size())
      throw std::invalid_argument("--scan '" + a.scan + "': expected all, none or I:J with 0 <= I < J and I < " +
                                  std::to_string(d.size()) + " (the split's size)");
    // J past the end stops at it, as a slice does: `--scan 0:2000` means "at most 2000".
    b = int(lo), e = int(std::min<long>(hi, d.size()));
  }
  Tensor x = d.x.slice(b, e).clone();
  normalize_for(m, x, d.name);
  std::printf("scanning %d samples of %s (%s split)\n", e - b, d.name.c_str(), split.c_str());
  info = {d.name, split, b, e};
  return x;
}

// ---- drawing ---------------------------------------------------------------------------------

// The lines of `text` ('\n' between them), each wrapped to max_w (a label was cut: "class 2 Coat
// facet" lost its facet number).
std::vector<std::string> text_lines(const std::string& text, int max_w) {
  std::vector<std::string> out;
  for (size_t p = 0; p <= text.size();) {
    const size_t q = std::min(text.find('\n', p), text.size());
    const std::vector<std::string> wrapped = explain::wrap_text(text.substr(p, q - p), max_w);
    out.insert(out.end(), wrapped.begin(), wrapped.end());
    if (wrapped.empty()) out.push_back("");  // a blank line stays one
    p = q + 1;
  }
  return out;
}

void put_text_lines(explain::Image& im, int x, int y, const std::string& text, int max_w) {
  const uint8_t black[3] = {0, 0, 0};
  const std::vector<std::string> lines = text_lines(text, max_w);
  for (size_t l = 0; l < lines.size(); ++l) explain::draw_text(im, x, y + explain::line_height() * int(l), lines[l], black);
}

// The colormap of a map panel: signed maps blue-white-red around 0, unsigned maps hot.
const char* colormap(vz::Draw d) { return d == vz::Draw::signed_map ? "bwr" : "hot"; }

// A panel's scale: max |v| over all its rows (so rows compare), 1 when all zero.
double panel_scale(const vz::Panel& p) {
  double s = 0;
  for (size_t i = 0; i < p.values.size(); ++i) s = std::max(s, double(std::fabs(p.values[i])));
  return s > 0 ? s : 1.0;
}

// Row r of a panel as an RGB image: pixels through the bounds, maps (channels summed) on the panel's scale.
explain::Image draw_row(const vz::Panel& p, int r, const vz::Bounds& b, double scale) {
  const Tensor row = p.values.slice(r, r + 1);
  if (p.draw == vz::Draw::pixels) return explain::to_image(vz::to_pixels(row, b).reshaped(row.shape().sample()));
  if (p.draw == vz::Draw::unit_range) return explain::to_image(row.reshaped(row.shape().sample()));
  const int C = row.dim(1), H = row.dim(2), W = row.dim(3);
  explain::Image im(W, H);
  for (int i = 0; i < H * W; ++i) {
    double v = 0;
    for (int c = 0; c < C; ++c) v += row[size_t(c) * H * W + i];
    explain::colormap_rgb(colormap(p.draw), v / scale, im.rgb.data() + size_t(i) * 3);
  }
  return im;
}

int enlargement(int w) { return std::max(1, (112 + w - 1) / w); }  // 28 px -> 4x: 112 px

struct Cell {
  explain::Image image;
  std::string label;
};

// grid.png: each line holds the shared panels of its first row, then every row's other panels;
// a line longer than 10 cells continues below, rows kept whole and aligned under the first.
// The map panels' colorbars stand to the right.
explain::Image grid(const vz::Result& r, const vz::Bounds& b, const std::string& heading) {
  const std::string title = r.note.empty() ? heading : heading + "\n" + r.note;
  std::vector<double> scales;
  for (const vz::Panel& p : r.panels) scales.push_back(panel_scale(p));
  int shared = 0;
  for (const vz::Panel& p : r.panels) shared += p.shared;
  const int per_row = std::max(1, int(r.panels.size()) - shared);
  const int rows_per_line = std::max(1, (10 - shared) / per_row);
  std::vector<std::vector<Cell>> lines;
  const int per_line = std::max(1, r.per_line);
  for (size_t first = 0; first < r.rows.size(); first += per_line) {
    const size_t end = std::min(r.rows.size(), first + per_line);
    for (size_t chunk = first; chunk < end; chunk += rows_per_line) {
      std::vector<Cell> cells;
      for (size_t k = 0; k < r.panels.size(); ++k)  // shared panels on the first line, blanks below them
        if (r.panels[k].shared)
          cells.push_back(chunk == first ? Cell{draw_row(r.panels[k], int(first), b, scales[k]), r.panels[k].name}
                                         : Cell{explain::Image(1, 1), ""});
      for (size_t i = chunk; i < std::min(end, chunk + rows_per_line); ++i) {
        bool captioned = false;  // the row's first cell carries its caption, the others their panel's name
        for (size_t k = 0; k < r.panels.size(); ++k)
          if (!r.panels[k].shared) {
            cells.push_back({draw_row(r.panels[k], int(i), b, scales[k]), captioned ? r.panels[k].name : r.rows[i].caption});
            captioned = true;
          }
      }
      lines.push_back(std::move(cells));
    }
  }
  const Tensor& v0 = r.panels.at(0).values;
  int cw = v0.dim(3) * enlargement(v0.dim(3)), ch = v0.dim(2) * enlargement(v0.dim(3));
  cw = std::max(cw, 112), ch = std::max(ch, 112 * v0.dim(2) / std::max(1, v0.dim(3)));
  const int pad = 6;
  size_t cols = 1, label_lines = 2;
  for (auto& l : lines) {
    cols = std::max(cols, l.size());
    for (const Cell& c : l) label_lines = std::max(label_lines, text_lines(c.label, cw - 8).size());
  }
  const int label_h = explain::line_height() * int(label_lines) + 2;
  const int grid_h = int(lines.size()) * (label_h + ch + pad);
  std::vector<explain::Image> bars;
  for (size_t k = 0; k < r.panels.size(); ++k) {
    const vz::Panel& p = r.panels[k];
    if (p.draw == vz::Draw::signed_map || p.draw == vz::Draw::unsigned_map)
      bars.push_back(explain::colorbar_image(colormap(p.draw), p.draw == vz::Draw::signed_map ? -scales[k] : 0.0, scales[k],
                                             std::clamp(grid_h - 2 * pad, 120, 360), p.name));
  }
  int bars_w = 0;
  for (const explain::Image& bar : bars) bars_w += bar.w + pad;
  int title_w = 0;
  for (const std::string& line : text_lines(title, 1 << 20)) title_w = std::max(title_w, explain::text_width(line));
  // The title and note widen a narrow grid to at most 480 px, then wrap.
  const int W = std::max({pad + int(cols) * (cw + pad) + bars_w, 240, std::min(title_w + 2 * pad, 480)});
  const int title_h = explain::line_height() * int(text_lines(title, W - 2 * pad).size()) + 6;
  int H = title_h + grid_h + pad;
  for (const explain::Image& bar : bars) H = std::max(H, title_h + bar.h + 2 * pad);
  explain::Image im(W, H);
  put_text_lines(im, pad, 4, title, W - 2 * pad);
  for (size_t l = 0; l < lines.size(); ++l) {
    const int y = title_h + int(l) * (label_h + ch + pad);
    for (size_t c = 0; c < lines[l].size(); ++c) {
      const int x = pad + int(c) * (cw + pad);
      put_text_lines(im, x, y, lines[l][c].label, cw - 8);  // clear of the next cell's label
      const explain::Image cell = explain::resize_nearest(lines[l][c].image, cw, ch);
      for (int yy = 0; yy < ch; ++yy) std::copy(cell.px(0, yy), cell.px(0, yy) + 3 * cw, im.px(x, y + label_h + yy));
    }
  }
  int x = pad + int(cols) * (cw + pad);
  for (const explain::Image& bar : bars) {
    for (int yy = 0; yy < bar.h; ++yy) std::copy(bar.px(0, yy), bar.px(0, yy) + 3 * bar.w, im.px(x, title_h + pad + yy));
    x += bar.w + pad;
  }
  return im;
}

// Per row: <name>.npy / .png for the main panel (the first that is not shared), <name>_<panel>.npy
// / .png for the others (shared panels are the inputs and are not written again).
// explain::Image panels go to .npy in --input-space (pixels by default), so `--input` with the same flag
// reads them back; maps stay as computed.
void write_rows(const std::string& out, const vz::Result& r, const vz::Bounds& b, InputSpace space) {
  std::set<std::string> seen;
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const std::string stem = out + "/" + safe_name(r.rows[i].name);
    if (!seen.insert(stem).second) throw std::logic_error("two rows named " + r.rows[i].name);
    bool main = true;
    for (size_t k = 0; k < r.panels.size(); ++k) {
      const vz::Panel& p = r.panels[k];
      if (p.shared) continue;
      const std::string path = stem + (main ? "" : "_" + p.name);
      main = false;
      Tensor row = p.values.slice(int(i), int(i) + 1);
      if (p.draw == vz::Draw::pixels && space == InputSpace::pixels && row.rank() == 4) row = vz::to_pixels(row, b);
      write_npy(path + ".npy", row.reshaped(row.shape().sample()));
      explain::Image im = draw_row(p, int(i), b, panel_scale(p));
      const int s = enlargement(im.w);
      write_image(path + ".png", explain::resize_nearest(im, im.w * s, im.h * s));
    }
  }
}

nlohmann::json summary_json(const VisualizeArgs& a, const vz::Result& r, const ScanInfo& scan, double seconds) {
  nlohmann::json rows = nlohmann::json::array();
  for (const vz::Row& row : r.rows) {
    nlohmann::json j = {{"name", safe_name(row.name)}, {"caption", row.caption}};
    for (auto& [k, v] : row.values) j[k] = v;
    for (auto& [k, v] : row.curves) j["curve_" + k] = v;
    rows.push_back(j);
  }
  nlohmann::json params = nlohmann::json::object();
  for (const std::string& kv : a.params) params[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  nlohmann::json j = {{"model", a.model}, {"input_space", space_name(a.input_space)}, {"method", a.method}, {"unit", a.unit},
                      {"params", params}, {"time_s", seconds}, {"rows", rows}};
  // The scanned data (none when nothing was scanned): which split, which samples.
  if (!scan.split.empty())
    j["scan"] = {{"dataset", scan.dataset}, {"split", scan.split}, {"begin", scan.begin}, {"end", scan.end}};
  return j;
}

// curves.png / .svg: each row's objective (or score, or loss) per step, up to 12 rows.
void write_curves(const std::string& out, const vz::Result& r, const std::string& method) {
  std::vector<explain::Series> series;
  std::string key;
  for (const vz::Row& row : r.rows) {
    if (row.curves.empty() || series.size() == 12) continue;
    key = row.curves.begin()->first;
    explain::Series s;
    s.label = row.name;
    s.y = row.curves.begin()->second;
    series.push_back(std::move(s));
  }
  if (series.empty()) return;
  explain::PlotOptions o;
  o.title = method + ": " + key + (r.rows.size() > series.size() ? " (first 12 rows)" : "");
  o.xlabel = method == "minimal-image" ? "segments removed" : "step";
  o.ylabel = key;
  o.kind = series[0].y.size() < 3 ? explain::PlotKind::scatter : explain::PlotKind::line;
  write_image(out + "/curves.png", explain::plot_image(series, o));
  atomic_write(out + "/curves.svg", explain::plot_svg(series, o));
}

vz::Params read_visualize_params(const std::vector<std::string>& given) {
  vz::Params p = read_key_values(given);
  if (auto it = p.find("segments"); it != p.end() && it->second.size() > 4 &&
                                    it->second.compare(it->second.size() - 4, 4, ".npy") == 0) {
    p.tensors["segments"] = read_npy_f32(it->second);  // a label image (minimal-image)
    p.erase(it);
  }
  return p;
}

void run_visualize(const VisualizeArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(vz::methods()).c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.method.empty()) throw std::invalid_argument("--method is required (see glassbox visualize --list)");
  const vz::Params params = read_visualize_params(a.params);
  vz::ParamReader(params, vz::method_info(a.method));  // unknown methods and keys fail before any data is read

  Model model = open_model(a.model);
  Graph& g = model.graph;
  vz::Request q;
  Inputs in;
  if (!a.inputs.empty() || !a.index.empty()) {
    // With --input files, --data names the set a method scans, not inputs (its sample 0 was added).
    in = read_inputs(model, a.inputs, a.inputs.empty() ? visualize_data_spec(a, model) : "", a.index.empty() ? "0" : a.index,
                     a.split, a.input_space);
    q.inputs = in.x;
    for (const std::string& s : in.names) q.input_names.push_back(safe_name(s));
  }
  q.units = read_units(a, g, in);
  q.class_names = named_classes(model);
  q.bounds = model_bounds(model);
  ScanInfo scan;
  q.data = read_scan(a, model, kNeedsScan.count(a.method) > 0, scan);
  q.progress = tenth_progress(a.method);
  q.fit_decoder = [](Graph& dec, const Tensor& codes, const Tensor& targets, const vz::DecoderFit& f) {
    return fit_mse(dec, codes, targets, {f.epochs, f.batch, f.lr, f.seed, f.what});
  };

  make_out_dir(a.out);  // before the work: a folder that cannot be made fails now
  const auto t0 = std::chrono::steady_clock::now();
  const vz::Result r = vz::visualize(g, q, a.method, params);
  const double secs = seconds_since(t0);
  std::printf("%s: %zu images in %.3f s\n", a.method.c_str(), r.rows.size(), secs);

  write_rows(a.out, r, q.bounds, a.input_space);
  atomic_write(a.out + "/summary.json", summary_json(a, r, scan, secs).dump(2) + "\n");
  const std::string title = "glassbox visualize --method " + a.method + (a.unit.empty() ? "" : " --unit " + a.unit) +
                            "   model " + std::filesystem::path(a.model).filename().string();
  write_image(a.out + "/grid.png", grid(r, q.bounds, title));
  write_curves(a.out, r, a.method);
  std::printf("wrote %zu rows, summary.json and grid.png to %s\n", r.rows.size(), a.out.c_str());
}

void add_visualize_commands(Command& app) {
  auto a = std::make_shared<VisualizeArgs>();
  auto* c = app.add_subcommand("visualize",
                               "Feature visualization: activation maximization, DeepDream, fooling images, inversion "
                               "(optimized and decoded), top patches, filters, maps, minimal images, masks");
  c->add_flag("--list", a->list, "list the methods with their parameters, defaults and conventions");
  c->add_option("--model", a->model, "a model file, a preset or an architecture text");
  c->add_option("--method", a->method, "one method (see --list)");
  c->add_option("--unit", a->unit,
                "what to visualize: class:K, class:all, class:pred, class:label, LAYER:C (a channel's mean), "
                "LAYER:all (every channel), LAYER:C,Y,X (one unit), LAYER (the whole layer), LAYER:FILE.npy (a direction)");
  c->add_option("--input", a->inputs, "image files or .npy arrays N x C x H x W, pixels in [0, 1] (normalized as in training; see --input-space)");
  add_input_space_flag(c, &a->input_space);
  c->add_option("--data", a->data, "dataset spec for --index and --scan (default: the model's own dataset)");
  c->add_option("--index", a->index, "input samples of --data: I, I:J (half-open) or I,J,K");
  c->add_option("--split", a->split, "dataset split of --index: train, test or all")->capture_default_str();
  c->add_option("--scan", a->scan, "samples of the scanned split that top-patches, multifaceted and am's scale scan, "
                                   "and the decoder trains on: all, none or I:J (J past the end stops there)")->capture_default_str();
  c->add_option("--scan-split", a->scan_split,
                "the split scanned: train, test or all (default: train for multifaceted, as in Nguyen et al., and "
                "the decoder, which only takes train; --split for top-patches and am)");
  c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable; see --list)");
  c->add_option("--out", a->out, "output folder");
  c->callback([a] { run_visualize(*a); });
}

}  // namespace

static const RegisterCommand registered_visualize_cmd("visualize", add_visualize_commands);

}  // namespace gb
