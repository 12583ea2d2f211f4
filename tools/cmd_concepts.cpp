// glassbox concepts: TCAV (explain/concepts) from the command line; glassbox probe, dissect and ace
// (automatic concept discovery) below. Concept sets come from specs
// (generated patterns, image folders, .npy arrays, dataset samples by class or index), the random
// sets from a pool (the model's training data by default), the inputs from the class's test images.
// Writes summary.json (every score per run, means, p-values), the unit CAVs as .npy, and a bar chart
// (tcav.png / tcav.svg) with error bars. `--list` prints the method and its parameters.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/architecture.h"
#include "explain/common/heatmap.h"
#include "explain/common/plot.h"
#include "explain/concepts/ace.h"
#include "explain/concepts/concepts.h"
#include "explain/concepts/dissect.h"
#include "explain/concepts/patterns.h"
#include "explain/concepts/probe.h"
#include "explain/concepts/segmentation.h"
#include "tools/figures.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "train/fit.h"

namespace gb {

namespace {

namespace fs = std::filesystem;
namespace cc = concepts;
using nlohmann::json;

// ---- shared by the family's commands -----------------------------------------------------------

// The random sets are disjoint only when the pool holds (runs + 1) x random_size examples.
void note_shared_random_sets(int pool, double wanted) {
  if (pool < wanted)
    std::fprintf(stderr, "glassbox: note: --random holds %d examples, fewer than (runs + 1) x random_size = %ld: the "
                 "random sets share examples (tcav's are disjoint sets)\n", pool, long(wanted));
}

// --param KEY=VALUE list, checked against the method's declaration before any data is read.
explain::Params read_params(const std::vector<std::string>& given, const std::string& method) {
  explain::Params p = read_key_values(given);
  cc::validate_params(method, p);  // unknown keys and values out of range fail before any data is read
  return p;
}

// A parameter's value as given, or its declared default (the command needs a few to prepare data).
std::string param_text(const explain::Params& p, const std::string& method, const std::string& key) {
  if (auto it = p.find(key); it != p.end()) return it->second;
  for (const explain::ParamInfo& d : cc::method_info(method).params)
    if (d.name == key) return d.default_value;
  throw std::logic_error(method + " declares no parameter " + key);
}

// The same as a number (validate_params has checked it).
double param_number(const explain::Params& p, const std::string& method, const std::string& key) {
  return std::stod(param_text(p, method, key));
}

// A class by number or by name (case-insensitive).
int parse_class(const std::string& text, const std::vector<std::string>& names, const std::string& what) {
  long k = -1;
  if (parse_number(text, k)) {
    if (k < 0 || k >= long(names.size()))
      throw std::out_of_range(what + " " + text + ": outside the model's classes 0.." + std::to_string(names.size() - 1));
    return int(k);
  }
  auto lower = [](std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  for (size_t i = 0; i < names.size(); ++i)
    if (lower(names[i]) == lower(text)) return int(i);
  std::string known;
  for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument(what + " '" + text + "': no such class (known: " + known + ")");
}

// The node of a layer name ("input" for the graph input); an error lists the model's layers.
int parse_layer(const Graph& g, const std::string& name, const std::string& flag) {
  if (name == "input") return -1;
  const int node = g.find(name);
  if (node >= 0) return node;
  std::string known = "input";
  for (int i = 0; i < g.size(); ++i) known += ", " + g.layer(i).name;
  throw std::invalid_argument(flag + " '" + name + "': no such layer (layers: " + known + ")");
}

bool is_safe_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return s != "." && s != "..";
}

// ---- concept specs ------------------------------------------------------------------------------

// Filters after '@' in data:SPEC@k=v,...: split, class (K or NAME, several joined by '+'), index
// (I:J half-open or I,J,K joined by '+'), n.
struct DataFilter {
  std::string split;
  std::vector<std::string> classes;
  std::vector<int> indices;
  int lo = -1, hi = -1, n = -1;
};

DataFilter parse_filter(const std::string& text, const std::string& what, const std::string& default_split) {
  DataFilter f;
  f.split = default_split;
  std::set<std::string> seen;
  for (const std::string& kv : split_list(text, what)) {
    const size_t eq = kv.find('=');
    const std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (!seen.insert(key).second) throw std::invalid_argument(what + ": filter '" + key + "' given twice");
    long a = 0, b = 0;
    if (key == "split" && (value == "train" || value == "test" || value == "all")) {
      f.split = value;
    } else if (key == "class" && !value.empty()) {
      f.classes = split_list(value, what, '+');
    } else if (key == "index" && value.find(':') != std::string::npos && parse_number(value.substr(0, value.find(':')), a) &&
               parse_number(value.substr(value.find(':') + 1), b) && a >= 0 && b > a) {
      f.lo = int(a), f.hi = int(b);
    } else if (key == "index" && value.find(':') != std::string::npos) {
      throw std::invalid_argument(what + ": index '" + value + "': expected I:J with 0 <= I < J, or I[+J..]");
    } else if (key == "index" && !value.empty()) {
      for (const std::string& i : split_list(value, what, '+')) {
        if (!parse_number(i, a) || a < 0) throw std::invalid_argument(what + ": index '" + i + "' is not a whole number >= 0");
        f.indices.push_back(int(a));
      }
    } else if (key == "n" && parse_number(value, a) && a >= 1) {
      f.n = int(std::min(a, 10000000L));
    } else {
      throw std::invalid_argument(what + ": '" + kv + "' (filters: split=train|test|all, class=K[+K..], "
                                  "index=I:J or I[+J..], n=N)");
    }
  }
  return f;
}

// Samples of a dataset spec, filtered, in pixel space.
Tensor read_data(const std::string& body, const Model& m, int n, const std::string& what, const std::string& split) {
  const size_t at = body.rfind('@');
  const std::string spec = body.substr(0, at);
  const DataFilter f = parse_filter(at == std::string::npos ? "" : body.substr(at + 1), what, split);
  if (spec.empty()) throw std::invalid_argument(what + ": no dataset spec after data:");
  const Dataset d = load_dataset(spec, f.split);
  if (d.x.shape().sample() != m.graph.input_shape())
    throw ShapeError(what + ": samples of " + spec + " are " + d.x.shape().sample().str() + ", the model takes " +
                     m.graph.input_shape().str());
  std::vector<int> classes;
  const std::vector<std::string> names = d.class_names.empty() ? model_classes(m) : d.class_names;
  for (const std::string& c : f.classes) classes.push_back(parse_class(c, names, what + ": class"));
  std::vector<int> rows;
  auto keep = [&](int i) {
    if (i >= d.size()) throw std::out_of_range(what + ": index " + std::to_string(i) + " outside the " +
                                               std::to_string(d.size()) + " samples of " + d.name);
    if (classes.empty() || std::find(classes.begin(), classes.end(), d.y[i]) != classes.end()) rows.push_back(i);
  };
  if (!f.indices.empty()) {
    for (int i : f.indices) keep(i);
  } else {
    for (int i = std::max(0, f.lo); i < (f.hi < 0 ? d.size() : f.hi); ++i) keep(i);
  }
  const int limit = f.n > 0 ? f.n : n;
  if (limit > 0 && int(rows.size()) > limit) rows.resize(limit);
  if (rows.empty()) throw std::invalid_argument(what + ": no samples of " + d.name + " pass the filters");
  return take(d, rows).x;
}

// Every image file directly in a folder (sorted by name), converted to the model's input shape.
Tensor read_folder(const std::string& dir, const Model& m, int n, const std::string& what) {
  if (!fs::is_directory(dir)) throw std::invalid_argument(what + ": " + dir + " is not a folder");
  std::vector<std::string> files = image_files_in(dir);
  if (files.empty())
    throw std::invalid_argument(what + ": " + dir + " holds no image files (png, jpg, bmp, pgm, ppm; a concept folder "
                                "holds its images directly)");
  if (n > 0 && int(files.size()) > n) files.resize(n);
  std::vector<Tensor> images;
  for (const std::string& f : files) images.push_back(load_image(f, m.graph.input_shape()));
  return concat(images);
}

// A .npy array of images in pixel space: float as is, uint8 divided by 255; [N,C,H,W] or [N,H,W].
Tensor read_npy_images(const std::string& path, const Model& m, int n, const std::string& what) {
  const NpyArray a = read_npy(path);
  Tensor t = npy_to_tensor(a, path);
  uint8_to_unit(t, a.descr);
  const Shape in = m.graph.input_shape();
  if (t.rank() == 3 && in.rank == 3 && in[0] == 1) t = t.reshaped(Shape{t.dim(0), 1, t.dim(1), t.dim(2)});
  if (t.rank() != in.rank + 1 || t.shape().sample() != in)
    throw ShapeError(what + ": " + path + " holds " + t.shape().str() + ", expected [N," + in.str().substr(1));
  for (size_t i = 0; i < t.size(); ++i)
    if (!std::isfinite(t[i])) throw std::invalid_argument(what + ": " + path + ": not finite at element " + std::to_string(i));
  // Images are pixels, which the model's normalization then maps: an int32 array of 0..255 or
  // normalized floats would be taken as pixels far outside the range the model was trained on.
  if (in.rank == 3)
    for (size_t i = 0; i < t.size(); ++i)
      if (!(t[i] >= -1e-6f && t[i] <= 1 + 1e-6f))
        throw std::invalid_argument(what + ": " + path + ": element " + std::to_string(i) + " is " + explain::exact_text(t[i]) +
                                    "; pixels are in [0, 1] (uint8 arrays are divided by 255, other types are not)");
  if (n > 0 && t.batch() > n) t = t.slice(0, n).clone();
  return t;
}

// Images of a concept spec in pixel space: pattern:KIND[,..] (n generated from `seed`),
// images:DIR, npy:FILE, data:SPEC[@filters] (at most n; n <= 0: all).
Tensor read_pixels(const std::string& spec, const Model& m, int n, uint64_t seed, const std::string& what,
                   const std::string& default_split) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon), body = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind == "pattern") return cc::make_patterns(cc::parse_pattern(body), m.graph.input_shape(), n, seed);
  if (kind == "images") return read_folder(body, m, n, what);
  if (kind == "npy") return read_npy_images(body, m, n, what);
  if (kind == "data") return read_data(body, m, n, what, default_split);
  throw std::invalid_argument(what + " '" + spec + "': expected pattern:KIND[,key=value..], images:DIR, npy:FILE.npy "
                              "or data:SPEC[@split=..,class=..,index=..,n=..]");
}

