// import glassbox: the engine from Python, NumPy arrays in and out, Captum-like (batch first,
// attributions shaped like the input). Arrays are in the model's input space; model.normalize()
// converts raw pixels. Long calls release the GIL (each model has its own lock). The explanation
// families are bound in families.cpp; this file holds models, explain(), methods(), heatmaps,
// datasets and threads.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "data/dataset.h"
#include "data/images.h"
#include "engine/architecture.h"
#include "engine/finite.h"
#include "engine/layers.h"
#include "engine/passes.h"
#include "engine/threads.h"
#include "explain/attribution/explain.h"
#include "explain/common/heatmap.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "tools/python/convert.h"
#include "tools/python/families.h"
#include "train/presets.h"

namespace gb::py_glassbox {

namespace {


std::shared_ptr<PyModel> load(py::handle spec_arg, py::handle seed_a) {
  const uint64_t seed = seed_arg(seed_a, "load(seed=...)");
  const std::string spec = path_arg(spec_arg);
  const bool file = !is_preset(spec) && !is_architecture_text(spec);
  if (file && !std::filesystem::exists(spec)) {
    std::string presets;
    for (auto& n : preset_names()) presets += (presets.empty() ? "" : ", ") + n;
    file_not_found("load('" + spec + "'): no such file, preset or architecture (presets: " + presets + ")");
  }
  auto pm = std::make_shared<PyModel>(open_model(spec, seed), spec);
  if (file) pm->file = std::filesystem::absolute(spec).string();
  return pm;
}

py::tuple shape_tuple(const Shape& s) {
  py::tuple t(s.rank);
  for (int i = 0; i < s.rank; ++i) t[i] = s[i];
  return t;
}

// The logits of every row, 256 rows per forward (as the CLI computes them).
Tensor logits_of(Graph& g, const Tensor& x) {
  const int N = x.batch(), K = g.classes();
  Tensor out(Shape{N, K});
  for (int b = 0; b < N; b += 256) {
    const int e = std::min(N, b + 256);
    const Tensor& y = g.forward(x.slice(b, e));
    std::copy(y.data(), y.data() + y.size(), out.data() + size_t(b) * K);
  }
  return out;
}

py::array forward(PyModel& pm, py::handle x_arg) {
  Tensor x = tensor_arg(x_arg, pm.m.graph.input_shape(), "x");
  Tensor y;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    y = logits_of(pm.m.graph, x);
  }
  return to_array(y);
}

// (classes [N, top] int64, probabilities [N, top]), most probable first.
py::tuple predict(PyModel& pm, py::handle x_arg, py::handle top_a) {
  const int top = int_arg(top_a, "predict(top=...)");
  const int K = pm.m.graph.classes();
  if (top < 1 || top > K) throw py::value_error("predict(top=" + std::to_string(top) + "): expected 1.." + std::to_string(K));
  Tensor x = tensor_arg(x_arg, pm.m.graph.input_shape(), "x");
  Tensor p;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    p = softmax(logits_of(pm.m.graph, x));
  }
  const int N = x.batch();
  py::array_t<int64_t> cls({N, top});
  py::array_t<float> prob({N, top});
  auto c = cls.mutable_unchecked<2>();
  auto q = prob.mutable_unchecked<2>();
  for (int n = 0; n < N; ++n) {
    const float* pn = p.data() + size_t(n) * K;
    std::vector<int> idx(K);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int u, int v) { return pn[u] > pn[v]; });
    for (int t = 0; t < top; ++t) c(n, t) = idx[t], q(n, t) = pn[idx[t]];
  }
  return py::make_tuple(cls, prob);
}

py::list layers(const PyModel& pm) {
  const Graph& g = pm.m.graph;
  py::list out;
  for (int i = 0; i < g.size(); ++i) {
    py::list inputs;
    for (int j : g.node(i).inputs) inputs.append(j < 0 ? std::string("input") : g.layer(j).name);
    py::dict d;
    d["name"] = g.layer(i).name;
    d["kind"] = g.layer(i).kind();
    d["shape"] = shape_tuple(g.shape(i, 1).sample());
    d["inputs"] = inputs;
    out.append(d);
  }
  return out;
}

