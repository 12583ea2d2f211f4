// glassbox evaluate: metrics of explanations (faithfulness, complexity, robustness, randomisation,
// axioms, localisation) for a few methods over a set of inputs. Writes metrics.json (every
// per-sample value, curve and mean), metrics.csv, curve plots, the sanity-check grids, and prints a
// table; `--list` prints every metric with its parameters, defaults and Quantus/Captum name.
//
// --param k=v goes to every selected metric that declares k; --method-param k=v to every selected
// explanation method that accepts k (as glassbox explain's --param). A key nobody takes is an error.
// The label-random model of data-randomisation is loaded (--label-random-model) or trained here
// on shuffled training labels with glassbox train's defaults (explain/ never depends on train/).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/architecture.h"
#include "explain/attribution/explain.h"
#include "explain/common/heatmap.h"
#include "explain/common/plot.h"
#include "explain/metrics/metrics.h"
#include "tools/figures.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "train/fit.h"

namespace gb {

namespace {

struct EvaluateArgs {
  std::string model, data, index = "0:8", split = "test", methods, metrics, target = "label", out, masks, labels;
  std::string label_random_model, baseline;
  std::vector<std::string> inputs, params, method_params;
  int label_random_epochs = 3, grid_inputs = 4;
  bool label_random_epochs_given = false, grid_inputs_given = false;
  bool list = false;
  InputSpace input_space = InputSpace::pixels;
};

// The metrics a name on the command line stands for: a metric; `sanity` (Adebayo et al.'s two
// cascades); a family (the tag --list shows: faithfulness, robustness, ...) as family:NAME, or as NAME
// where no metric has that name (`complexity` is a metric; its family is family:complexity). The
// families come from the registry: a hand-kept list ran 5 of the 9 faithfulness metrics.
std::vector<std::string> metrics_named(const std::string& name) {
  if (name == "sanity") return {"cascading-randomisation", "independent-randomisation"};
  const auto& all = metrics::all_metrics();
  const bool is_metric = std::any_of(all.begin(), all.end(), [&](const auto& m) { return metrics::name_of(m) == name; });
  if (is_metric) return {name};
  const std::string family = name.rfind("family:", 0) == 0 ? name.substr(7) : name;
  std::vector<std::string> out;
  for (const auto& m : all)
    if (m.family == family) out.push_back(metrics::name_of(m));
  return out.empty() ? std::vector<std::string>{name} : out;  // an unknown name fails at metric_info
}

std::vector<std::string> metric_names(const std::string& spec) {
  std::vector<std::string> out;
  for (const std::string& name : split_list(spec, "--metric")) {
    for (const std::string& m : metrics_named(name)) {
      metrics::metric_info(m);  // an unknown name fails here, listing the known ones
      if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
    }
  }
  if (out.empty()) throw std::invalid_argument("--metric is required (see glassbox evaluate --list)");
  return out;
}

// Progress of long runs on stderr, at most once a second per metric and method.
metrics::Progress progress_line(const std::string& what) {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [what, last](long done, long total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - *last < std::chrono::seconds(1)) return;
    *last = now;
    std::fprintf(stderr, "  %s: %ld/%ld (%.0f%%)\n", what.c_str(), done, total, 100.0 * double(done) / double(total));
  };
}

// The model trained on shuffled labels (Adebayo et al.'s data randomisation): loaded, or trained
// with glassbox train's defaults on the training split of --data and saved in the output folder.
Model label_random_model(const EvaluateArgs& a, const Model& model) {
  if (!a.label_random_model.empty()) {
    Model m = [&] {
      try {
        return open_model(a.label_random_model);
      } catch (const std::exception& e) {
        throw std::invalid_argument(std::string("--label-random-model: ") + e.what());
      }
    }();
    if (!(Normalization::of_model(m.metadata) == Normalization::of_model(model.metadata)))
      throw std::invalid_argument("--label-random-model " + a.label_random_model + ": its input normalization differs "
                                  "from --model's, so the same inputs cannot go to both");
    return m;
  }
  if (a.data.empty())
    throw std::invalid_argument("data-randomisation: give --label-random-model FILE, or --data to train one");
  Dataset train = load_dataset(a.data, "train");
  if (train.size() == 0) throw std::invalid_argument("data-randomisation: --data " + a.data + " has no training samples");
  if (std::all_of(train.y.begin(), train.y.end(), [&](int v) { return v == train.y[0]; }))
    throw std::invalid_argument("data-randomisation: --data " + a.data + " has one class, so shuffling its labels "
                                "changes nothing");
  Rng rng(42);
  shuffle_order(train.y, rng);  // the labels, not the images: a permutation keeps the class counts
  Model m{gb::clone(model.graph), model.metadata};
  m.graph.init(42);
  FitOptions o;
  o.epochs = a.label_random_epochs;
  o.optimizer.kind = OptimizerKind::adam;
  o.optimizer.lr = 1e-3f;
  o.norm = Normalization::of_model(model.metadata);
  o.metadata = model.metadata;
  o.out = a.out + "/label-random.safetensors";
  std::fprintf(stderr, "training %s on shuffled labels of %s for %d epoch(s) (data-randomisation)\n", a.model.c_str(),
               a.data.c_str(), o.epochs);
  fit(m.graph, train, o);
  return m;
}

// Masks for localisation: [N,1,H,W] or shaped like the inputs, nonzero inside.
Tensor read_masks(const std::string& path, const Tensor& x) {
  Tensor m = read_npy_f32(path);
  if (m.rank() == 3 && x.rank() == 4) m = m.reshaped(Shape{m.dim(0), 1, m.dim(1), m.dim(2)});  // [N,H,W]
  const bool one_channel = x.rank() == 4 && m.rank() == 4 && m.dim(0) == x.dim(0) && m.dim(1) == 1 &&
                           m.dim(2) == x.dim(2) && m.dim(3) == x.dim(3);
  if (m.shape() != x.shape() && !one_channel)
    throw ShapeError("--masks " + path + ": " + m.shape().str() + " for the inputs " + x.shape().str() +
                     " (expected [N,1,H,W], [N,H,W] or the inputs' shape)");
  for (size_t i = 0; i < m.size(); ++i)
    if (!std::isfinite(m[i])) throw std::invalid_argument("--masks " + path + ": not finite at element " + std::to_string(i));
  std::string empty;  // inputs whose mask is all zero: the localisation metrics are NaN there (METHODS.md)
  for (int n = 0; n < m.batch(); ++n) {
    const float* p = m.data() + size_t(n) * m.sample_size();
    if (std::all_of(p, p + m.sample_size(), [](float v) { return v == 0; })) empty += (empty.empty() ? "" : ", ") + std::to_string(n);
  }
  if (!empty.empty())
    std::printf("note: --masks %s: the masks of inputs %s are empty; localisation metrics are undefined (null) there\n",
                path.c_str(), empty.c_str());
  return m;
}

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

nlohmann::json values_json(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double e : v) a.push_back(finite_or_null(e));
  return a;
}

