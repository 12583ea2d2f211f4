// Winograd convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
// for 3x3 stride-1 convolutions, a sample at a time (a few at once on small planes:
// samples_per_gemm). Each m x m output tile is
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A
// with d the (m+2)x(m+2) input patch and g the 3x3 filter, so the (m+2)^2 element-wise products
// become (m+2)^2 GEMMs [O x C] x [C x tiles]. Two tile sizes:
//   F(2x2, 3x3): 16 multiply-adds per 4 outputs instead of 36 (2.25x fewer); its transforms only
//     add, subtract and halve, so it stays within a few ulps of the direct sum. Used for eval
//     passes: the explanations, whose agreement with reference implementations is tested to
//     float32 rounding.
//   F(4x4, 3x3): 36 per 16 outputs instead of 144 (4x fewer), and fewer, larger tiles for the
//     transforms to read and write; its transforms multiply by up to 8 and 1/24, so its rounding
//     error is about ten times larger. Used for training passes on planes large enough to fill
//     its tiles, where that error is far below the gradient noise of a mini-batch.
//
// The backward passes are the exact adjoints of that computation (transposed transforms and
// GEMMs), so gradients, LRP and OpenBox see one consistent linear map:
//   input gradient   dV = U^T dM,  scattered back through B
//   weight gradient  dU = dM V^T,  brought back through G
// where dM = A dY A^T. Internal to engine/conv2d.cpp.
#pragma once
#include <cstddef>

namespace gb::winograd {

struct Geometry {
  int C, H, W, O, p;  // input channels and size, output channels, padding (stride 1, 3x3)
  int m;              // output tile size: 2 or 4
  int OH, OW;         // output size
  int TH, TW;         // m x m tiles covering the output
  int T() const { return TH * TW; }
  int points() const { return (m + 2) * (m + 2); }  // per tile, the GEMMs' count
  int PH() const { return m * TH + 2; }  // zero-padded plane covering every tile's patch
  int PW() const { return m * TW + 2; }
};

Geometry geometry(int C, int H, int W, int O, int p, int m);

// Worth it over im2col: 3x3, stride 1, and enough channels for the small GEMMs to run at speed.
bool applies(int k, int stride, int C, int O);
// The tile size for an output of OH x OW from C to O channels: 4 in training on planes of at least
// 8x8 whose 4x4 tiles hang over the edge by at most 15% of the plane (a 14x14 plane's 16x16 of
// tiles would waste 31%, more than F(4x4,3x3) saves over F(2x2,3x3)), else 2. Also 2 where
// F(4x4,3x3)'s transformed weights (36 O C floats, read again for every sample) outgrow 1 MiB of
// cache and the plane has fewer than 16 tiles of 4x4 to use each read for: an 8x8 plane from 64 or
// 128 to 128 channels trains 3% faster (cifar-convnet) with F(2x2,3x3)'s 16 points, while 64 to
// 64 channels (resnet8) is 4% slower.
int tile(bool training, int OH, int OW, int C, int O);

// u[points][O][C] = G g G^T for every filter of w[O][C][3][3] with tile size m (the input
// gradient's GEMM operand), or with `transposed` u[points][C][O] (the forward's: both GEMMs then run row-major NN, OpenBLAS's
// fast path for these small sizes, where a transposed operand takes a slow packing path).
// Filters [f0, f1) of the O*C (in the order of u's rows), so that threads can share the work.
// work: 9*O*C floats.
void transform_weights(int m, const float* w, int O, int C, bool transposed, float* u, float* work, size_t f0,
                       size_t f1);
// gw[O][C][3][3] += G^T du G (du [points][O][C]): the adjoint of transform_weights. work: 9*O*C
// floats.
void add_weight_grad(int m, const float* du, int O, int C, float* gw, float* work);

// Floats of scratch a forward/backward pass over n samples needs.
size_t work_floats(const Geometry& g, int n = 1);
// How many samples forward and backward_data take at once: one, unless a plane has fewer than 16
// tiles, when enough samples for 32 rows of tiles per point's GEMM (an 8x8 plane has 4 tiles of
// 4x4: a GEMM over one sample's would be mostly call overhead and a fresh read of that point's
// weights). Two samples of 16 tiles each were level in training and 2-4% slower in inference.
// Conv2d::conv_backward takes at least 8 samples at once when it also computes the weight gradient.
int samples_per_gemm(const Geometry& g);

// n samples (each C*H*W floats in, O*OH*OW out): y = conv(x) (+ b when non-null). u from
// transform_weights, transposed.
void forward(const Geometry& g, int n, const float* x, const float* u, const float* b, float* y, float* work);
// The output gradients of n samples in the Winograd domain, m = A dY A^T per tile (the operand
// both backward passes share): grad_tile_floats(g, n) floats. work: work_floats(g).
size_t grad_tile_floats(const Geometry& g, int n);
void grad_tiles(const Geometry& g, int n, const float* gy, float* m, float* work);
// n samples: gx = the input gradient of forward, from their output-gradient tiles m and u from
// transform_weights, not transposed (gx is overwritten, or with `add` added to).
void backward_data(const Geometry& g, int n, const float* m, const float* u, float* gx, float* work, bool add = false);
// n samples at once (one GEMM per point over all their tiles), from their inputs x and
// output-gradient tiles m: du[points][O][C] = beta * du + dM V^T. add_weight_grad turns it into the
// weight gradient.
void backward_weight(const Geometry& g, int n, const float* x, const float* m, float beta, float* du, float* work);

// channel_last[p * C + c] = planar[c * P + p]: C planes of P floats to P rows of C channels, in
// register-transposed 8 x 8 blocks (the transforms' own layout conversion; also used by conv2d).
void to_channel_last(const float* planar, int C, int P, float* channel_last);

}  // namespace gb::winograd
