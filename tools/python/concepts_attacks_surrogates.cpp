// The concepts, attacks and surrogates families from Python (issue #21): tcav(), cav(), probe(),
// dissect() with patterns() and segmentation_set() for their built-in data; attack(); importance(),
// rules() and soft_tree(). Each calls the family's entry point the command line calls
// (cmd_concepts.cpp, cmd_attacks.cpp, cmd_surrogates.cpp) with the same request and seeds, so
// results equal the command's files. What only the command does stays there: reading image folders,
// .npy files and datasets by spec (Python passes arrays), figures, and the training loops of
// attack --method substitute, importance's olden rounds, distill and prune (explain/ never trains).
#include <pybind11/stl.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <tuple>

#include "data/dataset.h"
#include "explain/attacks/attacks.h"
#include "explain/concepts/cav.h"
#include "explain/concepts/concepts.h"
#include "explain/concepts/dissect.h"
#include "explain/concepts/patterns.h"
#include "explain/concepts/probe.h"
#include "explain/concepts/segmentation.h"
#include "explain/surrogates/importance.h"
#include "explain/surrogates/rules.h"
#include "explain/surrogates/soft_tree.h"
#include "tools/inputs.h"
#include "tools/python/families.h"

namespace gb::py_glassbox {

namespace {

namespace cc = gb::concepts;
namespace sg = gb::explain::surrogates;
using nlohmann::json;

// ---- shared ---------------------------------------------------------------------------------------

// Layer names (a list or a comma-separated string; "input" is the graph input) as node ids.
std::vector<int> layers_arg(const Graph& g, py::handle layers, const std::string& what) {
  const std::vector<std::string> names = layer_names_arg(layers, what);
  if (names.empty()) throw py::value_error(what + ": no layer given");
  std::vector<int> out;
  for (const std::string& n : names) {
    if (n == "input") {
      out.push_back(-1);
      continue;
    }
    const int node = g.find(n);
    if (node < 0) {
      std::string known = "input";
      for (int i = 0; i < g.size(); ++i) known += ", " + g.layer(i).name;
      throw py::value_error(what + " '" + n + "': no such layer (layers: " + known + ")");
    }
    out.push_back(node);
  }
  return out;
}

// (x, y): inputs in the model's input space and their classes.
std::pair<Tensor, std::vector<int>> labelled_arg(const Graph& g, py::handle pair, const std::string& what) {
  py::tuple t = pair_arg(pair, what);  // inputs in the model's input space and classes
  Tensor x = tensor_arg(t[0], g.input_shape(), what + "[0]");
  return {x, labels_arg(t[1], x.batch(), what + "[1]")};
}

py::object json_to_py(const json& j) { return py::module_::import("json").attr("loads")(j.dump()); }

py::dict arrays_dict(const std::map<std::string, Tensor>& m) {
  py::dict d;
  for (auto& [k, v] : m) d[py::str(k)] = to_array(v);
  return d;
}

// ---- concepts -------------------------------------------------------------------------------------

// A declared parameter's value as given, or its default (the data a run needs depends on a few).
std::string tcav_param(const explain::Params& p, const std::string& method, const std::string& key) {
  if (auto it = p.find(key); it != p.end()) return it->second;
  for (const explain::ParamInfo& d : cc::method_info(method).params)
    if (d.name == key) return d.default_value;
  throw std::logic_error(method + " declares no parameter " + key);
}

// A concept set: an array in the model's input space, or "pattern:KIND[,..]" generated in pixels
// (n images from `seed`) and put through the model's normalization, as `glassbox concepts --concept`.
Tensor concept_arg(const Model& m, py::handle a, int n, uint64_t seed, const std::string& what) {
  if (!py::isinstance<py::str>(a)) return tensor_arg(a, m.graph.input_shape(), what);
  const std::string spec = a.cast<std::string>();
  if (spec.rfind("pattern:", 0) != 0)
    throw py::value_error(what + " '" + spec + "': expected an array in the model's input space or pattern:KIND[,key=value..] "
                          "(image folders, .npy files and datasets: load them as arrays)");
  Tensor x = cc::make_patterns(cc::parse_pattern(spec.substr(8)), m.graph.input_shape(), n, seed);
  normalize_for(m, x);
  return x;
}

py::dict scores_dict(const cc::ConceptScores& c, bool tested, const Shape& layer_shape) {
  py::dict d;
  d["name"] = c.name;
  d["tcav"] = cc::mean(c.sign_count);
  d["tcav_std"] = cc::stdev(c.sign_count);
  d["magnitude"] = cc::mean(c.magnitude);
  d["magnitude_std"] = cc::stdev(c.magnitude);
  d["mean_derivative"] = cc::mean(c.mean_derivative);
  d["cav_accuracy"] = cc::mean(c.cav_accuracy);
  d["runs"] = py::dict(py::arg("sign_count") = to_array(c.sign_count), py::arg("magnitude") = to_array(c.magnitude),
                       py::arg("mean_derivative") = to_array(c.mean_derivative),
                       py::arg("cav_accuracy") = to_array(c.cav_accuracy), py::arg("cav_epochs") = c.cav_epochs);
  d["cavs"] = to_array(c.cavs.reshaped(Shape::batch_of(c.cavs.dim(0), layer_shape)));
  if (tested) {
    d["p_value"] = c.sign_test.p;
    d["t"] = c.sign_test.t;
    d["magnitude_p_value"] = c.magnitude_test.p;
    d["significant"] = c.significant;
    d["significant_bonferroni"] = c.significant_bonferroni;
  }
  return d;
}

// tcav(model, layers, concepts, target, inputs, random, n=100, max_inputs=1000, **params): as
// `glassbox concepts`, whose seeds it derives the same way for pattern specs.
py::dict tcav_py(PyModel& pm, py::handle layers_a, py::dict concepts, py::handle target_a, py::handle inputs_a,
                 py::handle random_a, py::handle n_a, py::handle max_inputs_a, py::kwargs kwargs) {
  const int target = int_arg(target_a, "tcav(target=...)"), n = int_arg(n_a, "tcav(n=...)"),
            max_inputs = int_arg(max_inputs_a, "tcav(max_inputs=...)");
  const std::string method = "tcav";
  Graph& g = pm.m.graph;
  const explain::Params params = params_arg(kwargs, method);
  cc::validate_params(method, params);  // unknown keys and values out of range fail before any data is read
  if (n < 2 || n > 100000) throw py::value_error("tcav(n=" + std::to_string(n) + "): expected 2..100000");
  if (max_inputs < 1 || max_inputs > 100000)
    throw py::value_error("tcav(max_inputs=" + std::to_string(max_inputs) + "): expected 1..100000");
  if (concepts.empty()) throw py::value_error("tcav(concepts=...): at least one {name: array or pattern spec}");
  if (target < 0 || target >= g.classes())
    throw py::value_error("tcav(target=" + std::to_string(target) + "): outside the model's classes 0.." +
                          std::to_string(g.classes() - 1));
  cc::TcavRequest q;
  q.layers = layers_arg(g, layers_a, "tcav(layers=...)");
  for (int l : q.layers)
    if (l >= g.output()) throw py::value_error("tcav(layers=...): " + g.layer(l).name + " is the logits; TCAV needs a layer below them");
  const uint64_t seed = std::stoull(tcav_param(params, method, "seed"));
  size_t i = 0;
  for (auto [k, v] : concepts) {
    const std::string name = py::str(k);
    if (name == "random") throw py::value_error("tcav(concepts=...): 'random' names the baseline; call the concept otherwise");
    Tensor x = concept_arg(pm.m, v, n, cc::mix_seed(seed, 0x636f6e63 + i), "concepts['" + name + "']");
    if (x.batch() > n) x = x.slice(0, n).clone();  // n examples per concept at most, as --n
    q.concepts.push_back({name, std::move(x)});
    ++i;
  }
  // A generated random pool holds (R + 1) random_size images: disjoint sets' worth (as the command).
  const double pool = (std::stod(tcav_param(params, method, "runs")) + 1) * std::stod(tcav_param(params, method, "random_size"));
  if (py::isinstance<py::str>(random_a) && pool > 200000)
    throw py::value_error("tcav(random=...): (runs + 1) x random_size = " + std::to_string(long(pool)) +
                          " generated images, more than 200000");
  q.random_pool = concept_arg(pm.m, random_a, int(pool), cc::mix_seed(seed, 0x706f6f6c), "random");
  q.inputs = concept_arg(pm.m, inputs_a, max_inputs, cc::mix_seed(seed, 0x696e70), "inputs");
  if (q.inputs.batch() > max_inputs) q.inputs = q.inputs.slice(0, max_inputs).clone();
  q.target = Target({target});
  cc::TcavResult r;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    r = cc::tcav(g, q, params, method);
  }
  py::list layers;
  for (const cc::LayerScores& l : r.layers) {
    const Shape shape = l.node < 0 ? g.input_shape() : g.shape(l.node).sample();
    py::list cs;
    for (const cc::ConceptScores& c : l.concepts) cs.append(scores_dict(c, true, shape));
    layers.append(py::dict(py::arg("layer") = l.layer, py::arg("shape") = shape.vec(), py::arg("concepts") = cs,
                           py::arg("random") = scores_dict(l.random, false, shape)));
  }
  py::dict sizes;
  for (const cc::ConceptSet& c : q.concepts) sizes[py::str(c.name)] = c.x.batch();
  return py::dict(py::arg("runs") = r.runs, py::arg("p_threshold") = r.p_threshold, py::arg("comparisons") = r.comparisons,
                  py::arg("concept_sizes") = sizes, py::arg("inputs") = q.inputs.batch(),
                  py::arg("random_pool") = q.random_pool.batch(), py::arg("layers") = layers);
}

// Activations [n, ...] as rows [n, D] (any float array of rank 2-4).
Tensor rows_arg(py::handle a, const std::string& what) {
  Tensor t = any_tensor_arg(a, what);
  if (t.rank() < 2) throw py::value_error(what + ": expected [n, features...] (one row per example)");
  return t.reshaped(Shape{t.batch(), int(t.sample_size())});
}

// cav(positive, other, classifier, alpha, max_iter, tol, test_fraction, seed): one CAV, the
// classifier tcav() fits per run (cav.h), with the tcav method's ranges.
py::dict cav_py(py::handle pos_a, py::handle other_a, const std::string& classifier, py::handle alpha_a,
                py::handle max_iter_a, py::handle tol_a, py::handle test_fraction_a, py::handle seed_a) {
  const double alpha = number_arg(alpha_a, "cav(alpha=...)"), tol = number_arg(tol_a, "cav(tol=...)");
  const double test_fraction = number_arg(test_fraction_a, "cav(test_fraction=...)");
  const int max_iter = int_arg(max_iter_a, "cav(max_iter=...)");
  const uint64_t seed = seed_arg(seed_a, "cav(seed=...)");
  const Tensor pos = rows_arg(pos_a, "positive"), other = rows_arg(other_a, "other");
  if (pos.dim(1) != other.dim(1))
    throw py::value_error("cav: positive has " + std::to_string(pos.dim(1)) + " features per row, other " + std::to_string(other.dim(1)));
  if (classifier != "svm" && classifier != "logistic")
    throw py::value_error("cav(classifier='" + classifier + "'): use svm (hinge loss) or logistic (log loss)");
  auto check = [](bool ok, const std::string& what) {
    if (!ok) throw py::value_error("cav(" + what + ")");
  };
  check(alpha >= 1e-12 && alpha <= 10, "alpha=...): expected (0, 10]");
  check(max_iter >= 1 && max_iter <= 100000, "max_iter=...): expected 1..100000");
  check(tol >= 0 && tol <= 1, "tol=...): expected 0..1");
  check(test_fraction >= 0.05 && test_fraction <= 0.9, "test_fraction=...): expected [0.05, 0.9]");
  cc::CavOptions o;
  o.sgd.loss = classifier == "svm" ? cc::Loss::hinge : cc::Loss::log;
  o.sgd.alpha = alpha, o.sgd.max_iter = max_iter, o.sgd.tol = tol, o.sgd.seed = seed;
  o.test_fraction = test_fraction;
  cc::Cav c;
  {
    ReleasedGil nogil;
    c = cc::train_cav(pos, other, o);
  }
  py::array_t<float> direction(py::ssize_t(c.direction.size()));
  std::copy(c.direction.begin(), c.direction.end(), direction.mutable_data());
  return py::dict(py::arg("direction") = direction, py::arg("weights") = to_array(c.fit.w), py::arg("bias") = c.fit.b,
                  py::arg("epochs") = c.fit.epochs, py::arg("converged") = c.fit.converged, py::arg("accuracy") = c.accuracy,
                  py::arg("train_accuracy") = c.train_accuracy, py::arg("n_train") = c.n_train, py::arg("n_test") = c.n_test);
}

// patterns(spec, model, n, seed): the command's generated concept images, pixels in [0, 1].
py::array patterns_py(const std::string& spec, const PyModel& pm, py::handle n_a, py::handle seed_a) {
  const int n = int_arg(n_a, "patterns(n=...)");
  const uint64_t seed = seed_arg(seed_a, "patterns(seed=...)");
  if (n < 1 || n > 200000) throw py::value_error("patterns(n=" + std::to_string(n) + "): expected 1..200000");
  const std::string body = spec.rfind("pattern:", 0) == 0 ? spec.substr(8) : spec;
  return to_array(cc::make_patterns(cc::parse_pattern(body), pm.m.graph.input_shape(), n, seed));
}

// probe(model, train=(x, y), test=(x, y), layers="all", classes=0, **params) -> per layer accuracies.
py::dict probe_py(PyModel& pm, py::handle train_a, py::handle test_a, py::handle layers_a, py::handle classes_a,
                  py::kwargs kwargs) {
  const int classes = int_arg(classes_a, "probe(classes=...)");
  const std::string method = "probe";
  Graph& g = pm.m.graph;
  const explain::Params params = params_arg(kwargs, method);
  cc::validate_params(method, params);
  cc::ProbeRequest q;
  std::tie(q.train_x, q.train_y) = labelled_arg(g, train_a, "probe(train=...)");
  std::tie(q.test_x, q.test_y) = labelled_arg(g, test_a, "probe(test=...)");
  if (py::isinstance<py::str>(layers_a) && layers_a.cast<std::string>() == "all") {
    for (int i = -1; i < g.size(); ++i) q.layers.push_back(i);
  } else {
    q.layers = layers_arg(g, layers_a, "probe(layers=...)");
  }
  // The command's class count: the training set's (1 + its largest label) or the model's, if more.
  int largest = -1;
  for (int y : q.train_y) largest = std::max(largest, y);
  if (classes < 0) throw py::value_error("probe(classes=" + std::to_string(classes) + "): 0 (automatic) or a count");
  q.classes = classes > 0 ? classes : std::max(largest + 1, g.has_classes() ? g.classes() : 0);
  cc::ProbeResult r;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    r = cc::probe(g, q, params, method);
  }
  py::list layers;
  for (const cc::LayerProbe& l : r.layers)
    layers.append(py::dict(py::arg("layer") = l.layer, py::arg("features") = l.features,
                           py::arg("train_accuracy") = l.train_accuracy, py::arg("test_accuracy") = l.test_accuracy,
                           py::arg("train_loss") = l.train_loss, py::arg("test_loss") = l.test_loss,
                           py::arg("weight") = to_array(l.weight), py::arg("bias") = to_array(l.bias),
                           py::arg("mean") = to_array(l.mean), py::arg("scale") = to_array(l.scale)));
  return py::dict(py::arg("classes") = r.classes, py::arg("epochs") = r.epochs, py::arg("layers") = layers);
}

