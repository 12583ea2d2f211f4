// glassbox distill / prune / importance / rules: the surrogates family (explain/surrogates) from
// the command line.
//   distill     trains a student (a preset, an architecture, a model file or soft-tree:DEPTH) on a
//               teacher's softened outputs through the training loop (train/fit.h), then reports
//               its test accuracy and fidelity; soft trees also get their JSON and figure.
//   prune       Abbasi-Asl & Yu's greedy filter pruning to a target accuracy drop; the pruned model
//               is a normal model file; the pruning curve and activation-maximization images of
//               kept and pruned filters (the visualize family's `am`).
//   importance  Garson, Olden (with the randomization test, retraining through train/fit.h),
//               Dimopoulos's partial derivatives, MIV, and the additive model's shape functions.
//   rules       Anchors and rule trees (CART fitted to the model's predictions).
// Every file is written atomically; a run that fails leaves earlier files as they were.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/architecture.h"
#include "engine/interpretable_layers.h"
#include "explain/visualize/visualize.h"
#include "explain/common/plot.h"
#include "explain/common/heatmap.h"
#include "explain/surrogates/distill.h"
#include "explain/surrogates/importance.h"
#include "explain/surrogates/pruning.h"
#include "explain/surrogates/rules.h"
#include "explain/surrogates/drawing.h"
#include "explain/surrogates/soft_tree.h"
#include "tools/figures.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "train/fit.h"
#include "train/presets.h"

namespace gb {

namespace {

namespace sg = explain::surrogates;
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

Model load_model_file(const std::string& path, const std::string& flag) {
  if (path.empty()) throw std::invalid_argument(flag + " is required");
  if (!fs::exists(path)) throw std::invalid_argument(flag + " '" + path + "': no such file");
  return open_model_file(path);
}

// --data, or else the dataset the model was trained on, or else Fashion-MNIST.
std::string data_spec(const std::string& given, const Model& m) {
  if (!given.empty()) return given;
  const std::string trained_on = model_dataset(m);
  return trained_on.empty() ? "fashion-mnist" : trained_on;
}

// A split's inputs in the model's input space.
Tensor model_inputs(const Dataset& d, const Model& m) {
  Tensor x = d.x.clone();
  normalize_for(m, x, d.name);
  return x;
}

// ---- distill -----------------------------------------------------------------------------------

struct DistillArgs {
  std::string teacher, student, data, out, optimizer = "adam", schedule = "cosine", resume;
  int epochs = 0, batch = 64, limit = 0, index = 0, levels = 4;
  float lr = -1, val = 0.1f;
  double temperature = 4, alpha = 0.9, penalty = 0.1, beta = 1;
  bool beta_given = false, quiet = false;
  std::string tree_flag_given;    // --penalty, --levels or --index, given: for soft-tree students only
  std::string figure_flag_given;  // --levels or --index, given: for the tree figure (an output tree's)
  uint64_t seed = 42;
};

// soft-tree:DEPTH as an architecture over the teacher's input: flattened images, then the tree.
std::string soft_tree_architecture(const std::string& spec, const Shape& input, int classes, double beta) {
  long depth = 0;
  if (!parse_number(spec.substr(std::string("soft-tree:").size()), depth) || depth < 1 || depth > SoftTree::kMaxDepth)
    throw std::invalid_argument("--student '" + spec + "': expected soft-tree:DEPTH with DEPTH in [1, " +
                                std::to_string(SoftTree::kMaxDepth) + "]");
  std::string dims;
  for (int d : input.vec()) dims += (dims.empty() ? "" : ",") + std::to_string(d);
  char b[64];
  std::snprintf(b, sizeof b, "softtree(%ld,%d,beta=%.9g)", depth, classes, beta);  // %g rounded to 6 digits
  return "input(" + dims + ") " + (input.rank > 1 ? "flatten " : "") + b;
}

Model make_student(const DistillArgs& a, const Model& teacher, const Shape& sample, int classes) {
  const bool tree = a.student.rfind("soft-tree:", 0) == 0;
  if (a.beta_given && !tree) throw std::invalid_argument("--beta is for soft-tree:DEPTH students");
  if (!(a.beta > 0) || !std::isfinite(a.beta) || !(float(a.beta) > 0) || !explain::float32_finite(a.beta))
    throw std::invalid_argument("--beta " + explain::exact_text(a.beta) + ": must be a number > 0 that float32 holds "
                                "(about 1.2e-38 to 3.4e38)");
  Model s{Graph(Shape{1}), {}};
  if (tree) {
    s.graph = graph_from_text(soft_tree_architecture(a.student, sample, classes, a.beta));
    s.graph.init(a.seed);
  } else if (is_preset(a.student)) {
    try {
      s.graph = make_preset(a.student, sample, classes, a.seed);
    } catch (const std::exception& e) {  // e.g. a convolutional preset for flat inputs
      throw std::invalid_argument("--student " + a.student + ": the preset cannot take the teacher's inputs " +
                                  sample.str() + " (" + e.what() + ")");
    }
  } else {
    s = open_model(a.student, a.seed, "--student");
  }
  if (s.graph.input_shape() != teacher.graph.input_shape())
    throw std::invalid_argument("--student takes " + s.graph.input_shape().str() + ", the teacher " +
                                teacher.graph.input_shape().str());
  if (s.graph.shape(s.graph.output()).rank != 2 || s.graph.classes() != teacher.graph.classes())
    throw std::invalid_argument("--student has output " + s.graph.shape(s.graph.output()).str() + ", the teacher [N," +
                                std::to_string(teacher.graph.classes()) + "]: distillation needs the same classes");
  auto norm = s.metadata.find("glassbox.normalize");
  auto tnorm = teacher.metadata.find("glassbox.normalize");
  const std::string teacher_norm = tnorm == teacher.metadata.end() ? "none" : tnorm->second;
  if (norm != s.metadata.end() && norm->second != teacher_norm)
    throw std::invalid_argument("--student '" + a.student + "' was trained with the normalization " + norm->second +
                                ", the teacher with " + teacher_norm + ": a student sees the teacher's inputs");
  return s;
}

// The default rate is 10x glassbox train's for toy2d and nam students on flat data (as train) and for soft trees (one
// layer of filters: on Fashion-MNIST a depth-8 tree reached 80.8% test accuracy after 3 epochs at
// 1e-2, 74.6% after 10 at 1e-3).
FitOptions distill_fit_options(const DistillArgs& a, const Model& teacher, bool toy) {
  FitOptions o;
  o.optimizer.kind = optimizer_kind(a.optimizer);
  const bool tree = a.student.rfind("soft-tree:", 0) == 0;
  o.optimizer.lr = a.lr > 0 ? a.lr : default_lr(o.optimizer.kind) * (toy || tree ? 10.f : 1.f);
  o.optimizer.weight_decay = default_weight_decay(o.optimizer.kind);
  o.schedule.kind = schedule_kind(a.schedule);
  o.epochs = a.epochs > 0 ? a.epochs : toy ? 30 : 10;
  o.batch = a.batch;
  o.seed = a.seed;
  o.val_fraction = a.val;
  o.out = a.out;
  o.inputs = {a.teacher, a.student};
  o.resume = a.resume;
  o.progress = a.quiet ? ProgressStyle::quiet : ProgressStyle::automatic;
  o.norm = Normalization::of_model(teacher.metadata);
  for (const char* key : {"glassbox.normalize", "glassbox.classes"})
    if (auto it = teacher.metadata.find(key); it != teacher.metadata.end()) o.metadata[key] = it->second;
  if (!o.metadata.count("glassbox.normalize")) o.metadata["glassbox.normalize"] = "none";
  o.metadata["glassbox.dataset"] = absolute_spec(a.data);  // the student's own data (commands default to it), not the teacher's
  const json settings = {{"teacher", a.teacher},     {"student", a.student}, {"temperature", a.temperature},
                         {"alpha", a.alpha},         {"penalty", a.penalty}, {"data", a.data},
                         {"limit", a.limit}};
  o.metadata["glassbox.distill"] = settings.dump();
  o.extra_config = settings;
  return o;
}

void run_distill(DistillArgs a) {
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.student.empty()) throw std::invalid_argument("--student is required");
  // Neither --out nor a file written beside it may be the teacher or a student model file (the
  // teacher next to --out as OUT.best.safetensors was replaced by the student's best epoch), and
  // the side files are checked before the training, not after it.
  check_train_outputs(a.out, a.epochs > 0 ? a.epochs : 30, 0, {a.teacher, a.student});
  for (const char* side : {".distill.json", ".tree.json", ".tree.png"}) check_replaceable(sibling_path(a.out, side));
  make_parent_dir(a.out);
  const sg::DistillSettings settings{a.temperature, a.alpha, a.penalty};
  sg::check(settings);
  Model teacher = load_model_file(a.teacher, "--teacher");
  a.data = data_spec(a.data, teacher);
  Dataset train = first_samples(load_dataset(a.data, "train"), a.limit);
  check_fits(teacher.graph, train, "--teacher");
  const Shape sample = train.x.shape().sample();
  Model student = make_student(a, teacher, sample, teacher.graph.classes());
  check_fits(student.graph, train, "--student");
  const int tree_node = sg::soft_tree_node(student.graph);
  const bool output_tree = tree_node >= 0 && tree_node == student.graph.output();  // its leaves are classes
  if (!a.tree_flag_given.empty() && tree_node < 0)  // (was accepted and had no effect)
    refuse_flag(a.tree_flag_given, "is for soft-tree students; --student " + a.student + " has no soft tree");
  if (!a.figure_flag_given.empty() && !output_tree)
    refuse_flag(a.figure_flag_given, "draws the tree figure, which only a soft tree that is the output layer has");
  // The test split is read (and its values checked) before training overwrites --out. A tree
  // student's figure shows its sample --index, so it is kept; other students read it again after
  // training, so that it does not add to the peak.
  Dataset test = load_dataset(a.data, "test");
  if (test.size() == 0)  // accuracy and fidelity over 0 images were nan% with exit 0
    throw std::invalid_argument("--data " + a.data + ": the test split is empty, so the student cannot be compared "
                                "with the teacher");
  if (output_tree) {
    if (a.index < 0 || a.index >= test.size())
      throw std::out_of_range("--index " + std::to_string(a.index) + " outside the test split's " +
                              std::to_string(test.size()) + " samples");
  } else {
    test = Dataset{};
  }