// {layer name: [N, layer shape...]} for the named layers (a name, a comma-separated string, as
// tcav and probe take them, or a list of names).
py::dict activations(PyModel& pm, py::handle x_arg, py::handle layers_a) {
  const std::vector<std::string> names = layer_names_arg(layers_a, "activations(layers=...)");
  if (names.empty()) throw py::value_error("activations(layers=[]): name at least one layer (model.layers)");
  for (size_t i = 0; i < names.size(); ++i)  // a repeat came back as one key
    if (std::find(names.begin(), names.begin() + long(i), names[i]) != names.begin() + long(i))
      throw py::value_error("activations(layers=...): '" + names[i] + "' given twice");
  std::vector<int> nodes;
  for (auto& n : names) nodes.push_back(pm.m.graph.at(n));
  Tensor x = tensor_arg(x_arg, pm.m.graph.input_shape(), "x");
  std::vector<Tensor> acts;
  {
    ReleasedGil nogil;
    Lock lock(pm.mu);
    acts = gb::activations(pm.m.graph, x, nodes);
  }
  py::dict out;
  for (size_t i = 0; i < names.size(); ++i) out[py::str(names[i])] = to_array(acts[i]);
  return out;
}

// Raw pixels [N, C, H, W] in [0, 1] -> the model's input space (identity without stored normalization).
py::array normalize(const PyModel& pm, py::handle pixels, bool invert) {
  Tensor t = tensor_arg(pixels, pm.m.graph.input_shape(), invert ? "x" : "pixels");
  const Normalization norm = Normalization::of_model(pm.m.metadata);
  if (invert) norm.invert(t);
  else normalize_checked(norm, t, "pixels");
  return to_array(t);
}

py::dict info(const PyModel& pm) {
  const Graph& g = pm.m.graph;
  py::dict d;
  d["spec"] = pm.spec;
  d["input_shape"] = shape_tuple(g.input_shape());
  // (A model whose output is not [N, classes], a feature extractor, has none.)
  d["classes"] = g.has_classes() ? py::object(py::int_(g.classes())) : py::object(py::none());
  d["class_names"] = g.has_classes() ? model_classes(pm.m) : std::vector<std::string>();
  d["parameters"] = g.param_count();
  d["architecture"] = architecture_text(g);
  const Normalization norm = Normalization::of_model(pm.m.metadata);
  d["normalization"] = norm.empty() ? py::object(py::none()) : py::object(py::dict(py::arg("mean") = norm.mean, py::arg("std") = norm.std));
  d["metadata"] = py::cast(static_cast<const std::map<std::string, std::string>&>(pm.m.metadata));
  return d;
}

void save(PyModel& pm, py::handle path_arg_) {
  const std::string path = path_arg(path_arg_);
  if (path.empty()) throw py::value_error("save(path=''): an empty path");  // the writer named no file
  // A file there that is not a model is not replaced (a text file was); the command refuses too. A
  // folder stays IsADirectoryError, from the writer.
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec) && !is_safetensors_file(path)) {
    PyErr_SetString(PyExc_FileExistsError, (path + " exists and is not a model file: not overwriting it").c_str());
    throw py::error_already_set();
  }
  py::gil_scoped_release nogil;  // before the lock: train's epoch callback takes the GIL under it
  Lock lock(pm.mu);
  Metadata extra;
  {
    py::gil_scoped_acquire gil;  // the GIL guards the metadata; under the lock, weights and metadata match
    for (auto& [k, v] : pm.m.metadata)
      if (k.rfind("glassbox.format", 0) != 0 && k != "glassbox.architecture") extra[k] = v;
  }
  check_finite_params(pm.m.graph, "save('" + path + "')");  // a file load() would refuse
  save_model(path, pm.m.graph, extra);
}

}  // namespace