// The same in the model's input space (through its normalization).
Tensor read_concept(const std::string& spec, const Model& m, int n, uint64_t seed, const std::string& what,
                    const std::string& default_split = "train") {
  Tensor x;
  try {
    x = read_pixels(spec, m, n, seed, what, default_split);
  } catch (const DataError& e) {  // a reader's error names the file; say which flag it came from
    throw DataError(what + ": " + e.what());
  }
  normalize_for(m, x);
  return x;
}

// ---- glassbox concepts (TCAV) -------------------------------------------------------------------

constexpr int kMaxGeneratedPool = 200000;  // images in a generated random pool (memory)

struct ConceptsArgs {
  std::string model, cls, inputs, random, out, method = "tcav";
  std::vector<std::string> concepts, layers, params;
  int n = 100, max_inputs = 1000;
  bool list = false;
};

struct NamedSpec {
  std::string name, spec;
};

std::vector<NamedSpec> parse_concept_flags(const std::vector<std::string>& flags) {
  std::vector<NamedSpec> out;
  std::set<std::string> names;
  for (const std::string& f : flags) {
    const size_t eq = f.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("--concept '" + f + "': expected NAME=SPEC");
    NamedSpec s{f.substr(0, eq), f.substr(eq + 1)};
    if (!is_safe_name(s.name) || s.name == "random")
      throw std::invalid_argument("--concept '" + f + "': the name must be 1-64 letters, digits, '-', '_' or '.', and "
                                  "not 'random'");
    if (!names.insert(s.name).second) throw std::invalid_argument("--concept " + s.name + ": given twice");
    out.push_back(s);
  }
  if (out.empty()) throw std::invalid_argument("--concept NAME=SPEC is required (at least one)");
  return out;
}

json runs_json(const cc::ConceptScores& c) {
  return {{"sign_count", c.sign_count}, {"magnitude", c.magnitude}, {"mean_derivative", c.mean_derivative},
          {"cav_accuracy", c.cav_accuracy}, {"cav_epochs", c.cav_epochs}};
}

json concept_json(const cc::ConceptScores& c, bool tested) {
  json j = {{"name", c.name},
            {"tcav", cc::mean(c.sign_count)},
            {"tcav_std", cc::stdev(c.sign_count)},
            {"magnitude", cc::mean(c.magnitude)},
            {"magnitude_std", cc::stdev(c.magnitude)},
            {"mean_derivative", cc::mean(c.mean_derivative)},
            {"cav_accuracy", cc::mean(c.cav_accuracy)},
            {"runs", runs_json(c)}};
  if (tested) {
    j["p_value"] = c.sign_test.p;
    j["t"] = std::isfinite(c.sign_test.t) ? json(c.sign_test.t) : json(c.sign_test.t > 0 ? "inf" : "-inf");
    j["magnitude_p_value"] = c.magnitude_test.p;
    j["significant"] = c.significant;
    j["significant_bonferroni"] = c.significant_bonferroni;
  }
  return j;
}

// tcav.png / tcav.svg: per concept (and the random baseline) one bar per layer, the mean TCAV score
// over the runs with ±1 std whiskers; "n.s." over bars whose t-test is not significant.
void write_chart(const std::string& out, const cc::TcavResult& r, const std::string& title) {
  std::vector<explain::Series> series;
  explain::PlotOptions o;
  o.kind = explain::PlotKind::bars;
  o.title = title;
  o.ylabel = "TCAV score";
  o.xlabel = "concept (bars: mean of the runs, whiskers: +-1 std)";
  o.ymin = 0, o.ymax = 1.12;  // ticks to 1; the rest is room for "n.s." over a whisker reaching 1
  o.hlines = {0.5};
  o.hline_labels = {"chance"};
  for (const cc::ConceptScores& c : r.layers[0].concepts) o.categories.push_back(c.name);
  o.categories.push_back("random");
  for (const cc::LayerScores& l : r.layers) {
    explain::Series s;
    s.label = l.layer;
    for (const cc::ConceptScores& c : l.concepts) {
      s.y.push_back(cc::mean(c.sign_count));
      s.err.push_back(cc::stdev(c.sign_count));
    }
    s.y.push_back(cc::mean(l.random.sign_count));
    s.err.push_back(cc::stdev(l.random.sign_count));
    series.push_back(std::move(s));
  }
  // A group of bars: 110 px per two layers, and room for a name of up to 20 characters on one line
  // (longer ones wrap), beside the margins the plot takes.
  int slot = 110 * std::max(1, int(r.layers.size()) / 2);
  for (const std::string& c : o.categories) slot = std::max(slot, std::min(explain::text_width(c, 2), 240) + 16);
  const explain::PlotFrame margins = explain::plot_frame(series, o);
  o.width = std::max(640, o.width - int(margins.right - margins.left) + slot * int(o.categories.size()));
  // Mean + std can pass 1: room for "n.s." above the highest whisker too (it went onto the bar).
  for (const explain::Series& s : series)
    for (size_t i = 0; i < s.y.size(); ++i)
      if (std::isfinite(s.y[i] + s.err[i])) o.ymax = std::max(*o.ymax, s.y[i] + std::fabs(s.err[i]) + 0.12);
  // "n.s." marks, placed as the plot places grouped bars (80% of a slot, side by side), clear of the
  // whiskers and the dashed line.
  const explain::PlotFrame f = explain::plot_frame(series, o);
  const double bw = 0.8 / double(series.size());
  struct Mark {
    double x, y;
  };
  std::vector<Mark> marks;
  for (size_t j = 0; j < r.layers.size(); ++j)
    for (size_t i = 0; i < r.layers[j].concepts.size(); ++i)
      if (!r.layers[j].concepts[i].significant) {
        const double x = double(i) - 0.4 + (double(j) + 0.5) * bw;
        const double y = series[j].y[i], e = std::fabs(series[j].err[i]);
        marks.push_back({f.px(x), explain::mark_top(f, o, y - e, y + e, 14)});
      }
  explain::Image im = explain::plot_image(series, o);
  const uint8_t red[3] = {180, 20, 20};
  for (const Mark& m : marks)
    explain::draw_text(im, int(m.x - explain::text_width("n.s.", 2) / 2.0), int(m.y), "n.s.", red, 2);
  write_image(out + "/tcav.png", im);
  std::string svg = explain::plot_svg(series, o);
  std::string texts;
  for (const Mark& m : marks)
    texts += "<text x=\"" + std::to_string(m.x) + "\" y=\"" + std::to_string(m.y + 14) +
             "\" font-size=\"19\" fill=\"#b41414\" text-anchor=\"middle\">n.s.</text>\n";
  svg.insert(svg.rfind("</svg>"), texts);
  atomic_write(out + "/tcav.svg", svg);
}

