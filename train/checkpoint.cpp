#include "train/checkpoint.h"

#include <climits>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/architecture.h"
#include "engine/finite.h"

namespace gb {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw std::runtime_error(path + ": " + what); }

const std::string& need(const Metadata& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  if (it == m.end()) fail(path, "not a glassbox checkpoint (metadata '" + key + "' is missing)");
  return it->second;
}

uint64_t to_u64(const std::string& s, const std::string& key, const std::string& path) {
  try {
    size_t used = 0;
    unsigned long long v = std::stoull(s, &used);
    if (used != s.size()) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    fail(path, "metadata '" + key + "' is not a number: '" + s + "'");
  }
}

// An epoch of 2^32+1 must not resume at 1.
int to_int_field(const std::string& s, const std::string& key, const std::string& path) {
  const uint64_t v = to_u64(s, key, path);
  if (v > uint64_t(INT_MAX)) fail(path, "metadata '" + key + "' = " + s + " is out of range");
  return int(v);
}

std::string rng_str(const Rng& r) { return std::to_string(r.s[0]) + "," + std::to_string(r.s[1]); }

Rng rng_from(const std::string& s, const std::string& key, const std::string& path) {
  size_t comma = s.find(',');
  if (comma == std::string::npos) fail(path, "metadata '" + key + "' is not an RNG state");
  Rng r;
  r.s[0] = to_u64(s.substr(0, comma), key, path);
  r.s[1] = to_u64(s.substr(comma + 1), key, path);
  if (r.s[0] == 0 && r.s[1] == 0) fail(path, "metadata '" + key + "' is the all-zero state, which never moves");
  return r;
}

}  // namespace

void save_checkpoint(const std::string& path, const Graph& g, const Optimizer& opt, const TrainState& st,
                     const Metadata& model_meta) {
  Metadata meta = model_meta;
  meta["glassbox.checkpoint"] = "1";
  meta["glassbox.architecture"] = architecture_json(g).dump();
  meta["train.optimizer"] = optimizer_name(opt.config().kind);
  meta["train.epoch"] = std::to_string(st.epoch);
  meta["train.steps"] = std::to_string(opt.steps());
  meta["train.data_rng"] = rng_str(st.data_rng);
  meta["train.graph_rng"] = rng_str(st.graph_rng);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", st.best_val_acc);
  meta["train.best_val_acc"] = buf;
  meta["train.best_epoch"] = std::to_string(st.best_epoch);
  meta["train.config"] = st.config.dump();
  if (!st.run.empty()) meta["train.run"] = st.run;
  std::vector<std::pair<std::string, const Tensor*>> ts;
  for (auto& [name, p] : g.named_params()) ts.emplace_back(name, &p->value);
  for (auto& t : opt.state_tensors()) ts.push_back(t);
  write_safetensors(path, ts, meta);
}

Checkpoint load_checkpoint(const std::string& path, Graph& g, Optimizer& opt) {
  TensorFile f = read_safetensors(path);
  const Metadata& m = f.metadata;
  if (!m.count("glassbox.checkpoint"))
    fail(path, "not a glassbox checkpoint (no glassbox.checkpoint metadata; --resume takes the .ckpt.safetensors "
               "file written beside the model)");
  if (m.at("glassbox.checkpoint") != "1") fail(path, "checkpoint format " + m.at("glassbox.checkpoint") + " is not supported");
  json arch;
  try {
    arch = json::parse(need(m, "glassbox.architecture", path));
  } catch (const json::exception& e) {
    fail(path, std::string("glassbox.architecture is not valid JSON (") + e.what() + ")");
  }
  if (arch != architecture_json(g)) {
    std::string text;
    try {
      text = architecture_text(graph_from_json(arch));
    } catch (const std::exception& e) {
      fail(path, std::string("glassbox.architecture is not a valid architecture (") + e.what() + ")");
    }
    fail(path, "checkpoint architecture differs from the model being trained (checkpoint: " + text + ")");
  }
  const std::string& oname = need(m, "train.optimizer", path);
  if (oname != optimizer_name(opt.config().kind))
    fail(path, "checkpoint was trained with --optimizer " + oname + ", this run uses " +
                   optimizer_name(opt.config().kind));
  std::map<std::string, Tensor> params, state;
  for (auto& [name, t] : f.tensors) (name.rfind("optim.", 0) == 0 ? state : params)[name] = t;
  Checkpoint c;
  c.steps = int64_t(to_u64(need(m, "train.steps", path), "train.steps", path));
  c.state.epoch = to_int_field(need(m, "train.epoch", path), "train.epoch", path);
  c.state.data_rng = rng_from(need(m, "train.data_rng", path), "train.data_rng", path);
  c.state.graph_rng = rng_from(need(m, "train.graph_rng", path), "train.graph_rng", path);
  c.state.best_epoch = to_int_field(need(m, "train.best_epoch", path), "train.best_epoch", path);
  const std::string& acc_text = need(m, "train.best_val_acc", path);
  try {  // (a bad value was "bad training metadata (stod)", naming neither)
    size_t used = 0;
    c.state.best_val_acc = std::stod(acc_text, &used);
    if (used != acc_text.size()) throw std::invalid_argument("trailing text");
  } catch (const std::exception&) {
    fail(path, "train.best_val_acc '" + acc_text + "' is not a number");
  }
  try {
    c.state.config = json::parse(need(m, "train.config", path));
    if (auto it = m.find("train.run"); it != m.end()) c.state.run = it->second;  // (older checkpoints have none)
  } catch (const std::exception& e) {
    fail(path, std::string("bad training metadata (") + e.what() + ")");
  }
  // A state no run can reach (an edited file): refused, as the settings above are. NaN is the best
  // accuracy of a run without validation.
  const double acc = c.state.best_val_acc;
  if (!std::isnan(acc) && !(acc >= 0 && acc <= 1))
    fail(path, "train.best_val_acc " + need(m, "train.best_val_acc", path) + " is not an accuracy in [0, 1]");
  if (c.state.best_epoch < 0 || c.state.best_epoch > c.state.epoch)
    fail(path, "train.best_epoch " + std::to_string(c.state.best_epoch) + " is past train.epoch " +
                   std::to_string(c.state.epoch));
  // Weights and optimizer state as a model file's weights: finite (a NaN diverged the first step,
  // blamed on --lr), and Adam's second moments, running averages of squares, not negative.
  for (const auto& [name, t] : f.tensors) {
    check_finite(t, path + ": tensor '" + name + "'");
    if (name.ends_with(".exp_avg_sq"))
      for (size_t i = 0; i < t.size(); ++i)
        if (t[i] < 0) fail(path, "tensor '" + name + "' element " + std::to_string(i) + " is negative (" +
                                     std::to_string(t[i]) + "): not a running average of squares");
  }
  // Parameters and optimizer state are assigned only once everything above checked out, so a
  // bad file leaves the graph as it was as far as possible.
  opt.load_state(state, c.steps, path);
  assign_params(g, params, path);
  c.metadata = m;
  return c;
}

}  // namespace gb