// Masks [N, K, H, W] of 0/1 as bytes: integer or bool arrays only (a float mask would be truncated).
std::vector<uint8_t> masks_arg(py::handle a, int N, int K, int H, int W) {
  py::array arr = py::array::ensure(a);
  if (!arr) throw py::type_error("masks: expected an integer or bool array [N, concepts, H, W]");
  const char kind = arr.dtype().kind();
  if (kind != 'b' && kind != 'i' && kind != 'u')
    throw py::type_error("masks: expected an integer or bool array of 0/1, got dtype " + std::string(py::str(arr.dtype())));
  if (arr.ndim() != 4 || arr.shape(0) != N || arr.shape(1) != K || arr.shape(2) != H || arr.shape(3) != W)
    throw py::value_error("masks: expected shape [" + std::to_string(N) + ", " + std::to_string(K) + ", " + std::to_string(H) +
                          ", " + std::to_string(W) + "] (images, concepts, height, width), got " +
                          std::string(py::str(py::tuple(py::cast(std::vector<py::ssize_t>(arr.shape(), arr.shape() + arr.ndim()))))));
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> v(arr);
  std::vector<uint8_t> out(v.size());
  for (py::ssize_t i = 0; i < v.size(); ++i) {
    if (v.data()[i] != 0 && v.data()[i] != 1)
      throw py::value_error("masks: value " + std::to_string(v.data()[i]) + " at element " + std::to_string(i) + "; expected 0 or 1");
    out[i] = uint8_t(v.data()[i]);
  }
  return out;
}

