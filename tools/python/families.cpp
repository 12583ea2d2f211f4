// The explanation families from Python, one entry point each through its registry (as the CLI's
// cmd_*.cpp), plus OpenBox regions and training. Arrays are in the model's input space.
#include "tools/python/families.h"

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/npy.h"
#include "engine/architecture.h"
#include "explain/attacks/attacks.h"
#include "explain/attribution/explain.h"
#include "explain/concepts/concepts.h"
#include "explain/instances/instances.h"
#include "explain/metrics/metrics.h"
#include "explain/openbox/openbox.h"
#include "explain/surrogates/importance.h"
#include "explain/surrogates/rules.h"
#include "explain/visualize/visualize.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "train/fit.h"
#include "train/presets.h"
#include "train/regress.h"

namespace gb::py_glassbox {

namespace {

namespace vz = gb::visualize;
namespace inst = gb::explain::instances;

py::dict method_dict(const explain::MethodInfo& info) {
  py::dict params;
  for (auto& p : info.params) params[py::str(p.name)] = py::dict(py::arg("default") = p.default_value, py::arg("help") = p.help);
  return py::dict(py::arg("summary") = info.summary, py::arg("convention") = info.convention, py::arg("params") = params);
}

// methods(family): {name: {summary, convention, params: {key: {default, help}}}}.
py::dict methods(const std::string& family) {
  std::vector<explain::MethodInfo> infos;
  if (family == "explain") {
    infos = explain::methods();
  } else if (family == "visualize") {
    infos = vz::methods();
  } else if (family == "influence") {
    infos = inst::methods();
  } else if (family == "evaluate") {
    for (auto& m : metrics::all_metrics()) infos.push_back(m.declaration);
  } else if (family == "concepts") {
    infos = concepts::methods();
  } else if (family == "attacks") {
    infos = attacks::methods();
  } else if (family == "importance") {
    infos = explain::surrogates::importance_methods();
  } else if (family == "rules") {
    infos = explain::surrogates::rule_methods();
  } else {
    throw py::value_error("methods('" + family + "'): families are explain, visualize, evaluate, influence, concepts, "
                          "attacks, importance, rules");
  }
  py::dict out;
  for (auto& i : infos) out[py::str(i.name)] = method_dict(i);
  return out;
}

// Pixel 0 and 1 of each channel through the model's normalization (as glassbox visualize).
vz::Bounds model_bounds(const Model& m) {
  const Normalization norm = Normalization::of_model(m.metadata);
  vz::Bounds b;
  for (int c = 0; c < m.graph.input_shape()[0]; ++c) {
    const float mean = norm.empty() ? 0.f : norm.mean[size_t(c) % norm.mean.size()];
    const float sd = norm.empty() ? 1.f : norm.std[size_t(c) % norm.std.size()];
    b.lo.push_back((0.f - mean) / sd);
    b.hi.push_back((1.f - mean) / sd);
  }
  return b;
}

// visualize(model, method, unit=, inputs=, data=, **params) -> {"panels": {name: [R, C, h, w]},
// "rows": [{name, caption, values, curves}], "per_line"}. unit: the CLI's --unit spec, or a
// list of classes; methods that start from inputs run each input towards each unit (rows
// input-major, per_line units per input). data: images scanned (top-patches...).
py::dict visualize_py(PyModel& pm, const std::string& method, py::handle unit, py::handle inputs, py::handle data,
                      py::kwargs kwargs) {
  Graph& g = pm.m.graph;
  const explain::Params params = params_arg(kwargs, method);
  explain::ParamReader(params, vz::method_info(method));  // unknown methods and keys fail first
  vz::Request q;
  if (!inputs.is_none()) q.inputs = tensor_arg(inputs, g.input_shape(), "inputs");
  if (!data.is_none()) q.data = tensor_arg(data, g.input_shape(), "data");
  // As the command: class:pred (the default of methods that explain each input) is each input's
  // prediction; a number or a list of numbers are classes.
  const bool pred = (py::isinstance<py::str>(unit) && unit.cast<std::string>() == "class:pred") ||
                    (unit.is_none() && vz::explains_each_input(method));
  if (pred) {
    if (q.inputs.empty()) throw py::value_error("visualize(unit='class:pred'): needs inputs=");
    // The units are predicted below, without the GIL and under the lock, as every pass.
  } else if (py::isinstance<py::str>(unit)) {
    q.units = vz::parse_units(g, unit.cast<std::string>(), [](const std::string& path) { return read_npy_f32(path); });
  } else if (!unit.is_none()) {
    std::vector<int> classes;
    if (PyIndex_Check(unit.ptr()) && !py::isinstance<py::array>(unit)) {
      classes.push_back(int_arg(unit, "visualize(unit=...)"));
    } else {
      if (!py::isinstance<py::list>(unit) && !py::isinstance<py::tuple>(unit) && !py::isinstance<py::array>(unit))
        throw py::type_error("visualize(unit=...): a --unit spec (str), a class number or a list of class numbers");
      for (py::handle k : unit) classes.push_back(int_arg(k, "visualize(unit=...) item"));  // ([True] was class 1)
    }
    for (int k : classes) q.units.push_back(vz::Unit::cls(k));
  }
  q.bounds = model_bounds(pm.m);
  q.fit_decoder = [](Graph& dec, const Tensor& codes, const Tensor& targets, const vz::DecoderFit& f) {
    return fit_mse(dec, codes, targets, {f.epochs, f.batch, f.lr, f.seed, f.what, /*quiet=*/true});
  };
  vz::Result r;
  {
    ReleasedGil nogil;  // before the lock: train's epoch callback takes the GIL under it
    Lock lock(pm.mu);
    if (pred) q.units = vz::predicted_units(g, q.inputs, method);
    r = vz::visualize(g, q, method, params);
  }
  py::dict panels;
  for (auto& p : r.panels) panels[py::str(p.name)] = to_array(p.values);
  py::list rows;
  for (auto& row : r.rows) {
    py::dict curves;
    for (auto& [k, v] : row.curves) curves[py::str(k)] = to_array(v);
    rows.append(py::dict(py::arg("name") = row.name, py::arg("caption") = row.caption, py::arg("values") = row.values,
                         py::arg("curves") = curves));
  }
  return py::dict(py::arg("panels") = panels, py::arg("rows") = rows, py::arg("per_line") = r.per_line);
}

// evaluate(model, x, target, method, metric, method_params={}, masks=None, **params) ->
// {"values": [N], "extra": {...}, "curves": [...], "stages": [...]}.
py::dict evaluate_py(PyModel& pm, py::handle x_arg, py::handle target, const std::string& method,
                     const std::string& metric, py::dict mparams, py::handle masks_arg, PyModel* label_random,
                     py::kwargs kwargs) {
  Graph& g = pm.m.graph;
  Tensor x = tensor_arg(x_arg, g.input_shape(), "x");
  metrics::metric_info(metric);
  const explain::Params params = params_arg(kwargs, metric);
  metrics::Explanation e{method, method_params(pm, method, mparams, x), {}};
  Tensor masks;
  metrics::Context ctx;
  if (!masks_arg.is_none() && !metrics::metric_info(metric).needs_masks)  // (they were ignored)
    throw py::value_error("evaluate(masks=...): only the localisation metrics use masks, not '" + metric + "'");
  if (!masks_arg.is_none()) {
    // Masks are often bool or uint8 (nonzero inside, Quantus's convention): taken as floats.
    py::object m = py::reinterpret_borrow<py::object>(masks_arg);
    if (py::isinstance<py::array>(m) && std::string("biu").find(py::cast<py::array>(m).dtype().kind()) != std::string::npos)
      m = m.attr("astype")("float32");
    masks = any_tensor_arg(m, "masks");
    if (masks.rank() == 3 && x.rank() == 4)  // [N, H, W], as the command takes it
      masks = masks.reshaped(Shape{masks.dim(0), 1, masks.dim(1), masks.dim(2)});
    ctx.masks = &masks;
  }
  // data-randomisation: the same architecture trained on shuffled labels (as --label-random-model).
  if (label_random == &pm) throw py::value_error("evaluate(label_random_model=...): give another model than the one evaluated");
  if (label_random && metric != "data-randomisation")  // as the command: it was ignored without a word
    throw py::value_error("evaluate(label_random_model=...): only metric 'data-randomisation' uses it, not '" + metric + "'");
  if (label_random) {
    if (!(Normalization::of_model(pm.m.metadata) == Normalization::of_model(label_random->m.metadata)))
      throw py::value_error("evaluate(label_random_model=...): its input normalization differs from the model's, so "
                            "the same x cannot go to both");
    ctx.label_random_model = &label_random->m.graph;
  }
  metrics::Evaluation r;
  const bool pred = is_pred(target);
  const Target given = pred ? Target() : target_arg(pm, x, target);
  {
    ReleasedGil nogil;  // before the locks: train's epoch callback takes the GIL under one
    // both models' locks at once (std::lock: no deadlock with a call that takes them the other way)
    std::unique_lock<ModelMutex> lock(pm.mu, std::defer_lock), lock_random;
    if (label_random) {
      lock_random = std::unique_lock<ModelMutex>(label_random->mu, std::defer_lock);
      std::lock(lock, lock_random);
    } else {
      lock.lock();
    }
    r = metrics::evaluate(g, x, pred ? pred_target(g, x) : given, e, metric, params, ctx);
  }
  py::dict extra;
  for (auto& [k, v] : r.extra) extra[py::str(k)] = to_array(v);
  py::list curves;
  for (auto& c : r.curves) {
    py::list y;
    for (auto& row : c.y) y.append(to_array(row));
    curves.append(py::dict(py::arg("name") = c.name, py::arg("x_label") = c.x_label, py::arg("y_label") = c.y_label,
                           py::arg("x") = to_array(c.x), py::arg("ticks") = c.ticks, py::arg("y") = y));
  }
  py::list stages;
  for (auto& s : r.stage_attributions) stages.append(to_array(s));
  return py::dict(py::arg("metric") = r.metric, py::arg("values") = to_array(r.values), py::arg("extra") = extra,
                  py::arg("curves") = curves, py::arg("stages") = r.stages, py::arg("stage_attributions") = stages);
}

// (x, y) in the model's input space and labels, checked against the model.
inst::Examples examples_arg(const PyModel& pm, py::handle pair, const std::string& arg) {
  py::tuple t = pair_arg(pair, arg);  // inputs in the model's input space and classes
  Tensor x = tensor_arg(t[0], pm.m.graph.input_shape(), arg + "[0]");
  std::vector<int> y = labels_arg(t[1], x.batch(), arg + "[1]");
  return {std::move(x), std::move(y)};
}

// TracIn's checkpoints as `glassbox influence --checkpoints` reads them: models (or model files) of
// the same architecture, each with the learning rate it was trained at (metadata train.lr; else
// the lr parameter must be given).
std::vector<inst::Checkpoint> checkpoints_arg(const PyModel& pm, py::handle list) {
  const nlohmann::json arch = architecture_json(pm.m.graph);
  if (py::isinstance<py::str>(list) || py::isinstance<PyModel>(list) || !py::isinstance<py::iterable>(list))
    throw py::type_error("checkpoints: a list of models or model files (a single one too: [it])");  // 'ab' was two files
  std::vector<inst::Checkpoint> out;
  int i = 0;
  for (py::handle h : list) {
    const std::string what = "checkpoints[" + std::to_string(i++) + "]";
    inst::Checkpoint ck{what, {}, 0};
    bool same_architecture = false;
    std::optional<std::string> lr_text;
    // The weights are copied, not shared: TracIn loads each checkpoint into the explained model,
    // which may itself be one of them (its own weights then read back as the previous checkpoint's).
    const auto take = [&](const Model& c) {
      same_architecture = architecture_json(c.graph) == arch;
      for (auto& [pname, prm] : c.graph.named_params()) ck.params[pname] = prm->value.clone();
      if (auto it = c.metadata.find("train.lr"); it != c.metadata.end()) lr_text = it->second;
    };
    if (py::isinstance<PyModel>(h)) {
      PyModel& c = h.cast<PyModel&>();
      py::gil_scoped_release nogil;  // under its lock, as every use: another thread may be training it
      Lock lock(c.mu);
      take(c.m);
    } else {
      try {
        ck.name = path_arg(h);
      } catch (const py::type_error& e) {
        throw py::type_error(what + ": a Model or a model file, " + e.what());
      }
      if (!std::filesystem::exists(ck.name)) file_not_found(what + ": " + ck.name + ": no such file");
      take(open_model_file(ck.name));
    }
    const std::string who = ck.name == what ? what : what + " (" + ck.name + ")";
    if (!same_architecture) throw py::value_error(who + ": its architecture differs from the model's");
    if (lr_text) {
      double lr = 0;
      if (!parse_number(*lr_text, lr) || !(lr > 0) || !gb::explain::float32_finite(lr))
        throw py::value_error(who + ": train.lr '" + *lr_text + "' is not a rate > 0");
      ck.lr = lr;
    }
    out.push_back(std::move(ck));
  }
  return out;
}

// influence(model, train=(x, y), tests=(x, y), method, checkpoints=None, **params) -> {"scores": [tests, N], ...}.
py::dict influence_py(PyModel& pm, py::handle train_arg, py::handle tests_arg, const std::string& method,
                      py::handle checkpoints_a, py::kwargs kwargs) {
  const inst::Examples train = examples_arg(pm, train_arg, "train");
  const inst::Examples tests = examples_arg(pm, tests_arg, "tests");
  const explain::Params params = params_arg(kwargs, method);
  std::vector<inst::Checkpoint> checkpoints;
  if (!checkpoints_a.is_none()) checkpoints = checkpoints_arg(pm, checkpoints_a);
  inst::Context ctx;
  ctx.checkpoints = &checkpoints;
  inst::Scores s;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    s = inst::explain(pm.m.graph, train, tests, method, params, ctx);
  }
  py::dict extra;
  for (auto& [k, v] : s.extra) extra[py::str(k)] = to_array(v);
  return py::dict(py::arg("scores") = to_array(s.scores), py::arg("details") = s.details, py::arg("info") = s.info,
                  py::arg("extra") = extra);
}

// regions(model, x, polytope=False) -> per sample {"configuration", "logits", "W", "b",
// "active" {layer: neurons on}, "constraints", "nearest", "nearest_distance", ("A", "c")}.
py::list regions_py(PyModel& pm, py::handle x_arg, py::handle polytope_arg) {
  const bool polytope = bool_arg(polytope_arg, "regions(polytope=...)");
  Graph& g = pm.m.graph;
  Tensor x = tensor_arg(x_arg, g.input_shape(), "x");
  openbox::check_piecewise_linear(g);
  openbox::RegionOptions o;
  o.polytope = polytope;
  std::vector<openbox::Region> rs;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    for (int n = 0; n < x.batch(); ++n) rs.push_back(openbox::region(g, x.slice(n, n + 1), o));
  }
  py::list out;
  for (const auto& r : rs) {
    py::dict active;
    for (auto& l : r.config.layers)
      if (!l.max_pool) active[py::str(l.name)] = py::make_tuple(l.active, l.units);
    py::dict d;
    d["configuration"] = r.config.hex();
    d["logits"] = to_array(r.logits);
    d["W"] = to_array(r.W);
    d["b"] = to_array(r.b);
    d["active"] = active;
    d["constraints"] = r.constraint_count;
    d["nearest"] = std::isfinite(r.nearest_distance) ? py::object(py::str(openbox::describe(g, r.nearest))) : py::none();
    d["nearest_distance"] = r.nearest_distance;
    if (polytope) d["A"] = to_array(r.A), d["c"] = to_array(r.c);
    out.append(d);
  }
  return out;
}

