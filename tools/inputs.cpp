// The inputs of explain/regions/...: image files, dataset samples and (by default) .npy arrays are
// pixels, brought to the model's input space with the normalization stored in the model
// ("glassbox.normalize"); with --input-space model, .npy arrays are taken as already there.
#include "tools/inputs.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/argmax.h"
#include "engine/finite.h"
#include "engine/rng.h"
#include "engine/sizes.h"
#include "explain/attribution/explain.h"
#include "explain/common/resize.h"
#include "tools/commands.h"
#include "tools/outputs.h"

namespace gb {

// Lower-case letters, digits and '-' only, so class names make safe file names ("T-shirt/top" -> "t-shirt-top").
static std::string file_safe(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c))
      o += char(std::tolower(c));
    else if (!o.empty() && o.back() != '-')
      o += '-';
  }
  while (!o.empty() && o.back() == '-') o.pop_back();
  return o.empty() ? "x" : o;
}

// Two inputs of the same name (shirt.png from two folders) would overwrite each other's outputs:
// the second becomes shirt-2.png, the third shirt-3.png, and so on.
// Names whose output files would be the same ("a b.npy[0]" and "a_b.npy[0]" both wrote a_b_0...)
// get -2, -3...: the second one's files replaced the first's. Both file forms are kept distinct.
static void unique_names(std::vector<std::string>& names) {
  std::set<std::string> stems, safe;
  auto clashes = [&](const std::string& n) { return stems.count(output_stem(n)) || safe.count(safe_name(n)); };
  auto take = [&](const std::string& n) { stems.insert(output_stem(n)), safe.insert(safe_name(n)); };
  for (std::string& n : names) {
    if (clashes(n)) {
      const size_t dot = n.find('.') == 0 ? std::string::npos : n.find('.');
      const std::string stem = n.substr(0, dot), ext = dot == std::string::npos ? "" : n.substr(dot);
      for (int k = 2;; ++k) {
        std::string c = stem + "-" + std::to_string(k) + ext;
        if (!clashes(c) && std::find(names.begin(), names.end(), c) == names.end()) {
          n = c;
          break;
        }
      }
    }
    take(n);
  }
}

static int parse_int(const std::string& s, const std::string& what, const std::string& flag) {
  long v = 0;
  if (!parse_number(s, v) || v < INT_MIN || v > INT_MAX)
    throw std::invalid_argument(flag + " '" + what + "': '" + s + "' is not an integer");
  return int(v);
}

static std::vector<int> parse_index(const std::string& index, int size, const std::string& flag) {
  std::vector<int> out;
  if (index.empty()) throw std::invalid_argument(flag + " is empty");
  if (auto colon = index.find(':'); colon != std::string::npos) {
    int a = parse_int(index.substr(0, colon), index, flag), b = parse_int(index.substr(colon + 1), index, flag);
    if (a < 0 || b <= a) throw std::invalid_argument(flag + " '" + index + "': expected I:J with 0 <= I < J");
    if (b > size)  // before the range is built: 0:2000000000 must not allocate 8 GB first
      throw std::out_of_range(flag + " '" + index + "': J = " + std::to_string(b) + " is past the dataset's " +
                              std::to_string(size) + " samples");
    for (int i = a; i < b; ++i) out.push_back(i);
  } else {
    size_t p = 0;
    while (p <= index.size()) {
      size_t q = index.find(',', p);
      if (q == std::string::npos) q = index.size();
      out.push_back(parse_int(index.substr(p, q - p), index, flag));
      p = q + 1;
    }
  }
  for (int i : out)
    if (i < 0 || i >= size)
      throw std::out_of_range(flag + " " + std::to_string(i) + " outside the dataset's " + std::to_string(size) +
                              " samples");
  return out;
}

std::string model_dataset(const Model& m) {
  auto it = m.metadata.find("glassbox.dataset");
  return it == m.metadata.end() ? "" : it->second;
}

std::vector<std::string> model_classes(const Model& m, const std::vector<std::string>& fallback) {
  std::vector<std::string> names = fallback;
  if (auto it = m.metadata.find("glassbox.classes"); it != m.metadata.end()) {
    try {
      names = nlohmann::json::parse(it->second).get<std::vector<std::string>>();
    } catch (const std::exception&) {
      names = fallback;  // unreadable names
    }
  }
  for (int k = int(names.size()); k < m.graph.classes(); ++k) names.push_back(std::to_string(k));
  return names;
}