// dissect(model, images, masks, concepts, categories=None, layers="all", **params).
py::dict dissect_py(PyModel& pm, py::handle images, py::handle masks, std::vector<std::string> concepts,
                    py::handle categories_a, py::handle layers_a, py::kwargs kwargs) {
  const std::string method = "netdissect";
  Graph& g = pm.m.graph;
  const explain::Params params = params_arg(kwargs, method);
  cc::validate_params(method, params);
  if (g.input_shape().rank != 3) throw py::value_error("dissect: the model takes " + g.input_shape().str() + ", not images");
  cc::SegmentationSet s;
  s.x = tensor_arg(images, g.input_shape(), "images");
  if (concepts.empty()) throw py::value_error("dissect(concepts=...): at least one concept name");
  std::vector<std::string> cats = categories_a.is_none() ? std::vector<std::string>(concepts.size(), "concept")
                                                         : names_arg(categories_a, "dissect(categories=...)", false);
  if (cats.size() != concepts.size())
    throw py::value_error("dissect(categories=...): " + std::to_string(cats.size()) + " categories for " +
                          std::to_string(concepts.size()) + " concepts (one per concept)");
  for (size_t c = 0; c < concepts.size(); ++c) {
    auto it = std::find(s.categories.begin(), s.categories.end(), cats[c]);
    if (it == s.categories.end()) s.categories.push_back(cats[c]), it = s.categories.end() - 1;
    s.concepts.push_back({concepts[c], int(it - s.categories.begin())});
  }
  s.masks = masks_arg(masks, s.size(), int(concepts.size()), s.height(), s.width());
  cc::check_segmentation(s);
  std::vector<int> layers;
  if (py::isinstance<py::str>(layers_a) && layers_a.cast<std::string>() == "all") {
    for (int i = 0; i < g.size(); ++i)
      if (g.shape(i).rank == 4) layers.push_back(i);
    if (layers.empty()) throw py::value_error("dissect: the model has no layer with maps [C, H, W]");
  } else {
    layers = layers_arg(g, layers_a, "dissect(layers=...)");
  }
  cc::DissectResult r;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    r = cc::dissect(g, {&s, layers, {}}, params, method);
  }
  py::list out;
  for (const cc::LayerDissection& d : r.layers) {
    py::list units;
    Tensor iou(Shape{int(d.units.size()), int(s.concepts.size())});
    for (const cc::UnitResult& u : d.units) {
      units.append(py::dict(py::arg("unit") = u.unit, py::arg("threshold") = u.threshold,
                            py::arg("concept") = u.best < 0 ? "" : s.concepts[u.best].name,
                            py::arg("category") = u.best < 0 ? "" : s.categories[s.concepts[u.best].category],
                            py::arg("iou") = u.iou, py::arg("detector") = u.detector, py::arg("top_images") = u.top_images,
                            py::arg("top_maxima") = u.top_maxima));
      for (size_t c = 0; c < s.concepts.size(); ++c) iou[size_t(u.unit) * s.concepts.size() + c] = float(u.ious[c]);
    }
    py::dict cats_count;
    for (size_t c = 0; c < s.categories.size(); ++c) cats_count[py::str(s.categories[c])] = d.detectors_by_category[c];
    out.append(py::dict(py::arg("layer") = d.layer, py::arg("units") = units, py::arg("iou") = to_array(iou),
                        py::arg("detectors_by_category") = cats_count, py::arg("unique_concepts") = d.unique_concepts));
  }
  return py::dict(py::arg("quantile") = r.quantile, py::arg("iou_threshold") = r.iou_threshold, py::arg("layers") = out);
}