void print_table(const cc::TcavResult& r) {
  std::printf("%-12s %-18s %16s %16s %10s %8s\n", "layer", "concept", "TCAV (mean+-std)", "magnitude", "p", "CAV acc");
  for (const cc::LayerScores& l : r.layers) {
    auto row = [&](const cc::ConceptScores& c, bool tested) {
      char p[32] = "";
      if (tested) std::snprintf(p, sizeof p, "%.2g%s", c.sign_test.p, c.significant_bonferroni ? "**" : c.significant ? "*" : "");
      std::printf("%-12s %-18s %9.3f+-%5.3f %9.3f+-%5.3f %10s %8.3f\n", l.layer.c_str(), c.name.c_str(),
                  cc::mean(c.sign_count), cc::stdev(c.sign_count), cc::mean(c.magnitude), cc::stdev(c.magnitude), p,
                  cc::mean(c.cav_accuracy));
    };
    for (const cc::ConceptScores& c : l.concepts) row(c, true);
    row(l.random, false);
  }
  std::printf("* p < %g (two-sided t-test against the random runs), ** also after Bonferroni over %d tests\n",
              r.p_threshold, r.comparisons);
}

void run_concepts(const ConceptsArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(cc::methods_of(cc::Kind::tcav)).c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.layers.empty()) throw std::invalid_argument("--layer is required (see glassbox info MODEL --arch)");
  if (a.cls.empty()) throw std::invalid_argument("--class is required (the class whose logit is explained)");
  if (cc::method_kind(a.method) != cc::Kind::tcav) throw std::invalid_argument("--method " + a.method + ": not a TCAV method");
  const explain::Params params = read_params(a.params, a.method);
  const std::vector<NamedSpec> specs = parse_concept_flags(a.concepts);

  Model model = open_model(a.model);
  Graph& g = model.graph;
  const std::vector<std::string> classes = model_classes(model);
  const int k = parse_class(a.cls, classes, "--class");
  cc::TcavRequest q;
  for (const std::string& l : a.layers)
    for (const std::string& name : split_list(l, "--layer")) {
      q.layers.push_back(parse_layer(g, name, "--layer"));
      if (q.layers.back() >= g.output())
        throw std::invalid_argument("--layer " + name + ": the logits themselves; TCAV needs a layer below them");
    }
  const std::string dataset = model_dataset(model);
  const uint64_t seed = uint64_t(param_number(params, a.method, "seed"));
  for (size_t i = 0; i < specs.size(); ++i)
    q.concepts.push_back({specs[i].name, read_concept(specs[i].spec, model, a.n, cc::mix_seed(seed, 0x636f6e63 + i),
                                                      "--concept " + specs[i].name)});
  std::string random = a.random, inputs = a.inputs;
  if (random.empty() || inputs.empty()) {
    if (dataset.empty())
      throw std::invalid_argument("--random and --inputs are required: the model names no dataset it was trained on");
    if (random.empty()) random = "data:" + dataset + "@split=train";
    if (inputs.empty()) inputs = "data:" + dataset + "@split=test,class=" + std::to_string(k);
  }
  // A generated random pool holds (R + 1) random_size images: disjoint sets' worth.
  const double pool_for_patterns =
      (param_number(params, a.method, "runs") + 1) * param_number(params, a.method, "random_size");
  if (random.rfind("pattern:", 0) == 0 && pool_for_patterns > kMaxGeneratedPool)
    throw std::invalid_argument("--random " + random + ": (runs + 1) x random_size = " + std::to_string(long(pool_for_patterns)) +
                                " generated images, more than " + std::to_string(kMaxGeneratedPool));
  q.random_pool = read_concept(random, model, random.rfind("pattern:", 0) == 0 ? int(pool_for_patterns) : 0,
                               cc::mix_seed(seed, 0x706f6f6c), "--random");
  note_shared_random_sets(q.random_pool.batch(), pool_for_patterns);
  q.inputs = read_concept(inputs, model, a.max_inputs, cc::mix_seed(seed, 0x696e70), "--inputs", "test");
  q.target = Target({k});
  q.progress = stage_progress();
  std::printf("TCAV of class %d (%s): %zu concepts, %d inputs, random pool of %d, %zu layers\n", k, classes[k].c_str(),
              q.concepts.size(), q.inputs.batch(), q.random_pool.batch(), q.layers.size());
  std::fflush(stdout);

  make_out_dir(a.out);  // before the work: a folder that cannot be made fails now
  const auto t0 = std::chrono::steady_clock::now();
  const cc::TcavResult r = cc::tcav(g, q, params, a.method);
  const double secs = seconds_since(t0);
  print_table(r);
  std::printf("tcav: %.2f s\n", secs);

  json layers = json::array();
  for (const cc::LayerScores& l : r.layers) {
    json cs = json::array();
    const Shape shape = g.shape(l.node).sample();
    auto write_cavs = [&](const cc::ConceptScores& c) {
      const int R = c.cavs.dim(0), D = c.cavs.dim(1);
      const std::string stem = a.out + "/cav_" + c.name + "_" + l.layer;
      write_npy(stem + ".npy", c.cavs.reshaped(Shape::batch_of(R, shape)));
      Tensor mean_cav(Shape::batch_of(1, shape));  // the runs' mean direction, unit length
      double norm = 0;
      for (int d = 0; d < D; ++d) {
        double s = 0;
        for (int i = 0; i < R; ++i) s += c.cavs[size_t(i) * D + d];
        mean_cav[d] = float(s);
        norm += s * s;
      }
      for (int d = 0; d < D; ++d) mean_cav[d] = norm > 0 ? float(mean_cav[d] / std::sqrt(norm)) : 0.f;
      write_npy(stem + "_mean.npy", mean_cav);
    };
    for (const cc::ConceptScores& c : l.concepts) {
      cs.push_back(concept_json(c, true));
      write_cavs(c);
    }
    layers.push_back({{"layer", l.layer}, {"shape", shape.vec()}, {"concepts", cs}, {"random", concept_json(l.random, false)}});
  }
  json sets = json::array();
  for (size_t i = 0; i < specs.size(); ++i) sets.push_back({{"name", specs[i].name}, {"spec", specs[i].spec}, {"n", q.concepts[i].x.batch()}});
  json pj = json::object();
  for (auto& [kk, v] : params) pj[kk] = v;
  const json summary = {{"model", a.model}, {"method", a.method}, {"class", k}, {"class_name", classes[k]},
                        {"inputs", {{"spec", inputs}, {"n", q.inputs.batch()}}},
                        {"random", {{"spec", random}, {"pool", q.random_pool.batch()}}},
                        {"concepts", sets}, {"params", pj}, {"runs", r.runs}, {"p_threshold", r.p_threshold},
                        {"comparisons", r.comparisons}, {"time_s", secs}, {"layers", layers}};
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
  write_chart(a.out, r,
              "TCAV of class " + std::to_string(k) + " (" + classes[k] + "), " + std::to_string(r.runs) + " runs; n.s.: p >= " +
                  [&] {
                    char b[16];
                    std::snprintf(b, sizeof b, "%g", r.p_threshold);
                    return std::string(b);
                  }());
  std::printf("wrote summary.json, tcav.png, tcav.svg and the CAVs (cav_<concept>_<layer>.npy) to %s\n", a.out.c_str());
}