// One metric × method result: per-sample values, their mean, extras and curves (per sample and mean).
nlohmann::json result_json(const metrics::Evaluation& e, double seconds) {
  nlohmann::json j = {{"mean", finite_or_null(metrics::finite_mean(e.values))}, {"values", values_json(e.values)},
                      {"time_s", seconds}};
  for (auto& [k, v] : e.extra) j["extra"][k] = {{"mean", finite_or_null(metrics::finite_mean(v))}, {"values", values_json(v)}};
  for (const metrics::Curve& c : e.curves) {
    nlohmann::json cj = {{"name", c.name}, {"x_label", c.x_label}, {"y_label", c.y_label}, {"x", c.x}, {"log_x", c.log_x}};
    if (!c.ticks.empty()) cj["ticks"] = c.ticks;
    nlohmann::json per = nlohmann::json::array(), mean = nlohmann::json::array();
    for (size_t k = 0; k < c.x.size(); ++k) {
      std::vector<double> col;
      for (auto& y : c.y) col.push_back(y[k]);
      mean.push_back(finite_or_null(metrics::finite_mean(col)));
    }
    for (auto& y : c.y) per.push_back(values_json(y));
    cj["mean"] = mean;
    cj["values"] = per;
    j["curves"].push_back(cj);
  }
  return j;
}

