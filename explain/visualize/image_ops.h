// Image operations of the optimization loops, each with its adjoint where a gradient goes through
// it: per-row rolls (jitter), Gaussian blur, bilinear resizing, clipping to the valid input range,
// and the image priors (L2, L1, α-norm, total variation) with their gradients.
//
// Images are [R, C, H, W] tensors in the model's input space. Penalties are sums over every
// element of a row (the form the closed-form tests and Mahendran & Vedaldi use), not means.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"
#include "explain/common/resize.h"

namespace gb::visualize {

// The valid range of each input channel in the model's input space: pixel 0 and pixel 1 put
// through the model's normalization. Empty: pixels in [0, 1] as they are.
struct Bounds {
  std::vector<float> lo, hi;  // one per channel
  float low(int c) const { return lo.empty() ? 0.f : lo[size_t(c) % lo.size()]; }
  float high(int c) const { return hi.empty() ? 1.f : hi[size_t(c) % hi.size()]; }
  float from_pixel(int c, float p) const { return low(c) + p * (high(c) - low(c)); }
  float to_pixel(int c, float v) const { return (v - low(c)) / (high(c) - low(c)); }
};

// Clamps every row of x ([R,C,H,W]) to the bounds, channel by channel.
void clip(Tensor& x, const Bounds& b);
// x converted to pixels ([0,1] when inside the bounds; not clamped).
Tensor to_pixels(const Tensor& x, const Bounds& b);

// Row r of x rolled (periodically, as numpy.roll) by dy[r] rows and dx[r] columns into `out`.
// Rolling by (-dy, -dx) is the inverse and the adjoint.
void roll(const Tensor& x, const std::vector<int>& dy, const std::vector<int>& dx, Tensor& out, int sign = 1);

using explain::gaussian_blur;  // explain/common/resize.h

// Bilinear resizing of [R,C,h,w] to [R,C,H,W] with PyTorch's F.interpolate(mode="bilinear",
// align_corners=False) convention (the same taps as explain/common/resize.h), and its adjoint, which
// sums each output gradient back onto the input taps that produced it.
struct Resize {
  int h = 0, w = 0, H = 0, W = 0;
  Resize(int h, int w, int H, int W);
  void forward(const Tensor& in, Tensor& out) const;   // [R,C,h,w] -> [R,C,H,W]
  void adjoint(const Tensor& g, Tensor& g_in) const;   // [R,C,H,W] -> [R,C,h,w]
 private:
  struct Tap {
    int i0, i1;
    float t;  // weight of i1
  };
  std::vector<Tap> ty_, tx_;
};
Tensor resize(const Tensor& x, int H, int W);  // bilinear, as Resize

// The Fourier parameterization of Lucid/Lucent (fft_image), in a real basis: an image is
// x = T(s ⊙ p), with T the separable orthonormal Hartley transform (cas θ = cos θ + sin θ; real,
// symmetric and its own inverse, the frequencies of the FFT) and s = 1 / max(f, 1/max(H, W))^decay
// per frequency f = sqrt(fy² + fx²) (numpy.fft.fftfreq's). Gradient steps on p move low
// frequencies fastest: the "decorrelated" image parameterization.
struct Spectrum {
  Spectrum(int H, int W, double decay = 1.0);
  void image(const Tensor& p, Tensor& x) const;         // x = T(s ⊙ p), [R,C,H,W]
  void adjoint(const Tensor& gx, Tensor& gp) const;     // gp = s ⊙ T(gx)
  void coefficients(const Tensor& x, Tensor& p) const;  // p = T(x) / s, the inverse of image()
 private:
  int H_, W_;
  std::vector<float> cas_h_, cas_w_, scale_;  // [H,H], [W,W], [H,W]
  void transform(const float* in, float* out, std::vector<float>& tmp) const;  // one H×W plane: T(in)
};

// The priors of activation maximization and inversion, per row of x:
//   l2·‖x‖² + l1·‖x‖₁ + alpha_norm·‖x‖_α^α + tv·TV_β(x),
// TV_β(x) = Σ_{c,i,j} ((x[i,j+1] − x[i,j])² + (x[i+1,j] − x[i,j])²)^{β/2} (Mahendran & Vedaldi
// 2015, eq. 4), where a difference to a missing neighbour (last row, last column) is 0: every pixel
// is coupled (summing only over pixels with both neighbours, as pytorch-cnn-visualizations does,
// leaves the corner pixel free). For β < 2 the inner sum gets 1e-8 added so that the gradient is
// finite where the image is flat.
struct Penalties {
  double l2 = 0, l1 = 0, alpha_norm = 0, alpha = 6, tv = 0, tv_beta = 2;
  bool any() const { return l2 != 0 || l1 != 0 || alpha_norm != 0 || tv != 0; }
};
// Row r's penalty into values[r]; with grad non-null, subtracts its gradient from (*grad) (so a
// gradient of S becomes the gradient of S − penalty).
void penalties(const Tensor& x, const Penalties& p, double* values, Tensor* grad);

// Total variation of a mask as Fong & Vedaldi's reference code computes it, per plane:
// mean over vertical pairs of |Δ|^β + mean over horizontal pairs of |Δ|^β. Adds its gradient,
// times `scale`, to grad when given. Returns the value of row r's planes summed.
double tv_mean(const float* m, int H, int W, double beta, float* grad, double scale);

}  // namespace gb::visualize