void add_tcav_command(Command& app) {
  auto a = std::make_shared<ConceptsArgs>();
  auto* c = app.add_subcommand("concepts", "TCAV: does the model use concept C for class K? CAVs at layers, TCAV scores "
                                           "over random runs, t-tests, a bar chart");
  c->add_flag("--list", a->list, "list the method with its parameters, defaults and conventions");
  c->add_option("--model", a->model, "a model file, a preset or an architecture text");
  c->add_option("--layer", a->layers, "layer(s) to test at, by name (repeatable or comma-separated; 'input' for pixels)");
  c->add_option("--concept", a->concepts,
                "NAME=SPEC (repeatable). SPEC: pattern:KIND[,period=P|A:B,level=L,background=B,count=C] with KIND "
                "stripes-h, stripes-v, checkerboard, dots, edges, lines, blobs, solid, noise; images:DIR (the image files "
                "in DIR); npy:FILE.npy (N x C x H x W or N x H x W pixels in [0,1], uint8 /255); "
                "data:SPEC[@split=train|test,class=K[+K],index=I:J|I[+J],n=N]");
  c->add_option("--class", a->cls, "the class whose logit is explained (number or name)");
  c->add_option("--random", a->random, "where random sets are drawn from, a concept SPEC (default: "
                                        "data:<the model's dataset>@split=train)");
  c->add_option("--inputs", a->inputs, "the inputs explained, a concept SPEC (default: data:<the model's "
                                        "dataset>@split=test,class=K)");
  c->add_option("--n", a->n, "examples per concept set (at most)")->capture_default_str()->check(in_range(2, 100000));
  c->add_option("--max-inputs", a->max_inputs, "inputs at most")->capture_default_str()->check(in_range(1, 100000));
  c->add_option("--method", a->method, "the TCAV method (see --list)")->capture_default_str();
  c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable; see --list)");
  c->add_option("--out", a->out, "output folder");
  c->callback([a] { run_concepts(*a); });
}

// ---- glassbox probe (linear probes) ------------------------------------------------------------

struct ProbeArgs {
  std::string model, data, layers = "all", checkpoints = "auto", out, method = "probe";
  std::vector<std::string> params;
  int train_limit = 0, test_limit = 0;
  bool list = false;
};

// The model and, when the run kept them, its checkpoints over training (MODEL.epochE.safetensors
// beside it, by epoch), each with a label; a last checkpoint equal to the model stands for it.
struct Snapshot {
  std::string label, file;
  int epoch = -1;
};

std::vector<Snapshot> snapshots(const ProbeArgs& a, const Model& model) {
  std::vector<Snapshot> out;
  if (a.checkpoints != "none" && fs::exists(a.model)) {
    if (a.checkpoints == "auto") {
      int skipped = 0;
      for (auto& [epoch, f] : epoch_models(a.model, model.metadata, &skipped))
        out.push_back({"epoch " + std::to_string(epoch), f, epoch});
      if (skipped)
        std::fprintf(stderr, "probe: %d epoch model(s) beside %s are from another training run (train.run, or past "
                     "the model's epoch); left out\n",
                     skipped, a.model.c_str());
    } else {
      for (const std::string& f : split_list(a.checkpoints, "--checkpoints")) out.push_back({fs::path(f).filename().string(), f, -1});
    }
  }
  bool last_is_model = false;
  if (!out.empty()) {
    const Model last = open_model_file(out.back().file);
    if (architecture_text(last.graph) != architecture_text(model.graph))
      throw std::invalid_argument("--checkpoints " + out.back().file + ": its architecture differs from --model's");
    last_is_model = true;
    const auto mine = model.graph.named_params(), theirs = last.graph.named_params();
    for (size_t i = 0; i < mine.size() && last_is_model; ++i)
      last_is_model = std::equal(mine[i].second->value.data(), mine[i].second->value.data() + mine[i].second->value.size(),
                                 theirs[i].second->value.data());
  }
  if (last_is_model)
    out.back().label += " (final)";
  else
    out.push_back({"final", a.model, -1});
  return out;
}

// The split of the spec in the model's input space, its first `limit` samples (0: all).
Dataset probe_split(const std::string& spec, const std::string& split, int limit, const Model& m) {
  Dataset d = first_samples(load_dataset(spec, split), limit);
  if (d.x.shape().sample() != m.graph.input_shape())
    throw ShapeError("--data " + spec + ": samples are " + d.x.shape().sample().str() + ", the model takes " +
                     m.graph.input_shape().str());
  normalize_for(m, d.x);
  return d;
}

// probe_accuracy.png / .svg: test accuracy per layer, one bar series per snapshot (with a single
// snapshot, its training accuracy beside it).
void write_probe_chart(const std::string& out, const std::vector<std::pair<Snapshot, cc::ProbeResult>>& runs,
                       const std::string& title, double chance) {
  std::vector<explain::Series> series;
  explain::PlotOptions o;
  o.kind = explain::PlotKind::bars;
  o.title = title;
  o.ylabel = "probe accuracy";
  o.xlabel = "layer";
  o.ymin = 0, o.ymax = 1;
  o.hlines = {chance};
  o.hline_labels = {"chance"};
  const auto& layers = runs.front().second.layers;
  for (const cc::LayerProbe& l : layers) o.categories.push_back(l.layer);
  o.width = std::max(640, 120 + int(layers.size()) * std::max(80, 24 * int(runs.size() + 1)));
  if (runs.size() == 1) {
    explain::Series train{"train", {}, {}, {}}, test{"test", {}, {}, {}};
    for (const cc::LayerProbe& l : layers) train.y.push_back(l.train_accuracy), test.y.push_back(l.test_accuracy);
    series = {train, test};
  } else {
    for (const auto& [snap, r] : runs) {
      explain::Series s{snap.label + " (test)", {}, {}, {}};
      for (const cc::LayerProbe& l : r.layers) s.y.push_back(l.test_accuracy);
      series.push_back(std::move(s));
    }
  }
  write_image(out + "/probe_accuracy.png", explain::plot_image(series, o));
  atomic_write(out + "/probe_accuracy.svg", explain::plot_svg(series, o));
}