// The CLI's --target, from Python: an int (a class for every sample), a list/array of classes per
// sample, "pred", or a unit spec string (LAYER:C, LAYER:C,Y,X, LAYER:FILE.npy).
namespace {

// x as the command's inputs, named x[0], x[1]... in errors.
Inputs inputs_of(const Tensor& x) {
  Inputs in;
  in.x = x;
  in.labels.assign(x.batch(), -1);
  for (int n = 0; n < x.batch(); ++n) in.names.push_back("x[" + std::to_string(n) + "]");
  return in;
}

}  // namespace

bool is_pred(py::handle t) { return py::isinstance<py::str>(t) && t.cast<std::string>() == "pred"; }

Target pred_target(Graph& g, const Tensor& x) { return read_target("pred", g, inputs_of(x), logits_of(g, x)); }

Target target_arg(PyModel& pm, const Tensor& x, py::handle t) {
  Graph& g = pm.m.graph;
  const int N = x.batch();
  const auto K = [&] { return g.classes(); };  // only for class targets: a unit target needs no logits
  const Inputs in = inputs_of(x);
  if (py::isinstance<py::str>(t)) {
    const std::string spec = t.cast<std::string>();
    if (spec == "label") throw py::value_error("target='label': pass the labels themselves (a list or array per sample)");
    if (spec == "pred") {
      ReleasedGil nogil;
      Lock lock(pm.mu);
      return pred_target(g, x);
    }
    return read_target(spec, g, in, {});
  }
  if (py::isinstance<py::bool_>(t)) throw py::type_error("target: expected an int, a list of ints, 'pred' or a unit spec");
  // An int, or anything usable as one (numpy.int64 from y[i] or argmax()), but not an array.
  if (!py::isinstance<py::array>(t) && PyIndex_Check(t.ptr())) {
    const py::int_ v = py::reinterpret_steal<py::int_>(PyNumber_Index(t.ptr()));
    if (!v) throw py::error_already_set();
    const long long k = PyLong_AsLongLong(v.ptr());
    if (k == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error("target " + std::string(py::str(t)) + " outside the model's classes [0," + std::to_string(K()) + ")");
    }
    return read_target(std::to_string(k), g, in, {});
  }
  if (!py::isinstance<py::sequence>(t) && !py::isinstance<py::array>(t))
    throw py::type_error("target: expected an int, a list of ints, 'pred' or a unit spec, got " + std::string(py::str(py::type::of(t))));
  py::array a = py::array::ensure(t);
  if (!a || a.ndim() != 1 || (a.size() > 0 && a.dtype().kind() != 'i' && a.dtype().kind() != 'u'))
    throw py::type_error("target: a per-sample target is a 1-D list or array of class numbers");
  if (a.size() != N)
    throw py::value_error("target: " + std::to_string(a.size()) + " classes for " + std::to_string(N) + " inputs");
  std::vector<int> classes;
  const auto outside = [&](const std::string& v) {
    throw py::value_error("target " + v + " outside the model's classes [0," + std::to_string(K()) + ")");
  };
  if (a.size() > 0 && a.dtype().kind() == 'u') {  // as unsigned: 2**64-1 read as long long was "target -1"
    for (auto v : py::array_t<unsigned long long, py::array::forcecast>::ensure(a).cast<std::vector<unsigned long long>>()) {
      if (v >= static_cast<unsigned long long>(K())) outside(std::to_string(v));
      classes.push_back(int(v));
    }
  } else {
    for (auto v : py::array_t<long long, py::array::forcecast>::ensure(a).cast<std::vector<long long>>()) {
      if (v < 0 || v >= K()) outside(std::to_string(v));
      classes.push_back(int(v));
    }
  }
  return Target(classes);
}

namespace {

}  // namespace

