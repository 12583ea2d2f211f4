// glassbox attack: adversarial examples and attacks on explanations (explain/attacks) from the
// command line. One attack per run, at one ε or along a list of them (a robustness curve). Writes,
// for the last ε: adversarial.npy (N x C x H x W in --input-space, pixels by default, loadable
// with --input), per input <name>_adv.npy and <name>_adv.png, grid.png (input, adversarial,
// change and explanations of both, with predictions); curve.png/.svg over the ε list; and
// summary.json with every input's numbers (detection: the ROC-AUC; substitute: the transfer rate).
// --ref-data/--ref-index/--ref-split give the substitute attack its initial set and detection its
// clean reference maps. `--list` prints every attack with its parameters.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/argmax.h"
#include "engine/rng.h"
#include "engine/layers.h"
#include "explain/attacks/attacks.h"
#include "explain/attribution/explain.h"
#include "explain/common/heatmap.h"
#include "explain/common/plot.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "tools/figures.h"
#include "train/fit.h"

namespace gb {

namespace {


struct AttackArgs {
  std::string model, method, data, index = "0:8", split = "test", eps, target = "none", explainer = "saliency", out;
  std::string ref_data, ref_index, ref_split = "train";
  std::vector<std::string> inputs, params;
  uint64_t seed = 0;
  bool list = false;
  InputSpace input_space = InputSpace::pixels;
};

// The model's pixel space: its stored normalization over pixels in [0, 1] for image models; other
// inputs (2-D toy sets) are unbounded.
attacks::PixelSpace pixel_space(const Model& m) {
  const Normalization norm = Normalization::of_model(m.metadata);
  attacks::PixelSpace s;
  s.mean = norm.mean;
  s.std = norm.std;
  if (m.graph.input_shape().rank != 3) s.lo = -INFINITY, s.hi = INFINITY;
  return s;
}

bool declares(const std::string& method, const std::string& key) {
  for (const attacks::ParamInfo& p : attacks::method_info(method).params)
    if (p.name == key) return true;
  return false;
}

// --eps: one value or a comma-separated list, each a finite number >= 0 (pixels).
std::vector<double> read_eps(const AttackArgs& a) {
  std::vector<double> out;
  if (a.eps.empty()) return out;
  for (const std::string& s : split_list(a.eps, "--eps")) {
    double v = 0;
    if (!parse_number(s, v) || !explain::float32_finite(v) || v < 0)
      throw std::invalid_argument("--eps '" + a.eps + "': '" + s + "' is not a finite float32 number >= 0 (pixels)");
    out.push_back(v);
  }
  return out;
}

// --target: none (untargeted), a class number, next (label + 1), random (seeded, never the
// label) or least-likely (the class with the lowest logit).
std::vector<int> read_targets(const std::string& spec, Graph& g, const Tensor& x, const std::vector<int>& labels,
                              uint64_t seed) {
  if (spec == "none") return {};
  const int N = x.batch(), K = g.classes();
  std::vector<int> t(N);
  long k = -1;
  const bool number = parse_number(spec, k);
  if (!number && spec != "next" && spec != "random" && spec != "least-likely")
    throw std::invalid_argument("--target '" + spec + "': expected none, a class number, next, random or least-likely");
  if (number && (k < 0 || k >= K))
    throw std::out_of_range("--target " + spec + " outside the model's classes [0, " + std::to_string(K) + ")");
  for (int n = 0; n < N; ++n) {
    const Tensor& z = g.forward(x.slice(n, n + 1));
    const int y = labels[n] >= 0 ? labels[n] : argmax(z.data(), K);
    if (number)
      t[n] = int(k);
    else if (spec == "next")
      t[n] = (y + 1) % K;
    else if (spec == "random")
      // keyed by the input's values: its row's position gave another target alone than in a batch
      t[n] = (y + 1 + int(Rng(values_seed(x.data() + size_t(n) * x.sample_size(), x.sample_size(), seed))
                              .below(uint32_t(K - 1)))) % K;
    else
      t[n] = int(std::min_element(z.data(), z.data() + K) - z.data());
    if (t[n] == y)
      throw std::invalid_argument("--target " + spec + ": input " + std::to_string(n) + " is already of class " +
                                  std::to_string(y) + "; give another target");
  }
  return t;
}

// Row n of x (input space) as pixels [C,H,W] for display.
Tensor pixels_of(const attacks::PixelSpace& s, const Tensor& x, int n) {
  Tensor p;
  s.to_pixels(x.slice(n, n + 1), p);
  return p.reshaped(x.shape().sample());
}

// The change p' − p of row n as a blue-white-red image scaled by ±scale.
explain::Image change_image(const attacks::PixelSpace& s, const Tensor& x, const Tensor& adv, int n, double scale) {
  const Tensor a = pixels_of(s, x, n), b = pixels_of(s, adv, n);
  Tensor d(a.shape());
  for (size_t i = 0; i < d.size(); ++i) d[i] = b[i] - a[i];
  explain::HeatmapOptions o;
  o.is_signed = true;
  o.percentile = 100;
  explain::Image im = explain::heatmap(d, o);
  if (scale <= 0) return im;
  // Fixed scale, so that rows compare: redraw with ±scale.
  const std::vector<float> v = explain::reduce_channels(d, true);
  for (size_t i = 0; i < v.size(); ++i) explain::colormap_rgb("bwr", v[i] / scale, im.rgb.data() + 3 * i);
  return im;
}

// An importance map [1,1,H,W] (or an attribution) as a hot heatmap.
explain::Image map_image(const Tensor& m, int n) {
  explain::HeatmapOptions o;
  o.is_signed = false;
  return explain::heatmap(m.slice(n, n + 1).reshaped(m.shape().sample()), o);
}

struct Explained {
  std::string name;
  Tensor before, after;  // [N, ...] maps of the input and of the adversarial input
};

// The explanation method an attack on explanations attacks (its `explanation` parameter).
std::string attacked_explanation(const AttackArgs& a, const attacks::Params& params) {
  if (auto it = params.find("explanation"); it != params.end()) return it->second;
  for (const attacks::ParamInfo& p : attacks::method_info(a.method).params)
    if (p.name == "explanation") return p.default_value;
  return "explanation";
}

// The maps the grid shows: the attack's own importance maps (attacks on explanations), else
// --explain's attributions of each input's predicted class, before and after.
Explained explanations(const AttackArgs& a, const attacks::Params& params, Graph& g, const Tensor& x,
                       const attacks::Result& r) {
  if (r.maps.count("benign"))
    return {attacked_explanation(a, params), r.maps.at("benign").slice(0, x.batch()), r.maps.at("attacked").slice(0, x.batch())};
  if (a.explainer == "none" || g.input_shape().rank != 3) return {};
  Explained e{a.explainer, {}, {}};
  e.before = explain::explain(g, x, Target(std::vector<int>(r.before.begin(), r.before.begin() + x.batch())), a.explainer).attribution;
  e.after = explain::explain(g, r.adversarial.slice(0, x.batch()), Target(std::vector<int>(r.after.begin(), r.after.begin() + x.batch())), a.explainer).attribution;
  return e;
}

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// A column label that fits a cell: long method names by their initials (integrated-gradients: IG).
std::string short_method_name(const std::string& name) {
  if (name.size() <= 12) return name;
  std::string s;
  for (size_t i = 0; i < name.size(); ++i)
    if (i == 0 || name[i - 1] == '-') s += char(std::toupper(static_cast<unsigned char>(name[i])));
  return s;
}

// What the grid's rows add up to: the attack's success over all inputs (not only the rows shown)
// and, for detection, its ROC-AUC.
std::string attack_grid_title(const std::string& method, const attacks::Result& r, int inputs, double eps) {
  std::string t = method;
  const std::string key = attacks::epsilon_key(method);
  if (std::isfinite(eps) && !key.empty()) t += " (" + key + " " + short_number(eps) + ")";
  const long succeeded = std::count_if(r.success.begin(), r.success.end(), [](char c) { return c != 0; });
  t += ": succeeded on " + std::to_string(succeeded) + " of " + std::to_string(inputs) + " inputs";
  if (r.totals.count("roc_auc"))
    t += "; detection ROC-AUC " +
         (std::isfinite(r.totals.at("roc_auc")) ? short_number(r.totals.at("roc_auc")) : std::string("undefined")) +
         " (clean inputs' scores against the successful adversarial inputs'; 0.5 is chance)";
  return t;
}

// grid.png: per input, the input, the adversarial input, the change (±ε, or ± the largest change)
// and the explanation of each, captioned with the classes and probabilities before and after.
void write_attack_grid(const std::string& path, const AttackArgs& a, const attacks::Params& params, Graph& g,
                const attacks::PixelSpace& s, const Inputs& in, const attacks::Result& r,
                const std::vector<std::string>& classes, double eps) {
  const int N = std::min(in.x.batch(), 16);
  const Tensor p0 = softmax(g.forward(in.x.slice(0, N)).clone()), p1 = softmax(g.forward(r.adversarial.slice(0, N)).clone());
  double scale = std::isfinite(eps) ? eps : 0.0;
  if (!(scale > 0))
    for (int n = 0; n < N; ++n) scale = std::max(scale, r.linf[n]);
  const Explained e = explanations(a, params, g, in.x.slice(0, N), r);
  std::vector<std::vector<explain::Image>> cells(N);
  std::vector<std::string> captions;
  const int K = g.classes();
  for (int n = 0; n < N; ++n) {
    cells[n] = {explain::to_image(pixels_of(s, in.x, n)), explain::to_image(pixels_of(s, r.adversarial, n)),
                change_image(s, in.x, r.adversarial, n, scale)};
    if (!e.before.empty()) {
      cells[n].push_back(map_image(e.before, n));
      cells[n].push_back(map_image(e.after, n));
    }
    std::string c = in.names[n] + ": " + classes[r.before[n]] + " " + short_number(p0[n * K + r.before[n]]) + " -> " +
                    classes[r.after[n]] + " " + short_number(p1[n * K + r.after[n]]);
    if (r.target[n] >= 0) c += " (target " + classes[r.target[n]] + ")";
    if (r.values.count("topk_intersection")) c += "  top-k " + short_number(r.values.at("topk_intersection")[n]);
    if (r.values.count("score_clean"))
      c += "  detection score " + short_number(r.values.at("score_clean")[n]) + " -> " +
           short_number(r.values.at("score_adversarial")[n]);
    captions.push_back(c);
  }
  // The grid shows 16 inputs at most; its first header says so when there were more.
  const std::string first = N < in.x.batch() ? "input (the first " + std::to_string(N) + " of " +
                                                   std::to_string(in.x.batch()) + ")"
                                             : "input";
  std::vector<std::string> cols = {first, "adversarial", "change +-" + short_number(scale)};
  if (!e.before.empty()) {
    const std::string name = short_method_name(e.name);
    cols.push_back(name + " before");
    cols.push_back(name + " after");
  }
  const int H = g.input_shape()[1], W = g.input_shape()[2], k = std::max(1, (132 + W - 1) / W);
  std::vector<explain::Image> legends = {explain::colorbar_image("bwr", -scale, scale, 220, "pixel change")};
  if (!e.before.empty()) legends.push_back(explain::colorbar_image("hot", 0, 1, 220, "map / p99.5(map)"));
  write_image(path, explain::titled(explain::beside(explain::grid(cells, cols, captions, W * k, H * k), legends),
                                    attack_grid_title(a.method, r, in.x.batch(), eps)));
}

struct CurvePoint {
  double eps = 0;
  attacks::Result r;
};

double mean(const std::vector<double>& v, const std::vector<char>* only = nullptr) {
  double s = 0;
  int n = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (!only || (*only)[i]) s += v[i], ++n;
  return n ? s / n : NAN;
}

// Accuracy against the known labels (NaN when none is known).
double accuracy(const std::vector<int>& predicted, const std::vector<int>& labels) {
  int right = 0, known = 0;
  for (size_t n = 0; n < labels.size(); ++n)
    if (labels[n] >= 0) ++known, right += predicted[n] == labels[n];
  return known ? double(right) / known : NAN;
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

// success_rate counts every input; success_rate_initially_correct only those the model classified
// correctly before the attack (initially_correct of them), as Foolbox and torchattacks report it.
// A per-input value's mean over all inputs is left out when the method reports its own mean over
// the inputs where the value is defined (cw: mean_const_successful).
nlohmann::json totals_json(const attacks::Result& r, const std::vector<int>& labels) {
  nlohmann::json t = {{"success_rate", attacks::success_rate(r)},
                      {"initially_correct", attacks::initially_correct_count(r)},
                      {"success_rate_initially_correct", number_or_null(attacks::success_rate_initially_correct(r))},
                      {"clean_accuracy", number_or_null(accuracy(r.before, labels))},
                      {"robust_accuracy", number_or_null(accuracy(r.after, labels))},
                      {"mean_l0", mean(r.l0)},
                      {"mean_l2", mean(r.l2)},
                      {"mean_linf", mean(r.linf)},
                      {"mean_l2_of_successes", number_or_null(mean(r.l2, &r.success))}};
  for (auto& [k, v] : r.values)
    if (!r.totals.count("mean_" + k + "_successful")) t["mean_" + k] = number_or_null(mean(v));
  for (auto& [k, v] : r.totals) t[k] = number_or_null(v);
  return t;
}

nlohmann::json inputs_json(const Inputs& in, const attacks::Result& r, const std::vector<std::string>& classes) {
  nlohmann::json rows = nlohmann::json::array();
  for (int n = 0; n < in.x.batch(); ++n) {
    nlohmann::json j = {{"name", in.names[n]},           {"label", in.labels[n]},
                        {"attacked_class", r.label[n]},  {"target", r.target[n]},
                        {"before", r.before[n]},         {"before_class", classes[r.before[n]]},
                        {"after", r.after[n]},           {"after_class", classes[r.after[n]]},
                        {"success", bool(r.success[n])}, {"l0", r.l0[n]},
                        {"l2", r.l2[n]},                 {"linf", r.linf[n]}};
    for (auto& [k, v] : r.values) j[k] = number_or_null(v[n]);
    rows.push_back(j);
  }
  return rows;
}

// curve.png / .svg: over ε, the robust accuracy and success rate (and, for attacks on
// explanations, the mean top-k intersection, Spearman correlation and center-of-mass shift).
void write_attack_curves(const std::string& out, const std::string& method, const std::vector<CurvePoint>& points,
                  const std::vector<int>& labels) {
  explain::Series acc{"robust accuracy", {}, {}, {}}, succ{"success rate", {}, {}, {}};
  std::map<std::string, explain::Series> expl;
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"topk_intersection", "top-k intersection"}, {"spearman", "Spearman rank correlation"}};
  explain::Series auc{"detection ROC-AUC", {}, {}, {}};
  for (const CurvePoint& c : points) {
    if (c.r.totals.count("roc_auc") && std::isfinite(c.r.totals.at("roc_auc")))
      auc.x.push_back(c.eps), auc.y.push_back(c.r.totals.at("roc_auc"));
    acc.x.push_back(c.eps), acc.y.push_back(accuracy(c.r.after, labels));
    succ.x.push_back(c.eps), succ.y.push_back(attacks::success_rate(c.r));
    for (auto& [k, label] : keys)
      if (c.r.values.count(k)) {
        explain::Series& s = expl[k];
        s.label = label;
        s.x.push_back(c.eps), s.y.push_back(mean(c.r.values.at(k)));
      }
  }
  explain::PlotOptions o;
  o.title = "glassbox attack --method " + method;
  o.xlabel = "epsilon (pixels, L-inf or the attack's norm)";
  o.ylabel = "fraction of inputs";
  o.ymin = 0, o.ymax = 1;
  std::vector<explain::Series> series;
  if (std::isfinite(acc.y[0])) series.push_back(acc);
  series.push_back(succ);
  for (auto& [k, s] : expl) series.push_back(s);
  if (!auc.x.empty()) series.push_back(auc);
  write_image(out + "/curve.png", explain::plot_image(series, o));
  atomic_write(out + "/curve.svg", explain::plot_svg(series, o));
  bool shift = false;
  for (const CurvePoint& c : points) shift |= c.r.values.count("center_shift") > 0;
  if (!shift) return;
  explain::Series s{"center-of-mass shift", {}, {}, {}};
  for (const CurvePoint& c : points) s.x.push_back(c.eps), s.y.push_back(mean(c.r.values.at("center_shift")));
  explain::PlotOptions m = o;
  m.ylabel = "mean shift of the explanation's center of mass (pixels)";
  m.ymin.reset(), m.ymax.reset();
  write_image(out + "/curve_center_shift.png", explain::plot_image({s}, m));
  atomic_write(out + "/curve_center_shift.svg", explain::plot_svg({s}, m));
}

// The substitute attack's trainer: glassbox train's loop (Adam, constant rate, no validation, no
// files) on inputs already in the model's input space.
attacks::FitSubstitute fit_substitute(const std::vector<std::string>& classes) {
  return [classes](Graph& sub, const Tensor& x, const std::vector<int>& labels, const attacks::SubstituteFit& f) {
    Dataset d{x, labels, classes, "substitute round " + std::to_string(f.round)};
    FitOptions o;
    o.epochs = f.epochs, o.batch = f.batch, o.seed = f.seed, o.val_fraction = 0;
    o.optimizer.kind = OptimizerKind::adam, o.optimizer.lr = float(f.lr);
    o.progress = ProgressStyle::quiet;
    fit(sub, d, o);
    std::printf("  substitute round %d: %d images, %d epochs\n", f.round + 1, x.batch(), f.epochs);
    std::fflush(stdout);
  };
}

// Flags that only some attacks read, refused for the others (they were accepted and ignored).
void refuse_unread_flags(const AttackArgs& a, const attacks::Params& params, const Command& c) {
  const bool reference = attacks::reads_reference_set(a.method, params);
  for (const char* flag : {"--ref-data", "--ref-index", "--ref-split"})
    if (!reference && c.count(flag))
      refuse_flag(flag, "only substitute, and detect-explanation with score=class-map, read a reference set");
  if (c.count("--seed") && a.target != "random") refuse_flag("--seed", "seeds --target random only");
  const bool attacks_maps = a.method.rfind("explanation-", 0) == 0 || a.method == "adv2";  // its grid: those maps
  if (c.count("--explain") && a.explainer != "none" && attacks_maps)
    refuse_flag("--explain", a.method + "'s grid shows the explanation it attacks: give --param explanation=METHOD");
}

void run_attack(const AttackArgs& a, const Command& c) {
  if (a.list) {
    std::fputs(explain::list_text(attacks::methods()).c_str(), stdout);
    return;
  }
  if (a.model.empty()) throw std::invalid_argument("--model is required");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.method.empty()) throw std::invalid_argument("--method is required (see glassbox attack --list)");
  attacks::Params params = read_key_values(a.params);
  const std::string eps_key = attacks::epsilon_key(a.method);  // unknown attacks fail here
  const std::vector<double> eps = read_eps(a);
  if (!eps.empty() && eps_key.empty())
    throw std::invalid_argument("--eps: " + a.method + " has no epsilon (it looks for the smallest change; see --list)");
  if (!eps.empty() && params.count(eps_key))
    throw std::invalid_argument("--eps and --param " + eps_key + " both given; give one");
  // Each value against the attack's declared range, before any runs (the attack's own check named
  // its parameter, which the user did not give, after the earlier values had run).
  for (const explain::ParamInfo& p : attacks::method_info(a.method).params)
    for (double e : eps)
      if (p.name == eps_key && (e < p.min || e > p.max)) {
        char range[96];
        std::snprintf(range, sizeof range, "%g is outside %s's %s range [%g, %g]", e, a.method.c_str(),
                      eps_key.c_str(), p.min, p.max);
        throw std::invalid_argument("--eps '" + a.eps + "': " + range);
      }
  refuse_unread_flags(a, params, c);
  if (auto it = params.find("explanation"); it != params.end() &&
      (it->second == "smoothgrad" || it->second == "smoothgrad-sq" || it->second == "vargrad"))
    std::printf("note: %s draws each input's noise from its values, so the attacked and original maps differ by "
                "its own variance too (explain/attacks/METHODS.md: compare with direction=random)\n",
                it->second.c_str());
  if (a.explainer != "none") explain::method_info(a.explainer);  // unknown explanation methods fail before any work
  attacks::ParamReader(params, attacks::method_info(a.method));  // so do unknown keys

