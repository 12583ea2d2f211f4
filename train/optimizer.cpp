#include "train/optimizer.h"

#include <cmath>
#include <stdexcept>

#include "engine/threads.h"

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

namespace {

// The per-element updates, one loop per combination of options (template flags instead of tests
// inside the loop), so that the compiler vectorizes each; the arithmetic, and so the bits, are
// those of PyTorch's single-tensor formulas written out element by element.
struct SgdStep {
  float lr, wd, mom, damp;
};

template <bool Decay, bool Momentum, bool First, bool Nesterov>
void sgd_range(const SgdStep& k, float* __restrict w, const float* __restrict g, float* __restrict buf, size_t b,
               size_t e) {
  for (size_t i = b; i < e; ++i) {
    float d = g[i];
    if constexpr (Decay) d += k.wd * w[i];
    if constexpr (Momentum) {
      // PyTorch's momentum buffer starts as a copy of the gradient.
      if constexpr (First) buf[i] = d;
      else buf[i] = k.mom * buf[i] + k.damp * d;
      if constexpr (Nesterov) d = d + k.mom * buf[i];
      else d = buf[i];
    }
    w[i] -= k.lr * d;
  }
}

using SgdRange = void (*)(const SgdStep&, float*, const float*, float*, size_t, size_t);

template <bool Decay>
SgdRange sgd_for(bool momentum, bool first, bool nesterov) {
  if (!momentum) return sgd_range<Decay, false, false, false>;
  if (first) return nesterov ? sgd_range<Decay, true, true, true> : sgd_range<Decay, true, true, false>;
  return nesterov ? sgd_range<Decay, true, false, true> : sgd_range<Decay, true, false, false>;
}

// Adam / AdamW as torch.optim's single-tensor path: bias corrections in double, then
// p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
struct AdamStep {
  float b1, b2, eps, step_size, bc2_sqrt, wd, decay;
};

// (train/ is compiled with -fno-math-errno: otherwise the compiler keeps a call path for sqrt
// setting errno, which v >= 0 never takes, and does not vectorize the loop.)
template <bool Decoupled, bool Decay>
void adam_range(const AdamStep& k, float* __restrict w, const float* __restrict g, float* __restrict m,
                float* __restrict v, size_t b, size_t e) {
  for (size_t i = b; i < e; ++i) {
    float d = g[i];
    if constexpr (Decoupled) w[i] *= k.decay;
    else if constexpr (Decay) d += k.wd * w[i];
    m[i] += (1.f - k.b1) * (d - m[i]);  // lerp, as PyTorch
    v[i] = k.b2 * v[i] + (1.f - k.b2) * d * d;
    w[i] -= k.step_size * (m[i] / (std::sqrt(v[i]) / k.bc2_sqrt + k.eps));
  }
}

}  // namespace

// Every parameter's elements are cut into one range per thread: the update is element-wise, so
// the bits do not depend on the cut, and a model of a few hundred thousand parameters (mlp) is
// several megabytes of weights, gradients and moments to stream, which two cores do faster.
void Optimizer::for_each_range(const std::function<void(Slot&, size_t, size_t)>& fn) {
  size_t total = 0;
  for (const Slot& s : slots_) total += s.p->value.size();
  const int T = total >= (size_t(1) << 15) && !in_parallel() ? threads() : 1;
  auto run = [&](int t) {
    for (Slot& s : slots_) {
      const size_t n = s.p->value.size(), b = n * t / T, e = n * (t + 1) / T;
      if (b < e) fn(s, b, e);
    }
  };
  if (T == 1) return run(0);
  parallel(T, run);
}

void Optimizer::step(float lr) {
  ++steps_;
  const float wd = cfg_.weight_decay;
  if (cfg_.kind == OptimizerKind::sgd) {
    const SgdStep k{lr, wd, cfg_.momentum, 1.f - cfg_.dampening};
    const bool momentum = k.mom != 0.f, first = steps_ == 1;
    const SgdRange update = wd != 0.f ? sgd_for<true>(momentum, first, cfg_.nesterov)
                                      : sgd_for<false>(momentum, first, cfg_.nesterov);
    for_each_range([&](Slot& s, size_t b, size_t e) {
      update(k, s.p->value.data(), s.p->grad.data(), s.a.data(), b, e);
    });
    return;
  }
  const double bc1 = 1.0 - std::pow(double(cfg_.beta1), double(steps_));
  const double bc2 = 1.0 - std::pow(double(cfg_.beta2), double(steps_));
  const bool decoupled = cfg_.kind == OptimizerKind::adamw;
  const AdamStep k{cfg_.beta1, cfg_.beta2, cfg_.eps, float(lr / bc1), float(std::sqrt(bc2)), wd,
                   decoupled ? 1.f - lr * wd : 1.f};
  const auto update = decoupled ? adam_range<true, false> : wd != 0.f ? adam_range<false, true> : adam_range<false, false>;
  for_each_range([&](Slot& s, size_t b, size_t e) {
    update(k, s.p->value.data(), s.p->grad.data(), s.a.data(), s.b.data(), b, e);
  });
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
