// Convolution of rows that are mostly zeros: a unit direction and its images a few layers in
// (OpenBox pushes the identity through the network to read off its Jacobian). Each nonzero
// input adds its taps' weights into the outputs it reaches, instead of an im2col + GEMM over
// zeros; rows too dense for that to pay go through Conv2d::conv.
#pragma once
#include <vector>

#include "engine/layers.h"

namespace gb {

// What conv_sparse needs of a layer and an input shape, derived once from its weights: read
// only afterwards, so threads share it. Make it again after the weights change.
struct SparseConv {
  const Conv2d* layer = nullptr;
  int C = 0, H = 0, W = 0, O = 0, OH = 0, OW = 0, k = 0;
  std::vector<float> taps;            // the weights as [ci][ki][kj][o], so that the inner loops run over o
  std::vector<int> out_row, out_col;  // [input row (column)][tap]: the output row (column) it reaches, or -1
};
SparseConv sparse_conv(const Conv2d& C, const Shape& in);  // `in`: the input shape (any batch)

// Scratch of one thread's conv_sparse calls, owned by the caller: once grown, calls allocate nothing.
struct SparseConvScratch {
  std::vector<float> by_position;  // one row's output as [position][o]
  std::vector<size_t> nonzeros;    // per row of the call
};

// y = the convolution of x ([N,C,H,W] rows) by the layer's weights, without bias. Each row is
// scattered or convolved according to its own nonzeros, so a row's result does not depend on the
// other rows of the call (nor on how a batch was split into calls; to float rounding when
// OpenBLAS runs the products of small Winograd planes, see conv_sparse.cpp). `ws` is the call's
// workspace, for the rows that go through Conv2d::conv.
void conv_sparse(const SparseConv& plan, const Tensor& x, Tensor& y, Workspace& ws, SparseConvScratch& s);

}  // namespace gb
