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
#include "explain/surrogates/distill.h"
#include "explain/surrogates/soft_tree.h"
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

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string pct(double v) {
  char b[16];
  std::snprintf(b, sizeof b, "%.2f%%", 100 * v);
  return b;
}

void write_image(const std::string& path, const explain::Image& im) { write_png(path, im.w, im.h, 3, im.rgb.data()); }

Model load_model_file(const std::string& path, const std::string& flag) {
  if (path.empty()) throw std::invalid_argument(flag + " is required");
  if (!fs::exists(path)) throw std::invalid_argument(flag + " '" + path + "': no such file");
  return load_model(path);
}

std::vector<std::string> class_names(const Model& m, const Dataset* d) {
  std::vector<std::string> names = d ? d->class_names : std::vector<std::string>{};
  if (auto it = m.metadata.find("glassbox.classes"); it != m.metadata.end()) {
    try {
      names = json::parse(it->second).get<std::vector<std::string>>();
    } catch (const std::exception&) {
    }
  }
  for (int k = int(names.size()); k < m.graph.classes(); ++k) names.push_back(std::to_string(k));
  return names;
}

// --data, or else the dataset the model was trained on, or else Fashion-MNIST.
std::string data_spec(const std::string& given, const Model& m) {
  if (!given.empty()) return given;
  auto it = m.metadata.find("glassbox.dataset");
  return it == m.metadata.end() ? "fashion-mnist" : it->second;
}

Dataset first_samples(Dataset d, int limit) {
  if (limit <= 0 || limit >= d.size()) return d;
  std::vector<int> first(limit);
  std::iota(first.begin(), first.end(), 0);
  return take(d, first);
}

// A split's inputs in the model's input space.
Tensor model_inputs(const Dataset& d, const Model& m) {
  Tensor x = d.x.clone();
  const Normalization norm = Normalization::of_model(m.metadata);
  if (!norm.empty()) norm.apply(x);
  return x;
}

// ---- distill -----------------------------------------------------------------------------------

struct DistillArgs {
  std::string teacher, student, data, out, optimizer = "adam", schedule = "cosine", resume;
  int epochs = 0, batch = 64, limit = 0, index = 0, levels = 4;
  float lr = -1, val = 0.1f;
  double temperature = 4, alpha = 0.9, penalty = 0.1, beta = 1;
  bool beta_given = false, quiet = false;
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
  std::snprintf(b, sizeof b, "softtree(%ld,%d,beta=%g)", depth, classes, beta);
  return "input(" + dims + ") " + (input.rank > 1 ? "flatten " : "") + b;
}