void add_input_space_flag(Command* command, InputSpace* space) {
  const std::map<std::string, InputSpace> names = {{"pixels", InputSpace::pixels}, {"model", InputSpace::model}};
  command->cli()
      ->add_option("--input-space", *space,
                   "where .npy inputs, numeric baselines and written adversarial arrays live: pixels (values in [0, "
                   "1], normalized by glassbox as the model was trained) or model (already normalized)")
      ->transform(CLI::CheckedTransformer(names))
      ->default_str("pixels");
}

const char* space_name(InputSpace s) { return s == InputSpace::pixels ? "pixels" : "model"; }

std::string sample_name(const Dataset& d, int index) {
  const int y = d.y[size_t(index)];
  return file_safe(y >= 0 && y < d.classes() ? d.class_names[size_t(y)] : std::to_string(y)) + "_" + std::to_string(index);
}

Tensor all_logits(Graph& g, const Inputs& in, const std::string& model) {
  const int N = in.x.batch(), K = g.classes();
  Tensor logits(Shape{N, K});
  for (int b = 0; b < N; b += 256) {
    const int e = std::min(N, b + 256);
    const Tensor& y = g.forward(in.x.slice(b, e), Mode::eval);
    std::copy(y.data(), y.data() + y.size(), logits.data() + size_t(b) * K);
  }
  for (int n = 0; n < N && !nonfinite_allowed(); ++n)  // (finite weights that overflow printed "-nan")
    for (int k = 0; k < K; ++k)
      if (!std::isfinite(logits[size_t(n) * K + k]))
        throw std::runtime_error(model + ": its logits are not finite for input " + in.names[n] +
                                 " (weights or activations past float32's range; glassbox --allow-nonfinite "
                                 "shows them)");
  return logits;
}

Inputs read_inputs(const Model& model, const std::vector<std::string>& files, const std::string& data_spec,
                   const std::string& index, const std::string& split, InputSpace space,
                   const std::string& index_flag) {
  const Shape sample = model.graph.input_shape();
  const Normalization norm = Normalization::of_model(model.metadata);
  std::vector<Tensor> parts;
  Inputs in;
  for (const std::string& f : files) {
    const std::string base = std::filesystem::path(f).filename().string();
    std::string ext = std::filesystem::path(f).extension().string();
    for (auto& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".npy") {
      std::string descr;
      Tensor t = read_npy_f32(f, &descr);
      if (space == InputSpace::pixels) uint8_to_unit(t, descr);  // as the npy: dataset reader does
      const Shape as_read = t.shape();  // for the message: a one-sample reshape is not what the file holds
      if (t.rank() == sample.rank) t = t.reshaped(Shape::batch_of(1, t.shape()));  // one sample without batch
      if (t.rank() >= 2 && t.shape().sample() != sample && is_channel_last(t.shape()))
        t = channel_last_to_nchw(t);  // as the npy: dataset reader reads it
      if (t.rank() != sample.rank + 1 || t.shape().sample() != sample)  // (a 1-D array's message named no file)
        throw ShapeError(f + ": expected N x " + sample.str() + " float32 (" +
                         (space == InputSpace::pixels ? "pixels" : "model input space") + "), got " + as_read.str());
      check_finite(t, f);
      if (space == InputSpace::pixels) normalize_checked(norm, t, f);
      for (int n = 0; n < t.batch(); ++n) {
        in.names.push_back(base + "[" + std::to_string(n) + "]");
        in.labels.push_back(-1);
      }
      parts.push_back(t);
    } else {
      if (sample.rank != 3) throw ShapeError(f + ": image input for a model whose input is " + sample.str());
      Tensor t = load_image(f, sample);
      if (!norm.empty()) norm.apply(t);
      in.names.push_back(base);
      in.labels.push_back(-1);
      parts.push_back(t);
    }
  }
  if (!data_spec.empty()) {
    Dataset d = load_dataset(data_spec, split);
    if (d.x.shape().sample() != sample)
      throw ShapeError("--data " + data_spec + ": samples are " + d.x.shape().sample().str() + ", the model takes " +
                       sample.str());
    std::vector<int> idx = parse_index(index.empty() ? "0" : index, d.size(), index_flag);
    Dataset s = take(d, idx);
    normalize_checked(norm, s.x, "--data " + data_spec);
    for (size_t k = 0; k < idx.size(); ++k) {
      const int y = s.y[k];
      in.names.push_back(sample_name(d, idx[k]));
      in.labels.push_back(y);
    }
    parts.push_back(s.x);
  }
  if (parts.empty()) throw std::invalid_argument("no inputs: give --input FILE... or --data SPEC");
  in.x = concat(parts);
  if (in.x.empty()) throw std::invalid_argument("no inputs: the files and samples given hold no values");
  unique_names(in.names);
  return in;
}