  // glassbox train's rule for its toy defaults, on the student (any flat data had them: a 6-feature
  // .npy set ran 30 epochs at 10x the rate train would use).
  FitOptions o = distill_fit_options(a, teacher, toy_defaults(a.student, sample));
  sg::DistillationLoss loss(settings);
  o.loss = [&](Graph& g, const Tensor& x, const std::vector<int>& y, const Tensor& logits, Tensor& grad) {
    const Tensor& t = teacher.graph.forward(x, Mode::eval);
    LossResult r = loss(logits, t, y, grad);
    r.loss += sg::add_tree_penalties(g, settings.penalty);
    return r;
  };
  if (!a.quiet)
    std::fprintf(stderr, "distilling %s into %s on %s (%d samples): T %g, alpha %g%s\n", a.teacher.c_str(),
                 a.student.c_str(), train.name.c_str(), train.size(), a.temperature, a.alpha,
                 sg::soft_tree_node(student.graph) >= 0 ? (", tree penalty " + std::to_string(a.penalty)).c_str() : "");
  const auto t0 = Clock::now();
  const FitResult fr = fit(student.graph, train, o);
  const double secs = seconds_since(t0);
  train = Dataset{};

  if (test.size() == 0) test = load_dataset(a.data, "test");
  const Tensor x = model_inputs(test, teacher);
  const sg::Agreement ag = sg::agreement(student.graph, teacher.graph, x, test.y);
  json report = {{"teacher", a.teacher},
                 {"student", a.student},
                 {"architecture", architecture_text(student.graph)},
                 {"data", a.data},
                 {"temperature", a.temperature},
                 {"alpha", a.alpha},
                 {"epochs", fr.history.empty() ? 0 : fr.history.back().epoch},
                 {"train_seconds", secs},
                 {"test", {{"n", ag.n},
                           {"student_accuracy", ag.student_accuracy},
                           {"teacher_accuracy", ag.teacher_accuracy},
                           {"fidelity", ag.fidelity}}}};
  std::printf("test: student accuracy %s, teacher accuracy %s, fidelity %s (%d images)\n",
              percent(ag.student_accuracy).c_str(), percent(ag.teacher_accuracy).c_str(), percent(ag.fidelity).c_str(), ag.n);
  if (tree_node >= 0 && !output_tree) {
    // Its leaves' outputs feed later layers: they are not the classes (a "path accuracy" compared
    // them with the labels all the same).
    report["penalty"] = a.penalty;
    std::printf("note: the soft tree %s is not the output layer; its leaves are not classes, so there is no "
                "maximum-probability path accuracy and no tree figure\n", student.graph.layer(tree_node).name.c_str());
  } else if (output_tree) {
    const auto& tree = static_cast<const SoftTree&>(student.graph.layer(tree_node));
    const sg::Routing r = sg::route(student.graph, tree_node, x);
    const std::vector<int> mp = sg::max_path_predictions(tree, r), tp = sg::predict(teacher.graph, x);
    int correct = 0, same = 0;
    for (int n = 0; n < ag.n; ++n) correct += mp[n] == test.y[n], same += mp[n] == tp[n];
    report["test"]["max_path_accuracy"] = double(correct) / ag.n;
    report["test"]["max_path_fidelity"] = double(same) / ag.n;
    report["penalty"] = a.penalty;
    report["beta"] = tree.beta;
    std::printf("test: maximum-probability path accuracy %s, fidelity %s\n", percent(double(correct) / ag.n).c_str(),
                percent(double(same) / ag.n).c_str());
    const std::vector<std::string> names = model_classes(student, test.class_names);
    atomic_write(sibling_path(a.out, ".tree.json"), sg::tree_json(tree, names, sample).dump() + "\n");
    const Shape shown = sample.rank == 3 ? sample : Shape{1, 1, sample[0]};
    write_image(sibling_path(a.out, ".tree.png"),
                sg::tree_figure(tree, sample, names, r, a.index, test.x.sample(a.index).reshaped(shown), a.levels));
    std::printf("tree: %s, figure %s (test sample %d)\n", sibling_path(a.out, ".tree.json").c_str(),
                sibling_path(a.out, ".tree.png").c_str(), a.index);
  }
  atomic_write(sibling_path(a.out, ".distill.json"), report.dump(2) + "\n");
  std::printf("saved %s (report: %s)\n", a.out.c_str(), sibling_path(a.out, ".distill.json").c_str());
}

void add_distill_command(Command& app) {
  auto a = std::make_shared<DistillArgs>();
  auto* c = app.add_subcommand("distill",
                               "Knowledge distillation: train a student (preset, architecture, model file or "
                               "soft-tree:DEPTH) on a teacher's softened outputs; test accuracy and fidelity");
  const double inf = HUGE_VAL;
  c->add_option("--teacher", a->teacher, "the teacher's model file")->required();
  c->add_option("--student", a->student,
                "a preset (lenet5, mlp, ...), an architecture text, a model file, or soft-tree:DEPTH (Frosst & "
                "Hinton's soft decision tree over the flattened input, DEPTH 1..12)")
      ->required();
  c->add_option("--data", a->data, "dataset spec (default: the teacher's own dataset)");
  c->add_option("--temperature", a->temperature, "T of the soft targets softmax(z/T); the soft term is scaled by T^2")
      ->capture_default_str()
      ->check(finite(0, 1000, true, false));
  c->add_option("--alpha", a->alpha, "weight of the soft term; 1 - alpha weighs the labels' cross-entropy")
      ->capture_default_str()
      ->check(finite(0, 1, false, false));
  c->add_option("--penalty", a->penalty, "soft trees: lambda of the balancing penalty (2^-depth per node)")
      ->capture_default_str()
      ->check(finite(0, inf, false, true));
  c->add_option("--beta", a->beta, "soft trees: the inverse temperature beta of the inner nodes' sigmoids (default 1)")
      ->check(finite(0, inf, true, true));
  c->add_option("--epochs", a->epochs, "epochs (default: 10; 30 for toy2d students, and nam on flat data, as glassbox train)")->check(at_least(1));
  c->add_option("--batch", a->batch, "mini-batch size")->capture_default_str()->check(at_least(1));
  c->add_option("--optimizer", a->optimizer, "sgd, adam or adamw")->capture_default_str();
  c->add_option("--lr", a->lr, "learning rate (default: 1e-3 for adam, 0.01 for sgd; 10x for toy2d students, nam on flat data and soft-tree students)")
      ->check(finite(0, inf, true, true));
  c->add_option("--schedule", a->schedule, "constant, step or cosine")->capture_default_str();
  c->add_option("--seed", a->seed, "seed for the student's initialization, validation split and shuffling")
      ->capture_default_str();
  c->add_option("--limit", a->limit, "use only the first N training samples (0: all)")->check(at_least(0));
  c->add_option("--val", a->val, "fraction of the training set held out for validation")
      ->capture_default_str()
      ->check(finite(0, 1, false, true));
  c->add_option("--resume", a->resume, "continue from a checkpoint (OUT.ckpt.safetensors); same settings");
  c->add_option("--index", a->index, "soft trees: the test sample whose path the figure highlights")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--levels", a->levels, "soft trees: inner levels drawn in the figure's overview (1..6)")
      ->capture_default_str()
      ->check(in_range(1, 6));
  c->add_flag("--quiet", a->quiet, "no progress output");
  c->add_option("--out", a->out,
                "the student's model file (.safetensors); .best/.ckpt/.log.jsonl, .distill.json (and for trees "
                ".tree.json, .tree.png) beside it")
      ->required();
  c->callback([a, c] {
    a->beta_given = c->count("--beta") > 0;
    for (const char* flag : {"--penalty", "--levels", "--index"})
      if (c->count(flag)) a->tree_flag_given = flag;
    for (const char* flag : {"--levels", "--index"})
      if (c->count(flag)) a->figure_flag_given = flag;
    run_distill(*a);
  });
}

// ---- prune ---------------------------------------------------------------------------------------

struct PruneArgs {
  std::string model, data, layers, out;
  double max_drop = 0.01;
  int rerank = 0, val_limit = 2000, test_limit = 0, am = 8, am_steps = 128, limit = 0;
  float val = 0.1f;
  uint64_t seed = 42;
};

// Progress of long loops on stderr: the finished stages, and every tenth of the way.
std::function<void(const std::string&, int, int)> stage_printer() {
  auto last = std::make_shared<std::pair<std::string, int>>("", -1);
  return [last](const std::string& stage, int done, int total) {
    const int tenth = total > 0 ? done * 10 / total : 10;
    if (stage == last->first && tenth == last->second) return;
    *last = {stage, tenth};
    std::fprintf(stderr, "  %s: %d/%d\n", stage.c_str(), done, total);
  };
}

// Pixel 0 and pixel 1 of each channel through the model's normalization.
visualize::Bounds pixel_bounds(const Model& m) {
  const Normalization norm = Normalization::of_model(m.metadata);
  visualize::Bounds b;
  for (int c = 0; c < m.graph.input_shape()[0]; ++c) {
    const float mean = norm.empty() ? 0.f : norm.mean[size_t(c) % norm.mean.size()];
    const float sd = norm.empty() ? 1.f : norm.std[size_t(c) % norm.std.size()];
    b.lo.push_back(-mean / sd);
    b.hi.push_back((1 - mean) / sd);
  }
  return b;
}

// The samples of the training split that `glassbox train --seed S --val F --limit N` held out for
// validation (the first val_limit of them), in the model's input space.
sg::LabelledSet validation_set(const PruneArgs& a, const Model& m, const std::string& spec) {
  const Dataset train = first_samples(load_dataset(spec, "train"), a.limit);
  check_fits(m.graph, train);
  std::vector<int> rest, val;
  validation_split(train.size(), a.seed, a.val, rest, val);
  if (val.empty()) throw std::invalid_argument("--val " + std::to_string(a.val) + " holds out no samples");
  if (a.val_limit > 0 && int(val.size()) > a.val_limit) val.resize(a.val_limit);
  const Dataset v = take(train, val);
  return {model_inputs(v, m), v.y};
}

json prune_report(const PruneArgs& a, const Graph& g, const sg::PruneResult& r, double test_before, double test_after) {
  auto entry = [&](const sg::Filter& f, const char* key, double v) {
    return json{{"layer", g.layer(f.node).name}, {"filter", f.index}, {key, v}};
  };
  json drops = json::array(), steps = json::array(), layers = json::object();
  for (size_t c = 0; c < r.filters.size(); ++c) drops.push_back(entry(r.filters[c], "drop", r.drop[c]));
  for (const sg::PruneStep& s : r.steps) {
    json e = entry(s.filter, "drop", s.drop);
    e["val_accuracy"] = s.accuracy;
    if (std::isfinite(s.curve_accuracy)) e["test_accuracy"] = s.curve_accuracy;
    steps.push_back(e);
  }
  for (const sg::Filter& f : r.filters) {
    json& l = layers[g.layer(f.node).name];
    if (l.is_null()) l = {{"filters", 0}, {"pruned", 0}};
    l["filters"] = l["filters"].get<int>() + 1;
  }
  for (const sg::PruneStep& s : r.steps) {
    json& l = layers[g.layer(s.filter.node).name];
    l["pruned"] = l["pruned"].get<int>() + 1;
  }
  json report = {{"model", a.model},           {"data", a.data},
                 {"max_drop", a.max_drop},     {"rerank", a.rerank},
                 {"validation", {{"seed", a.seed}, {"fraction", a.val}, {"limit", a.limit}, {"n", 0}}},
                 {"base_val_accuracy", r.base_accuracy},
                 {"final_val_accuracy", r.final_accuracy()},
                 {"val_drop", r.base_accuracy - r.final_accuracy()},
                 {"test_accuracy_before", test_before},
                 {"test_accuracy_after", test_after},
                 {"pruned", r.steps.size()},   {"candidates", r.filters.size()},
                 {"evaluations", r.evaluations}, {"layers", layers},
                 {"drops", drops},             {"steps", steps}};
  if (r.stopped_at.node >= 0)
    report["stopped_at"] = entry(r.stopped_at, "val_accuracy", r.stopped_accuracy);
  return report;
}

void write_prune_curve(const PruneArgs& a, const sg::PruneResult& r, const std::string& model_name) {
  explain::Series val{"validation", {0}, {r.base_accuracy}, {}}, test{"test", {0}, {r.base_curve_accuracy}, {}};
  for (size_t k = 0; k < r.steps.size(); ++k) {
    val.x.push_back(double(k + 1)), val.y.push_back(r.steps[k].accuracy);
    test.x.push_back(double(k + 1)), test.y.push_back(r.steps[k].curve_accuracy);
  }
  explain::PlotOptions o;
  o.title = model_name + ": greedy filter pruning";
  o.xlabel = "filters removed (of " + std::to_string(r.filters.size()) + ")";
  o.ylabel = "accuracy";
  o.hlines = {r.base_accuracy - a.max_drop};
  o.hline_labels = {"max drop"};  // the validation accuracy pruning may not go below
  std::vector<explain::Series> series = {val};
  if (std::isfinite(r.base_curve_accuracy)) series.push_back(test);
  write_image(sibling_path(a.out, ".prune.png"), explain::plot_image(series, o));
  atomic_write(sibling_path(a.out, ".prune.svg"), explain::plot_svg(series, o));
}

void run_prune(PruneArgs a) {
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (fs::exists(a.out) && fs::equivalent(a.out, a.model))
    throw std::invalid_argument("--out '" + a.out + "' is the --model file: write the pruned model elsewhere");
  check_model_output(a.out, "--out '" + a.out + "'");  // before the work: a folder or text file is not replaced
  for (const char* side : {".prune.json", ".prune.png", ".prune.svg", ".prune_am.png"})  // (checked after it)
    check_replaceable(sibling_path(a.out, side));
  make_parent_dir(a.out);
  Model m = load_model_file(a.model, "--model");
  const Model original{clone(m.graph), m.metadata};
  a.data = data_spec(a.data, m);
  sg::PruneOptions o;
  o.layers = sg::prunable_layers(m.graph, a.layers);
  o.max_drop = a.max_drop;
  o.rerank = a.rerank;
  o.progress = stage_printer();
  const sg::LabelledSet val = validation_set(a, m, a.data);
  Dataset test = first_samples(load_dataset(a.data, "test"), a.test_limit);
  check_fits(m.graph, test);
  const sg::LabelledSet test_set{model_inputs(test, m), test.y};
  o.curve = &test_set;
  std::fprintf(stderr, "pruning %s on %d validation samples of %s (max drop %g)\n", a.model.c_str(), val.x.batch(),
               a.data.c_str(), a.max_drop);
  const sg::PruneResult r = sg::prune_filters(m.graph, val, o);
  const double test_before = r.base_curve_accuracy, test_after = r.steps.empty() ? test_before : r.steps.back().curve_accuracy;

  Metadata meta = m.metadata;
  meta.erase("train.run");  // no training run wrote the pruned model (its epoch files are not its history)
  meta.erase("train.epoch");
  meta["glassbox.pruned"] = json{{"from", a.model}, {"filters", r.steps.size()}, {"max_drop", a.max_drop}}.dump();
  json report = prune_report(a, m.graph, r, test_before, test_after);
  report["validation"]["n"] = val.x.batch();
  save_model(a.out, m.graph, meta);
  atomic_write(sibling_path(a.out, ".prune.json"), report.dump(2) + "\n");
  write_prune_curve(a, r, fs::path(a.model).filename().string());
  std::printf("pruned %zu of %zu filters: validation accuracy %s -> %s, test accuracy %s -> %s (%d evaluations)\n",
              r.steps.size(), r.filters.size(), percent(r.base_accuracy).c_str(), percent(r.final_accuracy()).c_str(),
              percent(test_before).c_str(), percent(test_after).c_str(), r.evaluations);
  if (a.am > 0 && original.graph.input_shape().rank == 3) {
    Graph g = clone(original.graph);
    const explain::Params am{{"steps", std::to_string(a.am_steps)}};
    write_image(sibling_path(a.out, ".prune_am.png"), sg::kept_vs_pruned(g, r, pixel_bounds(original), a.am, am));
  }
  std::printf("saved %s (report %s, curve %s)\n", a.out.c_str(), sibling_path(a.out, ".prune.json").c_str(),
              sibling_path(a.out, ".prune.png").c_str());
}

void add_prune_command(Command& app) {
  auto a = std::make_shared<PruneArgs>();
  auto* c = app.add_subcommand("prune",
                               "Greedy filter pruning (Abbasi-Asl & Yu): each filter's accuracy drop when masked, "
                               "filters removed cheapest first until the target drop; the pruned model as a model file");
  c->add_option("--model", a->model, "model file")->required();
  c->add_option("--data", a->data, "dataset spec (default: the model's own dataset)");
  c->add_option("--layers", a->layers, "layers whose filters may go: conv or dense layer names, comma-separated "
                                       "(default: every conv layer)");
  c->add_option("--max-drop", a->max_drop, "stop before validation accuracy falls more than this below the start")
      ->capture_default_str()
      ->check(finite(0, 1, false, false));
  c->add_option("--rerank", a->rerank, "re-measure every remaining filter after this many removals (1: Abbasi-Asl & "
                                       "Yu's greedy, quadratic; 0: measure once)")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--seed", a->seed, "the training run's seed: its held-out validation samples are the validation set")
      ->capture_default_str();
  c->add_option("--val", a->val, "the training run's held-out fraction (glassbox train --val)")
      ->capture_default_str()
      ->check(finite(0, 1, true, true));
  c->add_option("--limit", a->limit, "the training run's --limit (glassbox train --limit N trained on the first N "
                                     "samples and held out its validation samples among them; 0: all)")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--val-limit", a->val_limit, "at most this many validation samples (0: all; bounds the run time)")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--test-limit", a->test_limit, "the pruning curve's test samples (0: the whole test split)")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--am", a->am, "kept and pruned filters per layer drawn by activation maximization (0: no figure)")
      ->capture_default_str()
      ->check(in_range(0, 32));
  c->add_option("--am-steps", a->am_steps, "activation-maximization steps per image")
      ->capture_default_str()
      ->check(in_range(1, 10000));
  c->add_option("--out", a->out, "the pruned model file; .prune.json, .prune.png/.svg (curve), .prune_am.png beside it")
      ->required();
  c->callback([a] { run_prune(*a); });
}

