// The layer zoo. Each struct holds its hyper-parameters and parameters as plain public data, so
// rules in explain/ can read weights and reuse the core operations (e.g. LRP runs the same
// convolution with modified weights).
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>

#include "engine/layer.h"

namespace gb {

struct Conv2d : Layer {
  int out_ch, k, stride, pad;
  bool has_bias;
  int in_ch = 0;
  Param weight{"weight"}, bias{"bias"};  // weight [out, in, k, k] (PyTorch OIHW), bias [out]

  Conv2d(int out_ch, int k, int stride = 1, int pad = 0, bool bias = true)
      : out_ch(out_ch), k(k), stride(stride), pad(pad), has_bias(bias) {}
  std::string kind() const override { return "conv"; }
  bool backward_reads_output() const override { return false; }
  bool adds_input_grad() const override { return true; }
  void build(const std::vector<Shape>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  std::vector<Param*> params() override;
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
  void init(Rng& rng) override;
  void prepare(Pass pass, Mode mode) override;
  void end_backward(Workspace& ws, int node, const std::vector<Tensor*>& grads) override;

  // The core operations with explicit weights (w shaped like `weight`, b may be null). 3x3
  // stride-1 convolutions with enough channels run as Winograd (engine/winograd.h): F(4x4,3x3)
  // when the last prepare() was for a training pass and the plane is large enough, else
  // F(2x2,3x3); the others as im2col + GEMM.
  void conv(const Tensor& x, const Tensor& w, const float* b, Tensor& y, Workspace& ws) const;
  void conv_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, Workspace& ws) const;
  void conv_backward_weight(const Tensor& x, const Tensor& gy, Tensor& gw, float* gb, Workspace& ws) const;

 private:
  // `weight` in the Winograd domain (engine/winograd.h) as [points][O][C] for the input gradient,
  // then as [points][C][O] for the forward pass; prepare() refreshes the half its pass uses.
  Tensor wino_weight_;
  bool wino_ready_[2] = {false, false};  // each half, once a prepare() has computed it
  int wino_tile_ = 2;                    // the tile size wino_weight_ is for
  bool training_ = false;                // the last prepare() was for a training pass
  int out_h_ = 0, out_w_ = 0;            // the output plane, from build()
  std::vector<float> wino_taps_;  // prepare()'s scratch, kept so that a pass allocates nothing
  int winograd_tile(int OH, int OW) const;
  const float* winograd_weights(const Tensor& w, bool transposed, int tile, Workspace& ws) const;
  // The input gradient (gx non-null) and/or the weight and bias gradients (gw, gb non-null; x
  // needed then) in one pass over gy. With `carry`, a Winograd weight gradient is added to
  // *carry, still in the Winograd domain, for end_backward. With add_gx the input gradient is
  // added to *gx.
  void conv_backward(const Tensor* x, const Tensor& gy, const Tensor& w, Tensor* gx, Tensor* gw, float* gb,
                     Workspace& ws, FloatBuffer* carry, bool add_gx = false) const;
};

// Transposed convolution (PyTorch's ConvTranspose2d): the adjoint of a convolution's map from its
// input to its output, so its forward is that convolution's input gradient (Wᵀx through col2im)
// and its input gradient is the convolution itself (im2col and one GEMM). Output size
// (H − 1)·s − 2p + k + output_padding (output_padding < s). weight [in, out, k, k] (PyTorch's
// layout, the same memory as the adjoint convolution's [O, C, k, k]), bias [out]. Decoders
// (feature inversion) use it; it has no Winograd path.
struct ConvTranspose2d : Layer {
  int out_ch, k, stride, pad, out_pad;
  bool has_bias;
  int in_ch = 0;
  Param weight{"weight"}, bias{"bias"};

  ConvTranspose2d(int out_ch, int k, int stride = 1, int pad = 0, int out_pad = 0, bool bias = true)
      : out_ch(out_ch), k(k), stride(stride), pad(pad), out_pad(out_pad), has_bias(bias) {}
  std::string kind() const override { return "convt"; }
  void build(const std::vector<Shape>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  std::vector<Param*> params() override;
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
  void init(Rng& rng) override;
};

// Nearest-neighbour upsampling by an integer factor (PyTorch's nn.Upsample(scale_factor=s,
// mode="nearest")): every input pixel becomes an s×s block; the gradient sums each block.
struct Upsample2d : Layer {
  int scale;
  explicit Upsample2d(int scale = 2) : scale(scale) {}
  std::string kind() const override { return "upsample"; }
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  json hyper() const override;
};

struct Dense : Layer {
  int out_features;
  bool has_bias;
  int in_features = 0;
  Param weight{"weight"}, bias{"bias"};  // weight [out, in] (PyTorch layout), bias [out]