void refuse_index_with_inputs(const Command& command, const std::vector<std::string>& inputs, bool indexed_data) {
  if (!inputs.empty() && !indexed_data && command.count("--index"))
    refuse_flag("--index", "selects samples of --data; the --input files are used whole");
}

std::vector<std::string> split_list(const std::string& s, const std::string& flag, char sep, bool distinct) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find(sep, p);
    if (q == std::string::npos) q = s.size();
    // "0.1,,0.2" ran 0.1 and 0.2, and "," ran the default: a slip of the keyboard is named instead.
    if (q == p)
      throw std::invalid_argument(flag + " '" + s + "': an empty item in the list (items are separated by '" + sep + "')");
    out.push_back(s.substr(p, q - p));
    // "saliency,saliency" ran it once and counted it twice: a repeat is named too.
    if (distinct && std::find(out.begin(), out.end() - 1, out.back()) != out.end() - 1)
      throw std::invalid_argument(flag + " '" + s + "': '" + out.back() + "' given twice");
    p = q + 1;
  }
  return out;
}

// The baseline named on the command line (see inputs.h).
Tensor baseline_tensor(const std::string& spec, const Graph& g, const Normalization& norm, InputSpace space,
                       const Tensor& x) {
  const std::string flag = "--param baseline=" + spec;
  const Shape one = Shape::batch_of(1, g.input_shape());
  const bool images = g.input_shape().rank == 3;
  auto from_pixels = [&](Tensor t) {  // pixels -> the model's input space, as --input arrays go
    normalize_checked(norm, t, flag);  // flat features too: a toy2d baseline skipped it, unlike its input
    return t;
  };
  if (spec == "black" || spec == "white" || spec == "gray") return from_pixels(Tensor(one, spec == "black" ? 0.f : spec == "white" ? 1.f : 0.5f));
  if (spec == "mean") {
    if (norm.empty())
      throw std::invalid_argument(flag + ": the model stores no training mean (it was trained with --normalize none); "
                                  "give black, gray, a number or FILE.npy");
    Tensor t(one);
    const int C = g.input_shape()[0];
    const size_t plane = t.size() / size_t(C);
    for (int c = 0; c < C; ++c) std::fill_n(t.data() + size_t(c) * plane, plane, norm.mean[size_t(c) % norm.mean.size()]);
    return from_pixels(t);
  }
  if (spec.rfind("uniform:", 0) == 0) {
    long seed = 0;
    if (!parse_number(spec.substr(8), seed) || seed < 0) throw std::invalid_argument(flag + ": expected uniform:SEED (a whole number >= 0)");
    Tensor t(one);
    Rng rng{uint64_t(seed)};
    for (size_t i = 0; i < t.size(); ++i) t[i] = rng.uniform();
    return from_pixels(t);
  }
  if (spec == "blur" || spec.rfind("blur:", 0) == 0) {
    double sigma = 5;
    if (spec != "blur" && (!parse_number(spec.substr(5), sigma) || !(sigma > 0) || sigma > 1000))
      throw std::invalid_argument(flag + ": expected blur or blur:SIGMA with SIGMA in (0, 1000] pixels");
    if (!images) throw std::invalid_argument(flag + ": blurring needs image inputs [C,H,W], the model takes " + g.input_shape().str());
    Tensor t = x.clone();  // blur commutes with the per-channel affine normalization (kernel sums to 1)
    explain::gaussian_blur(t, sigma);
    return t;
  }
  if (double v = 0; parse_number(spec, v)) {
    if (!explain::float32_finite(v)) throw std::invalid_argument(flag + ": not a finite float32 number");
    if (space == InputSpace::model) return {};
    return from_pixels(Tensor(one, float(v)));
  }
  if (spec.size() < 4 || spec.compare(spec.size() - 4, 4, ".npy") != 0)
    throw std::invalid_argument(flag + ": expected black, white, gray, mean, blur[:SIGMA], uniform:SEED, a number "
                                "or FILE.npy");
  Tensor b = read_npy_f32(spec);
  if (b.rank() == g.input_shape().rank) b = b.reshaped(one);
  if (b.rank() != g.input_shape().rank + 1 || b.shape().sample() != g.input_shape())
    throw ShapeError(flag + ": shape " + b.shape().str() + ", the model takes " + one.str() + " or N of them");
  check_finite(b, flag);
  return space == InputSpace::pixels ? from_pixels(b) : b;
}