Model make_student(const DistillArgs& a, const Model& teacher, const Shape& sample, int classes) {
  const bool tree = a.student.rfind("soft-tree:", 0) == 0;
  if (a.beta_given && !tree) throw std::invalid_argument("--beta is for soft-tree:DEPTH students");
  if (!(a.beta > 0) || !std::isfinite(a.beta)) throw std::invalid_argument("--beta must be a finite number > 0");
  Model s{Graph(Shape{1}), {}};
  if (tree) {
    s.graph = graph_from_json(parse_architecture(soft_tree_architecture(a.student, sample, classes, a.beta)));
    s.graph.init(a.seed);
  } else if (is_preset(a.student)) {
    s.graph = make_preset(a.student, sample, classes, a.seed);
  } else {
    s = open_model(a.student, a.seed);
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

FitOptions distill_fit_options(const DistillArgs& a, const Model& teacher, bool toy) {
  FitOptions o;
  o.optimizer.kind = optimizer_kind(a.optimizer);
  o.optimizer.lr = a.lr > 0 ? a.lr : default_lr(o.optimizer.kind) * (toy ? 10.f : 1.f);
  o.optimizer.weight_decay = default_weight_decay(o.optimizer.kind);
  o.schedule.kind = schedule_kind(a.schedule);
  o.epochs = a.epochs > 0 ? a.epochs : toy ? 30 : 10;
  o.batch = a.batch;
  o.seed = a.seed;
  o.val_fraction = a.val;
  o.out = a.out;
  o.resume = a.resume;
  o.progress = a.quiet ? ProgressStyle::quiet : ProgressStyle::automatic;
  o.norm = Normalization::of_model(teacher.metadata);
  for (const char* key : {"glassbox.normalize", "glassbox.classes", "glassbox.dataset"})
    if (auto it = teacher.metadata.find(key); it != teacher.metadata.end()) o.metadata[key] = it->second;
  if (!o.metadata.count("glassbox.normalize")) o.metadata["glassbox.normalize"] = "none";
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
  const sg::DistillSettings settings{a.temperature, a.alpha, a.penalty};
  sg::check(settings);
  Model teacher = load_model_file(a.teacher, "--teacher");
  a.data = data_spec(a.data, teacher);
  Dataset train = first_samples(load_dataset(a.data, "train"), a.limit);
  check_fits(teacher.graph, train);
  const Shape sample = train.x.shape().sample();
  Model student = make_student(a, teacher, sample, teacher.graph.classes());
  check_fits(student.graph, train);

  FitOptions o = distill_fit_options(a, teacher, sample.rank == 1);
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

  Dataset test = load_dataset(a.data, "test");
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
              pct(ag.student_accuracy).c_str(), pct(ag.teacher_accuracy).c_str(), pct(ag.fidelity).c_str(), ag.n);
  if (const int tn = sg::soft_tree_node(student.graph); tn >= 0) {
    const auto& tree = static_cast<const SoftTree&>(student.graph.layer(tn));
    const sg::Routing r = sg::route(student.graph, tn, x);
    const std::vector<int> mp = sg::max_path_predictions(tree, r), tp = sg::predict(teacher.graph, x);
    int correct = 0, same = 0;
    for (int n = 0; n < ag.n; ++n) correct += mp[n] == test.y[n], same += mp[n] == tp[n];
    report["test"]["max_path_accuracy"] = double(correct) / ag.n;
    report["test"]["max_path_fidelity"] = double(same) / ag.n;
    report["penalty"] = a.penalty;
    report["beta"] = tree.beta;
    std::printf("test: maximum-probability path accuracy %s, fidelity %s\n", pct(double(correct) / ag.n).c_str(),
                pct(double(same) / ag.n).c_str());
    const std::vector<std::string> names = class_names(student, &test);
    if (a.index < 0 || a.index >= test.size())
      throw std::out_of_range("--index " + std::to_string(a.index) + " outside the test split's " +
                              std::to_string(test.size()) + " samples");
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

void add_distill_command(CLI::App& app) {
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
  c->add_option("--epochs", a->epochs, "epochs (default: 10; 30 on 2-D toy sets)")->check(at_least(1));
  c->add_option("--batch", a->batch, "mini-batch size")->capture_default_str()->check(at_least(1));
  c->add_option("--optimizer", a->optimizer, "sgd, adam or adamw")->capture_default_str();
  c->add_option("--lr", a->lr, "learning rate (default: 1e-3 for adam, 0.01 for sgd; 10x on 2-D toy sets)")
      ->check(finite(0, inf, true, true));
  c->add_option("--schedule", a->schedule, "constant, step or cosine")->capture_default_str();
  c->add_option("--seed", a->seed, "seed for the student's initialization, validation split and shuffling")
      ->capture_default_str();
  c->add_option("--limit", a->limit, "use only the first N training samples")->check(at_least(0));
  c->add_option("--val", a->val, "fraction of the training set held out for validation")
      ->capture_default_str()
      ->check(finite(0, 1, false, true));
  c->add_option("--resume", a->resume, "continue from a checkpoint (OUT.ckpt.safetensors); same settings");
  c->add_option("--index", a->index, "soft trees: the test sample whose path the figure highlights")
      ->capture_default_str()
      ->check(at_least(0));
  c->add_option("--levels", a->levels, "soft trees: inner levels drawn in the figure's overview (1..6)")
      ->capture_default_str()
      ->check(CLI::Range(1, 6));
  c->add_flag("--quiet", a->quiet, "no progress output");
  c->add_option("--out", a->out,
                "the student's model file (.safetensors); .best/.ckpt/.log.jsonl, .distill.json (and for trees "
                ".tree.json, .tree.png) beside it")
      ->required();
  c->callback([a, c] {
    a->beta_given = c->count("--beta") > 0;
    run_distill(*a);
  });
}

void add_surrogates_commands(CLI::App& app) { add_distill_command(app); }

}  // namespace

static const RegisterCommand reg("surrogates", add_surrogates_commands);

}  // namespace gb