// ---- importance ----------------------------------------------------------------------------------

struct ImportanceArgs {
  std::string model, data, split = "test", methods, out, optimizer = "adam";
  std::vector<std::string> params;
  int limit = 1000, train_limit = 0, epochs = 0, batch = 64;
  float lr = -1;
  bool list = false;
  std::string retrain_flag_given;  // --epochs, --lr, --optimizer, --batch or --train-limit, given
};

// --param KEY=VALUE to each chosen method that declares KEY; a key no chosen method declares is an
// error. Unknown methods and keys fail here, before any data is read.
std::vector<explain::Params> route_checked_params(const std::vector<std::string>& given,
                                                  const std::vector<std::string>& methods,
                                                  const std::function<const explain::MethodInfo&(const std::string&)>& info,
                                                  const std::string& see) {
  std::vector<explain::Params> out = route_params(
      given, methods, [&](const std::string& m) -> const auto& { return info(m).params; }, "method", see);
  for (size_t m = 0; m < methods.size(); ++m) explain::ParamReader(out[m], info(methods[m]));
  return out;
}

// Olden's randomization test retrains fresh copies of the model on the training split with shuffled
// labels, as glassbox train would (Adam, cosine schedule, the model's normalization), quietly.
std::function<void(Graph&, const std::vector<int>&, uint64_t)> retrainer(const ImportanceArgs& a, const Model& m,
                                                                         std::shared_ptr<Dataset> train,
                                                                         const std::string& spec) {
  // The model file does not say how it was trained: the toy: sets (a few steps per epoch) get 10x
  // the rate and 30 epochs, as glassbox train gives the toy2d model on them; other data (flat
  // .npy sets included, which had them too) glassbox train's 10 epochs.
  const bool toy = spec.rfind("toy:", 0) == 0;
  return [&a, &m, train, toy](Graph& fresh, const std::vector<int>& labels, uint64_t seed) {
    FitOptions o;
    o.optimizer.kind = optimizer_kind(a.optimizer);
    o.optimizer.lr = a.lr > 0 ? a.lr : default_lr(o.optimizer.kind) * (toy ? 10.f : 1.f);
    o.optimizer.weight_decay = default_weight_decay(o.optimizer.kind);
    o.epochs = a.epochs > 0 ? a.epochs : toy ? 30 : 10;
    o.batch = a.batch;
    o.seed = seed;
    o.val_fraction = 0;
    o.norm = Normalization::of_model(m.metadata);
    o.progress = ProgressStyle::quiet;
    Dataset shuffled = *train;
    shuffled.y = labels;
    fit(fresh, shuffled, o);
  };
}