void normalize_checked(const Normalization& norm, Tensor& x, const std::string& what) {
  if (norm.empty()) return;
  norm.apply(x);
  check_finite(x, what + " after the model's normalization ((x - mean) / std)");
}

void normalize_for(const Model& m, Tensor& x, const std::string& what) {
  normalize_checked(Normalization::of_model(m.metadata), x, what);
}

// [C,H,W] pixels for display: the model's normalization undone, then clamped to [0,1] (or
// min-max scaled when the values are clearly not pixels).
Tensor display_pixels(const Tensor& sample, const Normalization& norm) {
  Tensor p = sample.clone();
  if (!norm.empty()) norm.invert(p);
  auto [lo, hi] = std::minmax_element(p.data(), p.data() + p.size());
  if (*lo < -0.05f || *hi > 1.05f) {
    const float a = *lo, span = std::max(*hi - *lo, 1e-12f);
    for (size_t i = 0; i < p.size(); ++i) p[i] = (p[i] - a) / span;
  }
  return p.reshaped(sample.shape().sample());
}

// --target LAYER:SPEC: a channel's mean (C), one unit (C,Y,X) or a direction (FILE.npy, shaped like
// the layer's output for one sample, or for each input).
static Target unit_target(const std::string& spec, const Graph& g, int N) {
  const size_t colon = spec.rfind(':');
  const int node = g.find(spec.substr(0, colon));
  if (node < 0) {
    std::string names;
    for (int i = 0; i < g.size(); ++i) names += (i ? ", " : "") + g.layer(i).name;
    throw std::invalid_argument("--target " + spec + ": no layer named '" + spec.substr(0, colon) + "' (layers: " +
                                names + ")");
  }
  const std::string what = spec.substr(colon + 1);
  if (what.size() > 4 && what.compare(what.size() - 4, 4, ".npy") == 0) {
    Tensor d = read_npy_f32(what);
    const Shape one = g.shape(node, 1);
    if (d.rank() == one.rank - 1) d = d.reshaped(Shape::batch_of(1, d.shape()));  // one direction for all
    for (size_t i = 0; i < d.size(); ++i)
      if (!std::isfinite(d[i])) throw std::invalid_argument("--target " + spec + ": not finite at element " + std::to_string(i));
    Target t = Target::along(node, d);
    try {
      t.check(g, N);
    } catch (const std::exception& e) {
      throw ShapeError("--target " + spec + ": " + e.what());
    }
    return t;
  }
  std::vector<int> v;
  for (const std::string& part : split_list(what, "--target", ',', false)) {  // coordinates may repeat
    long k = 0;
    if (!parse_number(part, k) || k < INT_MIN || k > INT_MAX)
      throw std::invalid_argument("--target " + spec + ": '" + part + "' is not a whole number");
    v.push_back(int(k));
  }
  if (v.size() == 1) {
    Target t = Target::channel_mean(node, v[0]);
    t.check(g, N);
    return t;
  }
  if (v.size() == 3) return Target::unit(g, node, v[0], v[1], v[2]);
  throw std::invalid_argument("--target " + spec + ": expected LAYER:C (a channel's mean), LAYER:C,Y,X (one unit) or "
                              "LAYER:FILE.npy (a direction)");
}