// A method's keyword parameters routed and defaulted as the CLI does: unknown keys named, black
// baselines and zB boxes through the model's normalization (so a call equals `glassbox explain`
// bit for bit); an array baseline ([1 or N, input...] in the model's input space) as a tensor.
explain::Params method_params(const PyModel& pm, const std::string& method, const py::dict& kwargs, const Tensor& x) {
  const int N = x.batch();
  const Graph& g = pm.m.graph;
  explain::method_info(method);  // an unknown name fails here, listing the known ones
  explain::Params given = params_arg(kwargs, method);
  const bool array_baseline = given.tensors.count("baseline") > 0;
  std::vector<std::string> kv;
  for (auto& [k, v] : given) kv.push_back(k + "=" + v);
  explain::Params all;
  std::vector<explain::Params> per = route_method_params(kv, {method}, all, "keyword", "glassbox.methods()");
  if (array_baseline && !accepted_keys(method, all).count("baseline"))
    throw py::value_error("keyword baseline: " + method + " takes no baseline");
  // Python takes arrays and numbers in the model's input space, as Captum does.
  resolve_baselines({method}, all, per, g, Normalization::of_model(pm.m.metadata), InputSpace::model, x);
  if (array_baseline) {
    const Tensor& b = given.tensors["baseline"];
    const Shape one = Shape::batch_of(1, g.input_shape());
    Tensor bb = b.rank() == g.input_shape().rank ? b.reshaped(one) : b;
    if (bb.rank() != one.rank || bb.shape().sample() != g.input_shape() || (bb.batch() != 1 && bb.batch() != N))
      throw py::value_error("keyword baseline: shape " + b.shape().str() + ", expected " + one.str() + " or one per input");
    per[0].erase("baseline");
    per[0].tensors["baseline"] = bb;
  }
  // Other arrays go on as given: the method refuses a key it does not declare, or one it reads as
  // a number (both were dropped without a word).
  for (auto& [k, t] : given.tensors)
    if (k != "baseline") per[0].tensors[k] = t;
  return per[0];
}