// segmentation_set(model, n=1000, seed=0): `glassbox dissect --concepts generated:n=N,seed=S`'s
// images (pixels in [0, 1]), masks [N, K, H, W] (uint8), concept names and their categories.
py::dict segmentation_py(const PyModel& pm, py::handle n_a, py::handle seed_a) {
  const int n = int_arg(n_a, "segmentation_set(n=...)");
  const uint64_t seed = seed_arg(seed_a, "segmentation_set(seed=...)");
  if (n < 1 || n > 100000) throw py::value_error("segmentation_set(n=" + std::to_string(n) + "): expected 1..100000");
  const cc::SegmentationSet s = cc::make_segmentation(pm.m.graph.input_shape(), n, seed);
  py::array_t<uint8_t> masks({py::ssize_t(s.size()), py::ssize_t(s.concepts.size()), py::ssize_t(s.height()), py::ssize_t(s.width())});
  std::copy(s.masks.begin(), s.masks.end(), masks.mutable_data());
  std::vector<std::string> names, cats;
  for (const cc::SegConcept& c : s.concepts) names.push_back(c.name), cats.push_back(s.categories[c.category]);
  return py::dict(py::arg("images") = to_array(s.x), py::arg("masks") = masks, py::arg("concepts") = names,
                  py::arg("categories") = cats);
}

