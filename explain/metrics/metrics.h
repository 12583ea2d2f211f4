// Evaluating explanations (Quantus-style: one metric, one call). A metric takes the model, a batch
// of inputs, what is explained (a Target: class logits by default) and an explanation method by
// name with its parameters, and returns one value per sample, named further per-sample values, and
// curves where the metric has one (deletion, randomisation cascades...).
//
//   Evaluation e = evaluate(model, x, labels, {"saliency"}, "deletion", {{"features_in_step", "4"}});
//
// Every metric is a batched use of the model's one graph and of the attribution registry: the
// perturbed inputs of many samples and steps go through the graph in shared forward batches, and the
// explanations of perturbed inputs or edited models come from explain(). A sample's values never
// depend on the other samples of its batch (per-sample normalisation, noise seeded by the sample's
// own values), so a batch gives the same numbers as its samples one by one.
//
// The definitions, defaults and every departure from Quantus and Captum are in
// explain/metrics/METHODS.md and in each metric's --list text.
#pragma once
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/target.h"
#include "explain/common/params.h"

namespace gb::metrics {

using explain::MethodInfo;
using explain::Params;

// The explanation a metric evaluates: a registered attribution method and its parameters.
// `attribution`, when given, is the method's result for the evaluated inputs (Quantus's a_batch),
// so that several metrics of one method need not recompute it; explanations of perturbed inputs
// and edited models are always computed.
struct Explanation {
  std::string method;
  Params params;
  Tensor attribution;  // optional: [N, input...]
};

// The method's attribution of x, refused unless shaped like x (a `layer` parameter gives a layer's;
// read as x's, it was read out of bounds). Every attribution a metric uses comes through here.
Tensor input_attribution(Graph& g, const Tensor& x, const Target& t, const std::string& method, const Params& params);

// Called with the work done so far and the total (in units the metric chooses).
using Progress = std::function<void(long done, long total)>;

// What some metrics need besides the model, inputs, target and explanation.
struct Context {
  const Tensor* masks = nullptr;  // localisation: [N,1,H,W] or shaped like x; nonzero = inside
  Graph* label_random_model = nullptr;  // data-randomisation: the same architecture trained on shuffled labels
  Progress progress;
};

// A curve per sample over a shared abscissa (deletion: the fraction of features removed;
// randomisation: the stages of the cascade, named in `ticks`).
struct Curve {
  std::string name, x_label, y_label;
  std::vector<double> x;
  std::vector<std::string> ticks;      // optional names of the x positions
  bool log_x = false;                  // best read on a logarithmic x axis (sensitivity-n's subset sizes)
  std::vector<std::vector<double>> y;  // y[n][k]: sample n at x[k]
};

struct Evaluation {
  std::string metric;
  std::vector<double> values;  // per sample; NaN where the metric is undefined for that sample
  std::map<std::string, std::vector<double>> extra;  // further per-sample values (e.g. "auc", "aopc")
  std::vector<Curve> curves;
  // Randomisation metrics: the explanation at each stage (the original first), each [N, input...].
  std::vector<std::string> stages;
  std::vector<Tensor> stage_attributions;
  // How figures name a stage after the original: "+ " (cascading: this layer and the ones before
  // it randomised), "only " (independent: this layer alone), "" (stages that are not layers).
  std::string stage_prefix;

};

// Thrown when a metric cannot evaluate this method, target or model at all (integration-error of
// a method other than integrated-gradients, random-logit of a unit, input invariance of a model
// whose first layer has no bias, patch metrics of non-images...), as opposed to a bad value. The
// command reports the pair as skipped and goes on.
struct NotApplicable : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

enum class Better { higher, lower, neither };

struct MetricInfo {
  MethodInfo declaration;  // name, summary, parameters with defaults and help, convention
  std::string family;      // faithfulness, complexity, robustness, randomisation, axiomatic, localisation
  Better better = Better::neither;
  bool needs_masks = false;
  bool needs_label_random_model = false;
};
inline const std::string& name_of(const MetricInfo& m) { return m.declaration.name; }  // for MethodTable

// The direction for these parameters. Metrics with an `order` parameter declare theirs for morf,
// the default: lerf reverses it, and a random order has none.
Better better_for(const MetricInfo& m, const Params& params);
const char* better_name(Better b);  // "higher", "lower" or ""

const std::vector<MetricInfo>& all_metrics();
const MetricInfo& metric_info(const std::string& name);  // throws listing the known metrics
std::string list_text();                                 // glassbox evaluate --list

// Runs one metric. Throws std::invalid_argument on an unknown metric, method or parameter (naming
// the known ones), a parameter out of its documented range, an input or target that does not fit
// the model, or missing masks / label-random model.
Evaluation evaluate(Graph& model, const Tensor& x, const Target& target, const Explanation& explanation,
                    const std::string& metric, const Params& params = {}, const Context& context = {});

// The mean of the finite values (NaN when there are none).
double finite_mean(const std::vector<double>& v);

}  // namespace gb::metrics