namespace {

// explain(model, x, target, method, **params): the attribution [N, input...]; with
// return_details=True also {"delta", "signed", "details"}.
py::object explain_py(PyModel& pm, py::handle x_arg, py::handle target_arg_, const std::string& method,
                      py::handle return_details_arg, py::object params_dict, py::kwargs kwargs) {
  Graph& g = pm.m.graph;
  const bool return_details = bool_arg(return_details_arg, "explain(return_details=...)");
  if (!params_dict.is_none() && !py::isinstance<py::dict>(params_dict))  // ('ab' was read as pairs of characters)
    throw py::type_error("explain(params=...): a dict of method parameters, not " + std::string(py::repr(params_dict)));
  Tensor x = tensor_arg(x_arg, g.input_shape(), "x");
  // params= holds parameters whose names explain() takes itself (IG's `method`).
  py::dict all(kwargs);
  if (!params_dict.is_none())
    for (auto [k, v] : py::cast<py::dict>(params_dict)) {
      if (all.contains(k)) throw py::value_error("explain(): parameter " + std::string(py::str(k)) + " given twice");
      all[k] = v;
    }
  const explain::Params params = method_params(pm, method, all, x);
  explain::Result r;
  // "pred" is resolved under the same lock as the method, so both see the same weights.
  const bool pred = is_pred(target_arg_);
  const Target given = pred ? Target() : target_arg(pm, x, target_arg_);
  {
    ReleasedGil nogil;  // before the lock: train's epoch callback takes the GIL under it
    Lock lock(pm.mu);
    r = explain::explain(g, x, pred ? pred_target(g, x) : given, method, params);
  }
  py::array attr = to_array(r.attribution);
  if (!return_details) return attr;
  py::dict d;
  d["delta"] = r.delta.empty() ? py::object(py::none()) : py::object(to_array(r.delta));
  d["signed"] = r.is_signed;
  py::list details;
  for (auto& m : r.details) {
    py::dict e;
    for (auto& [k, v] : m) e[py::str(k)] = to_array(v);
    details.append(e);
  }
  d["details"] = details;
  return py::make_tuple(attr, d);
}

// An RGB heatmap [H*scale, W*scale, 3] uint8 of one attribution [C,H,W] (or [H,W], or [1,C,H,W]).
py::array heatmap(py::handle attr_arg, py::handle image_arg, const std::string& colormap, py::handle signed_arg,
                  py::handle percentile_arg, py::handle overlay_arg, py::handle scale_arg) {
  const bool is_signed = bool_arg(signed_arg, "heatmap(signed=...)");
  const double percentile = number_arg(percentile_arg, "heatmap(percentile=...)");
  const double overlay = number_arg(overlay_arg, "heatmap(overlay=...)");
  const int scale = int_arg(scale_arg, "heatmap(scale=...)");
  Tensor a = any_tensor_arg(attr_arg, "attr");
  if (a.rank() == 2) a = a.reshaped(Shape{1, a.dim(0), a.dim(1)});
  if (a.rank() == 4 && a.batch() == 1) a = a.reshaped(a.shape().sample());
  if (a.rank() != 3) throw py::value_error("attr: shape " + a.shape().str() + "; heatmap() takes one map [C,H,W] or [H,W]");
  if (scale < 1 || scale > 64) throw py::value_error("heatmap(scale=" + std::to_string(scale) + "): expected 1..64");
  if (!(overlay >= 0 && overlay <= 1)) throw py::value_error("heatmap(overlay=...): expected 0..1");
  // As `glassbox explain --percentile`: the map is scaled by this percentile of |a|; -1 (the
  // default) picks 100 for signed maps and 99.5 for unsigned ones.
  if (percentile != -1 && !(percentile > 0 && percentile <= 100))
    throw py::value_error("heatmap(percentile=...): expected (0, 100], or -1 for the default");
  Tensor pixels;
  if (!image_arg.is_none()) {
    pixels = any_tensor_arg(image_arg, "image");
    if (pixels.rank() == 2) pixels = pixels.reshaped(Shape{1, pixels.dim(0), pixels.dim(1)});
    if (pixels.rank() == 4 && pixels.batch() == 1) pixels = pixels.reshaped(pixels.shape().sample());
    if (pixels.rank() != 3 || pixels.dim(1) != a.dim(1) || pixels.dim(2) != a.dim(2))
      throw py::value_error("image: shape " + pixels.shape().str() + ", expected pixels [C,H,W] in [0,1] the size of attr " +
                            a.shape().str());
  } else if (overlay > 0) {
    throw py::value_error("heatmap(overlay=...) needs image= (pixels in [0, 1])");
  }
  explain::HeatmapOptions o;
  o.is_signed = is_signed;
  o.colormap = colormap;
  o.percentile = percentile;
  o.overlay = float(overlay);
  explain::Image im = explain::heatmap(a, o, pixels.empty() ? nullptr : &pixels);
  if (!pixels.empty() && overlay == 0) {  // the input beside the map: the caller asked for both
    explain::Image in = explain::to_image(pixels);
    explain::Image both(im.w * 2 + 2, im.h);
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < im.w; ++x) {
        std::copy_n(in.px(x, y), 3, both.px(x, y));
        std::copy_n(im.px(x, y), 3, both.px(im.w + 2 + x, y));
      }
    im = both;
  }
  if (scale > 1) im = explain::resize_nearest(im, im.w * scale, im.h * scale);
  py::array_t<uint8_t> out({im.h, im.w, 3});
  std::copy(im.rgb.begin(), im.rgb.end(), out.mutable_data());
  return out;
}

// image(pixels [C,H,W] in [0,1]) -> RGB uint8, for write_png.
py::array image(py::handle pixels_arg, py::handle scale_arg) {
  const int scale = int_arg(scale_arg, "image(scale=...)");
  Tensor p = any_tensor_arg(pixels_arg, "pixels");
  if (p.rank() == 2) p = p.reshaped(Shape{1, p.dim(0), p.dim(1)});
  if (p.rank() != 3) throw py::value_error("pixels: shape " + p.shape().str() + "; image() takes [C,H,W] or [H,W]");
  if (scale < 1 || scale > 64) throw py::value_error("image(scale=" + std::to_string(scale) + "): expected 1..64");
  explain::Image im = explain::to_image(p);
  if (scale > 1) im = explain::resize_nearest(im, im.w * scale, im.h * scale);
  py::array_t<uint8_t> out({im.h, im.w, 3});
  std::copy(im.rgb.begin(), im.rgb.end(), out.mutable_data());
  return out;
}