// ---- attacks --------------------------------------------------------------------------------------

// The model's pixel space as `glassbox attack` sets it: the stored normalization over pixels in
// [0, 1] for image models, unbounded for other inputs.
attacks::PixelSpace pixel_space(const Model& m) {
  const Normalization norm = Normalization::of_model(m.metadata);
  attacks::PixelSpace s;
  s.mean = norm.mean;
  s.std = norm.std;
  if (m.graph.input_shape().rank != 3) s.lo = -INFINITY, s.hi = INFINITY;
  return s;
}

// attack(model, x, method, labels=None, target=None, data=None, eps=None, **params).
py::dict attack_py(PyModel& pm, py::handle x_a, const std::string& method, py::handle labels_a, py::handle target_a,
                   py::handle data_a, py::handle eps_a, py::kwargs kwargs) {
  Graph& g = pm.m.graph;
  explain::Params params = params_arg(kwargs, method);
  const std::string eps_key = attacks::epsilon_key(method);  // unknown attacks fail here
  if (!eps_a.is_none()) {  // as --eps: the attack's epsilon (or radius), printed as the command prints it
    if (eps_key.empty()) throw py::value_error("attack(eps=...): " + method + " has no epsilon (it looks for the smallest change)");
    if (params.count(eps_key)) throw py::value_error("attack(): eps and " + eps_key + " both given; give one");
    const double e = number_arg(eps_a, "attack(eps=...)");
    if (!std::isfinite(e) || e < 0) throw py::value_error("attack(eps=" + std::string(py::repr(eps_a)) + "): expected a finite number >= 0 (pixels)");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", e);
    params[eps_key] = buf;
  }
  attacks::ParamReader(params, attacks::method_info(method));  // unknown keys fail before any work
  if (method == "substitute")
    throw py::value_error("attack(method='substitute'): trains a substitute model; run `glassbox attack --method substitute`");
  attacks::Request q;
  q.inputs = tensor_arg(x_a, g.input_shape(), "x");
  const int N = q.inputs.batch();
  q.labels = labels_a.is_none() ? std::vector<int>(N, -1) : labels_arg(labels_a, N, "labels", -1);
  if (py::isinstance<py::bool_>(target_a) || py::isinstance(target_a, py::module_::import("numpy").attr("bool_")))
    throw py::type_error("attack(target=...): a class number or one per input, not a bool");
  if (py::isinstance<py::int_>(target_a) || (!py::isinstance<py::array>(target_a) && PyIndex_Check(target_a.ptr()))) {
    const int k = int_arg(target_a, "attack(target=...)");
    if (k < 0 || k >= g.classes())  // (-1 passed here and failed in the attack under another name)
      throw py::value_error("attack(target=" + std::string(py::repr(target_a)) + "): outside the model's classes [0, " +
                            std::to_string(g.classes()) + "); target=None is untargeted");
    q.targets.assign(N, k);  // (the attack checks the rest)
  }
  else if (!target_a.is_none())
    q.targets = labels_arg(target_a, N, "target");
  if (!data_a.is_none() && !attacks::reads_reference_set(method, params))  // (it was ignored)
    throw py::value_error("attack(data=...): only substitute, and detect-explanation with score=class-map, read a "
                          "reference set, not '" + method + "'");
  if (!data_a.is_none()) std::tie(q.data, q.data_labels) = labelled_arg(g, data_a, "attack(data=...)");
  q.pixels = pixel_space(pm.m);
  attacks::Result r;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    r = attacks::attack(g, q, method, params);
  }
  py::dict values, totals;
  for (auto& [k, v] : r.values) values[py::str(k)] = to_array(v);
  for (auto& [k, v] : r.totals) totals[py::str(k)] = v;
  py::array_t<bool> success(py::ssize_t(r.success.size()));
  for (size_t n = 0; n < r.success.size(); ++n) success.mutable_data()[n] = r.success[n] != 0;
  return py::dict(py::arg("adversarial") = to_array(r.adversarial), py::arg("label") = r.label, py::arg("target") = r.target,
                  py::arg("before") = r.before, py::arg("after") = r.after, py::arg("success") = success,
                  py::arg("success_rate") = attacks::success_rate(r),
                  py::arg("success_rate_initially_correct") = attacks::success_rate_initially_correct(r),
                  py::arg("initially_correct") = attacks::initially_correct_count(r), py::arg("l0") = to_array(r.l0),
                  py::arg("l2") = to_array(r.l2), py::arg("linf") = to_array(r.linf), py::arg("values") = values,
                  py::arg("maps") = arrays_dict(r.maps), py::arg("totals") = totals,
                  py::arg("notes") = r.notes);  // why a NaN total is undefined, by its key
}