std::string number(double v) {
  if (!std::isfinite(v)) return "nan";
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

// metrics.csv: one row per metric, method, input and quantity ("value" or an extra's name).
void csv_rows(std::ostringstream& csv, const std::string& metric, const std::string& method,
              const metrics::Evaluation& e, const Inputs& in) {
  auto rows = [&](const std::string& quantity, const std::vector<double>& v) {
    for (size_t n = 0; n < v.size(); ++n)
      csv << csv_field(metric) << ',' << csv_field(method) << ',' << n << ',' << csv_field(in.names[n]) << ','
          << csv_field(quantity) << ',' << number(v[n]) << '\n';
  };
  rows("value", e.values);
  for (auto& [k, v] : e.extra) rows(k, v);
}

// The sanity-check figure of a randomisation metric (Adebayo et al. Fig. 2): rows of (input,
// method), the input then the explanation at each stage, each map |a| scaled on its own.
void write_stage_grid(const std::string& path, const std::vector<std::string>& methods,
                      const std::vector<metrics::Evaluation>& evals, const Inputs& in, const Normalization& norm,
                      int grid_inputs) {
  const Shape sample = in.x.shape().sample();
  if (sample.rank != 3 || evals.empty() || evals[0].stages.empty()) return;
  const int rows = std::min(grid_inputs, in.x.batch());
  std::vector<std::vector<explain::Image>> cells;
  std::vector<std::string> captions;
  explain::HeatmapOptions o;
  o.is_signed = false;
  o.colormap = "gray";
  for (int n = 0; n < rows; ++n)
    for (size_t mi = 0; mi < methods.size(); ++mi) {
      std::vector<explain::Image> row = {explain::to_image(display_pixels(in.x.slice(n, n + 1), norm))};
      for (const Tensor& a : evals[mi].stage_attributions)
        row.push_back(explain::heatmap(a.slice(n, n + 1).reshaped(sample), o));
      cells.push_back(row);
      captions.push_back(in.names[n] + ": " + methods[mi]);
    }
  std::vector<std::string> columns = {"input"};
  for (const std::string& s : evals[0].stages)
    columns.push_back(s == "original" ? s : evals[0].stage_prefix + s);
  const int scale = std::max(1, (112 + sample[2] - 1) / sample[2]);
  write_grid_pages(path, cells, columns, captions, sample[2] * scale, sample[1] * scale,
                   {explain::colorbar_image("gray", 0, 1, 220, "|a| / p99.5(|a|)")});
}

// Lower-case letters, digits and '-' (file names of curves).
std::string file_stem(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c))
      o += char(std::tolower(c));
    else if (!o.empty() && o.back() != '-')
      o += '-';
  }
  while (!o.empty() && o.back() == '-') o.pop_back();
  return o;
}

// One figure per curve of a metric: the mean over the inputs for each method, as lines over the
// curve's abscissa, or as grouped bars (± the standard error over inputs) over named stages.
void write_curve_plots(const std::string& dir, const std::string& metric, const std::vector<std::string>& methods,
                       const std::vector<metrics::Evaluation>& evals) {
  for (size_t ci = 0; ci < evals[0].curves.size(); ++ci) {
    const metrics::Curve& first = evals[0].curves[ci];
    const bool stages = !first.ticks.empty();
    std::vector<explain::Series> series;
    for (size_t mi = 0; mi < methods.size(); ++mi) {
      const metrics::Curve& c = evals[mi].curves[ci];
      explain::Series s;
      s.label = methods[mi];
      if (!stages)
        for (double v : c.x) s.x.push_back(c.log_x ? std::log10(v) : v);
      for (size_t k = 0; k < c.x.size(); ++k) {
        std::vector<double> col;
        for (const auto& y : c.y) col.push_back(y[k]);
        const double m = metrics::finite_mean(col);
        s.y.push_back(m);
        if (!stages) continue;
        double ss = 0;
        int n = 0;
        for (double v : col)
          if (std::isfinite(v)) ss += (v - m) * (v - m), ++n;
        s.err.push_back(n > 1 ? std::sqrt(ss / (n - 1) / n) : 0.0);
      }
      series.push_back(std::move(s));
    }
    explain::PlotOptions o;
    const bool named = evals[0].curves.size() > 1 || first.name != metric;
    o.title = named && first.name.rfind(metric, 0) != 0 ? metric + ": " + first.name : first.name;
    o.xlabel = (first.log_x ? "log10 " + first.x_label : first.x_label) + " (" + (stages ? "mean ± s.e., " : "mean, ") +
               std::to_string(first.y.size()) + " inputs)";
    o.ylabel = first.y_label;
    if (stages) {
      o.kind = explain::PlotKind::bars;
      o.categories = first.ticks;
      o.width = std::max(640, 110 * int(first.ticks.size()));
    }
    const std::string stem = dir + "/curve_" + file_stem(metric) +
                             (evals[0].curves.size() > 1 ? "_" + file_stem(first.name) : "");
    atomic_write(stem + ".svg", explain::plot_svg(series, o));
    write_image(stem + ".png", explain::plot_image(series, o));
  }
}