void write_png_py(py::handle path_a, py::handle rgb_arg) {
  py::array a = py::array::ensure(rgb_arg);
  // A wrong type is a TypeError (README: bad inputs), a wrong shape a ValueError. Anything numpy
  // converts (a PIL image, a memoryview) is taken as its array.
  if (!a || a.dtype().kind() != 'u' || a.itemsize() != 1)
    throw py::type_error("rgb: expected a uint8 array [H,W,3] or [H,W] (heatmap() and image() return one), not " +
                         (a ? "dtype " + std::string(py::str(a.dtype())) : std::string(py::str(py::type::of(rgb_arg)))));
  if ((a.ndim() != 2 && a.ndim() != 3) || (a.ndim() == 3 && a.shape(2) != 3 && a.shape(2) != 1))
    throw py::value_error("rgb: expected a uint8 array [H,W,3] or [H,W] (heatmap() and image() return one)");
  if (a.shape(0) < 1 || a.shape(1) < 1 || a.shape(0) > 65535 || a.shape(1) > 65535)
    throw py::value_error("rgb: " + std::to_string(a.shape(0)) + "x" + std::to_string(a.shape(1)) +
                          " pixels; a PNG here is 1 to 65535 pixels a side");
  auto u = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!u) copy_failed("rgb", a);
  const int ch = a.ndim() == 3 ? int(a.shape(2)) : 1;
  // As save(): a file there that is not a PNG is not replaced (a text file became a PNG).
  const std::string path = path_arg(path_a);
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) > 0) {
    std::ifstream f(path, std::ios::binary);
    char sig[8] = {};
    f.read(sig, 8);
    if (std::string(sig, 8) != std::string("\x89PNG\r\n\x1a\n", 8)) {
      PyErr_SetString(PyExc_FileExistsError, (path + " exists and is not a PNG file: not overwriting it").c_str());
      throw py::error_already_set();
    }
  }
  write_png(path, int(a.shape(1)), int(a.shape(0)), ch, u.data());
}

explain::Image rgb_arg(py::handle a, const std::string& arg) {
  py::array arr = py::array::ensure(a);
  if (!arr || arr.dtype().kind() != 'u' || arr.itemsize() != 1)  // as write_png
    throw py::type_error(arg + ": expected a uint8 array [H,W,3] (heatmap() and image() return one)");
  if (arr.ndim() != 3 || arr.shape(2) != 3)
    throw py::value_error(arg + ": expected a uint8 array [H,W,3] (heatmap() and image() return one)");
  if (arr.shape(0) < 1 || arr.shape(1) < 1 || arr.shape(0) > 65535 || arr.shape(1) > 65535)
    throw py::value_error(arg + ": " + std::to_string(arr.shape(0)) + "x" + std::to_string(arr.shape(1)) +
                          " pixels; expected 1 to 65535 a side");
  auto u = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!u) copy_failed(arg, arr);
  explain::Image im(int(arr.shape(1)), int(arr.shape(0)));
  std::copy(u.data(), u.data() + im.rgb.size(), im.rgb.begin());
  return im;
}