// ---- surrogates -----------------------------------------------------------------------------------

// importance(model, x, method, **params): as `glassbox importance`.
py::dict importance_py(PyModel& pm, py::handle x_a, const std::string& method, py::kwargs kwargs) {
  Graph& g = pm.m.graph;
  const explain::Params params = params_arg(kwargs, method);
  explain::ParamReader(params, sg::importance_method(method));  // unknown methods and keys fail first
  // rounds is read as the method reads it (0.0 is 0; -1 fails the range check there)
  if (method == "olden" && params.count("rounds") && explain::ParamReader(params, sg::importance_method(method)).integer("rounds") != 0)
    throw py::value_error("importance(method='olden', rounds=...): the randomization test retrains networks on shuffled "
                          "labels; run `glassbox importance --method olden --param rounds=R`");
  sg::ImportanceRequest q;
  q.x = tensor_arg(x_a, g.input_shape(), "x");
  const Normalization norm = Normalization::of_model(pm.m.metadata);
  for (size_t c = 0; c < norm.mean.size(); ++c) q.raw_shift.push_back(norm.mean[c] / norm.std[c]);
  sg::Importance r;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    r = sg::importance(g, q, method, params);
  }
  std::vector<int> dims = {r.per_class.dim(0)};
  for (int d : r.feature_shape.vec()) dims.push_back(d);
  return py::dict(py::arg("per_class") = to_array(r.per_class.reshaped(Shape::of(dims))),
                  py::arg("overall") = to_array(r.overall.reshaped(r.feature_shape)),
                  py::arg("p_values") = r.p_values.empty() ? py::object(py::none()) : py::object(to_array(r.p_values)),
                  py::arg("feature_shape") = r.feature_shape.vec(), py::arg("meaning") = r.meaning, py::arg("info") = r.info,
                  py::arg("notes") = r.notes, py::arg("extra") = arrays_dict(r.extra));
}

