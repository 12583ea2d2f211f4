#include "train/optimizer.h"

#include <cmath>
#include <stdexcept>

namespace gb {

OptimizerKind optimizer_kind(const std::string& name) {
  if (name == "sgd") return OptimizerKind::sgd;
  if (name == "adam") return OptimizerKind::adam;
  if (name == "adamw") return OptimizerKind::adamw;
  throw std::invalid_argument("--optimizer '" + name + "': unknown optimizer (choose sgd, adam or adamw)");
}

std::string optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::adam: return "adam";
    case OptimizerKind::adamw: return "adamw";
  }
  return "?";
}

float default_weight_decay(OptimizerKind k) { return k == OptimizerKind::adamw ? 0.01f : 0.f; }
float default_lr(OptimizerKind k) { return k == OptimizerKind::sgd ? 0.01f : 1e-3f; }

Optimizer::Optimizer(const Graph& g, const OptimizerConfig& cfg) : cfg_(cfg) {
  for (auto& [name, p] : g.named_params()) {
    if (!p->trainable) continue;
    Slot s{name, p, {}, {}};
    const bool adam = cfg.kind != OptimizerKind::sgd;
    if (adam || cfg.momentum != 0.f) s.a = Tensor(p->value.shape());
    if (adam) s.b = Tensor(p->value.shape());
    slots_.push_back(std::move(s));
  }
}

void Optimizer::step(float lr) {
  ++steps_;
  const float wd = cfg_.weight_decay;
  if (cfg_.kind == OptimizerKind::sgd) {
    const float mom = cfg_.momentum, damp = 1.f - cfg_.dampening;
    const bool first = steps_ == 1;  // PyTorch's momentum buffer starts as a copy of the gradient
    for (Slot& s : slots_) {
      float* w = s.p->value.data();
      const float* g = s.p->grad.data();
      float* buf = s.a.data();
      const size_t n = s.p->value.size();
      for (size_t i = 0; i < n; ++i) {
        float d = g[i];
        if (wd != 0.f) d += wd * w[i];
        if (mom != 0.f) {
          buf[i] = first ? d : mom * buf[i] + damp * d;
          d = cfg_.nesterov ? d + mom * buf[i] : buf[i];
        }
        w[i] -= lr * d;
      }
    }
    return;
  }
  // Adam / AdamW as torch.optim's single-tensor path: bias corrections in double, then
  // p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
  const float b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
  const double bc1 = 1.0 - std::pow(double(b1), double(steps_));
  const double bc2 = 1.0 - std::pow(double(b2), double(steps_));
  const float step_size = float(lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  const bool decoupled = cfg_.kind == OptimizerKind::adamw;
  const float decay = decoupled ? 1.f - lr * wd : 1.f;
  for (Slot& s : slots_) {
    float* w = s.p->value.data();
    const float* g = s.p->grad.data();
    float* m = s.a.data();
    float* v = s.b.data();
    const size_t n = s.p->value.size();
    for (size_t i = 0; i < n; ++i) {
      float d = g[i];
      if (decoupled) {
        w[i] *= decay;
      } else if (wd != 0.f) {
        d += wd * w[i];
      }
      m[i] += (1.f - b1) * (d - m[i]);  // lerp, as PyTorch
      v[i] = b2 * v[i] + (1.f - b2) * d * d;
      w[i] -= step_size * (m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps));
    }
  }
}

std::vector<std::pair<std::string, const Tensor*>> Optimizer::state_tensors() const {
  std::vector<std::pair<std::string, const Tensor*>> out;
  const bool adam = cfg_.kind != OptimizerKind::sgd;
  for (const Slot& s : slots_) {
    if (!s.a.empty()) out.emplace_back("optim." + s.name + (adam ? ".exp_avg" : ".momentum_buffer"), &s.a);
    if (!s.b.empty()) out.emplace_back("optim." + s.name + ".exp_avg_sq", &s.b);
  }
  return out;
}

void Optimizer::load_state(const std::map<std::string, Tensor>& tensors, int64_t steps, const std::string& source) {
  const bool adam = cfg_.kind != OptimizerKind::sgd;
  auto take = [&](const std::string& key, Tensor& dst) {
    auto it = tensors.find(key);
    if (it == tensors.end())
      throw std::runtime_error(source + ": optimizer state '" + key + "' is missing (was the checkpoint written by " +
                               optimizer_name(cfg_.kind) + " with the same momentum?)");
    if (it->second.shape() != dst.shape())
      throw std::runtime_error(source + ": optimizer state '" + key + "' has shape " + it->second.shape().str() +
                               ", expected " + dst.shape().str());
    dst.copy_from(it->second);
  };
  for (Slot& s : slots_) {
    if (!s.a.empty()) take("optim." + s.name + (adam ? ".exp_avg" : ".momentum_buffer"), s.a);
    if (!s.b.empty()) take("optim." + s.name + ".exp_avg_sq", s.b);
  }
  if (steps < 0) throw std::runtime_error(source + ": negative optimizer step count");
  steps_ = steps;
}

ScheduleKind schedule_kind(const std::string& name) {
  if (name == "constant") return ScheduleKind::constant;
  if (name == "step") return ScheduleKind::step;
  if (name == "cosine") return ScheduleKind::cosine;
  throw std::invalid_argument("--schedule '" + name + "': unknown schedule (choose constant, step or cosine)");
}

std::string schedule_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::step: return "step";
    case ScheduleKind::cosine: return "cosine";
  }
  return "?";
}

float learning_rate(const ScheduleConfig& s, float base, int64_t it, int64_t per_epoch, int64_t total) {
  const int64_t warm = int64_t(std::llround(double(s.warmup) * double(per_epoch)));
  if (it < warm) return float(double(base) * double(it + 1) / double(warm));
  switch (s.kind) {
    case ScheduleKind::constant: return base;
    case ScheduleKind::step: {
      const int64_t epoch = per_epoch > 0 ? it / per_epoch : 0;
      return float(double(base) * std::pow(double(s.gamma), double(epoch / std::max(1, s.step_size))));
    }
    case ScheduleKind::cosine: {
      const int64_t span = total - warm;
      if (span <= 0) return base;
      const double t = std::min(1.0, double(it - warm) / double(span));
      return float(s.min_lr + (double(base) - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * t)));
    }
  }
  return base;
}

}  // namespace gb