// A labelled grid of RGB images (rows of cells, each resized to cell x cell), as glassbox's own
// figures: column labels on top, a caption above each row.
py::array grid_py(const std::vector<std::vector<py::object>>& rows, const std::vector<std::string>& columns,
                  const std::vector<std::string>& captions, py::handle cell_a) {
  const int cell = int_arg(cell_a, "grid(cell=...)");
  if (cell < 8 || cell > 1024) throw py::value_error("grid(cell=" + std::to_string(cell) + "): expected 8..1024");
  std::vector<std::vector<explain::Image>> cells;
  for (size_t r = 0; r < rows.size(); ++r) {
    cells.emplace_back();
    for (size_t c = 0; c < rows[r].size(); ++c)
      cells.back().push_back(rgb_arg(rows[r][c], "grid cell [" + std::to_string(r) + "][" + std::to_string(c) + "]"));
    if (cells.back().size() != cells[0].size()) throw py::value_error("grid: rows of different lengths");
  }
  if (cells.empty() || cells[0].empty()) throw py::value_error("grid: no cells (rows of RGB images expected)");
  if (columns.size() > cells[0].size() || captions.size() > cells.size())
    throw py::value_error("grid: " + std::to_string(columns.size()) + " column labels and " +
                          std::to_string(captions.size()) + " captions for " + std::to_string(cells.size()) + " rows of " +
                          std::to_string(cells[0].size()) + " cells");
  explain::Image im = explain::grid(cells, columns, captions, cell, cell);
  py::array_t<uint8_t> out({im.h, im.w, 3});
  std::copy(im.rgb.begin(), im.rgb.end(), out.mutable_data());
  return out;
}

struct PyDataset {
  py::array x, y;
  std::vector<std::string> class_names;
  std::string name;
};

PyDataset load_data(const std::string& spec, const std::string& split) {
  if (split != "train" && split != "test" && split != "all")
    throw py::value_error("datasets.load(split='" + split + "'): use train, test or all");
  // The reader's own errors: a missing file is FileNotFoundError ("... not found; install ..."), a
  // malformed spec (toy:nope, npy:X.npy without labels) ValueError.
  Dataset d;
  {
    py::gil_scoped_release nogil;
    d = load_dataset(spec, split);
  }
  py::array_t<int64_t> y(py::ssize_t(d.y.size()));
  std::copy(d.y.begin(), d.y.end(), y.mutable_data());
  return {to_array(d.x), y, d.class_names, d.name};
}

}  // namespace
}  // namespace gb::py_glassbox

