// What the metric files share (inside the family): the registry entry type, reading bounded
// parameters, explanations and model scores of many perturbed inputs in shared batches,
// baselines, orders, and Quantus's preprocessing of attributions.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "engine/argmax.h"
#include "explain/metrics/metrics.h"

namespace gb::metrics {

using explain::ParamInfo;
using explain::ParamReader;

using RunFn = std::function<Evaluation(Graph&, const Tensor& x, const Target&, const Explanation&, ParamReader&,
                                       const Context&)>;
struct Metric {
  MetricInfo info;
  RunFn run;
};

void add_faithfulness_metrics(std::vector<Metric>& registry);   // faithfulness.cpp
void add_complexity_metrics(std::vector<Metric>& registry);     // complexity.cpp
void add_robustness_metrics(std::vector<Metric>& registry);     // robustness.cpp
void add_randomisation_metrics(std::vector<Metric>& registry);  // randomisation.cpp
void add_axiom_metrics(std::vector<Metric>& registry);          // axioms.cpp
void add_localisation_metrics(std::vector<Metric>& registry);   // localisation.cpp

// ---- parameters ---------------------------------------------------------------------------------

// An integer parameter in [lo, hi]; the error names the metric, the key, the value and the range.
int integer_in(ParamReader& r, const std::string& key, long lo, long hi);
double number_in(ParamReader& r, const std::string& key, double lo, double hi);
// A text parameter that must be one of `choices`.
std::string choice(ParamReader& r, const std::string& key, const std::vector<std::string>& choices);

// Upper bounds on what drives run time (documented in METHODS.md): model evaluations per sample.
constexpr long kMaxSamplesPerInput = 100000;  // nr_samples, nr_runs, n_perturb_samples ...

// ---- attributions --------------------------------------------------------------------------------

// a(x) for the evaluated inputs: the given attribution (checked against x's shape) or explain().
Tensor attribution_of(Graph& g, const Tensor& x, const Target& t, const Explanation& e);
// Quantus's preprocessing, per sample: a / max|a| (normalise; an all-zero map stays zero), then |a|.
void preprocess(Tensor& a, bool normalise, bool abs);
void preprocess_rows(float* a, int rows, size_t D, bool normalise, bool abs);

// The rows of a perturbed batch: rows[i] is the evaluated sample that row i perturbs.
using Rows = std::vector<int>;
// Writes the input of sample n's k-th perturbation into `row` (D floats). Called for k = 0, 1, ...
// of one sample, then the next sample, so a sequential perturbation may keep its state between calls.
using RowFill = std::function<void(int n, int k, float* row)>;

// The model's score of every perturbed row for its sample's target: the target's value, or with
// `softmax` the softmax probability of the target class (class targets only). Rows n·S + k, run
// through the graph `batch` rows at a time. `progress` (may be empty) counts rows.
std::vector<double> score_rows(Graph& g, const Target& target, bool softmax, int N, int S, const RowFill& fill,
                               const Progress& progress = {}, int batch = 256);
// The scores of x itself.
std::vector<double> scores_of(Graph& g, const Tensor& x, const Target& target, bool softmax);

// Explains N·S perturbed rows (S per sample) in batches with the explanation's method and calls
// visit(n, k, input row, attribution row, logits row) for each; the logits (the model's output for
// the row) only with `with_logits`, else null. `progress` counts rows.
using RowVisit = std::function<void(int n, int k, const float* input, const float* attribution, const float* logits)>;
void explain_rows(Graph& g, const Tensor& x, const Target& target, const Explanation& e, int S, const RowFill& fill,
                  const RowVisit& visit, bool with_logits = false, const Progress& progress = {}, int batch = 256);
// The model's output for each sample of x ([N, K]).
Tensor logits_of(Graph& g, const Tensor& x);

// The explanation's parameters for rows that perturb samples rows[0], rows[1], ...: tensors given
// per sample (e.g. IG baselines, one per input of N) gathered the same way; one tensor for all stays.
Params params_for_rows(const Params& p, const Rows& rows, int N);

// Reads the `softmax` parameter: true is only allowed for class targets; false otherwise.
bool read_softmax(ParamReader& r, const Graph& g, const Target& t);

// ---- baselines -----------------------------------------------------------------------------------

// Quantus's perturb_baseline: black (the sample's minimum), white (its maximum), mean (its mean),
// uniform (per feature U(0,1), seeded), blur (a Gaussian blur of the sample, σ = blur_sigma
// pixels, per channel; only where the metric declares blur_sigma), or a number (in the model's
// input space).
struct Baseline {
  enum class Kind { black, white, mean, uniform, blur, value } kind = Kind::black;
  float value = 0;
  double sigma = 5;
};
Baseline read_baseline(ParamReader& r, bool allow_blur = false);
// The replacement values for sample x (D = C·H·W floats, `sample` its shape [C,H,W] or [F]).
void baseline_values(const Baseline& b, const float* x, const Shape& sample, uint64_t seed, float* out);

// ---- orders and seeds ----------------------------------------------------------------------------

// Feature indices by decreasing value (MoRF), ties by index (a stable sort).
std::vector<int> order_decreasing(const float* a, size_t D);
std::vector<int> order_increasing(const float* a, size_t D);
// A seed from the metric's seed and the sample's own values, so that a sample gets the same
// random draws in any batch (batch = one by one).
uint64_t sample_seed(uint64_t seed, const float* x, size_t D);

// Square patches of an H×W plane on the grid Quantus uses (the image padded evenly to a multiple
// of `size`, patches of the padded grid clipped to the image); each patch lists its pixel indices.
std::vector<std::vector<int>> patch_grid(int H, int W, int size);

// The sum over a patch of every channel's attribution (C planes of H·W).
double patch_sum(const float* a, int C, size_t HW, const std::vector<int>& pixels);

// Throws naming the metric unless x is a batch of images [N,C,H,W].
void require_images(const Tensor& x, const std::string& metric);

}  // namespace gb::metrics