  Model model = open_model(a.model);
  Graph& g = model.graph;
  const Inputs in = read_inputs(model, a.inputs, a.data, a.index, a.split, a.input_space);
  const std::vector<std::string> classes = model_classes(model);
  attacks::Request q;
  q.inputs = in.x;
  q.labels = in.labels;
  q.pixels = pixel_space(model);
  for (const std::string& name : in.names) q.names.push_back((a.inputs.empty() ? "--data " : "--input ") + name);
  q.targets = read_targets(a.target, g, in.x, in.labels, a.seed);
  q.progress = tenth_progress(a.method, "inputs");

  // The attacker's initial set (substitute) or the defender's clean reference set (detection).
  const bool substitute = a.method == "substitute";
  const bool reference = substitute || (a.method == "detect-explanation" &&
                                        (!params.count("score") || params.at("score") == "class-map"));
  if (reference) {
    const std::string spec = a.ref_data.empty() ? a.data : a.ref_data;
    if (spec.empty())  // (read_inputs' "no inputs: give --input FILE..." named the wrong flag)
      throw std::invalid_argument(a.method + " needs " + (substitute ? "an initial set" : "a clean reference set") +
                                  ": give --ref-data SPEC (or --data SPEC)");
    // The default is "up to" that many: a smaller split was refused under a flag the user never gave.
    const int wanted = substitute ? 150 : 1000;
    const std::string index = !a.ref_index.empty() ? a.ref_index
                                                   : "0:" + std::to_string(std::min(wanted, load_dataset(spec, a.ref_split).size()));
    const Inputs held = read_inputs(model, {}, spec, index, a.ref_split, a.input_space, "--ref-index");
    q.data = held.x;
    q.data_labels = held.labels;
    if (substitute) q.fit_substitute = fit_substitute(classes);
    std::printf("%s: %d %s images from %s (%s split, %s)\n", a.method.c_str(), held.x.batch(),
                substitute ? "initial" : "clean reference", spec.c_str(),
                a.ref_split.c_str(), index.c_str());
  }