// rules(model, method, inputs=None, data=None, test=None, **params): as `glassbox rules`.
py::list rules_py(PyModel& pm, const std::string& method, py::handle inputs_a, py::handle data_a, py::handle test_a,
                  py::handle names_a, py::kwargs kwargs) {
  Graph& g = pm.m.graph;
  const explain::Params params = params_arg(kwargs, method);
  explain::ParamReader(params, sg::rule_method(method));
  sg::RulesRequest q;
  if (!inputs_a.is_none()) q.inputs = tensor_arg(inputs_a, g.input_shape(), "inputs");
  if (!data_a.is_none()) q.data = tensor_arg(data_a, g.input_shape(), "data");
  if (!test_a.is_none()) q.test = tensor_arg(test_a, g.input_shape(), "test");
  if (!names_a.is_none()) {
    if (py::isinstance<py::str>(names_a))  // a str is a sequence of one-letter names
      throw py::type_error("rules(input_names=...): a list of names, one per input, not one str");
    try {
      q.input_names = names_a.cast<std::vector<std::string>>();
    } catch (const py::cast_error&) {
      throw py::type_error("rules(input_names=...): a list of str, one per input");
    }
  }
  if (!q.input_names.empty() && (q.inputs.empty() || int(q.input_names.size()) != q.inputs.batch()))
    throw py::value_error("rules(input_names=...): one name per input");
  const Normalization norm = Normalization::of_model(pm.m.metadata);
  q.raw_scale = norm.std;
  q.raw_shift = norm.mean;
  q.class_names = model_classes(pm.m);
  std::vector<sg::RuleSet> sets;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    sets = sg::rules(g, q, method, params);
  }
  py::list out;
  for (const sg::RuleSet& r : sets) {
    py::object figure = py::none();
    if (r.figure.w) {
      py::array_t<uint8_t> im({py::ssize_t(r.figure.h), py::ssize_t(r.figure.w), py::ssize_t(3)});
      std::copy(r.figure.rgb.begin(), r.figure.rgb.end(), im.mutable_data());
      figure = im;
    }
    out.append(py::dict(py::arg("name") = r.name, py::arg("rules") = r.rules, py::arg("details") = json_to_py(r.details),
                        py::arg("arrays") = arrays_dict(r.arrays), py::arg("figure") = figure));
  }
  return out;
}

// soft_tree(model, x, index=None, levels=4): how the model's soft decision tree routes x, the tree
// as `glassbox distill` writes it (.tree.json), and with `index` its figure for that sample.
py::dict soft_tree_py(PyModel& pm, py::handle x_a, py::handle index_a, py::handle levels_a) {
  const int levels = int_arg(levels_a, "soft_tree(levels=...)");
  Graph& g = pm.m.graph;
  const int tn = sg::soft_tree_node(g);
  if (tn < 0) throw py::value_error("soft_tree: the model has no softtree layer (glassbox distill --student soft-tree:D makes one)");
  if (levels < 1 || levels > 6) throw py::value_error("soft_tree(levels=" + std::to_string(levels) + "): expected 1..6");
  const Tensor x = tensor_arg(x_a, g.input_shape(), "x");
  const int index = index_a.is_none() ? -1 : int_arg(index_a, "soft_tree(index=...)");
  if (!index_a.is_none() && (index < 0 || index >= x.batch()))
    throw py::value_error("soft_tree(index=" + std::to_string(index) + "): outside the " + std::to_string(x.batch()) + " inputs");
  const auto& tree = static_cast<const SoftTree&>(g.layer(tn));
  const Shape sample = g.input_shape();
  sg::Routing r;
  std::vector<int> max_path;
  explain::Image figure;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    r = sg::route(g, tn, x);
    max_path = sg::max_path_predictions(tree, r);
    if (index >= 0) {  // the sample shown in pixels: the model's normalization undone
      // As [1, sample...]: invert() takes a channel's (images) or a feature's (flat) own mean and
      // std, as glassbox distill does (feature 0's were used for every flat feature).
      Tensor p = x.slice(index, index + 1).clone();
      const Normalization norm = Normalization::of_model(pm.m.metadata);
      if (!norm.empty()) norm.invert(p);
      const Shape shown = sample.rank == 3 ? sample : Shape{1, 1, sample[0]};
      figure = sg::tree_figure(tree, sample, model_classes(pm.m), r, index, p.reshaped(shown), levels);
    }
  }
  py::object fig = py::none();
  if (figure.w) {
    py::array_t<uint8_t> im({py::ssize_t(figure.h), py::ssize_t(figure.w), py::ssize_t(3)});
    std::copy(figure.rgb.begin(), figure.rgb.end(), im.mutable_data());
    fig = im;
  }
  return py::dict(py::arg("tree") = json_to_py(sg::tree_json(tree, model_classes(pm.m), sample)),
                  py::arg("right") = to_array(r.right), py::arg("reach") = to_array(r.reach), py::arg("leaf") = r.leaf,
                  py::arg("max_path") = max_path, py::arg("figure") = fig);
}

}  // namespace

