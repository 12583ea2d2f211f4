// Flatten, Dropout and Add: layers that move or combine values without weights.
#include <cstring>

#include "engine/layers.h"
#include "engine/simd.h"
#include "engine/sizes.h"

namespace gb {

Shape Flatten::out_shape(const std::vector<Shape>& in) const {
  return {in[0][0], to_int(int64_t(in[0].sample().numel()), "flatten '" + name + "' features")};
}
void Flatten::forward(ForwardCall& c) { std::memcpy(c.out.data(), c.in[0]->data(), c.out.size() * sizeof(float)); }
void Flatten::backward(BackwardCall& c) {
  if (c.g_in[0]) std::memcpy(c.g_in[0]->data(), c.g_out.data(), c.g_out.size() * sizeof(float));
}

void Dropout::forward(ForwardCall& c) {
  const float* x = c.in[0]->data();
  float* y = c.out.data();
  const size_t n = c.out.size();
  if (c.mode != Mode::train || p == 0) {
    std::memcpy(y, x, n * sizeof(float));
    return;
  }
  mask.resize(n);
  const float keep = 1.f / (1.f - p);
  for (size_t i = 0; i < n; ++i) {
    mask[i] = c.rng.uniform() < p ? 0.f : keep;
    y[i] = x[i] * mask[i];
  }
}

void Dropout::backward(BackwardCall& c) {
  if (!c.g_in[0]) return;
  const float* gy = c.g_out.data();
  float* gx = c.g_in[0]->data();
  const size_t n = c.g_out.size();
  if (c.mode != Mode::train || p == 0) {
    std::memcpy(gx, gy, n * sizeof(float));
    return;
  }
  for (size_t i = 0; i < n; ++i) gx[i] = gy[i] * mask[i];
}

Shape Add::out_shape(const std::vector<Shape>& in) const {
  if (in.empty()) throw ShapeError("add '" + name + "' has no inputs");
  for (size_t i = 1; i < in.size(); ++i)
    if (in[i] != in[0]) shape_error("add '" + name + "' input " + std::to_string(i), in[0], in[i]);
  return in[0];
}

// y = a + b, compiled for each vector width (engine/simd.h); y may be a.
GB_CLONES static void add_arrays(const float* a, const float* b, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void Add::forward(ForwardCall& c) {
  float* y = c.out.data();
  const size_t n = c.out.size();
  if (c.in.size() == 1) {
    if (y != c.in[0]->data()) std::memcpy(y, c.in[0]->data(), n * sizeof(float));  // else in place
    return;
  }
  add_arrays(c.in[0]->data(), c.in[1]->data(), y, n);  // one pass, not a copy and then an add
  for (size_t k = 2; k < c.in.size(); ++k) add_arrays(y, c.in[k]->data(), y, n);
}

void Add::backward(BackwardCall& c) {
  for (Tensor* g : c.g_in)
    if (g && g->data() != c.g_out.data()) std::memcpy(g->data(), c.g_out.data(), c.g_out.size() * sizeof(float));
}

double Add::flops(const std::vector<Shape>& in) const { return double(in[0].numel()) / in[0][0] * (in.size() - 1); }

}  // namespace gb