// What every input's explanations explain: its predicted class, its label, a class number, or a
// unit of a layer.
Target read_target(const std::string& spec, const Graph& g, const Inputs& in, const Tensor& logits) {
  if (spec.find(':') != std::string::npos) return unit_target(spec, g, in.x.batch());
  const int N = in.x.batch(), K = g.classes();
  std::vector<int> classes(N);
  // A class per input: "9,2,1" (as many as there are inputs).
  const std::vector<std::string> list = spec.find(',') != std::string::npos ? split_list(spec, "--target", ',', false) : std::vector<std::string>{};
  if (!list.empty() && int(list.size()) != N)
    throw std::invalid_argument("--target " + spec + ": " + std::to_string(list.size()) + " classes for " +
                                std::to_string(N) + " inputs (give one class per input, or one for all)");
  for (int n = 0; n < N; ++n) {
    const std::string& one = list.empty() ? spec : list[n];
    if (spec == "pred") {
      classes[n] = argmax(logits.data() + n * K, K);
    } else if (spec == "label") {
      if (in.labels[n] < 0)
        throw std::invalid_argument("--target label: input " + in.names[n] + " has no label (give --labels Y.npy "
                                    "for .npy inputs)");
      classes[n] = in.labels[n];
    } else {
      long k = -1;
      if (!parse_number(one, k) || k < INT_MIN || k > INT_MAX)
        throw std::invalid_argument("--target '" + spec + "': expected pred, label, a class number, LAYER:C, "
                                    "LAYER:C,Y,X, LAYER:FILE.npy or a class per input (9,2,1)");
      classes[n] = int(k);
    }
    if (classes[n] < 0 || classes[n] >= K)
      throw std::out_of_range((one == "label" ? "--target label: input " + in.names[n] + "'s label " // (from --labels)
                                              : "--target ") +
                              std::to_string(classes[n]) + " outside the model's classes [0," + std::to_string(K) + ")");
  }
  return Target(classes);
}

void read_input_labels(Inputs& in, const std::string& path) {
  const std::vector<int64_t> y = read_npy_labels(path);
  size_t files = 0;  // --input rows come first and have no label
  while (files < in.labels.size() && in.labels[files] < 0) ++files;
  if (y.size() != files)
    throw std::invalid_argument("--labels " + path + ": " + std::to_string(y.size()) + " labels for " +
                                std::to_string(files) + " --input rows");
  for (size_t i = 0; i < files; ++i) {
    if (y[i] < 0 || y[i] > INT_MAX) throw std::invalid_argument("--labels " + path + ": label " + std::to_string(y[i]) + " at " + std::to_string(i));
    in.labels[i] = int(y[i]);
  }
}

// ---- method parameters from the command line ----

// The keys a method accepts on the command line.
std::set<std::string> accepted_keys(const std::string& method, const explain::Params& all) {
  std::set<std::string> keys;
  const auto& info = explain::method_info(method);
  std::string base;
  for (auto& p : info.params) {
    keys.insert(p.name);
    if (p.name == "base") base = p.default_value;
  }
  if (info.passes_on) {
    if (auto it = all.find("base"); it != all.end()) base = it->second;
    for (auto& k : accepted_keys(base, {})) keys.insert(k);
  }
  return keys;
}