void bind_concepts_attacks_surrogates(py::module_& m) {
  m.def("tcav", &tcav_py, py::arg("model"), py::arg("layers"), py::kw_only(), py::arg("concepts"), py::arg("target"),
        py::arg("inputs"), py::arg("random"), py::arg("n") = 100, py::arg("max_inputs") = 1000,
        "TCAV (glassbox concepts): per layer and concept the TCAV and magnitude scores over the runs, t-tests against "
        "the random runs and the unit CAVs. concepts={name: array (model input space) or 'pattern:KIND[,..]'}; "
        "random, inputs likewise. Parameters: methods('concepts')['tcav']");
  m.def("cav", &cav_py, py::arg("positive"), py::arg("other"), py::kw_only(), py::arg("classifier") = "svm",
        py::arg("alpha") = 0.01, py::arg("max_iter") = 1000, py::arg("tol") = 1e-3, py::arg("test_fraction") = 0.33,
        py::arg("seed") = 0,
        "One concept activation vector: a linear classifier (sklearn's SGDClassifier, re-implemented) separating the "
        "concept's activations [n1, ...] from other ones [n2, ...]: {direction (unit, toward the concept), weights, "
        "bias, epochs, converged, accuracy (held out), train_accuracy, n_train, n_test}");
  m.def("patterns", &patterns_py, py::arg("spec"), py::arg("model"), py::kw_only(), py::arg("n") = 100, py::arg("seed") = 0,
        "Generated concept images (stripes-h, stripes-v, checkerboard, dots, edges, lines, blobs, solid, noise) shaped "
        "like the model's input: pixels [n, C, H, W] in [0, 1] (model.normalize() them for tcav)");
  m.def("probe", &probe_py, py::arg("model"), py::arg("train"), py::arg("test"), py::kw_only(), py::arg("layers") = "all",
        py::arg("classes") = 0,
        "Linear probes (glassbox probe): per layer a softmax classifier on its activations, its accuracies and weights");
  m.def("dissect", &dissect_py, py::arg("model"), py::arg("images"), py::arg("masks"), py::arg("concepts"), py::kw_only(),
        py::arg("categories") = py::none(), py::arg("layers") = "all",
        "Network Dissection (glassbox dissect): per conv unit its threshold, best concept, IoU, and the IoU matrix");
  m.def("segmentation_set", &segmentation_py, py::arg("model"), py::kw_only(), py::arg("n") = 1000, py::arg("seed") = 0,
        "The generated segmentation set of glassbox dissect: {images (pixels), masks [N,K,H,W], concepts, categories}");
  m.def("attack", &attack_py, py::arg("model"), py::arg("x"), py::arg("method"), py::kw_only(), py::arg("labels") = py::none(),
        py::arg("target") = py::none(), py::arg("data") = py::none(), py::arg("eps") = py::none(),
        "Adversarial examples and attacks on explanations (glassbox attack): {adversarial (shaped like x), label, target, "
        "before, after, success, success_rate, success_rate_initially_correct, initially_correct, l0, l2, linf, values, "
        "maps, totals, notes}");
  m.def("importance", &importance_py, py::arg("model"), py::arg("x"), py::arg("method"),
        "Input importance of MLPs and additive models (glassbox importance): {per_class, overall, p_values, "
        "feature_shape, meaning, info, extra, notes}");
  m.def("rules", &rules_py, py::arg("model"), py::arg("method"), py::kw_only(), py::arg("inputs") = py::none(),
        py::arg("data") = py::none(), py::arg("test") = py::none(), py::arg("input_names") = py::none(),
        "Rules (glassbox rules): anchors per input, or a CART tree fitted to the model's predictions: "
        "[{name, rules, details, arrays, figure}]; input_names: one name per input (anchors), its rule set's name");
  m.def("soft_tree", &soft_tree_py, py::arg("model"), py::arg("x"), py::kw_only(), py::arg("index") = py::none(),
        py::arg("levels") = 4,
        "A soft decision tree model read as an explanation: {tree (as distill's .tree.json), right [N, inner], reach "
        "[N, nodes] (heap order), leaf (maximum-probability leaf), max_path (its class), figure (with index: "
        "Frosst & Hinton's figure for that input, RGB uint8)}");
}

}  // namespace gb::py_glassbox