  explicit Dense(int out, bool bias = true) : out_features(out), has_bias(bias) {}
  std::string kind() const override { return "dense"; }
  bool backward_reads_output() const override { return false; }
  void build(const std::vector<Shape>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  std::vector<Param*> params() override;
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
  void init(Rng& rng) override;

  void dense(const Tensor& x, const Tensor& w, const float* b, Tensor& y) const;  // y = x w^T + b
  void dense_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx) const;  // gx = gy w
};

// Elementwise activations: y = f(x), dy/dx from x and y. f and df stay virtual so rules
// (DeepLIFT, OpenBox) can evaluate any activation; the forward/backward loops are instantiated
// per activation (ActivationOf) so the compiler inlines f and df there.
struct Activation : Layer {
  Shape out_shape(const std::vector<Shape>& in) const override { return in[0]; }
  double flops(const std::vector<Shape>& in) const override;
  virtual float f(float x) const = 0;
  virtual float df(float x, float y) const = 0;
};

template <class D>
struct ActivationOf : Activation {
  void forward(ForwardCall& c) override {
    const D& d = static_cast<const D&>(*this);
    const float* x = c.in[0]->data();
    float* y = c.out.data();
    const size_t n = c.out.size();
    for (size_t i = 0; i < n; ++i) y[i] = d.D::f(x[i]);
  }
  void backward(BackwardCall& c) override {
    if (!c.g_in[0]) return;
    const D& d = static_cast<const D&>(*this);
    const float *x = c.in[0]->data(), *y = c.out.data(), *gy = c.g_out.data();
    float* gx = c.g_in[0]->data();
    const size_t n = c.out.size();
    for (size_t i = 0; i < n; ++i) gx[i] = d.grad(x[i], y[i], gy[i]);
  }
  // The backward of one element; piecewise-linear activations replace it with a select, which
  // vectorizes, where g * df would become a branch on the sign of x (mispredicted half the time).
  float grad(float x, float y, float g) const { return g * static_cast<const D&>(*this).D::df(x, y); }
};

// Whether ReLU passes x on: "not <= 0" rather than "> 0", so a NaN passes, forward and backward,
// as in PyTorch (seen only under --allow-nonfinite); the same one compare. Every ReLU rule uses it.
inline bool relu_passes(float x) { return !(x <= 0); }

struct ReLU final : ActivationOf<ReLU> {
  std::string kind() const override { return "relu"; }
  float f(float x) const override { return relu_passes(x) ? x : 0; }
  float df(float x, float) const override { return relu_passes(x) ? 1.f : 0.f; }
  // Forward and backward out of line, compiled for AVX2 too (engine/simd.h): a conv net's busiest
  // element-wise layer.
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  bool runs_in_place() const override { return true; }
  bool backward_in_place() const override { return true; }
  bool keeps_input_where_gradient() const override { return true; }
};

struct LeakyReLU final : ActivationOf<LeakyReLU> {
  float slope;
  explicit LeakyReLU(float slope = 0.01f) : slope(slope) {}
  std::string kind() const override { return "leakyrelu"; }
  json hyper() const override;
  float f(float x) const override { return x > 0 ? x : slope * x; }
  float df(float x, float) const override { return x > 0 ? 1.f : slope; }
  float grad(float x, float, float g) const { return x > 0 ? g : slope * g; }
};

struct Tanh final : ActivationOf<Tanh> {
  std::string kind() const override { return "tanh"; }
  bool piecewise_linear() const override { return false; }
  float f(float x) const override { return std::tanh(x); }
  float df(float, float y) const override { return 1 - y * y; }
};

struct Sigmoid final : ActivationOf<Sigmoid> {
  std::string kind() const override { return "sigmoid"; }
  bool piecewise_linear() const override { return false; }
  float f(float x) const override { return x >= 0 ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x)); }
  float df(float, float y) const override { return y * (1 - y); }
};

// PyTorch's Softplus: log(1 + exp(beta x)) / beta, linear above `threshold`.
struct Softplus final : ActivationOf<Softplus> {
  float beta, threshold;
  explicit Softplus(float beta = 1.f, float threshold = 20.f) : beta(beta), threshold(threshold) {}
  std::string kind() const override { return "softplus"; }
  json hyper() const override;
  bool piecewise_linear() const override { return false; }
  float f(float x) const override { return beta * x > threshold ? x : std::log1p(std::exp(beta * x)) / beta; }
  float df(float x, float) const override { return beta * x > threshold ? 1.f : 1.f / (1.f + std::exp(-beta * x)); }
};