  std::vector<std::string> names;  // the stems of the per-input outputs, NAME_adv.npy and .png
  for (const std::string& s : in.names) names.push_back(safe_name(s));
  check_inputs_survive(a.inputs, a.out, [&](const std::string& file) {  // adversarial.npy, NAME_adv..., grid.png, ...
    bool written = file == "summary.json" || file.rfind("adversarial", 0) == 0 || file.rfind("curve", 0) == 0 ||
                   file.rfind("grid", 0) == 0;
    for (const std::string& n : names) written |= file.rfind(n + "_adv", 0) == 0;
    return written;
  });
  make_out_dir(a.out);  // before the work: a folder that cannot be made fails now, not after it
  for (const char* fixed : {"adversarial.npy", "grid.png", "summary.json"})  // (a folder there failed after the work)
    check_replaceable(a.out + "/" + fixed);
  std::vector<CurvePoint> points;
  const std::vector<double> at = eps.empty() ? std::vector<double>{NAN} : eps;
  const auto t0 = std::chrono::steady_clock::now();
  for (double e : at) {
    attacks::Params p = params;
    if (std::isfinite(e)) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.9g", e);
      p[eps_key] = buf;
      std::printf("%s at %s = %s\n", a.method.c_str(), eps_key.c_str(), buf);
    }
    points.push_back({e, attacks::attack(g, q, a.method, p)});
    const attacks::Result& r = points.back().r;
    const double correct_rate = attacks::success_rate_initially_correct(r);
    std::printf("  success rate %.3f (%s over the %d of %d inputs initially correct), robust accuracy %s, mean L2 %.4g, "
                "mean Linf %.4g\n",
                attacks::success_rate(r), std::isfinite(correct_rate) ? short_number(correct_rate).c_str() : "n/a",
                attacks::initially_correct_count(r), in.x.batch(),
                std::isfinite(accuracy(r.after, in.labels)) ? short_number(accuracy(r.after, in.labels)).c_str() : "n/a",
                mean(r.l2), mean(r.linf));
    for (auto& [k, v] : r.totals)
      if (r.notes.count(k))
        std::printf("  %s n/a: %s\n", k.c_str(), r.notes.at(k).c_str());
      else
        std::printf("  %s %.4g\n", k.c_str(), v);
    int unmoved = 0;
    for (int n = 0; n < in.x.batch(); ++n) unmoved += !r.success[n] && r.l0[n] == 0;
    // e is NaN when the epsilon is the default or --param's; only --eps 0 moves nothing by design.
    const bool thresh_zero = params.count("zero_thresh") && std::stod(params.at("zero_thresh")) == 0;
    if (unmoved && !(e <= 0) && declares(a.method, "zero_thresh"))
      std::printf(thresh_zero ? "  note: %d inputs were not moved: their loss gradient is exactly 0 (a softmax "
                                "saturated in float32)\n"
                              : "  note: %d inputs were not moved: their loss gradient is below zero_thresh everywhere "
                                "(a softmax saturated in float32, as in Captum); --param zero_thresh=0 steps along its "
                                "sign anyway\n",
                  unmoved);
  }
  const double secs = seconds_since(t0);

  const attacks::Result& last = points.back().r;
  const int N = in.x.batch();
  // In --input-space, so `--input adversarial.npy` with the same flag reads them back.
  Tensor written = last.adversarial;
  if (a.input_space == InputSpace::pixels) q.pixels.to_pixels(last.adversarial, written);
  write_npy(a.out + "/adversarial.npy", written);
  const bool images = g.input_shape().rank == 3;
  for (int n = 0; n < N; ++n) {
    const std::string stem = a.out + "/" + names[n] + "_adv";
    write_npy(stem + ".npy", written.slice(n, n + 1).reshaped(g.input_shape()));
    if (images) {
      const explain::Image im = explain::to_image(pixels_of(q.pixels, last.adversarial, n));
      const int k = enlargement_for(im.w);
      write_image(stem + ".png", explain::resize_nearest(im, im.w * k, im.h * k));
    }
  }
  if (images) write_attack_grid(a.out + "/grid.png", a, params, g, q.pixels, in, last, classes, points.back().eps);
  if (points.size() > 1) write_attack_curves(a.out, a.method, points, in.labels);

  nlohmann::json curve = nlohmann::json::array();
  for (const CurvePoint& c : points) {
    nlohmann::json j = totals_json(c.r, in.labels);
    j[eps_key.empty() ? "epsilon" : eps_key] = number_or_null(c.eps);
    if (!c.r.notes.empty()) j["notes"] = c.r.notes;
    curve.push_back(j);
  }
  nlohmann::json summary = {{"model", a.model},
                            {"input_space", space_name(a.input_space)},
                            {"method", a.method},
                            {"params", nlohmann::json(static_cast<const std::map<std::string, std::string>&>(params))},
                            {"target", a.target},
                            // unbounded (flat features): null, not [null, null]
                            {"pixel_range", q.pixels.bounded() ? nlohmann::json{q.pixels.lo, q.pixels.hi}
                                                               : nlohmann::json(nullptr)},
                            {"time_s", secs},
                            {"totals", totals_json(last, in.labels)},
                            {"notes", last.notes},  // why a null total is undefined, by its key
                            {"curve", curve},
                            {"inputs", inputs_json(in, last, classes)}};
  atomic_write(a.out + "/summary.json", summary.dump(2) + "\n");
  std::printf("wrote adversarial.npy, %d inputs' %s, %ssummary.json to %s (%.2f s)\n", N, images ? ".npy/.png" : ".npy",
              std::string(images ? "grid.png, " : "").append(points.size() > 1 ? "curve.png, " : "").c_str(), a.out.c_str(),
              secs);
}