std::string feature_name(const Shape& fs, int j) {
  if (fs.rank != 3) return "x" + std::to_string(j);
  const int hw = fs[1] * fs[2];
  return (fs[0] > 1 ? "c" + std::to_string(j / hw) + "," : "") + "y" + std::to_string(j % hw / fs[2]) + ",x" +
         std::to_string(j % fs[2]);
}

// One map ([C,H,W] values, channels reduced) drawn with a fixed scale: "bwr" for signed values
// (white at 0, saturating at ±scale), "hot" for magnitudes (0..scale).
explain::Image scaled_map(const float* v, const Shape& fs, bool is_signed, double scale) {
  const int F = int(fs.numel());
  const std::vector<float> m = explain::reduce_channels(Tensor::from(fs, std::vector<float>(v, v + F)), is_signed);
  explain::Image im(fs[2], fs[1]);
  for (int i = 0; i < fs[1] * fs[2]; ++i) {
    const double t = scale > 0 ? m[i] / scale : 0;
    explain::colormap_rgb(is_signed ? "bwr" : "hot", is_signed ? std::clamp(t, -1.0, 1.0) : std::clamp(t, 0.0, 1.0),
                          im.px(i % fs[2], i / fs[2]));
  }
  return im;
}

// Maps (image-shaped features): the overall importance and each class's, one row; with p-values
// a second row of −log10 p. The class maps of a row share one scale (so classes compare), the
// overall column has its own; each scale gets a colorbar on the right.
explain::Image importance_maps(const sg::Importance& r, const std::vector<std::string>& classes, bool is_signed,
                               const std::string& method) {
  const Shape fs = r.feature_shape;
  const int K = r.per_class.dim(0), F = r.per_class.dim(1);
  auto scale_of = [](const float* v, size_t n, bool is_signed_map) {
    const std::vector<float> all(v, v + n);
    return std::max(explain::abs_percentile(all, is_signed_map ? 100 : 99.5), 1e-30);
  };
  struct Bar {
    std::string colormap, caption;
    double lo, hi;
  };
  std::vector<std::vector<explain::Image>> rows(1);
  std::vector<Bar> bars;
  std::vector<std::string> columns = {"overall"}, captions = {method + ": " + r.meaning};
  const double overall_scale = scale_of(r.overall.data(), F, false);
  const double class_scale = scale_of(r.per_class.data(), size_t(K) * F, is_signed);
  rows[0].push_back(scaled_map(r.overall.data(), fs, false, overall_scale));
  bars.push_back({"hot", "overall", 0, overall_scale});
  for (int k = 0; k < K; ++k) {
    rows[0].push_back(scaled_map(r.per_class.data() + size_t(k) * F, fs, is_signed, class_scale));
    columns.push_back(k < int(classes.size()) ? classes[k] : std::to_string(k));
  }
  bars.push_back({is_signed ? "bwr" : "hot", "per class", is_signed ? -class_scale : 0, class_scale});
  if (!r.p_values.empty()) {
    std::vector<float> logp(r.p_values.size());
    for (size_t i = 0; i < logp.size(); ++i) logp[i] = float(-std::log10(r.p_values[i]));
    const double top = *std::max_element(logp.begin(), logp.end());
    rows.emplace_back();
    rows[1].push_back(scaled_map(logp.data() + size_t(K) * F, fs, false, top));
    for (int k = 0; k < K; ++k) rows[1].push_back(scaled_map(logp.data() + size_t(k) * F, fs, false, top));
    captions.push_back("-log10 p of the randomization test (same scale in every column)");
    bars.push_back({"hot", "-log10 p", 0, top});
  }
  const int scale = std::max(1, 112 / std::max(1, fs[2]));
  const explain::Image g = explain::grid(rows, columns, captions, fs[2] * scale, fs[1] * scale);
  std::vector<explain::Image> cbs;
  int extra = 0;
  for (const Bar& b : bars) {
    cbs.push_back(explain::colorbar_image(b.colormap, b.lo, b.hi, std::max(120, fs[1] * scale), b.caption));
    extra += cbs.back().w + 8;
  }
  explain::Image im(g.w + extra, std::max(g.h, cbs[0].h + 30));
  sg::paste(im, g, 0, 0);
  int x = g.w;
  for (const explain::Image& cb : cbs) sg::paste(im, cb, x, 24), x += cb.w + 8;
  return im;
}