void run_probe(const ProbeArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(cc::methods_of(cc::Kind::probe)).c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (cc::method_kind(a.method) != cc::Kind::probe) throw std::invalid_argument("--method " + a.method + ": not a probe method");
  const explain::Params params = read_params(a.params, a.method);
  Model model = open_model(a.model);
  std::vector<int> layers;
  if (a.layers == "all") {
    for (int i = -1; i < model.graph.size(); ++i) layers.push_back(i);
  } else {
    for (const std::string& name : split_list(a.layers, "--layers")) layers.push_back(parse_layer(model.graph, name, "--layers"));
  }
  const std::vector<Snapshot> snaps = snapshots(a, model);
  const std::string spec = a.data.empty() ? model_dataset(model) : a.data;
  if (spec.empty()) throw std::invalid_argument("--data is required: the model names no dataset it was trained on");
  const Dataset train = probe_split(spec, "train", a.train_limit, model);
  const Dataset test = probe_split(spec, "test", a.test_limit, model);
  std::printf("probing %zu layers on %d training and %d test samples of %s, %zu model(s)\n", layers.size(), train.size(),
              test.size(), spec.c_str(), snaps.size());
  std::fflush(stdout);

  std::vector<std::pair<Snapshot, cc::ProbeResult>> runs;
  make_out_dir(a.out);  // before the work: a folder that cannot be made fails now
  const auto t0 = std::chrono::steady_clock::now();
  for (const Snapshot& s : snaps) {
    Model m = s.file == a.model ? open_model(a.model) : open_model_file(s.file);
    cc::ProbeRequest q{train.x, test.x, train.y, test.y, std::max(train.classes(), m.graph.has_classes() ? m.graph.classes() : 0), layers,
                       stage_progress()};
    if (snaps.size() > 1) std::printf("%s: %s\n", s.label.c_str(), s.file.c_str());
    std::fflush(stdout);
    runs.emplace_back(s, cc::probe(m.graph, q, params, a.method));
  }
  const double secs = seconds_since(t0);

  std::printf("%-12s %9s", "layer", "features");
  for (const auto& [s, r] : runs) std::printf(" %17s", (s.label.size() > 17 ? s.label.substr(0, 17) : s.label).c_str());
  std::printf("\n%-12s %9s", "", "");
  for (size_t i = 0; i < runs.size(); ++i) std::printf(" %8s %8s", "train", "test");
  std::printf("\n");
  for (size_t k = 0; k < layers.size(); ++k) {
    std::printf("%-12s %9d", runs[0].second.layers[k].layer.c_str(), runs[0].second.layers[k].features);
    for (const auto& [s, r] : runs) std::printf(" %7.2f%% %7.2f%%", 100 * r.layers[k].train_accuracy, 100 * r.layers[k].test_accuracy);
    std::printf("\n");
  }
  std::printf("probe: %.1f s\n", secs);

  json models = json::array();
  for (const auto& [s, r] : runs) {
    json ls = json::array();
    for (const cc::LayerProbe& l : r.layers)
      ls.push_back({{"layer", l.layer}, {"features", l.features}, {"train_accuracy", l.train_accuracy},
                    {"test_accuracy", l.test_accuracy}, {"train_loss", l.train_loss}, {"test_loss", l.test_loss}});
    models.push_back({{"label", s.label}, {"file", s.file}, {"epoch", s.epoch}, {"layers", ls}});
  }
  json pj = json::object();
  for (auto& [k, v] : params) pj[k] = v;
  const json summary = {{"model", a.model}, {"data", spec}, {"method", a.method}, {"params", pj},
                        {"train_samples", train.size()}, {"test_samples", test.size()},
                        {"classes", runs[0].second.classes}, {"epochs", runs[0].second.epochs},
                        {"time_s", secs}, {"models", models}};
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
  write_probe_chart(a.out, runs, "Linear probes of " + fs::path(a.model).filename().string() + " on " + spec,
                    1.0 / runs[0].second.classes);
  std::printf("wrote summary.json, probe_accuracy.png and probe_accuracy.svg to %s\n", a.out.c_str());
}

void add_probe_command(Command& app) {
  auto a = std::make_shared<ProbeArgs>();
  auto* c = app.add_subcommand("probe", "Linear probes: how linearly decodable the classes are at every layer (and over "
                                        "training, from the epoch checkpoints)");
  c->add_flag("--list", a->list, "list the method with its parameters, defaults and conventions");
  c->add_option("--model", a->model, "a model file, a preset or an architecture text");
  c->add_option("--data", a->data, "dataset spec with train and test splits (default: the model's own dataset)");
  c->add_option("--layers", a->layers, "all (the input and every layer) or names, comma-separated")->capture_default_str();
  c->add_option("--checkpoints", a->checkpoints,
                "auto (MODEL.epochE.safetensors beside the model, written by train --save-every), none, or files, "
                "comma-separated; each is probed like the model")
      ->capture_default_str();
  c->add_option("--train-limit", a->train_limit, "use the first N training samples (0: all)")
      ->capture_default_str()->check(in_range(0, 10000000));
  c->add_option("--test-limit", a->test_limit, "use the first N test samples (0: all)")
      ->capture_default_str()->check(in_range(0, 10000000));
  c->add_option("--method", a->method, "the probe method (see --list)")->capture_default_str();
  c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable; see --list)");
  c->add_option("--out", a->out, "output folder");
  c->callback([a] { run_probe(*a); });
}

// ---- glassbox dissect (Network Dissection) ------------------------------------------------------

constexpr int kMaxSegImages = 100000;  // images of a segmentation set (masks: images x concepts bytes)

// "generated:n=N,seed=S" or "data:SPEC@split=..,n=N": the options after the kind.
struct SegOptions {
  int n = 1000;
  uint64_t seed = 0;
  std::string split = "test";
};

SegOptions parse_seg_options(const std::string& text, const std::string& what, bool data) {
  SegOptions o;
  std::set<std::string> seen;
  for (const std::string& kv : split_list(text, what)) {
    const size_t eq = kv.find('=');
    const std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (!seen.insert(key).second) throw std::invalid_argument(what + ": option '" + key + "' given twice");
    long v = 0;
    if (key == "n" && parse_number(value, v) && v >= 1 && v <= kMaxSegImages) {
      o.n = int(v);
    } else if (key == "seed" && !data && parse_number(value, v) && v >= 0) {
      o.seed = uint64_t(v);
    } else if (key == "split" && data && (value == "train" || value == "test")) {
      o.split = value;
    } else {
      throw std::invalid_argument(what + ": '" + kv + "' (options: n=1.." + std::to_string(kMaxSegImages) +
                                  (data ? ", split=train|test)" : ", seed=S)"));
    }
  }
  return o;
}

// Object silhouettes and parts of a dataset's images (Fashion-MNIST: one object per image on a
// black background). Category "object": one concept per class, its mask the pixels brighter than
// 0.05 (any channel) on that class's images; category "part": the top, middle and bottom thirds of
// the silhouette's rows (its bounding box split in three).
cc::SegmentationSet silhouettes(const std::string& spec, const SegOptions& o, const Model& m, const std::string& what) {
  Dataset d = load_dataset(spec, o.split);
  if (d.x.rank() != 4 || d.x.shape().sample() != m.graph.input_shape())
    throw ShapeError(what + ": samples of " + spec + " are " + d.x.shape().sample().str() + ", the model takes " +
                     m.graph.input_shape().str());
  d = first_samples(d, o.n);
  cc::SegmentationSet s;
  s.x = d.x;
  s.categories = {"object", "part"};
  const std::vector<std::string> names = d.class_names.empty() ? model_classes(m) : d.class_names;
  for (const std::string& c : names) s.concepts.push_back({c, 0});
  const int K = int(names.size());
  for (const char* p : {"top", "middle", "bottom"}) s.concepts.push_back({p, 1});
  const int N = d.size(), C = d.x.dim(1), H = d.x.dim(2), W = d.x.dim(3), HW = H * W;
  const size_t Kc = s.concepts.size();
  s.masks.assign(size_t(N) * Kc * HW, 0);
  std::vector<uint8_t> object(HW);
  for (int n = 0; n < N; ++n) {
    int top = H, bottom = -1;
    for (int p = 0; p < HW; ++p) {
      float v = 0;
      for (int c = 0; c < C; ++c) v = std::max(v, d.x[(size_t(n) * C + c) * HW + p]);
      object[p] = v > 0.05f;
      if (object[p]) top = std::min(top, p / W), bottom = std::max(bottom, p / W);
    }
    if (bottom < 0) continue;
    std::copy(object.begin(), object.end(), s.masks.begin() + (size_t(n) * Kc + d.y[n]) * HW);
    const int rows = bottom - top + 1;
    for (int p = 0; p < HW; ++p)
      if (object[p]) s.masks[(size_t(n) * Kc + K + std::min(2, (p / W - top) * 3 / rows)) * HW + p] = 1;
  }
  return s;
}

