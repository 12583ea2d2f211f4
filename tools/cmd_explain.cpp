// glassbox explain: attributions for a few inputs and methods, written as .npy, heatmap PNGs, a
// labeled grid and summary.json; `--list` prints every registered method with its parameters.
//
// --param k=v goes to each selected method that accepts k (a noise-tunnel method also accepts its
// base method's keys); a key that no selected method accepts is an error. So
// `--method saliency,integrated-gradients --param n_steps=32` is fine: only IG gets n_steps.
#include <algorithm>
#include <climits>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/finite.h"
#include "engine/layers.h"
#include "explain/attribution/explain.h"
#include "explain/attribution/gradient.h"
#include "explain/common/heatmap.h"
#include "explain/common/plot.h"
#include "explain/metrics/similarity.h"
#include "tools/commands.h"
#include "tools/figures.h"
#include "tools/inputs.h"

namespace gb {

namespace {

struct ExplainArgs {
  std::string model, data, index = "0:8", split = "test", methods, target = "pred", out, colormap, sweep, labels;
  std::vector<std::string> inputs, params;
  std::string rule, stdev, baseline;  // shorthands for --param rule=, stdev=, baseline=
  float overlay = 0;
  double percentile = -1;
  bool list = false;
  InputSpace input_space = InputSpace::pixels;
};


// Per input: its name and label, what is explained and its value (logit and probability for a class).
nlohmann::json image_entries(Graph& g, const Inputs& in, const Target& target, const Tensor& logits,
                             const std::vector<std::string>& classes) {
  const int N = in.x.batch();
  const bool is_class = target.is_class(g);
  const int K = is_class ? g.classes() : 0;
  const Tensor prob = is_class ? softmax(logits) : Tensor();
  std::vector<double> value = is_class ? std::vector<double>() : explain::target_outputs(g, in.x, target);
  nlohmann::json per_image = nlohmann::json::array();
  for (int n = 0; n < N; ++n) {
    nlohmann::json e = {{"name", in.names[n]}, {"label", in.labels[n]}};
    if (is_class) {
      const int t = target.element(n);
      e.update({{"target", t},
                {"target_class", classes[t]},
                {"logit", logits[size_t(n) * K + t]},
                {"probability", prob[size_t(n) * K + t]}});
    } else {
      e.update({{"target", target.describe(g, n)}, {"value", value[n]}});
    }
    e["methods"] = nlohmann::json::object();
    per_image.push_back(e);
  }
  return per_image;
}

// One column of the outputs: a method and its parameters. A sweep (--sweep KEY=V1,V2) gives each
// method that takes KEY one column per value, labelled with it.
struct Column {
  std::string method;
  std::string label;  // grid header and summary key: "smoothgrad" or "smoothgrad level=0.1"
  std::string file;   // in output names: "smoothgrad" or "smoothgrad_level-0.1"
  explain::Params params;
  std::string baseline;  // as given, for the summary (IG, DeepLIFT)
  std::string header;    // the grid's column header: the label and every parameter given
};

// One column's attributions over every input, and how long they took.
struct ColumnRun {
  explain::Result r;
  double secs = 0;
};

// Finite logits can still give maps past float32 (a --target direction of 1e38s scales every
// gradient): refused before any file is written, as non-finite logits are, unless --allow-nonfinite.
void check_finite_attribution(const Tensor& attribution, const std::string& method,
                              const std::vector<std::string>& names, const std::string& target) {
  if (nonfinite_allowed()) return;
  const size_t D = attribution.sample_size();
  for (int n = 0; n < attribution.batch(); ++n)
    for (size_t i = 0; i < D; ++i)
      if (!std::isfinite(attribution[size_t(n) * D + i]))
        throw std::runtime_error(method + ": its attribution of input " + names[size_t(n)] +
                                 " is not finite (--target " + target +
                                 " or the model's values past float32's range; glassbox --allow-nonfinite writes it)");
}

// One column over every input: .npy (and .png for images) per input, its summary entries, and a
// grid cell per input. Returns the attributions.
Tensor write_column(const ExplainArgs& a, Graph& g, const Inputs& in, const Target& target, const Column& col,
                    const ColumnRun& run, const std::vector<std::string>& names, const std::vector<Tensor>& pixels,
                    nlohmann::json& summary, nlohmann::json& per_image, std::vector<std::vector<explain::Image>>& cells) {
  const int N = in.x.batch();
  const std::string& m = col.label;
  const explain::Params& params = col.params;
  const std::string& baseline = col.baseline;
  const explain::Result& r = run.r;
  const double secs = run.secs;
  nlohmann::json pj(static_cast<const std::map<std::string, std::string>&>(params));
  if (!baseline.empty()) pj["baseline"] = baseline;
  summary["methods"][m] = {{"method", col.method}, {"params", pj}, {"time_s", secs}, {"signed", r.is_signed}};
  if (!r.detail_layers.empty()) summary["methods"][m]["detail_layers"] = r.detail_layers;
  std::printf("%-24s %d inputs in %.3f s\n", m.c_str(), N, secs);
  const Shape sample = r.attribution.shape().sample();
  // Where the method starts from a baseline (IG, DeepLIFT): f(x) and f(baseline) beside the sum and
  // the completeness delta, so the gap can be read against what is explained.
  std::vector<double> f_x, f_base;
  if (auto it = params.tensors.find("baseline"); it != params.tensors.end() && !r.delta.empty()) {
    Tensor b = Tensor(in.x.shape());
    const size_t D = b.sample_size();
    for (int n = 0; n < N; ++n)
      std::copy_n(it->second.data() + (it->second.batch() == 1 ? 0 : size_t(n) * D), D, b.data() + size_t(n) * D);
    f_x = explain::target_outputs(g, in.x, target);
    f_base = explain::target_outputs(g, b, target);
  }
  for (int n = 0; n < N; ++n) {
    Tensor an = r.attribution.slice(n, n + 1).reshaped(sample);
    const std::string stem = a.out + "/" + names[n] + "_" + col.file;
    write_npy(stem + ".npy", an);
    double sum = 0;
    for (size_t i = 0; i < an.size(); ++i) sum += an[i];
    nlohmann::json e = {{"sum", sum}, {"time_s", secs / N}};
    if (!r.delta.empty()) e["delta"] = r.delta[n];
    if (!f_x.empty()) e.update({{"f_x", f_x[n]}, {"f_baseline", f_base[n]}});
    std::vector<float> segments;  // LIME's superpixels, outlined in its figures
    if (n < int(r.details.size()))
      for (auto& [key, values] : r.details[n]) {
        if (key == "segments" && sample.rank == 3) {  // a label image: beside the map, as .npy
          Tensor labels({sample[1], sample[2]});
          std::copy(values.begin(), values.end(), labels.data());
          write_npy(stem + "_segments.npy", labels);
          segments.assign(values.begin(), values.end());
        } else {
          e[key] = values.size() == 1 ? nlohmann::json(values[0]) : nlohmann::json(values);
        }
      }
    per_image[n]["methods"][m] = e;
    if (pixels.empty()) continue;
    if (sample.rank == 3) {
      explain::HeatmapOptions o;
      o.is_signed = r.is_signed;
      o.colormap = a.colormap;
      o.percentile = a.percentile;
      o.overlay = a.overlay;
      if (col.method == "lime" && a.overlay == 0) o.overlay = 0.5f;  // segments over the image they cut
      explain::Image im = explain::heatmap(an, o, &pixels[n]);
      const int k = enlargement_for(im.w);
      im = explain::resize_nearest(im, im.w * k, im.h * k);
      if (segments.size() == size_t(sample[1]) * sample[2]) {
        const uint8_t edge[3] = {40, 40, 40};
        explain::draw_boundaries(im, segments, sample[2], sample[1], edge);
      }
      write_image(stem + ".png", im);
      cells[n].push_back(im);
    } else {
      cells[n].push_back(explain::Image(1, 1));  // not an image-shaped attribution: a blank cell
    }
  }
  return std::move(r.attribution);
}

void write_correlations(const std::string& out, const std::vector<std::string>& labels, const std::vector<Tensor>& maps,
                        nlohmann::json& summary, nlohmann::json& per_image) {
  if (maps.size() < 2) {
    // One method has no pairs: an earlier run's table would contradict this summary.json.
    const std::string old = out + "/correlations.csv";
    std::ifstream f(old);
    std::string first;
    if (f && std::getline(f, first) && first.rfind("method_a,method_b,mean_pearson", 0) == 0) std::filesystem::remove(old);
    return;
  }
  const int N = maps[0].batch();
  const size_t D = maps[0].sample_size();
  std::string csv = "method_a,method_b,mean_pearson,n";
  for (int n = 0; n < N; ++n) csv += "," + csv_field(per_image[n]["name"].get<std::string>());
  csv += "\n";
  nlohmann::json table = nlohmann::json::array();
  for (size_t i = 0; i < maps.size(); ++i)
    for (size_t j = i + 1; j < maps.size(); ++j) {
      std::vector<double> r(N);
      double mean = 0;
      int defined = 0;
      for (int n = 0; n < N; ++n) {
        r[n] = metrics::pearson(maps[i].data() + n * D, maps[j].data() + n * D, D);
        if (std::isfinite(r[n])) mean += r[n], ++defined;
      }
      mean = defined ? mean / defined : NAN;
      auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
      nlohmann::json per = nlohmann::json::array();
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", mean);
      csv += csv_field(labels[i]) + "," + csv_field(labels[j]) + "," + buf + "," + std::to_string(defined);
      for (int n = 0; n < N; ++n) {
        per.push_back(number(r[n]));
        std::snprintf(buf, sizeof buf, "%.6g", r[n]);
        csv += std::string(",") + buf;
      }
      csv += "\n";
      table.push_back({{"a", labels[i]}, {"b", labels[j]}, {"mean", number(mean)}, {"n", defined}, {"per_input", per}});
    }
  summary["correlations"] = table;
  atomic_write(out + "/correlations.csv", csv);
}

// grid.png (grid_2.png, ... past 16 inputs): inputs as rows (captioned with what is explained),
// methods as columns, and a colorbar for each colormap the columns use.
void write_grid(const std::string& path, const ExplainArgs& a, const Graph& g, const std::vector<std::string>& headers,
                const std::vector<bool>& is_signed, const nlohmann::json& per_image,
                const std::vector<std::vector<explain::Image>>& cells) {
  const int H = g.input_shape()[1], W = g.input_shape()[2];
  const int s = enlargement_for(W);  // cells at least 112 px wide, so labels fit
  std::vector<std::string> cols = {"input"}, caps;
  cols.insert(cols.end(), headers.begin(), headers.end());
  for (const nlohmann::json& e : per_image) {
    char buf[64];
    if (e.contains("probability")) {
      std::snprintf(buf, sizeof buf, " p=%.2f", e["probability"].get<double>());
      caps.push_back(e["name"].get<std::string>() + ": " + e["target_class"].get<std::string>() + buf);
    } else {
      std::snprintf(buf, sizeof buf, " = %.3g", e["value"].get<double>());
      caps.push_back(e["name"].get<std::string>() + ": " + e["target"].get<std::string>() + buf);
    }
  }
  // Every map is scaled by its own percentile of |a|, so the bar's ends are that scale, +-1.
  std::vector<explain::Image> legends;
  std::vector<std::string> drawn, columns_of;  // each bar's key, and the columns drawn with it
  for (size_t m = 0; m < is_signed.size(); ++m) {
    const bool sign = is_signed[m];
    const std::string cmap = !a.colormap.empty() ? a.colormap : sign ? "bwr" : "hot";
    const double pct = a.percentile >= 0 ? a.percentile : sign ? 100 : 99.5;
    // A signed map in gray or hot is drawn as |a| (explain::heatmap): its bar runs 0..1 too.
    const bool shown_signed = sign && cmap == "bwr";
    const std::string key = cmap + (sign ? "+-" : "+");
    const size_t bar = size_t(std::find(drawn.begin(), drawn.end(), key) - drawn.begin());
    if (bar < drawn.size()) {
      columns_of[bar] += ", " + headers[m];
      continue;
    }
    drawn.push_back(key), columns_of.push_back(headers[m]);
    char cap[64];
    std::snprintf(cap, sizeof cap, "%s / p%g(|a|)", shown_signed ? "signed a" : sign ? "|a| of signed a" : "unsigned a", pct);
    legends.push_back(explain::colorbar_image(cmap, shown_signed ? -1 : 0, 1, 260, cap));
  }
  // With two bars (signed and unsigned maps: there are no more), which columns each one reads.
  const std::string title =
      legends.size() == 2 ? "Colorbars: left for " + columns_of[0] + "; right for " + columns_of[1] : "";
  write_grid_pages(path, cells, cols, caps, W * s, H * s, legends, title);
}

// --param values (the shorthands --rule, --stdev and --baseline included) routed to the methods
// that accept their keys.
std::vector<explain::Params> route_explain_params(const ExplainArgs& a, const std::vector<std::string>& methods,
                                          explain::Params& all) {
  std::vector<std::string> params = a.params;
  std::map<std::string, std::string> shorthands;
  for (auto [key, value] : {std::pair{"rule", &a.rule}, {"stdev", &a.stdev}, {"baseline", &a.baseline}})
    if (!value->empty()) params.push_back(std::string(key) + "=" + *value), shorthands[key] = "--" + std::string(key);
  // "Last one wins" would silently drop a value: a sweep over values is --sweep KEY=V1,V2.
  return route_method_params(params, methods, all, "--param", "glassbox explain --list",
                             "to run several values use --sweep KEY=V1,V2,...", shorthands);
}

// The output columns: each method once, or once per value of --sweep KEY=V1,V2,... when it takes KEY.
std::vector<Column> make_columns(const ExplainArgs& a, const std::vector<std::string>& methods,
                                 const std::vector<explain::Params>& per_method, const explain::Params& all) {
  std::string key;
  std::vector<std::string> values;
  if (!a.sweep.empty()) {
    const size_t eq = a.sweep.find('=');
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument("--sweep '" + a.sweep + "': expected KEY=V1,V2,...");
    key = a.sweep.substr(0, eq);
    values = split_list(a.sweep.substr(eq + 1), "--sweep");
    if (values.empty()) throw std::invalid_argument("--sweep " + key + ": no values");
    if (values.size() > 64) throw std::invalid_argument("--sweep " + key + ": at most 64 values");
    if (all.count(key)) throw std::invalid_argument("--sweep " + key + " and --param " + key + " both given: use one");
  }
  std::vector<Column> cols;
  bool swept = false;
  for (size_t mi = 0; mi < methods.size(); ++mi) {
    const std::string& m = methods[mi];
    if (key.empty() || !accepted_keys(m, all).count(key)) {
      cols.push_back({m, m, m, per_method[mi], "", ""});
      continue;
    }
    swept = true;
    for (const std::string& v : values) {
      Column c{m, m + " " + key + "=" + v, m + "_" + safe_name(key + "-" + v), per_method[mi], "", ""};
      c.params[key] = v;
      cols.push_back(c);
    }
  }
  if (!key.empty() && !swept)
    throw std::invalid_argument("--sweep " + key + ": no selected method accepts it (see glassbox explain --list)");
  for (Column& c : cols) {  // a figure that stands alone says which settings made each column
    c.header = c.label;
    for (const auto& [k, v] : c.params)
      if (k != key) c.header += " " + k + "=" + v;
  }
  return cols;
}

void run_explain(const ExplainArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(explain::methods()).c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  const std::vector<std::string> methods = split_list(a.methods, "--method");
  if (methods.empty()) throw std::invalid_argument("--method is required (see glassbox explain --list)");
  for (auto& m : methods) explain::method_info(m);  // unknown names fail here, listing the known ones
  explain::Params all;
  std::vector<explain::Params> per_method = route_explain_params(a, methods, all);

  Model model = open_model(a.model);
  Graph& g = model.graph;
  Inputs in = read_inputs(model, a.inputs, a.data, a.index, a.split, a.input_space);
  if (!a.labels.empty()) read_input_labels(in, a.labels);
  const int N = in.x.batch();
  const Normalization norm = Normalization::of_model(model.metadata);
  std::vector<Column> columns = make_columns(a, methods, per_method, all);
  {
    std::vector<std::string> col_methods;
    std::vector<explain::Params> col_params;
    for (auto& c : columns) col_methods.push_back(c.method), col_params.push_back(c.params);
    const std::vector<std::string> given = resolve_baselines(col_methods, all, col_params, g, norm, a.input_space, in.x);
    for (size_t i = 0; i < columns.size(); ++i) columns[i].params = col_params[i], columns[i].baseline = given[i];
  }
  // A feature extractor (no [N, classes] output) is explained for a unit target (LAYER:C); a class
  // target refuses it in read_target.
  const Tensor logits = g.has_classes() ? all_logits(g, in, a.model) : Tensor();
  const Target target = read_target(a.target, g, in, logits);

  std::vector<std::string> names;
  for (auto& s : in.names) names.push_back(output_stem(s));
  check_inputs_survive(a.inputs, a.out, [&](const std::string& file) {  // NAME_COLUMN..., grid*.png, ...
    // grid.png, grid_2.png...: not grid.npy, an input it was refused for
    const bool grid = file.rfind("grid", 0) == 0 && file.size() >= 8 && file.compare(file.size() - 4, 4, ".png") == 0;
    bool written = file == "summary.json" || file == "correlations.csv" || grid;
    for (const std::string& n : names) written |= file.rfind(n + "_", 0) == 0;
    return written;
  });
  make_out_dir(a.out);
  for (const char* fixed : {"summary.json", "grid.png", "correlations.csv"})  // (a folder there failed after the work)
    check_replaceable(a.out + "/" + fixed);
  nlohmann::json summary;
  summary["model"] = a.model;
  summary["input_space"] = space_name(a.input_space);  // of .npy inputs and numeric baselines
  summary["methods"] = nlohmann::json::object();
  nlohmann::json per_image = image_entries(g, in, target, logits,
                                                g.has_classes() ? model_classes(model) : std::vector<std::string>());

  // Grid cells: the input first, then one heatmap per method.
  const bool images = g.input_shape().rank == 3;
  std::vector<std::vector<explain::Image>> cells(N);
  std::vector<Tensor> pixels;
  if (images)
    for (int n = 0; n < N; ++n) {
      pixels.push_back(display_pixels(in.x.slice(n, n + 1), norm));
      cells[n].push_back(explain::to_image(pixels[n]));
    }
  // Every column runs before any file is written: a method that fails (a CAM without a GAP head, a
  // probability for a unit) leaves --out as it was, not the earlier methods' files beside an older
  // summary.json.
  std::vector<ColumnRun> runs;
  for (const Column& c : columns) {
    const auto t0 = std::chrono::steady_clock::now();
    explain::Result r = explain::explain(g, in.x, target, c.method, c.params);
    r.attribution = r.attribution.clone();  // its own storage: the next method's run reuses the graph's
    check_finite_attribution(r.attribution, c.label, in.names, a.target);
    runs.push_back({std::move(r), seconds_since(t0)});
  }
  std::vector<std::string> labels, headers;
  std::vector<Tensor> maps;
  std::vector<bool> is_signed;
  for (size_t i = 0; i < columns.size(); ++i) {
    const Column& c = columns[i];
    maps.push_back(write_column(a, g, in, target, c, runs[i], names, pixels, summary, per_image, cells));
    labels.push_back(c.label);
    headers.push_back(c.header);
    is_signed.push_back(summary["methods"][c.label]["signed"].get<bool>());
  }
  write_correlations(a.out, labels, maps, summary, per_image);
  summary["images"] = per_image;
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
  if (images) write_grid(a.out + "/grid.png", a, g, headers, is_signed, per_image, cells);
  std::printf("wrote %d x %zu attributions, summary.json%s to %s\n", N, columns.size(), images ? " and grid.png" : "",
              a.out.c_str());
}

}  // namespace

void add_explain_command(Command& app) {
  auto a = std::make_shared<ExplainArgs>();
  auto* c = app.add_subcommand("explain", "Attributions (saliency, IG, LRP, CAM...) as .npy, heatmaps and a grid");
  c->add_flag("--list", a->list, "list the methods with their parameters, defaults and conventions");
  c->add_option("--model", a->model, "a model file, a preset or an architecture text");
  c->add_option("--input", a->inputs, "image files or .npy arrays N x C x H x W, pixels in [0, 1] (normalized as "
                                      "in training; see --input-space)");
  add_input_space_flag(c, &a->input_space);
  c->add_option("--data", a->data, "dataset spec (fashion-mnist, mnist:DIR, cifar10:DIR, ...)");
  c->add_option("--index", a->index, "dataset samples: I, I:J (half-open) or I,J,K")->capture_default_str();
  c->add_option("--split", a->split, "dataset split: train, test or all")->capture_default_str();
  c->add_option("--method", a->methods, "method name(s), comma-separated (see --list)");
  c->add_option("--target", a->target,
                "what to explain: pred, label, a class number, one class per input (9,2,1), or a unit of a layer: LAYER:C (channel C's mean), "
                "LAYER:C,Y,X (one unit) or LAYER:FILE.npy (the direction of a .npy shaped like the layer's output)")
      ->capture_default_str();
  c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable, each key once); goes to the methods "
                                      "that accept KEY");
  c->add_option("--sweep", a->sweep, "KEY=V1,V2,...: run each method that takes KEY once per value, a labelled "
                                     "column each (output names <input>_<method>_KEY-V)");
  c->add_option("--labels", a->labels, "labels of the --input rows (an integer .npy, in order), for --target label");
  c->add_option("--rule", a->rule, "LRP rule mapping for method lrp, e.g. conv=gamma:0.25,dense=epsilon:0.01,first=zbox:0:1 "
                                   "(= --param rule=...)");
  c->add_option("--stdev", a->stdev, "absolute noise sigma for smoothgrad, smoothgrad-sq, vargrad (= --param stdev=...)");
  c->add_option("--baseline", a->baseline, "IG/DeepLIFT/occlusion baseline: black (default), white, gray, mean (the "
                                           "training mean), blur[:SIGMA] (each input blurred, sigma 5 pixels), "
                                           "uniform:SEED, a number or FILE.npy, in --input-space (= --param baseline=...)");
  c->add_option("--out", a->out, "output folder");
  c->add_option("--colormap", a->colormap, "heatmap colors: bwr, gray or hot (default: bwr signed, hot unsigned)")
      ->check({[](std::string& name) -> std::string {  // before the work, not after it
                 uint8_t rgb[3];
                 try {
                   explain::colormap_rgb(name, 0.0, rgb);
                 } catch (const std::invalid_argument& e) {
                   return e.what();
                 }
                 return "";
               },
               "bwr|gray|hot"});
  c->add_option("--percentile", a->percentile,
                "scale heatmaps by this percentile of |a| (default: 100 for signed, 99.5 for unsigned maps)")
      ->check(finite(0, 100, true, false));
  c->add_option("--overlay", a->overlay, "blend heatmaps over the input with this alpha (0: no overlay)")
      ->check(finite(0, 1, false, false));
  c->callback([a, c] {
    refuse_index_with_inputs(*c, a->inputs, !a->data.empty());
    run_explain(*a);
  });
}

}  // namespace gb