// The features in decreasing overall importance (ties in feature order), at most `k`.
std::vector<int> most_important(const sg::Importance& r, int k) {
  std::vector<int> order(r.overall.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return r.overall[a] > r.overall[b]; });
  order.resize(std::min(order.size(), size_t(k)));
  return order;
}

// Bars (flat features): one series per class over the features, at most the 40 most important (in
// feature order): the chart's width grows with features x classes, and 1000 features made a
// 400,000-pixel-wide image. The .npy files hold every feature.
constexpr int kMaxBarFeatures = 40;
explain::Image importance_bars(const sg::Importance& r, const std::vector<std::string>& classes, const std::string& method) {
  const int K = r.per_class.dim(0), all = r.per_class.dim(1);
  std::vector<int> shown = most_important(r, kMaxBarFeatures);
  std::sort(shown.begin(), shown.end());
  const int F = int(shown.size());
  std::vector<explain::Series> series;
  for (int k = 0; k < K; ++k) {
    explain::Series s;
    s.label = k < int(classes.size()) ? classes[k] : std::to_string(k);
    for (int j : shown) s.y.push_back(r.per_class[size_t(k) * all + j]);
    series.push_back(std::move(s));
  }
  explain::PlotOptions o;
  o.kind = explain::PlotKind::bars;
  o.title = method + ": " + r.meaning;
  if (all > F) o.title += " (the " + std::to_string(F) + " most important of " + std::to_string(all) + " features)";
  o.ylabel = method;
  o.text_scale = explain::kLabelScale;
  for (int j : shown) {
    std::string c = feature_name(r.feature_shape, j);
    if (!r.p_values.empty()) {
      char b[32];
      std::snprintf(b, sizeof b, " p=%.3g", r.p_values[size_t(K) * all + j]);
      c += b;
    }
    o.categories.push_back(c);
  }
  o.width = std::min(std::max(640, 56 * F * std::max(1, K / 2)), 8000);
  return explain::plot_image(series, o);
}

