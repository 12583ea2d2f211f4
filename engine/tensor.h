// Tensor: float32, rank 1..4, contiguous, NCHW. Storage is shared so that a batch slice or a
// reshape is a view (no copy); clone() makes an independent copy.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace gb {

struct Shape {
  std::array<int, 4> d{1, 1, 1, 1};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int> dims);
  static Shape of(const std::vector<int>& dims);

  int operator[](int i) const { return d[i]; }
  // Inline (loops test t.size() per element); a shape read from a file or computed from hostile
  // hyper-parameters must not wrap: a negative dimension or more than 2^60 elements throws.
  size_t numel() const {
    uint64_t n = 1;
    for (int i = 0; i < rank; ++i)
      if (d[i] < 0 || __builtin_mul_overflow(n, uint64_t(d[i]), &n) || n > (uint64_t(1) << 60)) bad_numel(i);
    return size_t(n);
  }
  [[noreturn]] void bad_numel(int i) const;  // throws ShapeError naming the shape
  std::vector<int> vec() const { return {d.begin(), d.begin() + rank}; }
  std::string str() const;  // "[64,1,28,28]"
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  // Shape with the batch dimension replaced (rank unchanged) or prepended.
  Shape with_batch(int n) const;
  static Shape batch_of(int n, const Shape& sample);  // [n, sample...]
  Shape sample() const;                               // drops dim 0
};

// Raw storage for the allocator below: 64-byte aligned, and from 2 MiB on, 2 MiB aligned and
// marked for transparent huge pages (Linux). A buffer's first touch is then one page fault per
// 2 MiB instead of one per 4 KiB: on a virtual machine each fault is expensive, and faulting in a
// dataset or the activations of a batch of 256 took seconds (glassbox train on 8,192 CIFAR-size
// images spent 3.0 s before its first step, 1.2 s with huge pages).
void* allocate_storage(size_t bytes);
void free_storage(void* p, size_t bytes);

// Storage for floats that starts on a 64-byte boundary (a cache line, and one AVX-512 vector):
// vector loads from a channel's start do not straddle two lines. With malloc's 16-byte alignment
// training ran 4-11% slower on OpenBLAS's AVX-512 kernels, about 2% on its AVX2 ones.
template <class T>
struct CacheAligned {
  using value_type = T;
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_storage(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { free_storage(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const CacheAligned<U>&) const { return true; }
};
using FloatBuffer = std::vector<float, CacheAligned<float>>;
using ByteBuffer = std::vector<uint8_t, CacheAligned<uint8_t>>;  // a whole file read into memory

// Thrown for every shape mismatch; the message names both shapes.
struct ShapeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const Shape& s, float fill = 0.f);
  static Tensor from(const Shape& s, std::vector<float> values);

  const Shape& shape() const { return shape_; }
  int dim(int i) const { return shape_.d[i]; }
  int rank() const { return shape_.rank; }
  size_t size() const { return size_; }  // kept with the shape: loops test it per element
  bool empty() const { return size() == 0; }
  int batch() const { return shape_.rank ? shape_.d[0] : 0; }  // 0 for the empty Tensor()
  size_t sample_size() const { return shape_.d[0] ? size() / shape_.d[0] : 0; }

  float* data() { return buf_ ? buf_->data() + off_ : nullptr; }
  const float* data() const { return buf_ ? buf_->data() + off_ : nullptr; }
  float& operator[](size_t i) { return data()[i]; }
  float operator[](size_t i) const { return data()[i]; }
  float& at(int n, int c, int h, int w);
  float at(int n, int c, int h, int w) const;

  Tensor slice(int begin, int end) const;  // rows [begin, end) of dim 0, a view
  Tensor sample(int i) const { return slice(i, i + 1); }
  Tensor reshaped(const Shape& s) const;   // a view; same number of elements
  Tensor clone() const;
  // Makes this tensor of shape s, reusing its storage when it owns enough of it (workspace
  // semantics: contents are unspecified afterwards). Views are never written through.
  void resize(const Shape& s);
  void fill(float v);
  void copy_from(const Tensor& other);  // shapes must match

 private:
  std::shared_ptr<FloatBuffer> buf_;
  size_t off_ = 0;
  Shape shape_;
  size_t size_ = 0;  // shape_.numel() (checked once, when the shape is set); 0 for the empty Tensor()
  void set_shape(const Shape& s) {
    shape_ = s;
    size_ = s.rank ? s.numel() : 0;
  }
};

// Throws ShapeError("<what>: expected [..], got [..]") unless t has shape want.
void check_shape(const Tensor& t, const Shape& want, const std::string& what);
[[noreturn]] void shape_error(const std::string& what, const Shape& want, const Shape& got);

// Concatenates along dim 0 (all other dims equal).
Tensor concat(const std::vector<Tensor>& parts);

// The sum of n floats, added in double precision in sixteen interleaved running sums: the compiler
// vectorizes it (one running sum would be a chain of dependent adds), and the order is fixed, so
// the result is the same on every run. With `slices`, over that many runs of n floats `stride`
// apart (one channel of an NCHW batch) into the same running sums: one call instead of one per
// plane, whose set-up costs as much as the adds on an 8x8 plane.
double sum(const float* p, size_t n, size_t slices = 1, size_t stride = 0);
// The same for Σ (p[i] - mean)² and, for two arrays, Σ g[i] and Σ g[i]·(x[i] - mean).
double sum_squared_deviations(const float* p, size_t n, double mean, size_t slices = 1, size_t stride = 0);
void sum_and_centered_dot(const float* g, const float* x, size_t n, double mean, double& sum_g, double& sum_gx,
                          size_t slices = 1, size_t stride = 0);

}  // namespace gb