// The training set: a dataset spec, a datasets.Dataset, or (pixels [N,C,H,W] in [0,1], labels).
Dataset train_data(py::handle data, int model_classes) {
  if (py::isinstance<py::str>(data)) {
    const std::string spec = data.cast<std::string>();
    // The reader's own errors: a missing file is FileNotFoundError, a malformed spec ValueError.
    return load_dataset(spec, "train");
  }
  py::object x, y;
  if (py::hasattr(data, "x") && py::hasattr(data, "y")) {
    x = data.attr("x"), y = data.attr("y");
  } else {
    if (!py::isinstance<py::tuple>(data) && !py::isinstance<py::list>(data))
      throw py::type_error("train(data=...): a dataset spec, a glassbox.datasets.Dataset or (pixels, labels), not " +
                           std::string(py::str(py::type::of(data))));
    py::tuple t = pair_arg(data, "train(data=...)");
    x = t[0], y = t[1];
  }
  Dataset d;
  d.x = any_tensor_arg(x, "data pixels");
  d.y = labels_arg(y, d.x.batch(), "train(data=...) labels");
  d.name = "arrays";
  int K = 0;
  for (int v : d.y) {
    if (v < 0 || v >= model_classes)  // before the class names below are made up to the largest label
      throw py::value_error("train(data=...): label " + std::to_string(v) + " outside the model's classes [0," +
                            std::to_string(model_classes) + ")");
    K = std::max(K, v + 1);
  }
  if (py::hasattr(data, "class_names")) {
    py::object names = data.attr("class_names");
    if (py::isinstance<py::array>(names)) names = names.attr("tolist")();  // (scikit-learn's target_names)
    d.class_names = names_arg(names, "train(data=...).class_names", false);
  }
  for (int k = int(d.class_names.size()); k < K; ++k) d.class_names.push_back(std::to_string(k));
  return d;
}