// The additive model's shape functions: one plot per feature (the 12 most important), each
// class's f_j a line, and the classes' legend once, over the panels.
explain::Image shape_function_plots(const sg::Importance& r, const std::vector<std::string>& classes) {
  const Tensor& grid = r.extra.at("grid");
  const Tensor& shape = r.extra.at("shape");
  const int P = grid.dim(1), K = shape.dim(2);
  const std::vector<int> order = most_important(r, 12);
  const int per_row = std::min(3, int(order.size()));
  std::vector<explain::Series> legend(static_cast<size_t>(K));
  for (int k = 0; k < K; ++k) legend[size_t(k)].label = k < int(classes.size()) ? classes[k] : std::to_string(k);
  std::vector<explain::Image> plots;
  int w = 0, h = 0;  // the largest plot
  for (size_t i = 0; i < order.size(); ++i) {
    const int j = order[i];
    std::vector<explain::Series> series;
    for (int k = 0; k < K; ++k) {
      explain::Series s;  // unlabelled: the legend is drawn once
      for (int p = 0; p < P; ++p)
        s.x.push_back(grid[size_t(j) * P + p]), s.y.push_back(shape[(size_t(j) * P + p) * K + k]);
      series.push_back(std::move(s));
    }
    explain::PlotOptions o;
    char b[96];
    std::snprintf(b, sizeof b, "f_%d (%s), importance %.3g", j, feature_name(r.feature_shape, j).c_str(), r.overall[j]);
    o.title = b;
    o.xlabel = "feature value (model input space)";
    o.ylabel = "contribution to logit";
    o.width = 480, o.height = 340, o.text_scale = explain::kLabelScale;
    plots.push_back(explain::plot_image(series, o));
    w = std::max(w, plots.back().w), h = std::max(h, plots.back().h);
  }
  const explain::Image key = explain::legend_image(legend, explain::PlotKind::line, per_row * w, explain::kLabelScale);
  explain::Image im(per_row * w, key.h + int((order.size() + per_row - 1) / per_row) * h);
  sg::paste(im, key, 0, 0);
  for (size_t i = 0; i < plots.size(); ++i) sg::paste(im, plots[i], int(i % per_row) * w, key.h + int(i / per_row) * h);
  return im;
}