// A folder of images and masks: DIR/images/NAME.png (any image format), and per image
// DIR/masks/NAME/CATEGORY/CONCEPT.png, a pixel in the concept when its value is not 0. An image is
// annotated for the categories it has a folder of. Images are converted to the model's input; masks
// are resized to it by nearest neighbour.
cc::SegmentationSet mask_folder(const std::string& dir, const Model& m, const std::string& what) {
  const fs::path images = fs::path(dir) / "images", masks = fs::path(dir) / "masks";
  if (!fs::is_directory(images) || !fs::is_directory(masks))
    throw std::invalid_argument(what + ": " + dir + " needs images/ and masks/ folders (images/NAME.png, "
                                "masks/NAME/CATEGORY/CONCEPT.png)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(images))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw std::invalid_argument(what + ": " + images.string() + " holds no images");
  if (int(files.size()) > kMaxSegImages)
    throw std::invalid_argument(what + ": more than " + std::to_string(kMaxSegImages) + " images in " + images.string());
  // Categories and concepts: every CATEGORY/CONCEPT that any image has, sorted.
  std::map<std::string, std::set<std::string>> found;
  for (const fs::path& f : files) {
    const fs::path md = masks / f.stem();
    if (!fs::is_directory(md)) continue;
    for (const auto& cat : fs::directory_iterator(md))
      if (cat.is_directory())
        for (const auto& c : fs::directory_iterator(cat.path()))
          if (c.is_regular_file()) found[cat.path().filename().string()].insert(c.path().stem().string());
  }
  if (found.empty()) throw std::invalid_argument(what + ": no masks under " + masks.string());
  cc::SegmentationSet s;
  std::map<std::pair<std::string, std::string>, int> index;
  for (const auto& [cat, names] : found) {
    s.categories.push_back(cat);
    for (const std::string& n : names) {
      index[{cat, n}] = int(s.concepts.size());
      s.concepts.push_back({n, int(s.categories.size()) - 1});
    }
  }
  const Shape in = m.graph.input_shape();
  if (in.rank != 3) throw ShapeError(what + ": the model takes " + in.str() + ", not images");
  const int N = int(files.size()), H = in[1], W = in[2], HW = H * W;
  const size_t Kc = s.concepts.size();
  std::vector<Tensor> xs;
  s.masks.assign(size_t(N) * Kc * HW, 0);
  s.annotated.assign(size_t(N) * s.categories.size(), 0);
  for (int n = 0; n < N; ++n) {
    xs.push_back(load_image(files[n].string(), in));
    for (size_t k = 0; k < s.categories.size(); ++k) {
      const fs::path cd = masks / files[n].stem() / s.categories[k];
      if (!fs::is_directory(cd)) continue;
      s.annotated[size_t(n) * s.categories.size() + k] = 1;
      for (const auto& e : fs::directory_iterator(cd)) {
        if (!e.is_regular_file()) continue;
        const auto im = read_image(e.path().string());
        uint8_t* dst = s.masks.data() + (size_t(n) * Kc + index.at({s.categories[k], e.path().stem().string()})) * HW;
        for (int y = 0; y < H; ++y)
          for (int x = 0; x < W; ++x) {
            const int sy = int(int64_t(y) * im.h / H), sx = int(int64_t(x) * im.w / W);
            dst[y * W + x] = im.pixels[(size_t(sy) * im.w + sx) * im.channels] != 0;
          }
      }
    }
  }
  s.x = concat(xs);
  return s;
}

// The segmentation set of --concepts, in pixel space.
cc::SegmentationSet read_segmentation(const std::string& spec, const Model& m) {
  const std::string what = "--concepts " + spec;
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon), body = colon == std::string::npos ? "" : spec.substr(colon + 1);
  try {
    if (kind == "generated") {
      const SegOptions o = parse_seg_options(body, what, false);
      return cc::make_segmentation(m.graph.input_shape(), o.n, o.seed);
    }
    if (kind == "data") {
      const size_t at = body.rfind('@');
      const SegOptions o = parse_seg_options(at == std::string::npos ? "" : body.substr(at + 1), what, true);
      return silhouettes(body.substr(0, at), o, m, what);
    }
    if (kind == "masks") return mask_folder(body, m, what);
  } catch (const DataError& e) {
    throw DataError(what + ": " + e.what());
  }
  throw std::invalid_argument(what + ": expected generated[:n=N,seed=S], data:SPEC[@split=..,n=N] or masks:DIR");
}

// A cell of the figure: the image, scaled up, with the unit's mask outlined in red.
explain::Image outlined(const Tensor& pixels, const uint8_t* mask, int H, int W, int scale) {
  explain::Image im = explain::resize_nearest(explain::to_image(pixels), W * scale, H * scale);
  auto in = [&](int x, int y) { return x >= 0 && y >= 0 && x < W * scale && y < H * scale && mask[(y / scale) * W + x / scale]; };
  for (int y = 0; y < H * scale; ++y)
    for (int x = 0; x < W * scale; ++x)
      if (in(x, y) && !(in(x - 1, y) && in(x + 1, y) && in(x, y - 1) && in(x, y + 1))) {
        uint8_t* p = im.px(x, y);
        p[0] = 255, p[1] = 0, p[2] = 0;
      }
  return im;
}

// dissect_<layer>.png: one row per unit (by IoU, highest first), its top images with the thresholded
// upsampled activation outlined, captioned with the unit's best concept and IoU.
void write_unit_grid(const std::string& path, Graph& g, const cc::LayerDissection& d, const cc::SegmentationSet& pixels,
                     const Tensor& x, int max_rows) {
  std::vector<int> units(d.units.size());
  std::iota(units.begin(), units.end(), 0);
  std::stable_sort(units.begin(), units.end(), [&](int a, int b) { return d.units[a].iou > d.units[b].iou; });
  if (int(units.size()) > max_rows) units.resize(max_rows);
  // Rounded up, as the other grids enlarge: 32 px images become 64, 28 px ones 56.
  const int H = pixels.height(), W = pixels.width(), scale = enlargement_for(std::max(H, W), 56);
  std::vector<std::vector<explain::Image>> cells;
  std::vector<std::string> captions, columns;
  std::vector<float> up(size_t(H) * W);
  std::vector<uint8_t> mask(size_t(H) * W);
  for (int k : units) {
    const cc::UnitResult& u = d.units[k];
    std::vector<int> rows = u.top_images;
    Tensor xb(x.shape().with_batch(int(rows.size())));
    for (size_t i = 0; i < rows.size(); ++i) xb.slice(int(i), int(i) + 1).copy_from(x.sample(rows[i]));
    const Tensor a = activations(g, xb, {d.node})[0];
    const int h = a.dim(2), w = a.dim(3);
    std::vector<explain::Image> row;
    for (size_t i = 0; i < rows.size(); ++i) {
      cc::unit_mask(a.data() + (i * a.dim(1) + k) * size_t(h) * w, h, w, u.threshold, H, W, up.data(), mask.data());
      row.push_back(outlined(pixels.x.sample(rows[i]), mask.data(), H, W, scale));
    }
    char buf[200];
    std::snprintf(buf, sizeof buf, "unit %d: %s (%s) IoU %.3f%s", k, u.best < 0 ? "none" : pixels.concepts[u.best].name.c_str(),
                  u.best < 0 ? "-" : pixels.categories[pixels.concepts[u.best].category].c_str(), u.iou,
                  u.detector ? "  detector" : "");
    captions.push_back(buf);
    cells.push_back(std::move(row));
  }
  for (size_t i = 0; i < cells.front().size(); ++i) columns.push_back("top " + std::to_string(i + 1));
  write_image(path, explain::grid(cells, columns, captions, W * scale, H * scale));
}

// detectors.png / .svg: detectors per category, one bar series per layer.
void write_detector_chart(const std::string& out, const cc::DissectResult& r, const cc::SegmentationSet& s,
                          const std::string& title) {
  explain::PlotOptions o;
  o.kind = explain::PlotKind::bars;
  o.title = title;
  o.xlabel = "concept category";
  o.ylabel = "detector units";
  o.ymin = 0;
  o.categories = s.categories;
  std::vector<explain::Series> series;
  for (const cc::LayerDissection& d : r.layers) {
    explain::Series sr{d.layer + " (" + std::to_string(d.units.size()) + " units)", {}, {}, {}};
    for (int c : d.detectors_by_category) sr.y.push_back(c);
    series.push_back(std::move(sr));
  }
  int detectors = 0;
  for (const explain::Series& sr : series)
    for (double v : sr.y) detectors += int(v);
  if (detectors == 0) {  // empty axes would look like a drawing fault
    char note[96];
    std::snprintf(note, sizeof note, "no unit passed IoU > %g", r.iou_threshold);
    o.note = note;
  }
  write_image(out + "/detectors.png", explain::plot_image(series, o));
  atomic_write(out + "/detectors.svg", explain::plot_svg(series, o));
}