// A float as text that reads back as the same float (std::to_string keeps 6 decimals only).
static std::string number_text(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Methods whose `baseline` may be a whole input (explain::Params::tensors).
static const std::set<std::string> kTensorBaseline = {"integrated-gradients", "deeplift"};

std::vector<explain::Params> route_method_params(const std::vector<std::string>& key_values,
                                                 const std::vector<std::string>& methods, explain::Params& all,
                                                 const std::string& flag, const std::string& see,
                                                 const std::string& twice_hint,
                                                 const std::map<std::string, std::string>& shorthands) {
  all = read_key_values(key_values, flag, twice_hint);
  std::vector<explain::Params> per_method(methods.size());
  for (auto& [k, v] : all) {
    bool used = false;
    for (size_t i = 0; i < methods.size(); ++i)
      if (accepted_keys(methods[i], all).count(k)) per_method[i][k] = v, used = true;
    if (!used) {
      std::string names;
      for (auto& m : methods) names += (names.empty() ? "" : ", ") + m;
      const auto sh = shorthands.find(k);
      throw std::invalid_argument((sh == shorthands.end() ? flag + " " + k : sh->second + " " + v) +
                                  ": no selected method accepts " + (sh == shorthands.end() ? "it" : k) + " (" + names +
                                  "; see " + see + ")");
    }
  }
  return per_method;
}

// Defaults that depend on the model's normalization: the zB box (the pixel range [0, 1] through
// the normalization, over all channels: one scalar box, as the rule takes; under a per-channel
// normalization it is wider than each channel's range, where Zennit would take per-channel bounds) and the baselines (black unless given), turned into
// tensors for the methods that take one. Returns, per method, the baseline as given (for the
// summary), empty where the method takes none.
std::vector<std::string> resolve_baselines(const std::vector<std::string>& methods, const explain::Params& all,
                                           std::vector<explain::Params>& per_method, const Graph& g,
                                           const Normalization& norm, InputSpace space, const Tensor& x) {
  const int N = x.batch();
  std::vector<std::string> given(methods.size());
  for (size_t mi = 0; mi < methods.size(); ++mi) {
    explain::Params& p = per_method[mi];
    const std::set<std::string> keys = accepted_keys(methods[mi], all);
    if (keys.count("low") && keys.count("high") && !p.count("low") && !p.count("high") && !norm.empty() &&
        g.input_shape().rank == 3) {
      Tensor lo = baseline_tensor("black", g, norm, space, x), hi = baseline_tensor("white", g, norm, space, x);
      p["low"] = number_text(*std::min_element(lo.data(), lo.data() + lo.size()));
      p["high"] = number_text(*std::max_element(hi.data(), hi.data() + hi.size()));
    }
    std::string runs = methods[mi];  // the method that reads `baseline` (a noise tunnel's base)
    for (auto& info : explain::method_info(runs).params)
      if (info.name == "base") runs = p.count("base") ? p["base"] : info.default_value;
    if (!kTensorBaseline.count(runs)) {
      // Occlusion's occluder is one value per channel: a keyword or pixel value becomes the
      // channels' values through the normalization. Not given: black, as IG's baseline (the
      // registry's own default, 0 in the model's input space, was the training mean pixel).
      if (!keys.count("baseline")) continue;
      auto it = p.find("baseline");
      if (it == p.end()) it = p.emplace("baseline", "black").first;
      given[mi] = it->second;
      Tensor b = baseline_tensor(it->second, g, norm, space, x);
      if (b.empty()) continue;  // a number in the model's input space
      const int C = g.input_shape().rank == 3 ? g.input_shape()[0] : 1;
      const size_t plane = b.size() / size_t(C);
      std::string values;
      for (int c = 0; c < C; ++c) {
        const float* v = b.data() + size_t(c) * plane;
        if (std::any_of(v, v + plane, [&](float u) { return u != v[0]; }))
          throw std::invalid_argument("--param baseline=" + it->second + ": " + methods[mi] +
                                      " takes one value per channel, and this one varies over the pixels; give black, "
                                      "white, gray, mean or a number");
        values += (c ? "," : "") + number_text(v[0]);
      }
      it->second = values;
      continue;
    }
    given[mi] = p.count("baseline") ? p["baseline"] : "black";
    Tensor b = baseline_tensor(given[mi], g, norm, space, x);
    if (b.empty()) continue;
    if (b.batch() != 1 && b.batch() != N)
      throw ShapeError("--param baseline=" + given[mi] + ": " + std::to_string(b.batch()) + " baselines for " +
                       std::to_string(N) + " inputs");
    p.erase("baseline");
    p.tensors["baseline"] = b;
  }
  return given;
}

static void create_folder(const std::string& dir, const std::string& flag) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw std::invalid_argument(flag + " '" + dir + "': cannot create the output folder (" +
                                (ec ? ec.message() : std::string("a file is in the way")) + ")");
}

void make_out_dir(const std::string& dir, const std::string& flag) {
  create_folder(dir, flag);
  begin_output_record(dir);
}