void write_importance(const ImportanceArgs& a, const std::string& method, const sg::Importance& r,
                      const std::vector<std::string>& classes, json& summary) {
  const int K = r.per_class.dim(0), F = r.per_class.dim(1);
  const std::string stem = a.out + "/" + method;
  std::vector<int> dims = {K};
  for (int d : r.feature_shape.vec()) dims.push_back(d);
  write_npy(stem + ".npy", r.per_class.reshaped(Shape::of(dims)));
  write_npy(stem + "_overall.npy", r.overall.reshaped(r.feature_shape));
  if (!r.p_values.empty()) write_npy(stem + "_p.npy", r.p_values);
  for (const auto& [name, t] : r.extra) write_npy(stem + "_" + name + ".npy", t);
  const bool is_signed = method != "garson" && method != "dimopoulos" && method != "nam";
  write_image(stem + ".png", r.feature_shape.rank == 3 ? importance_maps(r, classes, is_signed, method)
                                                        : importance_bars(r, classes, method));
  if (method == "nam") write_image(stem + "_shapes.png", shape_function_plots(r, classes));
  std::vector<int> order(F);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return r.overall[x] > r.overall[y]; });
  json top = json::array();
  std::printf("%s (%s): most important features:", method.c_str(), r.meaning.c_str());
  for (int i = 0; i < std::min(F, 10); ++i) {
    const int j = order[i];
    json e = {{"feature", j}, {"name", feature_name(r.feature_shape, j)}, {"overall", r.overall[j]}};
    if (!r.p_values.empty()) e["p"] = r.p_values[size_t(K) * F + j];
    top.push_back(e);
    std::printf(" %s %.3g%s", feature_name(r.feature_shape, j).c_str(), r.overall[j], i + 1 < std::min(F, 10) ? "," : "\n");
  }
  for (const std::string& note : r.notes) std::printf("  note: %s\n", note.c_str());
  json entry = {{"meaning", r.meaning}, {"top", top}, {"info", r.info}};
  if (!r.notes.empty()) entry["notes"] = r.notes;
  if (F <= 64) {
    entry["per_class"] = json::array();
    for (int k = 0; k < K; ++k)
      entry["per_class"].push_back(std::vector<float>(r.per_class.data() + size_t(k) * F, r.per_class.data() + size_t(k + 1) * F));
    if (!r.p_values.empty()) entry["p"] = std::vector<float>(r.p_values.data(), r.p_values.data() + r.p_values.size());
  }
  summary[method] = entry;
}

void run_importance(const ImportanceArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(sg::importance_methods()).c_str(), stdout);
    return;
  }
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.methods.empty()) throw std::invalid_argument("--method is required (see glassbox importance --list)");
  const std::vector<std::string> methods = split_list(a.methods, "--method");
  for (const std::string& m : methods) sg::importance_method(m);
  const std::vector<explain::Params> params = route_checked_params(a.params, methods, sg::importance_method, "glassbox importance --list");
  Model m = load_model_file(a.model, "--model");
  bool retrains = false, averages = false;
  for (size_t i = 0; i < methods.size(); ++i) {
    retrains |= methods[i] == "olden" && params[i].count("rounds");
    averages |= sg::importance_needs_data(methods[i]);
  }
  if (!retrains && !a.retrain_flag_given.empty())  // (accepted, and nothing trained)
    refuse_flag(a.retrain_flag_given, "sets Olden's retraining, which runs only with --method olden --param rounds=R");
  // Garson and Olden read the weights alone: without --data no data is read for them (a model
  // saved from Python, which names no dataset, failed on the default one). Given, it is read for its
  // class names and checked as before.
  const std::string spec = averages || retrains || !a.data.empty() ? data_spec(a.data, m) : "";
  Dataset d;
  sg::ImportanceRequest q;
  if (averages || !a.data.empty()) {
    d = first_samples(load_dataset(spec, a.split), a.limit);
    check_fits(m.graph, d);
    q.x = model_inputs(d, m);
  }
  const Normalization norm = Normalization::of_model(m.metadata);
  for (size_t c = 0; c < norm.mean.size(); ++c) q.raw_shift.push_back(norm.mean[c] / norm.std[c]);
  q.progress = stage_printer();
  auto train = std::make_shared<Dataset>();
  if (retrains) {
    *train = first_samples(load_dataset(spec, "train"), a.train_limit);
    q.labels = train->y;
    q.retrain = retrainer(a, m, train, spec);
  }
  // Every method runs before anything is written: a later one that fails (nam on a model without
  // groupsum) leaves --out as it was, not the earlier ones' files without a summary.
  std::vector<sg::Importance> results;
  std::vector<double> seconds;
  for (size_t i = 0; i < methods.size(); ++i) {
    const auto t0 = Clock::now();
    results.push_back(sg::importance(m.graph, q, methods[i], params[i]));
    seconds.push_back(seconds_since(t0));
  }
  make_out_dir(a.out);
  const std::vector<std::string> classes = model_classes(m, d.class_names);
  json summary = {{"model", a.model}, {"data", spec}, {"split", a.split}, {"samples", d.size()}};
  for (size_t i = 0; i < methods.size(); ++i) {
    write_importance(a, methods[i], results[i], classes, summary);
    summary[methods[i]]["seconds"] = seconds[i];
  }
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
  std::printf("wrote %s/{<method>.npy,.png,summary.json}\n", a.out.c_str());
}

