// The optimization core of feature visualization: gradient ascent on images, one row per unit
// (and restart), all rows in one batch through the model's graph:
//
//   maximize  S_r(x) − λ₂‖x‖² − λ₁‖x‖₁ − λ_α‖x‖_α^α − λ_TV·TV_β(x)
//
// with the image priors of Yosinski et al. 2015 / CS231n (jitter, Gaussian blur every k steps,
// clipping to the data's range) and a choice of step rule. Activation maximization, DeepDream,
// fooling images and network inversion are this loop with different objectives and settings.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/passes.h"
#include "explain/visualize/image_ops.h"
#include "explain/visualize/objective.h"

namespace gb::visualize {

enum class Step {
  adam,        // torch.optim.Adam (β 0.9, 0.999, ε 1e-8), ascending (Lucent's default, lr 0.05)
  sgd,         // x += lr·g (the closed form's iteration)
  sgd_l2norm,  // x += lr·g/‖g‖₂ per row (CS231n's class visualization and fooling images)
  sgd_meanabs  // x += lr·g/mean|g| per row (DeepDream)
};
Step parse_step(const std::string& s);  // adam, sgd, sgd-l2norm, sgd-meanabs; throws naming them

// One ascent step of `rule` on row r of a variable (p, D floats) along its gradient g. Adam keeps
// its moments per element and its step count per row (rows that stop keep theirs).
struct StepState {
  Tensor m, v;
  std::vector<int> t;
  explicit StepState(const Shape& variable);
};
void ascent_step(Step rule, double lr, float* p, const float* g, size_t D, StepState& state, int r);

struct AscentOptions {
  int steps = 256;
  Step step = Step::adam;
  double lr = 0.05;
  Penalties penalties;      // on x, in the model's input space
  int jitter = 0;           // each step, row r is rolled by (dy, dx) in [-jitter, jitter]² and rolled back
  int blur_every = 0;       // blur the image every k steps (0: never), σ = blur_sigma pixels
  double blur_sigma = 0.5;
  bool clip = true;         // clamp to the bounds after every step
  Bounds bounds;
  // Optimize the image's Fourier coefficients (Spectrum, Lucent's fft_image) instead of its
  // pixels, with this decay of the frequency scale (0: pixels). Blur and clipping act on the image,
  // which is then mapped back to its coefficients.
  double fourier_decay = 0;
  // The random stream of each row (its jitter); a row's result depends on its seed only, so a
  // batch of units equals the units one by one. Empty: row r uses seed r.
  std::vector<uint64_t> row_seeds;
  // A row for which this returns true (given its row index and its output at the objective's
  // node, before a step) is done: it no longer moves (fooling images stop at a probability).
  std::function<bool(int row, const float* out)> done;
  Progress progress;  // (steps done, steps)
};

struct AscentResult {
  Tensor x;      // [R, input...]: the final images at the model's resolution, in its input space
  Tensor param;  // what was optimized: x itself, the low-resolution image x is upsampled from, or x's spectrum
  std::vector<double> start, start_penalty;   // S and the penalty at the start image
  std::vector<double> value, penalty;         // S and the penalty at the end
  std::vector<int> steps;                     // the steps each row moved
  std::vector<std::vector<double>> curve;     // per row: S − penalty before each step (as optimized, jittered)
};

// Maximizes the objective for every row of `start` ([R, C, h, w]) at once. When h×w is smaller
// than the model's input, the optimized variable is that low-resolution image and x is its
// bilinear upsampling (the gradient goes back through the resize's adjoint): DeepDream's octaves
// on a model whose input size is fixed. With fourier_decay > 0 the variable is x's spectrum.
// Penalties act on x; clipping and blurring on the variable's image.
AscentResult ascend(Graph& g, const Objective& obj, const Tensor& start, const AscentOptions& o);

// Row seeds for rows unit × restart (row = u·restarts + k), from a user seed: a row's stream
// depends on its unit and restart only, not on the other units of the batch.
std::vector<uint64_t> row_seeds(uint64_t seed, const std::vector<Unit>& units, int restarts);
uint64_t mix_seed(uint64_t a, uint64_t b);  // splitmix64 of a combination, for derived streams

}  // namespace gb::visualize