// The printed table: one row per metric, one column of means per method, each column as wide as
// the longest method name (14 at least), so no name is cut.
void print_metrics_table(const std::vector<std::string>& names, const std::vector<std::string>& methods,
                 const nlohmann::json& results) {
  int w = 14;
  for (auto& m : methods) w = std::max(w, int(m.size()));
  std::printf("\n%-28s %-7s", "metric (mean over inputs)", "better");
  for (auto& m : methods) std::printf(" %*s", w, m.c_str());
  std::printf("\n");
  for (const std::string& name : names) {
    std::printf("%-28s %-7s", name.c_str(), results[name].value("better", "").c_str());
    for (auto& m : methods) {
      const nlohmann::json& r = results[name]["methods"][m];
      if (r.is_null() || !r.contains("mean") || r["mean"].is_null())
        std::printf(" %*s", w, "-");
      else
        std::printf(" %*.6g", w, r["mean"].get<double>());
    }
    std::printf("\n");
  }
}

void run_evaluate(const EvaluateArgs& a) {
  if (a.list) {
    std::fputs(metrics::list_text().c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  const std::vector<std::string> names = metric_names(a.metrics);
  const std::vector<std::string> methods = split_list(a.methods, "--method");
  if (methods.empty()) throw std::invalid_argument("--method is required (see glassbox explain --list)");
  for (auto& m : methods) explain::method_info(m);
  const std::vector<explain::Params> metric_params = route_params(
      a.params, names, [](const std::string& m) -> const auto& { return metrics::metric_info(m).declaration.params; },
      "metric", "glassbox evaluate --list; method parameters go in --method-param");
  bool masks_used = false;
  for (const std::string& m : names) {
    masks_used |= metrics::metric_info(m).needs_masks;
    if (metrics::metric_info(m).needs_masks && a.masks.empty())
      throw std::invalid_argument(m + " needs masks: --masks FILE.npy ([N,1,H,W], [N,H,W] or shaped like the inputs)");
  }
  if (!a.masks.empty() && !masks_used)  // (they were read and ignored)
    throw std::invalid_argument("--masks: only the localisation metrics use masks, and --metric names none of them");
  std::vector<std::string> method_kv = a.method_params;
  if (!a.baseline.empty()) method_kv.push_back("baseline=" + a.baseline);
  explain::Params all;
  std::vector<explain::Params> method_params =
      route_method_params(method_kv, methods, all, "--method-param", "glassbox explain --list", "",
                          a.baseline.empty() ? std::map<std::string, std::string>{}
                                             : std::map<std::string, std::string>{{"baseline", "--baseline"}});

  const bool data_random = std::find(names.begin(), names.end(), "data-randomisation") != names.end();
  if (!data_random && !a.label_random_model.empty())
    throw std::invalid_argument("--label-random-model: only --metric data-randomisation uses it");
  // Flags no chosen metric reads are refused, as --masks and --label-random-model are (they were ignored).
  if (a.label_random_epochs_given && (!data_random || !a.label_random_model.empty()))
    throw std::invalid_argument("--label-random-epochs: only data-randomisation reads it, when it trains its model "
                                "(no --label-random-model)");
  const bool grids = std::any_of(names.begin(), names.end(), [](const std::string& n) {
    return n.size() > 14 && n.compare(n.size() - 14, 14, "-randomisation") == 0;
  });
  if (a.grid_inputs_given && !grids)
    throw std::invalid_argument("--grid-inputs: only the randomisation metrics (cascading-, independent-, "
                                "data-randomisation) draw grids");
  // With --input files, --data only trains data-randomisation's model; its samples are not inputs.
  if (!a.inputs.empty() && !a.data.empty() && (!data_random || !a.label_random_model.empty()))
    throw std::invalid_argument("--data with --input: the inputs are the --input files, and --data would be read only "
                                "to train data-randomisation's label-random model, which " +
                                std::string(data_random ? "--label-random-model gives" : "no chosen metric needs"));

  Model model = open_model(a.model);
  Graph& g = model.graph;
  Inputs in = read_inputs(model, a.inputs, a.inputs.empty() ? a.data : "", a.index, a.split, a.input_space);
  if (!a.labels.empty()) read_input_labels(in, a.labels);
  const int N = in.x.batch();
  const Normalization norm = Normalization::of_model(model.metadata);
  resolve_baselines(methods, all, method_params, g, norm, a.input_space, in.x);
  Tensor logits(Shape{N, g.classes()});
  for (int b = 0; b < N; b += 256) {
    const Tensor& y = g.forward(in.x.slice(b, std::min(N, b + 256)));
    std::copy(y.data(), y.data() + y.size(), logits.data() + size_t(b) * g.classes());
  }
  const Target target = read_target(a.target, g, in, logits);
  Tensor masks;
  metrics::Context ctx;
  if (!a.masks.empty()) {
    masks = read_masks(a.masks, in.x);
    ctx.masks = &masks;
  }
  make_out_dir(a.out);
  std::unique_ptr<Model> shuffled;
  if (data_random) {
    shuffled = std::make_unique<Model>(label_random_model(a, model));
    ctx.label_random_model = &shuffled->graph;
  }

  nlohmann::json out = {{"model", a.model}, {"input_space", space_name(a.input_space)}, {"target", a.target}, {"metrics", nlohmann::json::object()}};
  for (int n = 0; n < N; ++n) out["inputs"].push_back({{"name", in.names[n]}, {"label", in.labels[n]}, {"target", target.describe(g, n)}});
  for (size_t mi = 0; mi < methods.size(); ++mi) {
    nlohmann::json pj(static_cast<const std::map<std::string, std::string>&>(method_params[mi]));
    for (auto& [k, t] : method_params[mi].tensors) pj[k] = "tensor " + t.shape().str();
    out["methods"][methods[mi]] = pj;
  }
  std::ostringstream csv;
  csv << "metric,method,index,input,quantity,value\n";
  // Each method's explanation of the inputs, computed once for every metric (Quantus's a_batch).
  std::vector<metrics::Explanation> explanations;
  for (size_t mi = 0; mi < methods.size(); ++mi) {
    metrics::Explanation e{methods[mi], method_params[mi], {}};
    e.attribution = metrics::input_attribution(g, in.x, target, e.method, e.params);
    explanations.push_back(std::move(e));
  }
  for (size_t k = 0; k < names.size(); ++k) {
    const metrics::MetricInfo& info = metrics::metric_info(names[k]);
    nlohmann::json& mj = out["metrics"][names[k]];
    mj = {{"family", info.family},
          {"better", metrics::better_name(metrics::better_for(info, metric_params[k]))},
          {"params", nlohmann::json(static_cast<const std::map<std::string, std::string>&>(metric_params[k]))},
          {"convention", info.declaration.convention}};
    std::vector<metrics::Evaluation> evals;
    std::vector<std::string> evaluated;  // the methods the metric applies to, in evals' order
    for (size_t mi = 0; mi < methods.size(); ++mi) {
      ctx.progress = progress_line(names[k] + " / " + methods[mi]);
      const auto t0 = std::chrono::steady_clock::now();
      try {
        evals.push_back(metrics::evaluate(g, in.x, target, explanations[mi], names[k], metric_params[k], ctx));
      } catch (const metrics::NotApplicable& e) {  // recorded and reported; a bad value stops the run
        std::printf("%-26s %-24s skipped: %s\n", names[k].c_str(), methods[mi].c_str(), e.what());
        mj["methods"][methods[mi]] = {{"skipped", e.what()}};
        continue;
      }
      const double secs = seconds_since(t0);
      std::printf("%-26s %-24s %d inputs in %.2f s\n", names[k].c_str(), methods[mi].c_str(), N, secs);
      std::fflush(stdout);
      mj["methods"][methods[mi]] = result_json(evals.back(), secs);
      csv_rows(csv, names[k], methods[mi], evals.back(), in);
      evaluated.push_back(methods[mi]);
    }
    if (!evals.empty()) {
      write_curve_plots(a.out, names[k], evaluated, evals);
      if (!evals[0].stage_attributions.empty())
        write_stage_grid(a.out + "/grid_" + names[k] + ".png", evaluated, evals, in, norm, a.grid_inputs);
    }
    // Written after every metric, so a later failure keeps what is done.
    atomic_write(a.out + "/metrics.json", out.dump(1) + "\n");
    atomic_write(a.out + "/metrics.csv", csv.str());
  }
  print_metrics_table(names, methods, out["metrics"]);
  std::printf("wrote metrics.json, metrics.csv and figures to %s\n", a.out.c_str());
}

}  // namespace

void add_metrics_commands(Command& app) {
  auto a = std::make_shared<EvaluateArgs>();
  auto* c = app.add_subcommand("evaluate", "Metrics of explanations: faithfulness, robustness, randomisation (sanity "
                                           "checks), complexity, axioms, localisation");
  c->add_flag("--list", a->list, "list the metrics with their parameters, defaults and Quantus/Captum names");
  c->add_option("--model", a->model, "a model file, a preset or an architecture text");
  c->add_option("--input", a->inputs, "image files or .npy arrays N x C x H x W, pixels in [0, 1] (normalized as in training; see --input-space)");
  add_input_space_flag(c, &a->input_space);
  c->add_option("--labels", a->labels, "labels of the --input rows (an integer .npy, in order), for --target label");
  c->add_option("--data", a->data, "dataset spec (fashion-mnist, mnist:DIR, cifar10:DIR, ...)");
  c->add_option("--index", a->index, "dataset samples: I, I:J (half-open) or I,J,K")->capture_default_str();
  c->add_option("--split", a->split, "dataset split: train, test or all")->capture_default_str();
  c->add_option("--method", a->methods, "explanation method(s), comma-separated (see glassbox explain --list)");
  c->add_option("--metric", a->metrics, "metric(s), comma-separated (see --list); sanity = cascading- and "
                                        "independent-randomisation; a family (faithfulness, robustness, randomisation, "
                                        "axiomatic, localisation, family:complexity) names all of its metrics");
  c->add_option("--target", a->target, "what is explained: label, pred, a class number, LAYER:C, LAYER:C,Y,X or "
                                       "LAYER:FILE.npy (as glassbox explain)")
      ->capture_default_str();
  c->add_option("--param", a->params, "metric parameter KEY=VALUE (repeatable); goes to the metrics that declare KEY");
  c->add_option("--method-param", a->method_params,
                "explanation-method parameter KEY=VALUE (repeatable); goes to the methods that accept KEY");
  c->add_option("--baseline", a->baseline, "IG/DeepLIFT baseline: black (default), white, gray, mean, blur[:SIGMA], uniform:SEED, a number or FILE.npy "
                                           "(= --method-param baseline=...)");
  c->add_option("--masks", a->masks, "localisation masks .npy: [N,1,H,W], [N,H,W] or shaped like the inputs; nonzero = inside");
  c->add_option("--label-random-model", a->label_random_model,
                "data-randomisation: the model trained on shuffled labels (default: train one on --data)");
  c->add_option("--label-random-epochs", a->label_random_epochs, "epochs when training the label-random model")
      ->capture_default_str()
      ->check(at_least(1));
  c->add_option("--grid-inputs", a->grid_inputs, "inputs shown in the sanity-check grids")
      ->capture_default_str()
      ->check(at_least(1));
  c->add_option("--out", a->out, "output folder");
  c->callback([a, c] {
    refuse_index_with_inputs(*c, a->inputs, !a->data.empty());
    a->label_random_epochs_given = c->count("--label-random-epochs") > 0;
    a->grid_inputs_given = c->count("--grid-inputs") > 0;
    run_evaluate(*a);
  });
}

static const RegisterCommand registered_metrics_cmd("metrics", add_metrics_commands);

}  // namespace gb
