#include "train/fit.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "train/checkpoint.h"
#include "engine/layers.h"
#include "engine/loss.h"

namespace gb {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

json jnum(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string fmt_time(double s) {
  char b[32];
  int t = int(s + 0.5);
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(b, sizeof b, "%d:%02d", t / 60, t % 60);
  return b;
}

void shuffle(std::vector<int>& v, Rng& rng) {  // Fisher-Yates with our own RNG: same on every platform
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(uint32_t(i))]);
}

bool finite_params(const Graph& g, std::string* bad) {
  for (auto& [name, p] : g.named_params()) {
    const float* w = p->value.data();
    for (size_t i = 0; i < p->value.size(); ++i)
      if (!std::isfinite(w[i])) {
        *bad = name;
        return false;
      }
  }
  return true;
}

// A float as the shortest double that reads back to it, so messages show 0.01, not 0.0100000007.
double tidy(float v) {
  char b[32];
  for (int p = 1; p <= 9; ++p) {
    std::snprintf(b, sizeof b, "%.*g", p, double(v));
    if (std::strtof(b, nullptr) == v) break;
  }
  return std::strtod(b, nullptr);
}

json config_json(const FitOptions& o) {
  const OptimizerConfig& c = o.optimizer;
  const ScheduleConfig& s = o.schedule;
  json j = {
      {"batch", o.batch},
      {"optimizer", optimizer_name(c.kind)},
      {"lr", tidy(c.lr)},
      {"momentum", tidy(c.momentum)},
      {"dampening", tidy(c.dampening)},
      {"nesterov", c.nesterov},
      {"weight_decay", tidy(c.weight_decay)},
      {"betas", {tidy(c.beta1), tidy(c.beta2)}},
      {"eps", tidy(c.eps)},
      {"schedule", schedule_name(s.kind)},
      {"step_size", s.step_size},
      {"gamma", tidy(s.gamma)},
      {"warmup", tidy(s.warmup)},
      {"min_lr", tidy(s.min_lr)},
      {"seed", o.seed},
      {"val_fraction", tidy(o.val_fraction)},
      {"augment", {{"crop_pad", o.augment.crop_pad}, {"hflip", o.augment.hflip}, {"noise", tidy(o.augment.noise_std)}}},
      {"normalize", o.norm.mean.empty() ? json(nullptr) : json{{"mean", o.norm.mean}, {"std", o.norm.std}}},
  };
  if (!o.extra_config.is_null()) j["extra"] = o.extra_config;
  return j;
}

// Progress output on stderr: an updating line on a terminal, one line per epoch otherwise.
struct Reporter {
  ProgressStyle mode;
  int epochs;
  Clock::time_point last = Clock::now();

  void batch(int epoch, int i, int n, double ips, double loss, double acc, double eta) {
    if (mode != ProgressStyle::terminal) return;
    if (i < n && since(last) < 0.2) return;
    last = Clock::now();
    std::fprintf(stderr, "\repoch %d/%d  batch %d/%d  %.0f img/s  loss %.4f  acc %.2f%%  ETA %s\x1b[K", epoch, epochs,
                 i, n, ips, loss, 100 * acc, fmt_time(eta).c_str());
    std::fflush(stderr);
  }
  void epoch_done(const EpochStats& s) {
    if (mode == ProgressStyle::quiet) return;
    std::string val = std::isfinite(s.val_acc)
                          ? "  val loss " + std::to_string(s.val_loss).substr(0, 6) + "  val acc " + [&] {
                              char b[16];
                              std::snprintf(b, sizeof b, "%.2f%%", 100 * s.val_acc);
                              return std::string(b);
                            }()
                          : "";
    std::fprintf(stderr, "%sepoch %d/%d  loss %.4f  acc %.2f%%%s  lr %.3g  %.0f img/s  %.1fs%s\n",
                 mode == ProgressStyle::terminal ? "\r" : "", s.epoch, epochs, s.train_loss, 100 * s.train_acc,
                 val.c_str(), s.lr, s.images_per_s, s.seconds, mode == ProgressStyle::terminal ? "\x1b[K" : "");
    std::fflush(stderr);
  }
};