// train(model, data, epochs=1, progress=None, **settings): trains in place (as `glassbox train`,
// same defaults: Adam 1e-3 (1e-2 for toy2d, and nam on flat data), cosine, batch 64,
// normalization by the training set's mean/std, which the model keeps). progress(dict) is called
// after each epoch; returning False stops. Returns the epochs' statistics. Ctrl-C stops at the end of the running epoch, keeps the epochs done (as a
// PyTorch loop would) and raises KeyboardInterrupt; any other failure restores the weights.
py::list train_py(PyModel& pm, py::handle data, py::handle epochs_arg, py::object progress, py::kwargs kwargs) {
  const int epochs = int_arg(epochs_arg, "train(epochs=...)");
  if (!progress.is_none() && !PyCallable_Check(progress.ptr()))  // (found after the first epoch)
    throw py::type_error("train(progress=...): a function of the epoch's statistics, not " + std::string(py::repr(progress)));
  if (epochs < 1 || epochs > 10000) throw py::value_error("train(epochs=" + std::to_string(epochs) + "): expected 1..10000");
  std::map<std::string, py::object> s;
  for (auto [k, v] : kwargs) s[py::str(k)] = py::reinterpret_borrow<py::object>(v);
  // Each setting by its default's type, strictly (a cast took True as 1 and 2 as a flag).
  auto take = [&](const std::string& k, auto def) {
    using T = decltype(def);
    auto it = s.find(k);
    if (it == s.end()) return def;
    const std::string what = "train(" + k + "=...)";
    const py::handle v = it->second;
    T value;
    if constexpr (std::is_same_v<T, std::string>) {
      if (k == "out") {
        try {
          value = path_arg(v);
        } catch (const py::type_error& e) {
          throw py::type_error(what + ": " + e.what());
        }
      } else if (py::isinstance<py::str>(v)) {
        value = v.cast<std::string>();
      } else {
        throw py::type_error(what + ": a string, not " + std::string(py::repr(v)));
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      value = bool_arg(v, what);
    } else if constexpr (std::is_floating_point_v<T>) {
      value = number_arg(v, what);
    } else if constexpr (std::is_unsigned_v<T>) {
      value = seed_arg(v, what);
    } else {
      value = int_arg(v, what);
    }
    s.erase(it);
    return value;
  };
  FitOptions o;
  o.epochs = epochs;
  o.batch = take("batch", 64);
  o.optimizer.kind = optimizer_kind(take("optimizer", std::string("adam")));
  const bool lr_given = s.count("lr");
  o.optimizer.lr = take("lr", double(default_lr(o.optimizer.kind)));  // toy presets: 10x, below
  o.optimizer.weight_decay = take("weight_decay", double(default_weight_decay(o.optimizer.kind)));
  const bool momentum_given = s.count("momentum");
  o.optimizer.momentum = take("momentum", 0.9);
  if (o.optimizer.kind != OptimizerKind::sgd) {
    if (momentum_given) throw py::value_error("train(momentum=...): momentum applies to optimizer='sgd' only");
    o.optimizer.momentum = 0;
  }
  o.schedule.kind = schedule_kind(take("schedule", std::string("cosine")));
  o.seed = take("seed", uint64_t(42));
  o.val_fraction = take("val", 0.1);
  o.out = take("out", std::string());
  if (!pm.file.empty()) o.inputs = {pm.file};  // the file the model was loaded from is not an output
  const std::string normalize = take("normalize", std::string("std"));
  const bool verbose = take("verbose", false);
  if (!s.empty())
    throw py::value_error("train(): unknown setting '" + s.begin()->first +
                          "' (batch, lr, optimizer, weight_decay, momentum, schedule, seed, val, out, normalize, verbose)");
  if (o.batch < 1) throw py::value_error("train(batch=...): expected >= 1");
  if (!(o.optimizer.lr > 0) || !std::isfinite(o.optimizer.lr)) throw py::value_error("train(lr=...): expected a rate > 0");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) throw py::value_error("train(val=...): expected 0 <= val < 1");
  if (normalize != "std" && normalize != "none") throw py::value_error("train(normalize='" + normalize + "'): use std or none");
  o.progress = verbose ? ProgressStyle::plain : ProgressStyle::quiet;

  Dataset d = train_data(data, pm.m.graph.classes());
  check_class_names(d.class_names, pm.m.graph.classes(), "train(data=...): class_names");  // save() writes them
  // glassbox train's rule: toy2d, and nam on flat samples, train at 10x the rate by default.
  if (!lr_given && toy_defaults(pm.spec, d.x.shape().sample())) o.optimizer.lr *= 10;
  check_fits(pm.m.graph, d);
  if (pm.m.metadata.count("glassbox.normalize"))
    o.norm = Normalization::of_model(pm.m.metadata);  // a trained model keeps its preprocessing
  else if (normalize == "std")
    o.norm = channel_stats(d);
  o.metadata = pm.m.metadata;
  o.metadata["glassbox.normalize"] = o.norm.empty() ? "none" : o.norm.to_json().dump();
  o.metadata["glassbox.classes"] = nlohmann::json(d.class_names).dump();
  o.metadata["glassbox.dataset"] = py::isinstance<py::str>(data) ? absolute_spec(data.cast<std::string>()) : d.name;
  py::list history;
  std::optional<py::error_already_set> interrupted;  // Ctrl-C, raised once the model is consistent
  o.on_epoch = [&](const EpochStats& e) {
    py::gil_scoped_acquire gil;
    py::dict st(py::arg("epoch") = e.epoch, py::arg("train_loss") = e.train_loss, py::arg("train_acc") = e.train_acc,
                py::arg("val_loss") = e.val_loss, py::arg("val_acc") = e.val_acc, py::arg("lr") = e.lr,
                py::arg("seconds") = e.seconds, py::arg("images_per_s") = e.images_per_s);
    history.append(st);
    // The epoch ran without the GIL, so a Ctrl-C was only noted; its handler runs here.
    if (PyErr_CheckSignals() != 0) {
      interrupted.emplace();  // takes the pending KeyboardInterrupt
      return false;
    }
    if (progress.is_none()) return true;
    py::object r = progress(st);
    if (r.is_none() || py::isinstance<py::bool_>(r)) return r.is_none() || r.cast<bool>();
    throw py::type_error("train(progress=...): the callback returns None, True or False (False stops), not " +
                         std::string(py::str(py::type::of(r))));
  };
  {
    py::gil_scoped_release nogil;
    Lock lock(pm.mu);
    // A failed call (divergence, an exception from progress) leaves the model as it was: training
    // changes the weights in place, and a half-trained model would lack its normalization.
    std::vector<Tensor> before;
    for (auto& [name, p] : pm.m.graph.named_params()) before.push_back(p->value.clone());
    FitResult fitted;
    try {
      fitted = fit(pm.m.graph, d, o);
    } catch (...) {
      size_t i = 0;
      for (auto& [name, p] : pm.m.graph.named_params()) p->value = before[i++];
      throw;
    }
    // The GIL guards the metadata (readers hold it); taken under the model's lock, as the epoch
    // callback does, so save() (lock, then GIL) sees weights and metadata of the same model.
    py::gil_scoped_acquire gil;
    for (auto& [k, v] : o.metadata) pm.m.metadata[k] = v;
    // The run these weights come from, as in the out= file (save() then writes it too); none when
    // trained in memory only: the weights are no longer those of the run a loaded file named.
    pm.m.metadata.erase("train.run");
    pm.m.metadata.erase("train.epoch");
    if (!fitted.run.empty() && !fitted.history.empty()) {
      pm.m.metadata["train.run"] = fitted.run;
      pm.m.metadata["train.epoch"] = std::to_string(fitted.history.back().epoch);
    }
  }
  if (interrupted) {
    interrupted->restore();  // the KeyboardInterrupt, now that the model has its metadata
    throw py::error_already_set();
  }
  return history;
}

}  // namespace

