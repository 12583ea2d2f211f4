#include "train/regress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "data/dataset.h"
#include "engine/loss.h"
#include "engine/rng.h"
#include "train/optimizer.h"

namespace gb {

double fit_mse(Graph& dec, const Tensor& codes, const Tensor& targets, const RegressionFit& f) {
  OptimizerConfig oc;
  oc.kind = OptimizerKind::adam;
  oc.lr = float(f.lr);
  Optimizer opt(dec, oc);
  Rng rng(f.seed);
  const int N = codes.batch();
  std::vector<int> order(N);
  std::iota(order.begin(), order.end(), 0);
  const size_t dc = codes.sample_size(), dt = targets.sample_size();
  Tensor xb, yb, grad;
  BackwardOptions bo;
  bo.param_grads = true;
  bo.input_grad = false;
  double loss = 0;
  for (int epoch = 1; epoch <= f.epochs; ++epoch) {
    shuffle_order(order, rng);
    loss = 0;
    for (int b = 0; b < N; b += f.batch) {
      const int m = std::min(N, b + f.batch) - b;
      xb.resize(codes.shape().with_batch(m));
      yb.resize(targets.shape().with_batch(m));
      for (int i = 0; i < m; ++i) {
        std::copy_n(codes.data() + size_t(order[b + i]) * dc, dc, xb.data() + size_t(i) * dc);
        std::copy_n(targets.data() + size_t(order[b + i]) * dt, dt, yb.data() + size_t(i) * dt);
      }
      dec.zero_grad();
      const LossResult l = mse(dec.forward(xb, Mode::train), yb, &grad);
      if (!std::isfinite(l.loss))
        throw std::runtime_error(f.what + ": training diverged (loss " + std::to_string(l.loss) + " at epoch " +
                                 std::to_string(epoch) + "); try a lower --param lr");
      dec.backward(grad, bo);
      opt.step(oc.lr);
      loss += l.loss * m / N;
    }
    if (f.quiet) continue;
    std::printf("  %s: epoch %d/%d  mse %.4g\n", f.what.c_str(), epoch, f.epochs, loss);
    std::fflush(stdout);
  }
  return loss;
}

}  // namespace gb
