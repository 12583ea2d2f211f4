#include "engine/tensor.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/simd.h"
#include "engine/sizes.h"

namespace gb {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
std::align_val_t storage_alignment(size_t bytes) { return std::align_val_t{bytes >= kHugePage ? kHugePage : 64}; }
}  // namespace

void* allocate_storage(size_t bytes) {
  void* p = ::operator new(bytes, storage_alignment(bytes));
#ifdef MADV_HUGEPAGE
  // Advice only: where the kernel has huge pages off, or refuses, the buffer keeps 4 KiB pages
  // (and errno keeps what it was).
  if (bytes >= kHugePage) {
    const int saved = errno;
    madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
    errno = saved;
  }
#endif
  return p;
}

void free_storage(void* p, size_t bytes) { ::operator delete(p, storage_alignment(bytes)); }

Shape::Shape(std::initializer_list<int> dims) {
  if (dims.size() < 1 || dims.size() > 4)
    throw ShapeError("tensor rank must be 1..4, got " + std::to_string(dims.size()));
  rank = int(dims.size());
  int i = 0;
  for (int v : dims) d[i++] = v;
  numel();  // refuses negative dimensions and element counts that overflow
}

Shape Shape::of(const std::vector<int>& dims) {
  if (dims.size() < 1 || dims.size() > 4)
    throw ShapeError("tensor rank must be 1..4, got " + std::to_string(dims.size()));
  Shape s;
  s.rank = int(dims.size());
  for (int i = 0; i < s.rank; ++i) s.d[i] = dims[i];
  s.numel();
  return s;
}

void Shape::bad_numel(int i) const {
  throw ShapeError("shape " + str() + (d[i] < 0 ? " has a negative dimension" : " has too many elements"));
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

bool Shape::operator==(const Shape& o) const {
  if (rank != o.rank) return false;
  for (int i = 0; i < rank; ++i)
    if (d[i] != o.d[i]) return false;
  return true;
}

Shape Shape::with_batch(int n) const {
  Shape s = *this;
  s.d[0] = n;
  return s;
}

Shape Shape::batch_of(int n, const Shape& sample) {
  if (sample.rank >= 4) throw ShapeError("cannot add a batch dimension to " + sample.str());
  Shape s;
  s.rank = sample.rank + 1;
  s.d[0] = n;
  for (int i = 0; i < sample.rank; ++i) s.d[i + 1] = sample.d[i];
  return s;
}

Shape Shape::sample() const {
  if (rank < 2) throw ShapeError("shape " + str() + " has no per-sample part");
  Shape s;
  s.rank = rank - 1;
  for (int i = 1; i < rank; ++i) s.d[i - 1] = d[i];
  return s;
}

void shape_error(const std::string& what, const Shape& want, const Shape& got) {
  throw ShapeError(what + ": expected shape " + want.str() + ", got " + got.str());
}

void check_shape(const Tensor& t, const Shape& want, const std::string& what) {
  if (t.shape() != want) shape_error(what, want, t.shape());
}

static void check_tensor_memory(const Shape& s, size_t n) {
  if (uint64_t(n) * sizeof(float) > memory_limit()) check_memory(uint64_t(n) * sizeof(float), "a tensor of shape " + s.str());
}

Tensor::Tensor(const Shape& s, float fill) {
  set_shape(s);
  check_tensor_memory(s, s.numel());
  buf_ = std::make_shared<FloatBuffer>(s.numel(), fill);
}

Tensor Tensor::from(const Shape& s, std::vector<float> values) {
  if (values.size() != s.numel())
    throw ShapeError("Tensor::from: " + std::to_string(values.size()) + " values for shape " + s.str());
  Tensor t;
  t.set_shape(s);
  t.buf_ = std::make_shared<FloatBuffer>(values.begin(), values.end());
  return t;
}

float& Tensor::at(int n, int c, int h, int w) {
  return data()[((size_t(n) * dim(1) + c) * dim(2) + h) * dim(3) + w];
}
float Tensor::at(int n, int c, int h, int w) const {
  return data()[((size_t(n) * dim(1) + c) * dim(2) + h) * dim(3) + w];
}

Tensor Tensor::slice(int begin, int end) const {
  if (begin < 0 || end > batch() || begin > end)
    throw ShapeError("slice [" + std::to_string(begin) + "," + std::to_string(end) + ") out of range for " +
                     shape_.str());
  Tensor t = *this;
  t.off_ = off_ + size_t(begin) * sample_size();
  Shape rows = shape_;
  rows.d[0] = end - begin;
  t.set_shape(rows);
  return t;
}

Tensor Tensor::reshaped(const Shape& s) const {
  if (s.numel() != size()) throw ShapeError("cannot reshape " + shape_.str() + " to " + s.str());
  Tensor t = *this;
  t.set_shape(s);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_);
  if (size()) std::memcpy(t.data(), data(), size() * sizeof(float));
  return t;
}