PYBIND11_MODULE(_core, m) {
  using namespace gb::py_glassbox;
  namespace py = pybind11;
  
  m.doc() = "glassbox: a small neural-net engine whose models explain themselves (see README, section Python)";
  register_exceptions(m);

  py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model", "A model: a graph and its metadata (normalization, classes)")
      .def("forward", &forward, py::arg("x"), "The logits [N, K] of x [N, input...] (model input space)")
      .def("__call__", &forward, py::arg("x"))
      .def("predict", &predict, py::arg("x"), py::arg("top") = 1,
           "(classes [N, top], probabilities [N, top]), most probable first")
      .def_property_readonly("layers", &layers, "[{name, kind, shape (per sample), inputs}] in graph order")
      .def("activations", &activations, py::arg("x"), py::arg("layers"),
           "{layer: [N, layer shape...]} for a layer name or a list of names")
      .def("save", &save, py::arg("path"), "Writes a model file (safetensors) atomically")
      .def("normalize", [](const PyModel& pm, py::handle p) { return normalize(pm, p, false); }, py::arg("pixels"),
           "Raw pixels in [0, 1] -> the model's input space (its stored normalization)")
      .def("denormalize", [](const PyModel& pm, py::handle x) { return normalize(pm, x, true); }, py::arg("x"),
           "The model's input space -> raw pixels")
      .def("info", &info, "input shape, classes, parameters, architecture text, normalization, metadata")
      .def_property_readonly("input_shape", [](const PyModel& pm) { return shape_tuple(pm.m.graph.input_shape()); })
      .def_property_readonly("classes",
                             [](const PyModel& pm) {
                               const gb::Graph& g = pm.m.graph;
                               return g.has_classes() ? py::object(py::int_(g.classes())) : py::object(py::none());
                             })
      .def("__repr__", [](const PyModel& pm) {
        const gb::Graph& g = pm.m.graph;
        return "<glassbox.Model " + pm.spec + ": input " + g.input_shape().str() + ", " +
               (g.has_classes() ? std::to_string(g.classes()) + " classes>"
                                : "output " + g.shape(g.output()).str() + ">");
      });

  m.def("load", &load, py::arg("model"), py::arg("seed") = 42,
        "A model file (.safetensors), a preset (lenet5, camnet, mlp, ...) or an architecture text; "
        "presets and architectures are initialized with `seed`");
  m.def("explain", &explain_py, py::arg("model"), py::arg("x"), py::pos_only(), py::arg("target") = "pred",
        py::arg("method") = "saliency", py::kw_only(), py::arg("return_details") = false,
        py::arg("params") = py::none(),
        "Attribution shaped like x (like the layer's output when a layer= parameter is given). target: int, per-sample list/array, 'pred', or 'LAYER:C', 'LAYER:C,Y,X', "
        "'LAYER:FILE.npy'. Method parameters as keywords (glassbox.methods()), or in params={} for names "
        "explain() takes itself (IG's method=); baseline= may be an array. return_details=True: also "
        "{delta, signed, details}.");
  m.def("heatmap", &heatmap, py::arg("attr"), py::kw_only(), py::arg("image") = py::none(), py::arg("colormap") = "",
        py::arg("signed") = true, py::arg("percentile") = -1.0, py::arg("overlay") = 0.f, py::arg("scale") = 1,
        "RGB uint8 [H,W,3] of one map [C,H,W]; with image= (pixels) the input beside it, or blended with overlay=");
  m.def("image", &image, py::arg("pixels"), py::kw_only(), py::arg("scale") = 1, "RGB uint8 of pixels [C,H,W] in [0,1]");
  m.def("grid", &grid_py, py::arg("rows"), py::kw_only(), py::arg("columns") = std::vector<std::string>(),
        py::arg("captions") = std::vector<std::string>(), py::arg("cell") = 112,
        "A labelled grid (uint8 [H,W,3]) of rows of RGB cells: column labels on top, a caption above each row");
  m.def("write_png", &write_png_py, py::arg("path"), py::arg("rgb"), "Writes a uint8 [H,W,3] or [H,W] array as PNG");
  m.def("set_threads", [](py::handle n) { gb::set_threads(int_arg(n, "set_threads(n)")); }, py::arg("n"),
        "Threads for every call (<= 0: all cores)");
  m.def("threads", [] { return gb::threads(); });
  m.def("allow_nonfinite", [](py::handle allow) { gb::allow_nonfinite(bool_arg(allow, "allow_nonfinite(allow)")); },
        py::arg("allow") = true,
        "Accept NaN and Inf in inputs and weights (refused by default), to study them; as the "
        "command's --allow-nonfinite");
  m.def("nonfinite_allowed", [] { return gb::nonfinite_allowed(); });

  py::module_ datasets = m.def_submodule("datasets", "Datasets as NumPy arrays: raw pixels in [0, 1] and labels");
  py::class_<PyDataset>(datasets, "Dataset",
                        "A dataset as NumPy arrays (glassbox.datasets.load): x, y, class_names, name; "
                        "unpacks as x, y = ds")
      .def_readonly("x", &PyDataset::x,
                    "[N, C, H, W] float32 raw pixels in [0, 1] (image sets), or [N, F] raw feature values (toy and "
                    "flat sets)")
      .def_readonly("y", &PyDataset::y, "[N] int64 labels")
      .def_readonly("class_names", &PyDataset::class_names, "a name per class (labels index it)")
      .def_readonly("name", &PyDataset::name, "the spec it was loaded from")
      .def("__len__", [](const PyDataset& d) { return d.y.size(); })
      .def("__iter__", [](const PyDataset& d) { return py::iter(py::make_tuple(d.x, d.y)); });
  datasets.def("load", &load_data, py::arg("spec"), py::arg("split") = "test",
               "fashion-mnist, mnist:DIR, cifar10:DIR, images:DIR, npy:X,Y, toy:spirals...; split train|test|all");
  datasets.def("available", &gb::dataset_available, py::arg("spec"));
  m.def("blas_core", &gb::blas_core, "the kernels OpenBLAS uses");
  m.def("better_blas_core", &gb::better_blas_core,
        "the kernels the glassbox command would switch OpenBLAS to (empty: none, the ones in use are right)");

  bind_families(m);
  bind_concepts_attacks_surrogates(m);
}
