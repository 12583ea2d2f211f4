// Shared image helpers: bilinear resizing of spatial maps (CAM and perturbation methods),
// broadcasting one map per sample over the input's channels, Gaussian blur (visualization priors,
// blurred baselines).
#pragma once
#include "engine/tensor.h"

namespace gb::explain {

// Bilinear resize of one h×w plane to H×W with PyTorch's F.interpolate(mode="bilinear",
// align_corners=False) convention: a destination pixel d samples the source at (d + ½)·h/H − ½,
// clamped at the borders. Upsampling a constant plane gives the same constant.
void resize_bilinear(const float* src, int h, int w, float* dst, int H, int W);

// [N,C,h,w] -> [N,C,H,W], plane by plane.
Tensor resize_bilinear(const Tensor& maps, int H, int W);

// [N,1,H,W] (one map per sample) -> [N,C,H,W]: every channel gets the same map. This is how the
// CAM and perturbation methods return attributions shaped like the input.
Tensor broadcast_channels(const Tensor& map, int C);

// Gaussian blur of every plane in place with scipy.ndimage.gaussian_filter's conventions: a
// kernel of radius round(4σ) normalized to sum 1, borders mirrored half-sample ('reflect':
// d c b a | a b c d). A no-op for σ <= 0.
void gaussian_blur(Tensor& x, double sigma);

// Requires x to be a batch of images [N,C,H,W]; names the method when it is not.
void require_images(const Tensor& x, const char* method);

}  // namespace gb::explain