void add_importance_command(Command& app) {
  auto a = std::make_shared<ImportanceArgs>();
  auto* c = app.add_subcommand("importance",
                               "Input importance of MLPs and additive models: Garson, Olden (randomization test), "
                               "Dimopoulos's partial derivatives, MIV, an additive model's shape functions");
  c->add_flag("--list", a->list, "list the methods with their parameters, defaults and conventions");
  c->add_option("--model", a->model, "model file");
  c->add_option("--method", a->methods, "methods, comma-separated (see --list)");
  c->add_option("--data", a->data, "dataset spec (default: the model's own dataset)");
  c->add_option("--split", a->split, "the split dimopoulos, miv and nam average over")->capture_default_str();
  c->add_option("--limit", a->limit, "at most this many samples of the split (0: all)")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable; see --list)");
  c->add_option("--train-limit", a->train_limit, "olden's retraining: the first N training samples (0: all)")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--epochs", a->epochs, "olden's retraining: epochs per network (default as glassbox train: 10, 30 on "
                                       "the toy: sets)")
      ->check(at_least(1));
  c->add_option("--batch", a->batch, "olden's retraining: mini-batch size")->capture_default_str()->check(at_least(1));
  c->add_option("--optimizer", a->optimizer, "olden's retraining: sgd, adam or adamw")->capture_default_str();
  c->add_option("--lr", a->lr, "olden's retraining: learning rate (default as glassbox train)")
      ->check(finite(0, HUGE_VAL, true, true));
  c->add_option("--out", a->out, "output folder");
  c->callback([a, c] {
    for (const char* flag : {"--epochs", "--lr", "--optimizer", "--batch", "--train-limit"})
      if (c->count(flag)) a->retrain_flag_given = flag;
    run_importance(*a);
  });
}

// ---- rules ---------------------------------------------------------------------------------------

struct RulesArgs {
  std::string model, data, index, split = "test", methods, out;
  std::vector<std::string> inputs, params;
  int limit = 5000, test_limit = 2000;
  bool list = false;
  InputSpace input_space = InputSpace::pixels;
};

void run_rules(const RulesArgs& a) {
  if (a.list) {
    std::fputs(explain::list_text(sg::rule_methods()).c_str(), stdout);
    return;
  }
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.methods.empty()) throw std::invalid_argument("--method is required (see glassbox rules --list)");
  const std::vector<std::string> methods = split_list(a.methods, "--method");
  for (const std::string& m : methods) sg::rule_method(m);
  const std::vector<explain::Params> params = route_checked_params(a.params, methods, sg::rule_method, "glassbox rules --list");
  const bool anchors = std::find(methods.begin(), methods.end(), "anchors") != methods.end();
  if (!anchors && (!a.inputs.empty() || !a.index.empty()))  // (accepted, and nothing read them)
    throw std::invalid_argument(std::string(a.inputs.empty() ? "--index" : "--input") +
                                ": picks the inputs anchors explains; the tree is fitted on --data alone");
  Model m = load_model_file(a.model, "--model");
  const std::string spec = data_spec(a.data, m);
  sg::RulesRequest q;
  if (!a.inputs.empty() || !a.index.empty()) {
    const Inputs in = read_inputs(m, a.inputs, a.inputs.empty() || !a.index.empty() ? spec : "", a.index, a.split, a.input_space);
    q.inputs = in.x;
    for (const std::string& n : in.names) q.input_names.push_back(safe_name(n));
  }
  const Normalization norm = Normalization::of_model(m.metadata);
  q.raw_scale = norm.std;
  q.raw_shift = norm.mean;
  const bool tree = std::find(methods.begin(), methods.end(), "tree") != methods.end();
  const bool flat_anchors = m.graph.input_shape().rank == 1;
  Dataset train;
  if (tree || flat_anchors) {
    train = first_samples(load_dataset(spec, "train"), a.limit);
    check_fits(m.graph, train);
    q.data = model_inputs(train, m);
  }
  if (tree) {
    const Dataset test = first_samples(load_dataset(spec, "test"), a.test_limit);
    check_fits(m.graph, test);
    q.test = model_inputs(test, m);
  }
  q.class_names = model_classes(m, tree || flat_anchors ? train.class_names : std::vector<std::string>{});
  // Every method runs before anything is written: a later one that fails (a bad parameter found
  // when it runs) left the earlier one's files rewritten beside the last run's summary.json.
  std::vector<std::vector<sg::RuleSet>> results;
  std::vector<double> seconds;
  for (size_t i = 0; i < methods.size(); ++i) {
    const auto t0 = Clock::now();
    results.push_back(sg::rules(m.graph, q, methods[i], params[i]));
    seconds.push_back(seconds_since(t0));
  }
  make_out_dir(a.out);
  json summary = {{"model", a.model}, {"data", spec}};
  for (size_t i = 0; i < methods.size(); ++i) {
    const std::vector<sg::RuleSet>& sets = results[i];
    json entries = json::array();
    for (const sg::RuleSet& r : sets) {
      const std::string stem = a.out + "/" + r.name + "_" + methods[i];
      json d = r.details;
      d["rules"] = r.rules;
      atomic_write(stem + ".json", d.dump(2) + "\n");
      for (const auto& [name, t] : r.arrays) write_npy(stem + "_" + name + ".npy", t);
      if (r.figure.w) write_image(stem + ".png", r.figure);
      std::printf("%s %s:\n", methods[i].c_str(), r.name.c_str());
      for (const std::string& rule : r.rules) std::printf("  %s\n", rule.c_str());
      entries.push_back({{"name", r.name}, {"rules", r.rules}});
    }
    summary[methods[i]] = {{"results", entries}, {"seconds", seconds[i]}};
  }
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
}

void add_rules_command(Command& app) {
  auto a = std::make_shared<RulesArgs>();
  auto* c = app.add_subcommand("rules",
                               "Rules that explain a model: Anchors for inputs (superpixels or feature ranges), a CART "
                               "rule tree fitted to its predictions with its fidelity");
  c->add_flag("--list", a->list, "list the methods with their parameters, defaults and conventions");
  c->add_option("--model", a->model, "model file");
  c->add_option("--method", a->methods, "anchors, tree, or both comma-separated");
  c->add_option("--data", a->data, "dataset spec (default: the model's own dataset): inputs with --index, and the "
                                   "training split the tree is fitted on (anchors on flat features perturb with it)");
  c->add_option("--index", a->index, "inputs to explain (anchors): I, I:J or I,J,K of --split");
  c->add_option("--input", a->inputs, "or image files / .npy arrays (pixels; see --input-space)");
  add_input_space_flag(c, &a->input_space);
  c->add_option("--split", a->split, "split of --index")->capture_default_str();
  c->add_option("--limit", a->limit, "training samples the tree is fitted on / anchors perturb with (0: all)")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--test-limit", a->test_limit, "test samples the tree's held-out fidelity is measured on (0: all)")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--param", a->params, "method parameter KEY=VALUE (repeatable; see --list)");
  c->add_option("--out", a->out, "output folder");
  c->callback([a] { run_rules(*a); });
}

void add_surrogates_commands(Command& app) {
  add_distill_command(app);
  add_prune_command(app);
  add_importance_command(app);
  add_rules_command(app);
}

}  // namespace

static const RegisterCommand registered_surrogates_cmd("surrogates", add_surrogates_commands);

}  // namespace gb
