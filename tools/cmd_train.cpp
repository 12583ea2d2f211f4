// glassbox train / eval / predict.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <utility>

#include "data/dataset.h"
#include "engine/layers.h"
#include "engine/finite.h"
#include "tools/commands.h"
#include "tools/figures.h"
#include "tools/inputs.h"
#include "train/fit.h"
#include "train/presets.h"

namespace gb {

namespace {

struct TrainArgs {
  std::string model, data = "fashion-mnist", out, resume, optimizer = "adam", schedule = "cosine", augment,
                     normalize = "std";
  int epochs = 0, batch = 64, step_size = 1, limit = 0, save_every = 0;
  float lr = -1, momentum = 0.9f, weight_decay = -1, gamma = 0.1f, warmup = 0, noise = 0, val = 0.1f;
  bool nesterov = false, quiet = false;
  uint64_t seed = 42;
};

constexpr long kMaxCropPad = 1024;  // pixels of zero padding for random crops (CIFAR uses 4)

Augment parse_augment(const std::string& s, float noise) {
  Augment a;
  a.noise_std = noise;
  bool crop_given = false;
  for (const std::string& t : split_list(s, "--augment")) {
    if ((t == "crop" || t.rfind("crop=", 0) == 0) && std::exchange(crop_given, true))
      throw std::invalid_argument("--augment '" + s + "': crop is given twice; give one crop or crop=N");
    if (t == "flip") {
      a.hflip = true;
    } else if (t == "crop") {
      a.crop_pad = 4;
    } else if (t.rfind("crop=", 0) == 0) {
      long v = -1;
      if (!parse_number(t.substr(5), v) || v < 0 || v > kMaxCropPad)
        throw std::invalid_argument("--augment '" + s + "': crop=N needs a whole padding 0 <= N <= " +
                                    std::to_string(kMaxCropPad));
      a.crop_pad = int(v);
    } else {
      throw std::invalid_argument("--augment '" + s + "': unknown augmentation '" + t + "' (use crop, crop=N, flip)");
    }
  }
  if (noise < 0) throw std::invalid_argument("--noise must be >= 0");
  return a;
}

void run_train(const TrainArgs& a) {
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  // Training replaces --out and the files next to it: only what it writes may be there (--out y.npy
  // replaced the labels it was about to train on). Checked before the data are read.
  // 30: the largest default; fit() checks again. The model fine-tuned may not be one of them.
  check_train_outputs(a.out, a.epochs > 0 ? a.epochs : 30, a.save_every, {a.model});
  // A resumed run writes its checkpoint again (the .ckpt next to --out), but no model over it.
  std::error_code ec;
  for (const std::string& path : {a.out, sibling_path(a.out, ".best.safetensors")})
    if (!a.resume.empty() && std::filesystem::exists(a.resume, ec) && std::filesystem::equivalent(path, a.resume, ec))
      throw std::invalid_argument("--out '" + a.out + "': " + (path == a.out ? "it" : "'" + path + "' (written next to it)") +
                                  " is the checkpoint --resume reads; give --out the model's name (" +
                                  "the checkpoint is written next to it, as NAME.ckpt.safetensors)");
  OptimizerConfig oc;
  oc.kind = optimizer_kind(a.optimizer);
  oc.momentum = oc.kind == OptimizerKind::sgd ? a.momentum : 0.f;
  oc.nesterov = a.nesterov;
  oc.weight_decay = a.weight_decay >= 0 ? a.weight_decay : default_weight_decay(oc.kind);
  if (a.nesterov && oc.kind != OptimizerKind::sgd)
    throw std::invalid_argument("--nesterov is SGD's: give --optimizer sgd (it is " + a.optimizer + ")");
  if (a.nesterov && oc.momentum <= 0) throw std::invalid_argument("--nesterov needs --momentum > 0");
  ScheduleConfig sc;
  sc.kind = schedule_kind(a.schedule);
  sc.step_size = a.step_size;
  sc.gamma = a.gamma;
  sc.warmup = a.warmup;
  if (a.normalize != "std" && a.normalize != "none")
    throw std::invalid_argument("--normalize '" + a.normalize + "': use std or none");

  Dataset train = first_samples(load_dataset(a.data, "train"), a.limit);  // refuses NaN data, naming it
  const Shape sample = train.x.shape().sample();
  const bool toy = toy_defaults(a.model, sample);
  oc.lr = a.lr > 0 ? a.lr : default_lr(oc.kind) * (toy ? 10.f : 1.f);
  const int epochs = a.epochs > 0 ? a.epochs : toy ? 30 : 10;
  Model m{Graph(Shape{1}), {}};
  if (is_preset(a.model)) {
    try {
      m.graph = make_preset(a.model, sample, train.classes(), a.seed);
    } catch (const std::exception& e) {
      throw std::invalid_argument("--model " + a.model + " cannot take the samples of --data " + a.data + " (" +
                                  sample.str() + "): " + e.what());
    }
  } else {
    m = open_model(a.model, a.seed);
  }
  check_fits(m.graph, train);
  check_class_names(train.class_names, m.graph.classes(), "--data " + a.data + ": its classes");
  if (train.classes() < 2)  // one softmax output has no gradient: nothing would be learnt
    throw std::invalid_argument("--data " + a.data + ": every training sample is of one class; a classifier needs two");

  FitOptions o;
  o.epochs = epochs;
  o.batch = a.batch;
  o.optimizer = oc;
  o.schedule = sc;
  o.seed = a.seed;
  o.val_fraction = a.val;
  o.augment = parse_augment(a.augment, a.noise);
  if (train.x.rank() != 4 && (o.augment.crop_pad > 0 || o.augment.hflip))  // they were skipped without a word
    throw std::invalid_argument("--augment " + a.augment + ": crop and flip are for images [N,C,H,W]; the samples are " +
                                train.x.shape().sample().str());
  o.out = a.out;
  o.inputs = {a.model};
  o.resume = a.resume;
  o.save_every = a.save_every;
  o.progress = a.quiet ? ProgressStyle::quiet : ProgressStyle::automatic;
  // A model file that was trained before keeps the preprocessing its weights were fitted to.
  if (m.metadata.count("glassbox.normalize"))
    o.norm = Normalization::of_model(m.metadata);
  else if (a.normalize == "std")
    o.norm = channel_stats(train);
  o.metadata["glassbox.normalize"] = o.norm.empty() ? "none" : o.norm.to_json().dump();
  o.metadata["glassbox.classes"] = nlohmann::json(train.class_names).dump();
  o.metadata["glassbox.dataset"] = absolute_spec(a.data);  // commands run elsewhere default to it
  o.extra_config = {{"data", a.data}, {"limit", a.limit}, {"model", a.model}};
  if (!a.quiet)
    std::fprintf(stderr, "training %s on %s (%d samples, %.0f%% held out for validation), %s lr %g, %s schedule\n",
                 a.model.c_str(), train.name.c_str(), train.size(), 100 * a.val, a.optimizer.c_str(), oc.lr,
                 a.schedule.c_str());
  // The test split is read (and checked: NaN, shape, classes) before training, so a bad one fails
  // now rather than after the model is written.
  const Dataset test = load_dataset(a.data, "test");
  check_fits(m.graph, test);
  const auto t0 = std::chrono::steady_clock::now();
  FitResult r = fit(m.graph, train, o);
  const double secs = seconds_since(t0);
  train = Dataset{};  // frees the training images

  EvalResult e = evaluate(m.graph, test, o.norm);
  const std::string best = std::isnan(r.best_val_acc) ? "no validation split, best = last, epoch " + std::to_string(r.best_epoch)
                                                     : "best validation " + percent(r.best_val_acc) + " at epoch " +
                                                           std::to_string(r.best_epoch);
  std::printf("test accuracy %s (%d images, loss %.4f) after %d epochs, %.1fs; %s\n", percent(e.accuracy).c_str(), e.n,
              e.loss, r.history.empty() ? 0 : r.history.back().epoch, secs, best.c_str());
  // (A run resumed into another --out whose epochs never beat the checkpoint's best writes no .best.)
  const std::string best_file = sibling_path(a.out, ".best.safetensors");
  std::printf("saved %s (%scheckpoint: %s, log: %s)\n", a.out.c_str(),
              std::filesystem::exists(best_file) ? ("best: " + best_file + ", ").c_str() : "", sibling_path(a.out, ".ckpt.safetensors").c_str(),
              sibling_path(a.out, ".log.jsonl").c_str());
  if (a.save_every > 0 && !r.history.empty()) {
    const int last = r.history.back().epoch, first = r.history.front().epoch;
    const int written = last / a.save_every - (first - 1) / a.save_every;  // multiples of N this run reached
    if (written > 0)
      std::printf("epoch models every %d epochs: %s ... (for glassbox influence --method tracin)\n", a.save_every,
                  epoch_path(a.out, (first + a.save_every - 1) / a.save_every * a.save_every).c_str());
    else
      std::printf("no epoch model: --save-every %d is past this run's last epoch (%d)\n", a.save_every, last);
  }
}

void run_eval(const std::string& model, const std::string& data, const std::string& split, bool as_json,
              const std::string& confusion_png) {
  Model m = open_model(model);
  constexpr int kMaxConfusionClasses = 300;  // 44-pixel cells: 13,200 pixels a side
  if (!confusion_png.empty() && m.graph.classes() > kMaxConfusionClasses)
    throw std::invalid_argument("--confusion: " + std::to_string(m.graph.classes()) + " classes; the figure is drawn for "
                                "at most " + std::to_string(kMaxConfusionClasses) + " (the matrix is in --json)");
  Dataset d = load_dataset(data, split);
  check_fits(m.graph, d);
  // Labels are matched by position: a dataset that names or orders its classes otherwise than the
  // model was trained on scores against the wrong classes (0% with no word before).
  const std::vector<std::string> trained = model_classes(m, d.class_names);
  for (size_t k = 0; k < d.class_names.size() && k < trained.size(); ++k)
    if (d.class_names[k] != trained[k]) {
      std::fprintf(stderr, "note: --data %s names class %zu '%s', the model was trained with '%s' there: labels are "
                   "matched by position\n", data.c_str(), k, d.class_names[k].c_str(), trained[k].c_str());
      break;
    }
  EvalResult e = evaluate(m.graph, d, Normalization::of_model(m.metadata));
  if (e.n > 0 && !std::isfinite(e.loss) && !nonfinite_allowed())  // (finite weights that overflow printed "loss -nan")
    throw std::runtime_error(model + ": its loss is not finite on " + data +
                             " (weights or activations past float32's range; glassbox --allow-nonfinite shows them)");
  std::vector<std::string> names = d.class_names;
  for (int k = int(names.size()); k < m.graph.classes(); ++k) names.push_back(std::to_string(k));
  const int K = m.graph.classes();
  if (!confusion_png.empty()) {
    make_parent_dir(confusion_png, "--confusion");
    char title[160];
    std::snprintf(title, sizeof title, "%s on %s (%s split): accuracy %s, %d images", model.c_str(), d.name.c_str(),
                  split.c_str(), percent(e.accuracy).c_str(), e.n);
    write_image(confusion_png, confusion_image(e.confusion, names, title));
  }
  if (as_json) {
    nlohmann::json per = nlohmann::json::object();
    for (int c = 0; c < K; ++c) per[names[c]] = std::isfinite(e.per_class[c]) ? nlohmann::json(e.per_class[c]) : nullptr;
    nlohmann::json j = {{"model", model}, {"data", d.name},         {"n", e.n},
                        {"accuracy", e.accuracy}, {"loss", e.loss}, {"per_class", per},
                        {"classes", names},       {"confusion", e.confusion}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s on %s: accuracy %s (%d images), loss %.4f\n\nper class:\n", model.c_str(), d.name.c_str(),
              percent(e.accuracy).c_str(), e.n, e.loss);
  size_t w = 5;
  for (auto& n : names) w = std::max(w, n.size());
  for (int c = 0; c < K; ++c)
    std::printf("  %-*s %8s\n", int(w), names[c].c_str(), std::isfinite(e.per_class[c]) ? percent(e.per_class[c]).c_str() : "-");
  std::printf("\nconfusion matrix (rows: true class, columns: predicted):\n  %*s", int(w) + 3, "");
  for (int c = 0; c < K; ++c) std::printf(" %6d", c);
  std::printf("\n");
  for (int r = 0; r < K; ++r) {
    std::printf("  %-*s", int(w) + 3, (std::to_string(r) + " " + names[r]).c_str());
    for (int c = 0; c < K; ++c) std::printf(" %6d", e.confusion[r][c]);
    std::printf("\n");
  }
}

void run_predict(const std::string& model, const std::vector<std::string>& files, const std::string& data,
                 const std::string& index, const std::string& split, int top, bool as_json, bool logits,
                 InputSpace space) {
  Model m = open_model(model);
  // The same inputs as explain: images and .npy pixels normalized as in training (or .npy arrays
  // in the model's input space with --input-space model), or dataset samples.
  Inputs in = read_inputs(m, files, data, index, split, space);
  const std::vector<std::string> names = model_classes(m);
  const int K = m.graph.classes();
  top = std::clamp(top, 1, K);
  // Every input's logits before the first line: a refusal prints nothing.
  const int N = in.x.batch();
  const Tensor z = all_logits(m.graph, in, model);
  const Tensor p = softmax(z);
  for (int i = 0; i < N; ++i) {
    const float* pi = p.data() + size_t(i) * K;
    std::vector<int> idx(K);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + top, idx.end(), [&](int u, int v) { return pi[u] > pi[v]; });
    const std::string truth = in.labels[i] >= 0 && in.labels[i] < K ? names[in.labels[i]] : "";
    const float* zi = z.data() + size_t(i) * K;
    if (as_json) {
      nlohmann::json preds = nlohmann::json::array();
      for (int t = 0; t < top; ++t) {
        preds.push_back({{"class", idx[t]}, {"name", names[idx[t]]}, {"p", pi[idx[t]]}});
        if (logits) preds.back()["logit"] = zi[idx[t]];
      }
      nlohmann::json j = {{"input", in.names[i]}, {"top", preds}};
      if (logits) j["logits"] = std::vector<float>(zi, zi + K);
      if (!truth.empty()) j["label"] = in.labels[i];
      std::printf("%s\n", j.dump().c_str());
      continue;
    }
    std::printf("%s:", in.names[i].c_str());
    for (int t = 0; t < top; ++t) {
      std::printf("  %s %.4f", names[idx[t]].c_str(), pi[idx[t]]);
      if (logits) std::printf(" (logit %.4f)", zi[idx[t]]);
    }
    if (!truth.empty()) std::printf("  (true: %s)", truth.c_str());
    std::printf("\n");
  }
}

}  // namespace

void add_train_commands(Command& app) {
  {
    auto a = std::make_shared<TrainArgs>();
    auto* c = app.add_subcommand("train", "Train a model (preset, architecture text or model file) on a dataset");
    c->add_option("--model", a->model, "a preset (lenet5, camnet, mlp, toy2d, nam, ...), an architecture text or a model file")
        ->required();
    c->add_option("--data", a->data, "dataset spec: fashion-mnist, mnist:DIR, cifar10:DIR, images:DIR, npy:X,Y, toy:spirals...")
        ->capture_default_str();
    c->add_option("--epochs", a->epochs, "epochs (default: 10; 30 for toy2d, and nam on a toy set; at most 1000000)")
        ->check(int_in(1, 1000000));
    c->add_option("--batch", a->batch, "mini-batch size (an epoch's last batch of one sample is dropped)")->capture_default_str()->check(at_least(1));
    c->add_option("--optimizer", a->optimizer, "sgd, adam or adamw")->capture_default_str();
    const double inf = HUGE_VAL;
    c->add_option("--lr", a->lr, "base learning rate (default: 0.01 for sgd, 1e-3 for adam/adamw; 10x for toy2d, and nam on a toy set)")
        ->check(finite(0, inf, true, true));
    c->add_option("--momentum", a->momentum, "SGD momentum")->capture_default_str()->check(finite(0, 1, false, false));
    c->add_flag("--nesterov", a->nesterov, "Nesterov momentum (SGD)");
    c->add_option("--weight-decay", a->weight_decay, "weight decay (default: 0, or 0.01 for adamw)")
        ->check(finite(0, inf, false, true));
    c->add_option("--schedule", a->schedule, "constant, step or cosine")->capture_default_str();
    c->add_option("--step-size", a->step_size, "step schedule: epochs between decays")
        ->capture_default_str()
        ->check(at_least(1));
    c->add_option("--gamma", a->gamma, "step schedule: decay factor")
        ->capture_default_str()
        ->check(finite(0, inf, true, true));
    c->add_option("--warmup", a->warmup, "epochs of linear learning-rate warm-up (at most 10000)")
        ->capture_default_str()
        ->check(finite(0, 10000, false, false));
    c->add_option("--seed", a->seed, "seed for initialization, validation split, shuffling, augmentation")
        ->capture_default_str();
    c->add_option("--resume", a->resume, "continue from a checkpoint (MODEL.ckpt.safetensors); same settings (a larger --epochs continues with the schedule stretched to it, not as one uninterrupted run)");
    c->add_option("--save-every", a->save_every,
                  "also keep the model after every N-th epoch as OUT.epochE.safetensors with its learning rate "
                  "(the checkpoints glassbox influence --method tracin sums over)")
        ->check(at_least(1));
    c->add_option("--augment", a->augment, "augmentations: crop (pad 4), crop=N, flip");
    c->add_option("--noise", a->noise, "std of Gaussian noise added to training inputs (after normalization)")
        ->capture_default_str()
        ->check(finite(0, inf, false, true));
    c->add_option("--limit", a->limit, "use only the first N training samples (0: all)")->check(at_least(0));
    c->add_option("--val", a->val, "fraction of the training set held out for validation")
        ->capture_default_str()
        ->check(finite(0, 1, false, true));
    c->add_option("--normalize", a->normalize, "std (per-channel mean/std of the training set) or none; a model file keeps its own")
        ->capture_default_str();
    c->add_flag("--quiet", a->quiet, "no progress output");
    c->add_option("--out", a->out, "model file to write (.safetensors; its folder is made); .best/.ckpt/.log.jsonl go "
                                   "beside it")->required();
    c->callback([a] { run_train(*a); });
  }
  {
    auto model = std::make_shared<std::string>(), data = std::make_shared<std::string>("fashion-mnist"),
         split = std::make_shared<std::string>("test");
    auto as_json = std::make_shared<bool>(false);
    auto confusion = std::make_shared<std::string>();
    auto* c = app.add_subcommand("eval", "Accuracy, per-class accuracy and confusion matrix of a model on a dataset");
    c->add_option("--model", *model, "model file")->required();
    c->add_option("--data", *data, "dataset spec")->capture_default_str();
    c->add_option("--split", *split, "dataset split: train, test or all")->capture_default_str();
    c->add_flag("--json", *as_json, "print one JSON object");
    c->add_option("--confusion", *confusion, "also draw the confusion matrix into this PNG file");
    c->callback([=] { run_eval(*model, *data, *split, *as_json, *confusion); });
  }
  {
    auto model = std::make_shared<std::string>(), data = std::make_shared<std::string>(),
         index = std::make_shared<std::string>(), split = std::make_shared<std::string>("test");
    auto files = std::make_shared<std::vector<std::string>>();
    auto top = std::make_shared<int>(3);
    auto as_json = std::make_shared<bool>(false), logits = std::make_shared<bool>(false);
    auto space = std::make_shared<InputSpace>(InputSpace::pixels);
    auto* c = app.add_subcommand("predict", "Top-k classes with probabilities for image files or .npy arrays");
    c->add_option("--model", *model, "model file")->required();
    c->add_option("--input", *files, "image files (PNG/JPEG/BMP/PNM) or .npy arrays (pixels; see --input-space)");
    add_input_space_flag(c, space.get());
    c->add_option("--data", *data, "or samples of a dataset (with --index)");
    c->add_option("--index", *index, "dataset samples: I, I:J or I,J,K")->needs(c->get_option("--data"));
    c->add_option("--split", *split, "dataset split: train, test or all")->capture_default_str();
    c->add_option("--top", *top, "classes to show")->capture_default_str()->check(at_least(1));
    c->add_flag("--json", *as_json, "JSON lines");
    c->add_flag("--logits", *logits, "also print each class's logit (JSON: every logit)");
    c->callback([=] { run_predict(*model, *files, *data, *index, *split, *top, *as_json, *logits, *space); });
  }
}

}  // namespace gb