void make_parent_dir(const std::string& file, const std::string& flag) {
  // (Not recorded: the folder a model goes in holds other files than this command's.)
  const std::filesystem::path parent = std::filesystem::path(file).parent_path();
  if (!parent.empty()) create_folder(parent.string(), flag);
}

void check_inputs_survive(const std::vector<std::string>& inputs, const std::string& out,
                          const std::function<bool(const std::string&)>& written) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const std::string& f : inputs) {
    const fs::path folder = fs::path(f).parent_path().empty() ? fs::path(".") : fs::path(f).parent_path();
    if (fs::equivalent(folder, out, ec) && written(fs::path(f).filename().string()))
      throw std::invalid_argument("--input " + f + " is in --out " + out +
                                  " under a name the outputs take: write them to another folder");
  }
}

std::string output_stem(std::string s) {
  if (size_t at = s.find(".npy["); at != std::string::npos) s.erase(at, 4);
  return safe_name(s);
}

std::string safe_name(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')
      o += c;
    else if (!o.empty() && o.back() != '_')
      o += '_';
  }
  while (!o.empty() && o.back() == '_') o.pop_back();
  return o.empty() ? "input" : o;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::function<void(const std::string&, int, int)> stage_progress() {
  const bool tty = ::isatty(2);
  auto last = std::make_shared<std::pair<std::string, std::chrono::steady_clock::time_point>>();
  return [tty, last](const std::string& stage, int done, int total) {
    const auto now = std::chrono::steady_clock::now();
    const bool finished = done >= total;
    if (!finished && stage == last->first && now - last->second < std::chrono::milliseconds(200)) return;
    last->first = stage, last->second = now;
    if (tty)
      std::fprintf(stderr, "\r  %s: %d/%d\x1b[K%s", stage.c_str(), done, total, finished ? "\n" : "");
    else if (finished)
      std::fprintf(stderr, "  %s: %d/%d\n", stage.c_str(), done, total);
    std::fflush(stderr);
  };
}

std::function<void(int, int)> tenth_progress(const std::string& what, const std::string& unit) {
  auto last = std::make_shared<int>(-1);
  const std::string suffix = unit.empty() ? "" : " " + unit;
  return [what, suffix, last](int done, int total) {
    const int tenth = total > 0 ? done * 10 / total : 10;
    if (tenth == *last) return;
    *last = tenth;
    std::printf("  %s: %d/%d%s\n", what.c_str(), done, total, suffix.c_str());
    std::fflush(stdout);
  };
}

std::string percent(double fraction) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100 * fraction);
  return b;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

explain::Params read_key_values(const std::vector<std::string>& given, const std::string& flag,
                                const std::string& twice_hint) {
  explain::Params p;
  for (const std::string& kv : given) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument(flag + " '" + kv + "': expected KEY=VALUE");
    const std::string key = kv.substr(0, eq);
    // An empty value would read as the key left out (layer= ran the default layer).
    if (eq + 1 == kv.size())
      throw std::invalid_argument(flag + " " + kv + ": empty value (leave " + key + " out for its default)");
    if (p.count(key)) {
      std::string hint = twice_hint;  // its KEY names the key
      if (const size_t at = hint.find("KEY"); at != std::string::npos) hint.replace(at, 3, key);
      throw std::invalid_argument(flag + " " + key + " given twice (" + key + "=" + p[key] + " and " + kv + ")" +
                                  (hint.empty() ? "" : "; " + hint));
    }
    p[key] = kv.substr(eq + 1);
  }
  return p;
}

std::vector<explain::Params> route_params(const std::vector<std::string>& given, const std::vector<std::string>& methods,
                                          const DeclaredParams& declared, const std::string& kind,
                                          const std::string& see) {
  std::vector<explain::Params> out(methods.size());
  for (const auto& [key, value] : read_key_values(given)) {
    bool used = false;
    for (size_t m = 0; m < methods.size(); ++m)
      for (const explain::ParamInfo& p : declared(methods[m]))
        if (p.name == key) out[m][key] = value, used = true;
    if (!used) {
      std::string names;
      for (const std::string& m : methods) names += (names.empty() ? "" : ", ") + m;
      throw std::invalid_argument("--param " + key + ": no chosen " + kind + " declares it (" + names + "; see " + see + ")");
    }
  }
  return out;
}

}  // namespace gb