void add_attacks_commands(Command& app) {
  auto a = std::make_shared<AttackArgs>();
  auto* c = app.add_subcommand("attack", "Adversarial examples (FGSM, PGD, Carlini-Wagner, DeepFool, JSMA), attacks on "
                                         "explanations, detection with explanations, black-box substitute attacks");
  c->add_flag("--list", a->list, "list the attacks with their parameters, defaults and conventions");
  c->add_option("--model", a->model, "a model file, a preset or an architecture text");
  c->add_option("--method", a->method, "one attack (see --list)");
  c->add_option("--input", a->inputs, "image files or .npy arrays N x C x H x W, pixels in [0, 1] (normalized as in training; see --input-space)");
  add_input_space_flag(c, &a->input_space);
  c->add_option("--data", a->data, "dataset spec for --index (fashion-mnist, mnist:DIR, ...)");
  c->add_option("--index", a->index, "dataset samples: I, I:J (half-open) or I,J,K")->capture_default_str();
  c->add_option("--split", a->split, "dataset split: train, test or all")->capture_default_str();
  c->add_option("--eps", a->eps, "epsilon in pixels (the attack's epsilon or radius), or a comma-separated list for a "
                                 "robustness curve (files are written for the last)");
  c->add_option("--target", a->target, "none (untargeted), a class number, next (label + 1), random or least-likely")
      ->capture_default_str();
  c->add_option("--seed", a->seed, "seed of --target random")->capture_default_str();
  c->add_option("--explain", a->explainer, "attribution method of the grid's explanations (see glassbox explain "
                                           "--list), or none")->capture_default_str();
  c->add_option("--ref-data", a->ref_data, "substitute: the attacker's initial images; detect-explanation: clean "
                                           "reference images (a dataset spec; default: --data)");
  c->add_option("--ref-index", a->ref_index, "which of them (I:J; default 0:150 for substitute, as Papernot et al., "
                                             "0:1000 for detection)");
  c->add_option("--ref-split", a->ref_split, "their split")->capture_default_str();
  c->add_option("--param", a->params, "attack parameter KEY=VALUE (repeatable; see --list)");
  c->add_option("--out", a->out, "output folder");
  c->callback([a, c] {
    refuse_index_with_inputs(*c, a->inputs, !a->data.empty());
    run_attack(*a, *c);
  });
}

}  // namespace

static const RegisterCommand registered_attacks_cmd("attacks", add_attacks_commands);

}  // namespace gb