void Tensor::resize(const Shape& s) {
  size_t n = s.numel();
  bool own = buf_ && buf_.use_count() == 1 && off_ == 0;
  if (!own || buf_->size() < n) {
    check_tensor_memory(s, n);
    buf_ = std::make_shared<FloatBuffer>(n);
    off_ = 0;
  }
  set_shape(s);
}

void Tensor::fill(float v) {
  if (size()) std::fill(data(), data() + size(), v);
}

void Tensor::copy_from(const Tensor& other) {
  check_shape(other, shape_, "copy");
  if (size()) std::memmove(data(), other.data(), size() * sizeof(float));
}

// Sixteen running sums: four vectors of four doubles on AVX2, so that four independent adds are in
// flight (an add's latency is four cycles); eight left the loop waiting on them.
constexpr int kLanes = 16;

GB_INLINE double fold(const double* l) {  // a fixed tree over the lanes
  double h[8];
  for (int j = 0; j < 8; ++j) h[j] = l[j] + l[j + 8];
  return ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]));
}

GB_CLONES double sum(const float* p, size_t n, size_t slices, size_t stride) {
  double lane[kLanes] = {};
  for (size_t s = 0; s < slices; ++s, p += stride) {
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lane[j] += p[i + j];
    for (; i < n; ++i) lane[i % kLanes] += p[i];
  }
  return fold(lane);
}

GB_CLONES double sum_squared_deviations(const float* p, size_t n, double mean, size_t slices, size_t stride) {
  double lane[kLanes] = {};
  for (size_t s = 0; s < slices; ++s, p += stride) {
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lane[j] += (p[i + j] - mean) * (p[i + j] - mean);
    for (; i < n; ++i) lane[i % kLanes] += (p[i] - mean) * (p[i] - mean);
  }
  return fold(lane);
}

GB_CLONES void sum_and_centered_dot(const float* g, const float* x, size_t n, double mean, double& sum_g,
                                    double& sum_gx, size_t slices, size_t stride) {
  double a[kLanes] = {}, b[kLanes] = {};
  for (size_t s = 0; s < slices; ++s, g += stride, x += stride) {
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        a[j] += g[i + j];
        b[j] += g[i + j] * (x[i + j] - mean);
      }
    for (; i < n; ++i) a[i % kLanes] += g[i], b[i % kLanes] += g[i] * (x[i] - mean);
  }
  sum_g = fold(a);
  sum_gx = fold(b);
}

Tensor concat(const std::vector<Tensor>& parts) {
  if (parts.empty()) throw ShapeError("concat of nothing");
  int64_t n = 0;
  for (auto& p : parts) {
    if (p.rank() != parts[0].rank() || (p.rank() > 1 && p.shape().sample() != parts[0].shape().sample()))
      shape_error("concat", parts[0].shape().with_batch(p.batch()), p.shape());
    n += p.batch();
  }
  Tensor out(parts[0].shape().with_batch(to_int(n, "concat: rows")));
  float* o = out.data();
  for (auto& p : parts) {
    if (p.empty()) continue;  // an empty part may have no storage (memcpy from null is UB)
    std::memcpy(o, p.data(), p.size() * sizeof(float));
    o += p.size();
  }
  return out;
}

}  // namespace gb
