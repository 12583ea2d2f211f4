// Optimizers over a graph's trainable parameters and learning-rate schedules, with PyTorch's
// semantics and defaults (torch.optim.SGD / Adam / AdamW, StepLR, cosine annealing with a linear
// warm-up). All state (moments, step count) can be exported as named tensors for checkpoints.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/graph.h"

namespace gb {

enum class OptimizerKind { sgd, adam, adamw };
OptimizerKind optimizer_kind(const std::string& name);  // throws naming the valid choices
std::string optimizer_name(OptimizerKind k);

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  float lr = 0.01f;
  float momentum = 0.f;   // SGD
  float dampening = 0.f;  // SGD
  bool nesterov = false;  // SGD (PyTorch form: g + momentum * buf)
  // SGD and Adam: L2 added to the gradient; AdamW: decoupled decay p -= lr * wd * p.
  // Use default_weight_decay() for the per-optimizer PyTorch default.
  float weight_decay = 0.f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // Adam, AdamW
};
float default_weight_decay(OptimizerKind k);  // 0, 0, 0.01 (PyTorch)
float default_lr(OptimizerKind k);            // 0.01 for SGD, 1e-3 for Adam/AdamW

class Optimizer {
 public:
  Optimizer(const Graph& g, const OptimizerConfig& cfg);
  const OptimizerConfig& config() const { return cfg_; }
  // One update of every trainable parameter from its .grad, with learning rate `lr` (the
  // schedule's value for this step; cfg.lr is the base rate).
  void step(float lr);
  int64_t steps() const { return steps_; }

  // State for checkpoints: tensors named "optim.<param>.<buffer>" and the step count.
  std::vector<std::pair<std::string, const Tensor*>> state_tensors() const;
  // Restores state written by state_tensors(); throws naming `source` and the missing/mismatched
  // tensor. Tensors not starting with "optim." are ignored.
  void load_state(const std::map<std::string, Tensor>& tensors, int64_t steps, const std::string& source);

 private:
  struct Slot {
    std::string name;
    Param* p;
    Tensor a, b;  // SGD: momentum buffer (a); Adam: exp_avg (a), exp_avg_sq (b)
  };
  // fn(slot, begin, end) over every slot's elements, the ranges split across the threads.
  void for_each_range(const std::function<void(Slot&, size_t, size_t)>& fn);
  OptimizerConfig cfg_;
  std::vector<Slot> slots_;
  int64_t steps_ = 0;
};

enum class ScheduleKind { constant, step, cosine };
ScheduleKind schedule_kind(const std::string& name);  // throws naming the valid choices
std::string schedule_name(ScheduleKind k);

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::constant;
  int step_size = 1;       // step: multiply by gamma every step_size epochs (StepLR)
  float gamma = 0.1f;      // step
  float warmup = 0.f;      // epochs of linear warm-up (fractions allowed), for every kind
  float min_lr = 0.f;      // cosine: the final rate (eta_min)
};

// The learning rate for global iteration `it` (0-based) of a run with `per_epoch` iterations per
// epoch and `total` iterations in all. Warm-up ramps linearly: base * (it + 1) / warmup_iters.
// The step schedule changes at epoch boundaries; cosine anneals per iteration from the end of
// warm-up to `total`.
float learning_rate(const ScheduleConfig& s, float base, int64_t it, int64_t per_epoch, int64_t total);

}  // namespace gb