// The log keeps the lines of earlier epochs (a resumed run continues the same file).
std::vector<std::string> read_log(const std::string& path, int up_to_epoch) {
  std::vector<std::string> lines;
  if (!std::filesystem::exists(path)) return lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    try {
      json j = json::parse(line);
      if (j.value("epoch", 0) <= up_to_epoch) lines.push_back(line);
    } catch (const json::exception&) {
      // a foreign or damaged line: dropped rather than failing the run
    }
  }
  return lines;
}

}  // namespace

json EpochStats::to_json() const {
  return {{"epoch", epoch},          {"train_loss", jnum(train_loss)}, {"train_acc", jnum(train_acc)},
          {"val_loss", jnum(val_loss)}, {"val_acc", jnum(val_acc)},       {"lr", lr},
          {"seconds", seconds},      {"images_per_s", images_per_s}};
}

std::string epoch_path(const std::string& out, int epoch) {
  return sibling_path(out, ".epoch" + std::to_string(epoch) + ".safetensors");
}

Metadata epoch_metadata(const Metadata& run_meta, const FitOptions& o, int epoch, double lr) {
  Metadata m = run_meta;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", lr);
  m["train.lr"] = buf;
  m["train.epoch"] = std::to_string(epoch);
  m["train.optimizer"] = optimizer_name(o.optimizer.kind);
  return m;
}