struct DissectArgs {
  std::string model, layers, concepts = "generated", out, method = "netdissect";
  std::vector<std::string> params;
  int max_rows = 32;
  bool list = false;
};

void run_dissect(const DissectArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(cc::methods_of(cc::Kind::dissect)).c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (cc::method_kind(a.method) != cc::Kind::dissect) throw std::invalid_argument("--method " + a.method + ": not a dissection method");
  const explain::Params params = read_params(a.params, a.method);
  Model model = open_model(a.model);
  std::vector<int> layers;
  if (a.layers.empty() || a.layers == "all") {
    for (int i = 0; i < model.graph.size(); ++i)
      if (model.graph.shape(i).rank == 4) layers.push_back(i);
    if (layers.empty()) throw std::invalid_argument("--model " + a.model + " has no layer with maps [C, H, W] to dissect");
  } else {
    for (const std::string& name : split_list(a.layers, "--layer")) layers.push_back(parse_layer(model.graph, name, "--layer"));
  }
  const cc::SegmentationSet pixels = read_segmentation(a.concepts, model);
  cc::SegmentationSet s = pixels;
  s.x = pixels.x.clone();
  normalize_for(model, s.x);
  std::printf("dissecting %zu layer(s) on %d images, %zu concepts in %zu categories\n", layers.size(), s.size(),
              s.concepts.size(), s.categories.size());
  std::fflush(stdout);
  make_out_dir(a.out);  // before the work: a folder that cannot be made fails now
  const auto t0 = std::chrono::steady_clock::now();
  const cc::DissectResult r = cc::dissect(model.graph, {&s, layers, stage_progress()}, params, a.method);
  const double secs = seconds_since(t0);

  json jl = json::array();
  for (const cc::LayerDissection& d : r.layers) {
    std::printf("%s: %d units, unique concepts detected %d; detectors by category:", d.layer.c_str(), int(d.units.size()),
                d.unique_concepts);
    for (size_t c = 0; c < s.categories.size(); ++c) std::printf(" %s %d", s.categories[c].c_str(), d.detectors_by_category[c]);
    std::printf("\n");
    json units = json::array();
    for (const cc::UnitResult& u : d.units) {
      const std::string best = u.best < 0 ? "" : s.concepts[u.best].name;
      const std::string cat = u.best < 0 ? "" : s.categories[s.concepts[u.best].category];
      if (u.detector) std::printf("  unit %3d  %-14s %-10s IoU %.3f\n", u.unit, best.c_str(), cat.c_str(), u.iou);
      units.push_back({{"unit", u.unit}, {"threshold", u.threshold}, {"concept", best}, {"category", cat}, {"iou", u.iou},
                       {"detector", u.detector}, {"top_images", u.top_images}, {"top_maxima", u.top_maxima}});
    }
    json cats = json::object();
    for (size_t c = 0; c < s.categories.size(); ++c) cats[s.categories[c]] = d.detectors_by_category[c];
    jl.push_back({{"layer", d.layer}, {"units", units}, {"detectors_by_category", cats}, {"unique_concepts", d.unique_concepts}});
  }
  std::printf("dissect: %.1f s\n", secs);

  json concepts = json::array();
  for (const cc::SegConcept& c : s.concepts) concepts.push_back({{"name", c.name}, {"category", s.categories[c.category]}});
  json pj = json::object();
  for (auto& [k, v] : params) pj[k] = v;
  const json summary = {{"model", a.model}, {"concepts_spec", a.concepts}, {"method", a.method}, {"params", pj},
                        {"images", s.size()}, {"concepts", concepts}, {"quantile", r.quantile},
                        {"iou_threshold", r.iou_threshold}, {"time_s", secs}, {"layers", jl}};
  for (const cc::LayerDissection& d : r.layers) {
    Tensor iou(Shape{int(d.units.size()), int(s.concepts.size())});
    for (size_t k = 0; k < d.units.size(); ++k)
      for (size_t c = 0; c < s.concepts.size(); ++c) iou[k * s.concepts.size() + c] = float(d.units[k].ious[c]);
    write_npy(a.out + "/iou_" + d.layer + ".npy", iou);
    write_unit_grid(a.out + "/dissect_" + d.layer + ".png", model.graph, d, pixels, s.x, a.max_rows);
  }
  write_detector_chart(a.out, r, s, "Network Dissection of " + fs::path(a.model).filename().string());
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
  std::printf("wrote summary.json, iou_<layer>.npy, dissect_<layer>.png and detectors.png/.svg to %s\n", a.out.c_str());
}

void add_dissect_command(Command& app) {
  auto a = std::make_shared<DissectArgs>();
  auto* c = app.add_subcommand("dissect", "Network Dissection: which conv units detect which concepts (IoU of their "
                                          "top activations with concept masks)");
  c->add_flag("--list", a->list, "list the method with its parameters, defaults and conventions");
  c->add_option("--model", a->model, "a model file, a preset or an architecture text");
  c->add_option("--layer", a->layers, "layers to dissect, comma-separated (default: all with maps [C, H, W])");
  c->add_option("--concepts", a->concepts,
                "segmentation set: generated[:n=N,seed=S] (textures, shapes, intensity with exact masks), "
                "data:SPEC[@split=test|train,n=N] (object silhouettes per class and their top/middle/bottom parts), or "
                "masks:DIR (DIR/images/NAME.png, DIR/masks/NAME/CATEGORY/CONCEPT.png); n at most 100000, default 1000")
      ->capture_default_str();
  c->add_option("--rows", a->max_rows, "units shown per layer figure, by IoU")->capture_default_str()->check(in_range(1, 1024));
  c->add_option("--method", a->method, "the dissection method (see --list)")->capture_default_str();
  c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable; see --list)");
  c->add_option("--out", a->out, "output folder");
  c->callback([a] { run_dissect(*a); });
}

// ---- glassbox ace (automatic concept discovery) ------------------------------------------------

struct AceArgs {
  std::string model, layer, cls, images, inputs, random, out;
  std::vector<std::string> params;
  int n = 40, max_inputs = 40, examples = 10;
  bool list = false;
};

// <concept>.png: the concept's examples nearest its centre, as clustered (the patch at input
// size) and in their image (the segment outlined), 3x upscaled on 28x28 images.
explain::Image concept_grid(const cc::AceResult& r, const cc::AceConcept& c, const Tensor& images, int examples) {
  const int H = r.patches.height, W = r.patches.width, scale = std::max(1, 84 / std::max(H, W));
  const size_t HW = size_t(H) * W;
  std::vector<std::vector<explain::Image>> cells(2);
  std::vector<std::string> columns;
  for (int i = 0; i < std::min(examples, int(c.members.size())); ++i) {
    const int p = c.members[i];
    cells[0].push_back(explain::resize_nearest(explain::to_image(r.patches.x.sample(p)), W * scale, H * scale));
    cells[1].push_back(outlined(images.sample(r.patches.image[p]), r.patches.masks.data() + size_t(p) * HW, H, W, scale));
    columns.push_back("image " + std::to_string(r.patches.image[p]));
  }
  char caption[200];
  std::snprintf(caption, sizeof caption, "%s: TCAV %.2f+-%.2f, p %.2g%s; %d patches from %d images", c.name.c_str(),
                cc::mean(c.scores.sign_count), cc::stdev(c.scores.sign_count), c.scores.sign_test.p,
                c.scores.significant ? "" : " (n.s.)", c.size, c.images);
  return explain::grid(cells, columns, {std::string(caption) + " - as clustered", "in its image (segment outlined)"},
                       W * scale, H * scale);
}

// The scores in the shape tcav() returns, for the family's bar chart.
cc::TcavResult as_tcav(const cc::AceResult& r) {
  cc::TcavResult t;
  t.runs = r.runs, t.p_threshold = r.p_threshold, t.comparisons = int(r.concepts.size());
  cc::LayerScores l;
  l.layer = r.layer;
  for (const cc::AceConcept& c : r.concepts) l.concepts.push_back(c.scores);
  l.random = r.random;
  t.layers.push_back(std::move(l));
  return t;
}

