// How the instance methods plug into the registry (registry.cpp), and what they share: choosing
// layers, per-sample loss gradients, the last dense layer, progress.
#pragma once
#include <functional>

#include "explain/instances/instances.h"

namespace gb::explain::instances {

struct Method {
  MethodInfo info;
  std::function<Scores(Graph&, const Examples& train, const Examples& tests, ParamReader&, const Context&)> run;
  // Self-influence of every training point; empty when the method has none.
  std::function<Scores(Graph&, const Examples& train, ParamReader&, const Context&)> self;
};

void add_knn_method(std::vector<Method>& registry);          // knn.cpp
void add_influence_method(std::vector<Method>& registry);    // influence.cpp
void add_tracin_method(std::vector<Method>& registry);       // tracin.cpp
void add_representer_method(std::vector<Method>& registry);  // representer.cpp

// Throws naming `what` unless ex's inputs fit the model, are finite, and its classes are inside
// the model's outputs.
void check_examples(const Graph& g, const Examples& ex, const std::string& what);

// The model's last layer when it is a dense layer producing the logits; throws naming the output
// layer otherwise.
int last_dense(const Graph& g, const std::string& method);
// A `layers` parameter: "last" (the last dense layer), "all" (every layer with trainable
// parameters) or comma-separated layer names. Throws naming an unknown layer or one without
// trainable parameters.
std::vector<int> chosen_layers(const Graph& g, const std::string& spec, const std::string& method);
// A `layer` parameter for activations: "" (the input of the last dense layer: the features the
// classifier reads), "input", or a layer name. Returns -1 for the input.
int activation_node(const Graph& g, const std::string& spec, const std::string& method);

// Rows [b, e) of the per-sample gradients of each example's cross-entropy at its class ex.y[n],
// for the chosen layers' trainable parameters: [e − b, slice size].
Tensor loss_gradients(Graph& g, const Examples& ex, int b, int e, const std::vector<int>& nodes);
// Their dot products with the rows of V ([M, slice size]), [e − b, M], without forming them
// (engine/passes.h per_sample_grad_dots); with norms, also each gradient's squared norm.
Tensor loss_gradient_dots(Graph& g, const Examples& ex, int b, int e, const std::vector<int>& nodes, const Tensor& V,
                          std::vector<double>* norms = nullptr);

// The features of the last dense layer (its input, flattened) and the logits, for every example.
struct LastLayerActivations {
  Tensor features;  // [N, D]
  Tensor logits;    // [N, K]
};
LastLayerActivations last_layer_activations(Graph& g, int dense, const Tensor& x, const Context& ctx,
                                            const std::string& stage);

// The Pearson correlation of two series of the same length (0 when either is constant).
double pearson(const std::vector<double>& a, const std::vector<double>& b);

// Reports progress when the context asks for it.
void report(const Context& ctx, const std::string& stage, int done, int total);

}  // namespace gb::explain::instances