std::vector<std::pair<int, std::string>> epoch_models(const std::string& model_path, const Metadata& model_meta,
                                                      int* skipped) {
  namespace fs = std::filesystem;
  std::vector<std::pair<int, std::string>> found;
  if (skipped) *skipped = 0;
  std::error_code ec;
  if (!fs::is_regular_file(model_path, ec)) return found;
  const fs::path p(model_path);
  const std::string stem = sibling_path(p.filename().string(), ".epoch"), tail = ".safetensors";
  const auto run = model_meta.find("train.run"), last = model_meta.find("train.epoch");
  const auto digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  };
  const long own_epoch = last != model_meta.end() && digits(last->second) ? std::stol(last->second) : -1;
  for (const auto& e : fs::directory_iterator(p.parent_path().empty() ? fs::path(".") : p.parent_path())) {
    const std::string name = e.path().filename().string();
    if (name.size() <= stem.size() + tail.size() || name.compare(0, stem.size(), stem) != 0 || !name.ends_with(tail))
      continue;
    const std::string epoch = name.substr(stem.size(), name.size() - stem.size() - tail.size());
    if (!digits(epoch)) continue;  // MODEL.epochE.safetensors, E a number
    if (own_epoch >= 0 && std::stol(epoch) > own_epoch) {  // after the model: another run's
      if (skipped) ++*skipped;
      continue;
    }
    if (run != model_meta.end()) {
      const Metadata theirs = read_metadata(e.path().string());
      const auto it = theirs.find("train.run");
      if (it == theirs.end() || it->second != run->second) {
        if (skipped) ++*skipped;
        continue;
      }
    }
    found.emplace_back(std::stoi(epoch), e.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// A run's id: a hash of its settings, epochs and epoch-model schedule. Two runs with the same id
// write the same files; an earlier run under the same --out with another seed, schedule or epoch
// count leaves epoch files that TracIn and probe would otherwise take for this run's.
static std::string run_id(const json& config, int epochs, int save_every) {
  const std::string text = config.dump() + "|" + std::to_string(epochs) + "|" + std::to_string(save_every);
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string sibling_path(const std::string& out, const std::string& suffix) {
  const std::string ext = ".safetensors";
  std::string stem = out.size() > ext.size() && out.ends_with(ext) ? out.substr(0, out.size() - ext.size()) : out;
  return stem + suffix;
}

void check_model_output(const std::string& path, const std::string& who) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !is_safetensors_file(path))
    throw std::invalid_argument(who + " exists and is not a model file: not overwriting it");
}

void check_train_outputs(const std::string& out, int epochs, int save_every, const std::vector<std::string>& inputs) {
  if (out.empty()) return;
  const auto who = [&](const std::string& path) {
    return path == out ? "--out '" + out + "'" : "'" + path + "' (written next to --out)";
  };
  std::vector<std::string> models = {out, sibling_path(out, ".best.safetensors"), sibling_path(out, ".ckpt.safetensors")};
  for (int e = save_every; save_every > 0 && e <= epochs; e += save_every) models.push_back(epoch_path(out, e));
  std::error_code ec;
  // The model being fine-tuned (or a teacher) under a name an output takes was silently replaced:
  // `train --model m.best.safetensors --out m.safetensors` wrote its best epoch over it.
  for (const std::string& path : models)
    for (const std::string& in : inputs)
      if (std::filesystem::exists(in, ec) && std::filesystem::equivalent(path, in, ec))
        throw std::invalid_argument(who(path) + " is the input model " + in + ": give --out another name");
  for (const std::string& path : models) check_model_output(path, who(path));
  // A log is a glassbox log when its first line is an epoch's JSON object (or it is empty).
  const std::string log = sibling_path(out, ".log.jsonl");
  if (std::filesystem::exists(log, ec)) {
    bool ours = std::filesystem::is_regular_file(log, ec);
    if (ours) {
      std::ifstream in(log);  // its first line only: a long log need not be read
      std::string first;
      if (std::getline(in, first)) {
        const json j = json::parse(first, nullptr, false);
        ours = j.is_object() && j.contains("epoch");
      }
    }
    if (!ours) throw std::invalid_argument(who(log) + " exists and is not a glassbox training log: not overwriting it");
  }
}

void check_fits(const Graph& g, const Dataset& d, const std::string& flag) {
  if (d.size() == 0)
    throw std::invalid_argument("--data '" + d.name + "': the dataset is empty" +
                                (d.name.ends_with(":test") ? std::string(" (npy: and images: sets put every fifth sample, per "
                                                                         "class for images:, in the test split)")
                                                           : std::string()));
  const Shape sample = d.x.shape().sample();
  if (sample != g.input_shape())
    throw std::invalid_argument(flag + " input shape " + g.input_shape().str() + " does not match the data: '" +
                                d.name + "' samples are " + sample.str());
  const Shape out = g.shape(g.output());
  if (out.rank != 2)
    throw std::invalid_argument(flag + " output " + out.str() + " is not [N,classes] logits (end with dense)");
  if (d.classes() > g.classes())
    throw std::invalid_argument(flag + " has " + std::to_string(g.classes()) + " outputs but '" + d.name + "' has " +
                                std::to_string(d.classes()) + " classes");
}

EvalResult evaluate(Graph& g, const Dataset& d, const Normalization& norm, int batch, const std::vector<int>* indices) {
  std::vector<int> all;
  if (!indices) {
    all.resize(d.size());
    std::iota(all.begin(), all.end(), 0);
    indices = &all;
  }
  const int K = g.classes();
  EvalResult r;
  r.confusion.assign(K, std::vector<int>(K, 0));
  Tensor x;
  std::vector<int> y;
  Rng unused(0);
  const int n = int(indices->size());
  double loss = 0;
  int correct = 0;
  for (int b = 0; b < n; b += batch) {
    const int e = std::min(n, b + batch);
    make_batch(d, *indices, b, e, norm, nullptr, unused, x, y);
    const Tensor& logits = g.forward(x, Mode::eval);
    LossResult lr = softmax_cross_entropy(logits, y, nullptr);
    loss += lr.loss * (e - b);
    correct += lr.correct;
    for (int i = 0; i < e - b; ++i) {
      const float* z = logits.data() + size_t(i) * K;
      r.confusion[y[i]][argmax(z, K)]++;
    }
  }
  r.n = n;
  r.loss = n ? loss / n : NAN;
  r.accuracy = n ? double(correct) / n : NAN;
  for (int c = 0; c < K; ++c) {
    int tot = std::accumulate(r.confusion[c].begin(), r.confusion[c].end(), 0);
    r.per_class.push_back(tot ? double(r.confusion[c][c]) / tot : NAN);
  }
  return r;
}

// A seeded permutation, so class-ordered datasets (image folders) split fairly.
void validation_split(int n, uint64_t seed, float fraction, std::vector<int>& train_idx, std::vector<int>& val_idx) {
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  Rng split_rng(seed ^ 0x76616c6964617465ULL);
  shuffle(perm, split_rng);
  const int n_val = int(std::lround(double(n) * fraction));
  if (n - n_val < 1) throw std::invalid_argument("no training samples left after holding out --val");
  val_idx.assign(perm.begin(), perm.begin() + n_val);
  train_idx.assign(perm.begin() + n_val, perm.end());
  std::sort(val_idx.begin(), val_idx.end());
  std::sort(train_idx.begin(), train_idx.end());
}

FitResult fit(Graph& g, const Dataset& train, const FitOptions& o) {
  check_fits(g, train);
  if (o.epochs < 1) throw std::invalid_argument("--epochs must be at least 1");
  if (o.batch < 1) throw std::invalid_argument("--batch must be at least 1");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) throw std::invalid_argument("--val must be in [0, 1)");
  if (o.save_every < 0) throw std::invalid_argument("--save-every must be at least 1");
  // The command line checks these as it reads them; other callers (the Python package) meet them here.
  const OptimizerConfig& oc = o.optimizer;
  // Worded for both: the command line's --lr/--momentum/--weight-decay and Python's lr=, momentum=...
  if (!(oc.lr > 0) || !std::isfinite(oc.lr))
    throw std::invalid_argument("learning rate (lr) " + std::to_string(oc.lr) + ": must be finite (in float32) and > 0");
  if (!(oc.momentum >= 0 && oc.momentum <= 1))
    throw std::invalid_argument("momentum " + std::to_string(oc.momentum) + ": must be in [0, 1]");
  if (!(oc.weight_decay >= 0) || !std::isfinite(oc.weight_decay))
    throw std::invalid_argument("weight decay " + std::to_string(oc.weight_decay) + ": must be finite and >= 0");
  if (o.save_every > 0 && o.out.empty()) throw std::invalid_argument("--save-every needs --out");
  check_train_outputs(o.out, o.epochs, o.save_every, o.inputs);
  // --out dir/m.safetensors: the folder is made (the files in it are still written atomically).
  if (const auto dir = std::filesystem::path(o.out).parent_path(); !o.out.empty() && !dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw std::invalid_argument("--out " + o.out + ": cannot create the folder " + dir.string() + " (" + ec.message() + ")");
  }

  std::vector<int> train_idx, val_idx;
  validation_split(train.size(), o.seed, o.val_fraction, train_idx, val_idx);
  const int n_val = int(val_idx.size());
  // A BatchNorm on features ([N,F] or 1x1 maps) sees one value per channel in a batch of one: its
  // variance is 0, every output its β, and the running variance decays to 0 (PyTorch refuses it).
  const int64_t smallest_batch = std::min<int64_t>(o.batch, int64_t(train_idx.size()));
  for (int i = 0; i < g.size(); ++i)
    if (dynamic_cast<const BatchNorm2d*>(&g.layer(i))) {
      const int in = g.node(i).inputs[0];
      const Shape s = g.shape(in);
      const int64_t per_channel = s.rank >= 3 ? int64_t(s[2]) * (s.rank == 4 ? s[3] : 1) : 1;
      if (smallest_batch * per_channel < 2)
        throw std::invalid_argument(
            g.layer(i).name + ": training needs more than one value per channel, and a batch of " +
            std::to_string(smallest_batch) + " gives one (" +
            (int64_t(train_idx.size()) < o.batch ? "the training split holds " + std::to_string(train_idx.size()) +
                                                       " sample(s): give more data, or hold out less for validation"
                                                 : std::string("--batch 2 or more")) +
            ")");
    }

  Optimizer opt(g, o.optimizer);
  TrainState st;
  st.data_rng.reseed(o.seed);
  st.graph_rng.reseed(o.seed + 1);
  st.config = config_json(o);
  const std::string model_path = o.out, best_path = o.out.empty() ? "" : sibling_path(o.out, ".best.safetensors"),
                    ckpt_path = o.out.empty() ? "" : sibling_path(o.out, ".ckpt.safetensors"),
                    log_path = o.out.empty() ? "" : sibling_path(o.out, ".log.jsonl");
  if (!o.resume.empty()) {
    if (!std::filesystem::exists(o.resume)) throw std::invalid_argument("--resume '" + o.resume + "': no such file");
    Checkpoint ck = load_checkpoint(o.resume, g, opt);
    std::string diff;
    for (auto& [k, v] : st.config.items())
      if (!ck.state.config.contains(k) || ck.state.config[k] != v)
        diff += (diff.empty() ? "" : "; ") + k + " was " + (ck.state.config.contains(k) ? ck.state.config[k].dump() : "unset") +
                ", now " + v.dump();
    if (!diff.empty())
      throw std::invalid_argument("--resume '" + o.resume +
                                  "': this run's settings differ from the checkpoint's, so it would not continue the "
                                  "same run (" + diff + ")");
    if (ck.state.epoch >= o.epochs)  // no epoch would run, and no file be written
      throw std::invalid_argument("--resume '" + o.resume + "': the checkpoint is at epoch " +
                                  std::to_string(ck.state.epoch) + " and --epochs is " + std::to_string(o.epochs) +
                                  ": nothing is left to train (give more --epochs to continue)");
    ck.state.config = st.config;
    st = ck.state;
  }
  g.rng = st.graph_rng;
  // A resumed run keeps its own id; one resumed from a checkpoint written before ids stays without
  // (its earlier epoch files have none, and every file is then taken, as before).
  if (o.resume.empty()) st.run = run_id(st.config, o.epochs, o.save_every);
  Metadata run_meta = o.metadata;
  if (!st.run.empty()) run_meta["train.run"] = st.run;
  std::vector<std::string> log_lines = log_path.empty() ? std::vector<std::string>{} : read_log(log_path, st.epoch);
  if (o.resume.empty()) log_lines.clear();

  ProgressStyle mode = o.progress;
  if (mode == ProgressStyle::automatic) mode = ::isatty(2) ? ProgressStyle::terminal : ProgressStyle::plain;
  Reporter rep{mode, o.epochs};

  const int n_train = int(train_idx.size());
  // A trailing batch of one sample is dropped: BatchNorm cannot normalize a single sample.
  // (In 64 bits: a batch near INT_MAX overflowed the sum, and no batch ran.)
  const int n_batches = int((int64_t(n_train) + o.batch - 1) / o.batch) - (n_train > 1 && n_train % o.batch == 1 ? 1 : 0);
  const int64_t total = int64_t(n_batches) * o.epochs;
  const bool augment = o.augment.crop_pad > 0 || o.augment.hflip || o.augment.noise_std > 0;

  FitResult res;
  res.best_epoch = st.best_epoch;
  res.best_val_acc = st.best_val_acc;
  res.run = o.out.empty() ? "" : st.run;
  Tensor stage, x, grad;
  std::vector<int> y, order;
  BackwardOptions bopt;
  bopt.param_grads = true;
  bopt.input_grad = false;
  const auto run_start = Clock::now();
  int64_t run_images = 0;
  const int64_t remaining_images = int64_t(o.epochs - st.epoch) * n_train;

  for (int epoch = st.epoch + 1; epoch <= o.epochs; ++epoch) {
    const auto t0 = Clock::now();
    order = train_idx;
    shuffle(order, st.data_rng);
    double loss_sum = 0, lr = 0;
    int64_t correct = 0, seen = 0;
    for (int b = 0; b < n_batches; ++b) {
      const int begin = b * o.batch, end = std::min(n_train, begin + o.batch);
      make_batch(train, order, begin, end, o.norm, augment ? &o.augment : nullptr, st.data_rng, stage, y);
      // The graph keeps a reference to its input, so x's storage is shared after the first
      // forward; writing through it (instead of resizing) avoids a fresh allocation per step.
      if (x.shape() == stage.shape())
        x.copy_from(stage);
      else
        x = stage.clone();
      lr = learning_rate(o.schedule, o.optimizer.lr, int64_t(epoch - 1) * n_batches + b, n_batches, total);
      g.zero_grad();
      const Tensor& logits = g.forward(x, Mode::train);
      LossResult r = o.loss ? o.loss(g, x, y, logits, grad) : softmax_cross_entropy(logits, y, &grad);
      if (!std::isfinite(r.loss))
        throw DivergedError("training diverged: the loss is " + std::to_string(r.loss) + " at epoch " +
                            std::to_string(epoch) + ", batch " + std::to_string(b + 1) + "/" +
                            std::to_string(n_batches) + " (lr " + std::to_string(lr) +
                            "); try a lower --lr. Files of the last completed epoch are kept unchanged.");
      g.backward(grad, bopt);
      opt.step(lr);
      loss_sum += r.loss * (end - begin);
      correct += r.correct;
      seen += end - begin;
      run_images += end - begin;
      if (mode == ProgressStyle::terminal) {
        const double el = since(run_start), ips = run_images / std::max(el, 1e-9);
        rep.batch(epoch, b + 1, n_batches, ips, loss_sum / seen, double(correct) / seen,
                  double(remaining_images - run_images) / std::max(ips, 1e-9));
      }
    }
    std::string bad;
    if (!finite_params(g, &bad))
      throw DivergedError("training diverged: parameter '" + bad + "' became NaN/Inf in epoch " + std::to_string(epoch) +
                          " (lr " + std::to_string(lr) + "); try a lower --lr. Files of the last completed epoch are "
                          "kept unchanged.");
    const double train_s = since(t0);
    EpochStats s;
    s.epoch = epoch;
    s.train_loss = seen ? loss_sum / seen : NAN;
    s.train_acc = seen ? double(correct) / seen : NAN;
    s.lr = lr;
    s.images_per_s = seen / std::max(train_s, 1e-9);
    s.val_loss = s.val_acc = NAN;
    if (n_val > 0) {
      EvalResult v = evaluate(g, train, o.norm, 256, &val_idx);
      s.val_loss = v.loss;
      s.val_acc = v.accuracy;
    }
    s.seconds = since(t0);
    st.epoch = epoch;
    st.graph_rng = g.rng;
    // Without validation the best model is the last one (training accuracy, summed while the weights
    // moved, chose an earlier one and was reported as "best validation").
    const bool best = n_val == 0 || s.val_acc > st.best_val_acc || st.best_epoch == 0;
    if (best) {
      st.best_val_acc = n_val > 0 ? s.val_acc : NAN;
      st.best_epoch = epoch;
    }
    if (!o.out.empty()) {
      // Order matters for a crash in between: the checkpoint last, so it never claims an epoch
      // whose model files were not written.
      Metadata model_meta = run_meta;  // its epoch: epoch files of later epochs are not its history
      model_meta["train.epoch"] = std::to_string(epoch);
      save_model(model_path, g, model_meta);
      if (best) save_model(best_path, g, model_meta);
      if (o.save_every > 0 && epoch % o.save_every == 0) {
        // TracIn's rate for this checkpoint: the mean over the steps it stands for, those since the
        // previous saved model (the last step's alone is near 0 at the end of a cosine schedule).
        double sum = 0;
        const int64_t first = int64_t(epoch - o.save_every) * n_batches, end = int64_t(epoch) * n_batches;
        for (int64_t step = first; step < end; ++step)
          sum += learning_rate(o.schedule, o.optimizer.lr, step, n_batches, total);
        save_model(epoch_path(o.out, epoch), g, epoch_metadata(run_meta, o, epoch, sum / double(end - first)));
      }
      log_lines.push_back(s.to_json().dump());
      std::string log;
      for (auto& l : log_lines) log += l + "\n";
      atomic_write(log_path, log);
      save_checkpoint(ckpt_path, g, opt, st, run_meta);
    }
    res.history.push_back(s);
    res.best_epoch = st.best_epoch;
    res.best_val_acc = st.best_val_acc;
    rep.epoch_done(s);
    if (o.on_epoch && !o.on_epoch(s)) break;
  }
  return res;
}

}  // namespace gb
