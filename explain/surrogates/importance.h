// Which inputs a model's outputs depend on, as one number per input feature and class: the classic
// variable-importance methods for multilayer perceptrons and the additive model's shape functions.
// One registry; every method declares its parameters once and reads exactly those.
//
//   garson          shares of |weights| along every path, weighted by the output layer's |weights|
//                   (Garson 1991 in Goh's form; NeuralNetTools' garson cancels the output
//                   weights, see METHODS.md); each class's sum to 1
//   garson-signed   the same with signs kept (the plain "Garson"; garson is its |Garson|)
//   olden           connection weights Σ over paths of the weights' products (Olden & Jackson
//                   2002); rounds=R adds their randomization test: R networks retrained on
//                   shuffled labels, p = (1 + #|null| ≥ |observed|) / (R + 1)
//   dimopoulos      PaD (Dimopoulos et al. 1995, Gevrey et al. 2003): Σ_n (∂y_k/∂x_j)², as shares;
//                   curvature: the exact second derivatives ∂²y_k/∂x_j² (engine/hvp.h) beside it
//   miv             mean impact value: mean_n [y_k(x with raw x_j·1.1) − y_k(x with raw x_j·0.9)]
//   nam             an additive model's shape functions f_j and importances mean_n |f_j − mean f_j|
//
// Features are the flattened model input (perceptrons, dimopoulos, miv), or the additive model's
// own features (the input of its first grouped layer: pooled pixels for images).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/layers.h"
#include "explain/common/params.h"

namespace gb::explain::surrogates {

struct ImportanceRequest {
  Tensor x;  // [N, input...] in the model's input space: the data dimopoulos, miv and nam average over
  // MIV scales raw feature values: x_model = (raw − mean_c) / std_c, so raw is proportional to
  // x_model + mean_c / std_c; `raw_shift` holds mean_c / std_c per input channel (empty: 0).
  std::vector<float> raw_shift;
  // Olden's randomization test: `labels` are the training labels the test shuffles, and `retrain`
  // trains `fresh` (the model's architecture, initialized with `seed`) on the training inputs with
  // the labels given, as the model was trained. explain/ never trains: the caller does.
  std::vector<int> labels;
  std::function<void(Graph& fresh, const std::vector<int>& labels, uint64_t seed)> retrain;
  std::function<void(const std::string& stage, int done, int total)> progress;
};

struct Importance {
  Tensor per_class;  // [K, F]: feature j's importance for output k (the method's sign convention)
  Tensor overall;    // [F]: the mean over classes of |per_class|
  Tensor p_values;   // olden with rounds > 0: [K + 1, F], row K for `overall`; else empty
  Shape feature_shape;  // how the F features are laid out ([C,H,W] for pixels, [F] otherwise)
  std::string meaning;  // what the numbers are, for captions
  std::map<std::string, double> info;
  std::vector<std::string> notes;  // what makes the numbers less than they seem (all-zero derivatives...)
  // nam: "grid" [F, P] (each feature's values), "shape" [F, P, K] (f_j at them, centred on the
  // data); dimopoulos: "mean_derivative" [K, F] and, with curvature, "mean_second_derivative"
  // [K, F] and "curvature_shares" [K, F] (info "curvature" 1); olden: "null" [R, K, F].
  std::map<std::string, Tensor> extra;
};

const std::vector<MethodInfo>& importance_methods();
const MethodInfo& importance_method(const std::string& name);  // throws listing the known methods
// Whether a method averages over data (ImportanceRequest::x); the others read the weights alone.
bool importance_needs_data(const std::string& method);

// Throws on an unknown method or parameter, a parameter outside its documented range, a model the
// method cannot read (naming the layer), or data that does not fit the model.
Importance importance(Graph& model, const ImportanceRequest& q, const std::string& method, const Params& params = {});

// The dense layers of a perceptron, input to output: input, an optional flatten, then dense layers
// with only element-wise activations or dropout between them. Throws naming the first layer that
// does not fit and the method that needs it.
std::vector<const Dense*> perceptron_layers(const Graph& g, const std::string& method);

}  // namespace gb::explain::surrogates