void run_ace(const AceArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(cc::methods_of(cc::Kind::ace)).c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.layer.empty()) throw std::invalid_argument("--layer is required (the bottleneck; see glassbox info MODEL --arch)");
  if (a.cls.empty()) throw std::invalid_argument("--class is required (the class whose concepts are discovered)");
  const explain::Params params = read_params(a.params, "ace");

  Model model = open_model(a.model);
  Graph& g = model.graph;
  if (g.input_shape().rank != 3) throw std::invalid_argument("--model: ACE segments images, the model takes " + g.input_shape().str());
  const std::vector<std::string> classes = model_classes(model);
  const int k = parse_class(a.cls, classes, "--class");
  cc::AceRequest q;
  q.layer = parse_layer(g, a.layer, "--layer");
  if (q.layer >= g.output()) throw std::invalid_argument("--layer " + a.layer + ": the logits themselves; ACE needs a layer below them");
  const std::string dataset = model_dataset(model);
  std::string images = a.images, inputs = a.inputs, random = a.random;
  if (images.empty() || inputs.empty() || random.empty()) {
    if (dataset.empty())
      throw std::invalid_argument("--images, --inputs and --random are required: the model names no dataset it was trained on");
    if (images.empty()) images = "data:" + dataset + "@split=train,class=" + std::to_string(k);
    if (inputs.empty()) inputs = "data:" + dataset + "@split=test,class=" + std::to_string(k);
    if (random.empty()) random = "data:" + dataset + "@split=train";
  }
  const uint64_t seed = uint64_t(param_number(params, "ace", "seed"));
  const double pool_for_patterns = (param_number(params, "ace", "runs") + 1) * param_number(params, "ace", "random_size");
  if (random.rfind("pattern:", 0) == 0 && pool_for_patterns > kMaxGeneratedPool)
    throw std::invalid_argument("--random " + random + ": (runs + 1) x random_size = " + std::to_string(long(pool_for_patterns)) +
                                " generated images, more than " + std::to_string(kMaxGeneratedPool));
  try {
    q.images = read_pixels(images, model, a.n, cc::mix_seed(seed, 0x696d67), "--images", "train");
  } catch (const DataError& e) {
    throw DataError(std::string("--images: ") + e.what());
  }
  q.to_input = [&model](Tensor& x) { normalize_for(model, x); };
  q.inputs = read_concept(inputs, model, a.max_inputs, cc::mix_seed(seed, 0x696e70), "--inputs", "test");
  q.random_pool = read_concept(random, model, random.rfind("pattern:", 0) == 0 ? int(pool_for_patterns) : 0,
                               cc::mix_seed(seed, 0x706f6f6c), "--random");
  note_shared_random_sets(q.random_pool.batch(), pool_for_patterns);
  q.target = Target({k});
  q.progress = stage_progress();
  std::printf("ACE for class %d (%s) at %s: %d discovery images, %d inputs, random pool of %d\n", k, classes[k].c_str(),
              a.layer.c_str(), q.images.batch(), q.inputs.batch(), q.random_pool.batch());
  std::fflush(stdout);

  make_out_dir(a.out);  // before the work: a folder that cannot be made fails now
  const auto t0 = std::chrono::steady_clock::now();
  const cc::AceResult r = cc::ace(g, q, params);
  const double secs = seconds_since(t0);
  std::vector<int> sizes(r.clusters.centers.dim(0), 0);
  for (int l : r.clusters.labels) ++sizes[l];
  std::printf("%d patches, %zu clusters, %zu kept as concepts\n", r.patches.x.batch(), sizes.size(), r.concepts.size());
  if (!r.concepts.empty()) print_table(as_tcav(r));
  std::printf("ace: %.2f s\n", secs);

  const Shape shape = g.shape(q.layer).sample();
  json concepts = json::array();
  for (const cc::AceConcept& c : r.concepts) {
    json j = concept_json(c.scores, true);
    std::vector<int> from;
    for (int p : c.members) from.push_back(r.patches.image[p]);
    j.update({{"cluster", c.cluster}, {"size", c.size}, {"images_spanned", c.images}, {"examples", c.members},
              {"example_images", from}, {"png", c.name + ".png"}, {"cav", "cav_" + c.name + "_" + r.layer + ".npy"}});
    concepts.push_back(j);
    write_npy(a.out + "/cav_" + c.name + "_" + r.layer + ".npy", c.scores.cavs.reshaped(Shape::batch_of(c.scores.cavs.dim(0), shape)));
    write_image(a.out + "/" + c.name + ".png", concept_grid(r, c, q.images, a.examples));
  }
  json pj = json::object();
  for (auto& [kk, v] : params) pj[kk] = v;
  const json summary = {{"model", a.model}, {"method", "ace"}, {"class", k}, {"class_name", classes[k]}, {"layer", r.layer},
                        {"images", {{"spec", images}, {"n", q.images.batch()}}},
                        {"inputs", {{"spec", inputs}, {"n", q.inputs.batch()}}},
                        {"random", {{"spec", random}, {"pool", q.random_pool.batch()}}},
                        {"params", pj}, {"patches", r.patches.x.batch()}, {"cluster_sizes", sizes},
                        {"kmeans_inertia", r.clusters.inertia}, {"runs", r.runs}, {"p_threshold", r.p_threshold},
                        {"test", param_text(params, "ace", "test")}, {"time_s", secs}, {"concepts", concepts},
                        {"random_baseline", r.concepts.empty() ? json(nullptr) : concept_json(r.random, false)}};
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
  if (r.concepts.empty()) {
    std::printf("no cluster passed the filter (min_imgs and the image-count rules); wrote summary.json to %s\n", a.out.c_str());
    return;
  }
  char title[160];
  std::snprintf(title, sizeof title, "ACE concepts of class %d (%s) at %s, %d runs; n.s.: p >= %g", k, classes[k].c_str(),
                r.layer.c_str(), r.runs, r.p_threshold);
  write_chart(a.out, as_tcav(r), title);
  std::printf("wrote summary.json, tcav.png, tcav.svg, <concept>.png and cav_<concept>_%s.npy to %s\n", r.layer.c_str(),
              a.out.c_str());
}

void add_ace_command(Command& app) {
  auto a = std::make_shared<AceArgs>();
  auto* c = app.add_subcommand("ace", "ACE: discover concepts of class K (superpixel patches clustered on a layer's "
                                      "activations) and test each with TCAV");
  c->add_flag("--list", a->list, "list the method with its parameters, defaults and conventions");
  c->add_option("--model", a->model, "a model file, a preset or an architecture text");
  c->add_option("--layer", a->layer, "the bottleneck layer, by name");
  c->add_option("--class", a->cls, "the class whose concepts are discovered (number or name)");
  c->add_option("--images", a->images, "the class's discovery images, a concept SPEC as in glassbox concepts (default: "
                                       "data:<the model's dataset>@split=train,class=K)");
  c->add_option("--inputs", a->inputs, "the class's images TCAV explains (default: data:<dataset>@split=test,class=K)");
  c->add_option("--random", a->random, "where random sets are drawn from (default: data:<dataset>@split=train)");
  c->add_option("--n", a->n, "discovery images at most (ace.py's num_discovery_imgs)")->capture_default_str()->check(in_range(2, 1000));
  c->add_option("--max-inputs", a->max_inputs, "inputs at most")->capture_default_str()->check(in_range(1, 100000));
  c->add_option("--examples", a->examples, "examples shown per concept")->capture_default_str()->check(in_range(1, 40));
  c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable; see --list)");
  c->add_option("--out", a->out, "output folder");
  c->callback([a] { run_ace(*a); });
}

void add_concepts_commands(Command& app) {
  add_tcav_command(app);
  add_probe_command(app);
  add_dissect_command(app);
  add_ace_command(app);
}

}  // namespace

static const RegisterCommand registered_concepts_cmd("concepts", add_concepts_commands);

}  // namespace gb