void bind_families(py::module_& m) {
  m.def("methods", &methods, py::arg("family") = "explain",
        "{name: {summary, convention, params}} of a family: explain, visualize, evaluate, influence, concepts, attacks, "
        "importance or rules");
  m.def("visualize", &visualize_py, py::arg("model"), py::arg("method"), py::kw_only(), py::arg("unit") = py::none(),
        py::arg("inputs") = py::none(), py::arg("data") = py::none(),
        "Feature visualization (am, deepdream, fool, invert, top-patches, filters, maps, mask...): "
        "{panels, rows, per_line}");
  m.def("evaluate", &evaluate_py, py::arg("model"), py::arg("x"), py::arg("target"), py::arg("method"),
        py::arg("metric"), py::kw_only(), py::arg("method_params") = py::dict(), py::arg("masks") = py::none(),
        py::arg("label_random_model") = static_cast<PyModel*>(nullptr),
        "One metric of one attribution method: {metric, values [N], extra, curves, stages, stage_attributions}");
  m.def("influence", &influence_py, py::arg("model"), py::arg("train"), py::arg("tests"), py::arg("method"),
        py::kw_only(), py::arg("checkpoints") = py::none(),
        "Scores of every training point per test input: {scores [tests, N], details, info, extra}");
  m.def("regions", &regions_py, py::arg("model"), py::arg("x"), py::kw_only(), py::arg("polytope") = false,
        "OpenBox: per sample the exact local linear map W x + b, its configuration and constraints");
  m.def("train", &train_py, py::arg("model"), py::arg("data"), py::arg("epochs") = 1, py::kw_only(),
        py::arg("progress") = py::none(),
        "Trains the model in place (settings: batch, lr, optimizer, weight_decay, momentum, schedule, seed, val, out, "
        "normalize, verbose); returns each epoch's statistics");
}

}  // namespace gb::py_glassbox
