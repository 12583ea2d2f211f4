// Normalization, augmentation and batching.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "data/dataset.h"

namespace gb {

namespace {

// Channels and the size of one channel's plane for [N,C,...] ([N,F] has F channels of size 1).
void channel_layout(const Tensor& x, size_t want, int& n, int& c, size_t& plane) {
  if (x.rank() < 2) throw ShapeError("normalization needs [N,C,...], got " + x.shape().str());
  n = x.dim(0);
  c = x.dim(1);
  plane = c ? x.sample_size() / size_t(c) : 0;
  if (want && size_t(c) != want)
    throw ShapeError("normalization has " + std::to_string(want) + " channels, data " + x.shape().str() + " has " +
                     std::to_string(c));
}

}  // namespace

void Normalization::apply(Tensor& x) const {
  if (empty()) return;
  int n, c;
  size_t plane;
  channel_layout(x, mean.size(), n, c, plane);
  float* p = x.data();
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < c; ++k) {
      const float m = mean[k], inv = 1.f / std[k];
      float* q = p + (size_t(i) * c + k) * plane;
      for (size_t j = 0; j < plane; ++j) q[j] = (q[j] - m) * inv;
    }
}

void Normalization::invert(Tensor& x) const {
  if (empty()) return;
  int n, c;
  size_t plane;
  channel_layout(x, mean.size(), n, c, plane);
  float* p = x.data();
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < c; ++k) {
      const float m = mean[k], s = std[k];
      float* q = p + (size_t(i) * c + k) * plane;
      for (size_t j = 0; j < plane; ++j) q[j] = q[j] * s + m;
    }
}

nlohmann::json Normalization::to_json() const {
  if (empty()) return nlohmann::json::object();
  return {{"mean", mean}, {"std", std}};
}

Normalization Normalization::of_model(const std::map<std::string, std::string>& metadata) {
  auto it = metadata.find("glassbox.normalize");
  if (it == metadata.end() || it->second.empty() || it->second == "none") return {};
  try {
    return from_json(nlohmann::json::parse(it->second));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(std::string("model metadata glassbox.normalize is not JSON: ") + e.what());
  }
}

Normalization Normalization::from_json(const nlohmann::json& j) {
  Normalization n;
  if (j.is_null() || (j.is_object() && j.empty())) return n;
  if (!j.is_object() || !j.contains("mean") || !j.contains("std") || !j["mean"].is_array() || !j["std"].is_array())
    throw DataError("glassbox.normalize: expected {\"mean\": [...], \"std\": [...]}, got " + j.dump());
  try {
    n.mean = j["mean"].get<std::vector<float>>();
    n.std = j["std"].get<std::vector<float>>();
  } catch (const nlohmann::json::exception&) {
    throw DataError("glassbox.normalize: mean and std must be arrays of numbers, got " + j.dump());
  }
  if (n.mean.size() != n.std.size() || n.mean.empty())
    throw DataError("glassbox.normalize: mean and std must have the same, nonzero length, got " + j.dump());
  // A mean past float32 (1e39 became inf) or a std whose reciprocal is not finite (1e-45) made every
  // input NaN or inf: refused at load, as non-finite weights are.
  for (float m : n.mean)
    if (!std::isfinite(m)) throw DataError("glassbox.normalize: every mean must be a finite float32, got " + j.dump());
  for (float s : n.std)
    if (!(s > 0) || !std::isfinite(s) || !std::isfinite(1 / s))
      throw DataError("glassbox.normalize: every std must be positive, with a finite reciprocal, got " + j.dump());
  return n;
}

Normalization channel_stats(const Dataset& d) {
  int n, c;
  size_t plane;
  channel_layout(d.x, 0, n, c, plane);
  // Doubles: 47M float additions would lose digits in float.
  std::vector<double> sum(c, 0.0), sq(c, 0.0);
  const float* p = d.x.data();
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < c; ++k) {
      const float* q = p + (size_t(i) * c + k) * plane;
      double s = 0, s2 = 0;
      for (size_t j = 0; j < plane; ++j) s += q[j], s2 += double(q[j]) * q[j];
      sum[k] += s;
      sq[k] += s2;
    }
  Normalization out;
  const double count = double(n) * double(plane);
  for (int k = 0; k < c; ++k) {
    double m = count ? sum[k] / count : 0.0, var = count ? sq[k] / count - m * m : 0.0;
    double s = std::sqrt(std::max(var, 0.0));
    out.mean.push_back(float(m));
    out.std.push_back(s > 1e-6 ? float(s) : 1.f);  // a constant channel is left unscaled, not divided by 0
  }
  return out;
}

void shuffle_order(std::vector<int>& order, Rng& rng) {
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(uint32_t(i))]);
}

std::vector<int> shuffled_order(int n, Rng& rng) {
  std::vector<int> order(size_t(std::max(n, 0)));
  for (int i = 0; i < n; ++i) order[size_t(i)] = i;
  shuffle_order(order, rng);
  return order;
}

void make_batch(const Dataset& d, const std::vector<int>& order, int begin, int end, const Normalization& norm,
                const Augment* aug, Rng& rng, Tensor& x, std::vector<int>& y) {
  if (begin < 0 || end < begin || size_t(end) > order.size())
    throw ShapeError("make_batch: range [" + std::to_string(begin) + "," + std::to_string(end) + ") outside an order of " +
                     std::to_string(order.size()));
  const int n = end - begin, total = d.size();
  const Shape want = d.x.shape().with_batch(n);
  if (x.shape() != want) x.resize(want);
  y.resize(size_t(n));
  const size_t per = d.x.sample_size();
  const bool image = d.x.rank() == 4;
  const int pad = aug && image ? std::max(aug->crop_pad, 0) : 0;
  const bool flip = aug && image && aug->hflip;
  for (int i = 0; i < n; ++i) {
    const int k = order[size_t(begin + i)];
    if (k < 0 || k >= total)
      throw ShapeError("make_batch: sample " + std::to_string(k) + " out of range for " + d.name + " (" +
                       std::to_string(total) + " samples)");
    y[size_t(i)] = d.y[size_t(k)];
    const float* src = d.x.data() + size_t(k) * per;
    float* dst = x.data() + size_t(i) * per;
    if (!pad && !flip) {
      std::memcpy(dst, src, per * sizeof(float));
      continue;
    }
    // Crop and flip in pixel space while copying, as torchvision does before Normalize: the
    // padding is black (0) in [0,1] pixels, and no second buffer is needed.
    const int dy = pad ? int(rng.below(uint32_t(2 * pad + 1))) - pad : 0;
    const int dx = pad ? int(rng.below(uint32_t(2 * pad + 1))) - pad : 0;
    const bool mirror = flip && rng.uniform() < 0.5f;
    const int C = d.x.dim(1), H = d.x.dim(2), W = d.x.dim(3);
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < H; ++r) {
        float* o = dst + (size_t(c) * H + r) * W;
        const int sr = r + dy;
        if (sr < 0 || sr >= H) {
          std::fill(o, o + W, 0.f);
          continue;
        }
        const float* s = src + (size_t(c) * H + sr) * W;
        for (int col = 0; col < W; ++col) {
          const int sc = (mirror ? W - 1 - col : col) + dx;
          o[col] = sc >= 0 && sc < W ? s[sc] : 0.f;
        }
      }
  }
  norm.apply(x);
  if (aug && aug->noise_std > 0) {
    float* p = x.data();
    const size_t m = x.size();
    for (size_t i = 0; i < m; ++i) p[i] += aug->noise_std * rng.normal();
  }
}

}  // namespace gb
