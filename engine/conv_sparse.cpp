#include "engine/conv_sparse.h"

#include <algorithm>

namespace gb {

namespace {

// Scattering a row costs ~nonzeros * k^2 * O multiply-adds (taps cut by the borders ignored),
// its im2col + GEMM O * C k^2 * P: scatter while that is at most a quarter.
bool scatter_pays(const SparseConv& p, size_t nonzeros) {
  return double(nonzeros) * 4 <= double(p.C) * p.OH * p.OW;
}

// A very sparse row (the identity itself): its taps go straight into the NCHW output.
void scatter_nchw(const SparseConv& p, const float* x, float* y) {
  const int k = p.k, O = p.O;
  const size_t P = size_t(p.OH) * p.OW, in_per = size_t(p.C) * p.H * p.W;
  std::fill(y, y + P * O, 0.f);
  for (size_t e = 0; e < in_per; ++e) {
    const float v = x[e];
    if (v == 0) continue;
    const int ci = int(e / (size_t(p.H) * p.W)), ih = int(e / p.W % p.H), iw = int(e % p.W);
    for (int ki = 0; ki < k; ++ki) {
      const int oh = p.out_row[size_t(ih) * k + ki];
      if (oh < 0) continue;
      for (int kj = 0; kj < k; ++kj) {
        const int ow = p.out_col[size_t(iw) * k + kj];
        if (ow < 0) continue;
        const float* wv = p.taps.data() + ((size_t(ci) * k + ki) * k + kj) * O;
        for (int o = 0; o < O; ++o) y[size_t(o) * P + size_t(oh) * p.OW + ow] += v * wv[o];
      }
    }
  }
}

// A sparse row with more nonzeros: its taps go into [position][o] (a contiguous inner loop over
// o, which vectorizes), transposed into NCHW at the end. Every output receives the same terms in
// the same order as in scatter_nchw.
void scatter_by_position(const SparseConv& p, const float* x, float* y, float* by_position) {
  const int k = p.k, O = p.O;
  const size_t P = size_t(p.OH) * p.OW;
  std::fill(by_position, by_position + P * O, 0.f);
  for (int ci = 0; ci < p.C; ++ci)
    for (int ih = 0; ih < p.H; ++ih)
      for (int iw = 0; iw < p.W; ++iw) {
        const float v = x[(size_t(ci) * p.H + ih) * p.W + iw];
        if (v == 0) continue;
        for (int ki = 0; ki < k; ++ki) {
          const int oh = p.out_row[size_t(ih) * k + ki];
          if (oh < 0) continue;
          for (int kj = 0; kj < k; ++kj) {
            const int ow = p.out_col[size_t(iw) * k + kj];
            if (ow < 0) continue;
            float* t = by_position + (size_t(oh) * p.OW + ow) * O;
            const float* wv = p.taps.data() + ((size_t(ci) * k + ki) * k + kj) * O;
            for (int o = 0; o < O; ++o) t[o] += v * wv[o];
          }
        }
      }
  for (size_t q = 0; q < P; ++q)
    for (int o = 0; o < O; ++o) y[size_t(o) * P + q] = by_position[q * O + o];
}

// out_of[i][j]: the output index reached from input index i through tap j along one axis, or -1.
std::vector<int> reached(const Conv2d& L, int in, int out) {
  std::vector<int> out_of(size_t(in) * L.k, -1);
  for (int i = 0; i < in; ++i)
    for (int j = 0; j < L.k; ++j) {
      const int t = i + L.pad - j;
      if (t >= 0 && t % L.stride == 0 && t / L.stride < out) out_of[size_t(i) * L.k + j] = t / L.stride;
    }
  return out_of;
}

}  // namespace

SparseConv sparse_conv(const Conv2d& C, const Shape& in) {
  const Shape out = C.out_shape({in});
  SparseConv p;
  p.layer = &C;
  p.C = in[1], p.H = in[2], p.W = in[3];
  p.O = out[1], p.OH = out[2], p.OW = out[3];
  p.k = C.k;
  const int taps = p.C * p.k * p.k;
  const float* w = C.weight.value.data();
  p.taps.resize(size_t(taps) * p.O);
  for (int o = 0; o < p.O; ++o)
    for (int t = 0; t < taps; ++t) p.taps[size_t(t) * p.O + o] = w[size_t(o) * taps + t];
  p.out_row = reached(C, p.H, p.OH);
  p.out_col = reached(C, p.W, p.OW);
  return p;
}

void conv_sparse(const SparseConv& plan, const Tensor& x, Tensor& y, Workspace& ws, SparseConvScratch& s) {
  const Conv2d& C = *plan.layer;
  const int R = x.batch();
  const size_t in_per = x.sample_size(), out_per = y.sample_size();
  s.nonzeros.resize(R);
  for (int r = 0; r < R; ++r) {
    const float* xr = x.data() + size_t(r) * in_per;
    size_t nonzeros = 0;
    for (size_t e = 0; e < in_per; ++e) nonzeros += xr[e] != 0;
    s.nonzeros[r] = nonzeros;
  }
  // Dense rows go through the layer's convolution in runs of consecutive rows. Small Winograd
  // planes put several samples into one GEMM; with glassbox's kernel each output element is the
  // same sum in the same order whichever columns sit beside it, so a row's result is the same in
  // any run. OpenBLAS may pick other kernels for other column counts: then to float rounding.
  int run = 0;  // the first dense row not yet convolved
  auto convolve_run = [&](int end) {
    if (run < end) {
      Tensor yr = y.slice(run, end);
      C.conv(x.slice(run, end), C.weight.value, nullptr, yr, ws);
    }
  };
  for (int r = 0; r < R; ++r) {
    if (!scatter_pays(plan, s.nonzeros[r])) continue;
    convolve_run(r);
    run = r + 1;
    const float* xr = x.data() + size_t(r) * in_per;
    float* yr = y.data() + size_t(r) * out_per;
    if (s.nonzeros[r] * plan.k * plan.k * 8 < size_t(plan.OH) * plan.OW) {
      scatter_nchw(plan, xr, yr);
    } else {
      s.by_position.resize(out_per);
      scatter_by_position(plan, xr, yr, s.by_position.data());
    }
  }
  convolve_run(R);
}

}  // namespace gb