// Max pooling. The layer keeps no state: backward finds each window's winner again in the
// input, so a batch can be split across threads and rules can ask for the winners of any input.
struct MaxPool2d : Layer {
  int k, stride, pad;
  MaxPool2d(int k, int stride = 0, int pad = 0) : k(k), stride(stride ? stride : k), pad(pad) {}
  std::string kind() const override { return "maxpool"; }
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
  // For every output element of x's pooling, the flat index (within its H*W input plane) of the
  // window's maximum; ties go to the first in row-major window order. am has y's size.
  void winners(const Tensor& x, int32_t* am) const;
};

// Average pooling; zero padding counts in the divisor (PyTorch's count_include_pad=True).
struct AvgPool2d : Layer {
  int k, stride, pad;
  AvgPool2d(int k, int stride = 0, int pad = 0) : k(k), stride(stride ? stride : k), pad(pad) {}
  std::string kind() const override { return "avgpool"; }
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
};

// [N,C,H,W] -> [N,C]: the mean over each channel's plane.
struct GlobalAvgPool : Layer {
  std::string kind() const override { return "gap"; }
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  double flops(const std::vector<Shape>& in) const override;
};

struct Flatten : Layer {
  std::string kind() const override { return "flatten"; }
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
};

// Inverted dropout: in training, zero with probability p and scale the rest by 1/(1-p);
// identity in eval mode.
struct Dropout : Layer {
  float p;
  std::vector<float> mask;  // the scale applied to each element in the last training forward
  explicit Dropout(float p = 0.5f) : p(p) {}
  std::string kind() const override { return "dropout"; }
  bool per_sample(Mode m) const override { return m == Mode::eval; }
  Shape out_shape(const std::vector<Shape>& in) const override { return in[0]; }
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  json hyper() const override;
};

// BatchNorm over the channels of [N,C,H,W] (or the features of [N,F]); PyTorch semantics:
// biased batch variance to normalize, unbiased variance into the running estimate.
struct BatchNorm2d : Layer {
  float eps, momentum;
  int channels = 0;
  Param weight{"weight"}, bias{"bias"};
  Param running_mean{"running_mean", false}, running_var{"running_var", false};
  std::vector<float> batch_mean, batch_invstd;  // from the last training forward's sums
  explicit BatchNorm2d(float eps = 1e-5f, float momentum = 0.1f) : eps(eps), momentum(momentum) {}
  std::string kind() const override { return "batchnorm"; }
  bool backward_reads_output() const override { return false; }
  bool backward_in_place() const override { return true; }  // element by element, its sums taken before
  bool per_sample(Mode m) const override { return m == Mode::eval; }
  // In training: forward, per channel the sum and the squared deviations from the slice's mean
  // (merged with Chan et al.'s formula, so one pass gives the two-pass variance); backward, the
  // sums of the signal and of signal × x̂ that the input gradient and the parameter gradients need.
  size_t sum_size(Pass, Mode m) const override { return m == Mode::train ? 2 * size_t(channels) : 0; }
  void partial_sums(Pass p, const std::vector<const Tensor*>& in, const Tensor* out, const Tensor* g_out,
                    double* part) const override;
  void combine_sums(Pass p, const std::vector<const double*>& parts, const std::vector<int>& rows,
                    bool param_grads) override;
  void prepare(Pass p, Mode mode) override;
  void build(const std::vector<Shape>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override { return in[0]; }
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  std::vector<Param*> params() override { return {&weight, &bias, &running_mean, &running_var}; }
  json hyper() const override;
  double flops(const std::vector<Shape>& in) const override;
  void init(Rng&) override;
  void reset();  // gamma 1, beta 0, running mean 0, running variance 1
  // Eval-mode affine form per channel: y = scale * x + shift.
  void eval_affine(std::vector<float>& scale, std::vector<float>& shift) const;
  void eval_affine(float* scale, float* shift) const;  // `channels` floats each

 private:
  std::vector<double> sum_g_, sum_gx_;  // the backward pass's combined sums, per channel
  size_t plane_ = 1;                    // values per channel in one sample
  double count_ = 0;                    // values per channel in the batch
  bool stats_ready_ = false, grad_sums_ready_ = false;  // this pass's sums were combined
};

// Elementwise sum of two or more inputs of the same shape (residual connections).
struct Add : Layer {
  int n_inputs;
  explicit Add(int n = 2) : n_inputs(n) {}
  std::string kind() const override { return "add"; }
  bool backward_reads_output() const override { return false; }
  bool runs_in_place() const override { return true; }
  bool backward_in_place() const override { return true; }
  int arity() const override { return n_inputs; }
  Shape out_shape(const std::vector<Shape>& in) const override;
  void forward(ForwardCall& c) override;
  void backward(BackwardCall& c) override;
  double flops(const std::vector<Shape>& in) const override;
};

// Row-wise softmax of [N,K] logits (max-subtracted).
Tensor softmax(const Tensor& logits);

}  // namespace gb
