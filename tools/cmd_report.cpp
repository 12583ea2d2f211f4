// glassbox report: the survey's figures, reproduced offline in one HTML page.
//
// Every figure is made by running glassbox's own subcommands (this binary, started again with the
// step's command line inside the report folder), so every number comes from the same code as the
// CLI; this file only says which commands make which figure and lays their outputs out. A step
// whose command line, glassbox build and outputs are unchanged since the last run is reused, so a
// rerun redoes only what changed, and an interrupted report resumes where it stopped.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "data/dataset.h"
#include "data/npy.h"
#include "engine/architecture.h"
#include "engine/interrupt.h"
#include "engine/layers.h"
#include "engine/model_file.h"
#include "engine/threads.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "train/presets.h"

namespace gb {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Figure {
  std::string file;  // relative to the step's folder
  std::string caption;
};

// One glassbox command and the figures it leaves in its folder.
struct Step {
  std::string folder;                // relative to the report folder; the command's --out
  std::vector<std::string> args;     // the command line after `glassbox`
  std::vector<Figure> figures;
  std::string settings;              // what the caption says about the settings
  // Writes the step's own input files (into its folder) before it runs; no numbers of its own.
  std::function<void(const fs::path& folder)> prepare = nullptr;
  // An HTML table laid out from what the command wrote in its folder (below its figures); may add
  // what it shows to the step's numbers in report.json.
  std::function<std::string(const fs::path& folder, json& numbers)> table = nullptr;
};

struct Section {
  int id;  // the issue's and the page's numbering
  std::string title, reproduces, source;
  std::vector<std::string> needs;  // subcommands the section runs (missing: the family is not built in)
  std::function<std::vector<Step>()> steps;
};

struct Settings {
  bool quick = false;
  std::string data = "fashion-mnist";
  // Named from the data set, so another --data works too: TCAV's class (the second one: its
  // --class, and its name for the caption) and what the outputs call test sample 0.
  std::string second_class = "Trouser", second_class_name = "Trouser", first_test = "ankle-boot_0";
  int epochs() const { return quick ? 1 : 5; }
  std::string limit() const { return quick ? "6000" : "0"; }
  std::string index() const { return quick ? "0:4" : "0:8"; }
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& a : v) s += (s.empty() ? "" : " ") + (a.find_first_of(" (),;") == std::string::npos ? a : "'" + a + "'");
  return s;
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// Input noise of the model trained with noise (section 4): σ in the normalized input space, about
// 15% of Fashion-MNIST's range there (1/0.353), the noise level SmoothGrad adds at evaluation.
const char* const kTrainNoise = "0.4";

// The model files the sections use, each a training step of its own (cached like any step).
// "NAME-noise" is preset NAME trained with Gaussian input noise.
Step train_step(const Settings& s, const std::string& name, const std::string& data, int epochs) {
  const bool noisy = name.size() > 6 && name.compare(name.size() - 6, 6, "-noise") == 0;
  const std::string preset = noisy ? name.substr(0, name.size() - 6) : name;
  Step t{"models", {"train", "--model", preset, "--data", data, "--epochs", std::to_string(epochs), "--quiet"}, {}, ""};
  if (data == s.data && s.limit() != "0") t.args.insert(t.args.end(), {"--limit", s.limit()});
  if (noisy) t.args.insert(t.args.end(), {"--noise", kTrainNoise});
  t.args.insert(t.args.end(), {"--out", "models/" + name + ".safetensors"});  // last: run_step reads it there
  return t;
}
std::string model(const std::string& preset) { return "models/" + preset + ".safetensors"; }

std::string fmt(double v, const char* spec = "%.3f") {
  if (!std::isfinite(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

json read_json(const fs::path& file) {
  std::ifstream f(file);
  if (!f) throw std::runtime_error("report: " + file.string() + " is missing");
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("report: " + file.string() + " is not valid JSON");
  return j;
}

// Section 3: the methods x methods matrix of mean Pearson correlations `glassbox explain` wrote
// (summary.json "correlations", the same numbers as correlations.csv).
std::string correlation_table(const fs::path& folder, json& numbers) {
  const json summary = read_json(folder / "summary.json");
  if (!summary.contains("correlations")) throw std::runtime_error("report: no correlations in " + (folder / "summary.json").string());
  std::vector<std::string> methods;
  std::map<std::pair<std::string, std::string>, double> r;
  int inputs = 0;
  for (const json& c : summary["correlations"]) {
    const std::string a = c["a"], b = c["b"];
    for (const std::string& m : {a, b})
      if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
    const double v = c["mean"].is_number() ? c["mean"].get<double>() : NAN;
    r[{a, b}] = r[{b, a}] = v;
    inputs = std::max(inputs, c["n"].get<int>());
  }
  json matrix = json::array();
  std::string h = "<table class=\"num\"><caption>" + html_escape(folder.filename().string().substr(3)) +
                  ": mean Pearson r over " + std::to_string(inputs) + " inputs</caption>\n<tr><th></th>";
  for (const std::string& m : methods) h += "<th>" + html_escape(m) + "</th>";
  h += "</tr>\n";
  for (const std::string& a : methods) {
    h += "<tr><th>" + html_escape(a) + "</th>";
    json row = json::array();
    for (const std::string& b : methods) {
      const double v = a == b ? 1.0 : r[{a, b}];
      row.push_back(std::isfinite(v) ? json(v) : json(nullptr));
      h += "<td>" + fmt(v, "%.2f") + "</td>";
    }
    h += "</tr>\n";
    matrix.push_back(row);
  }
  numbers["correlation_matrix"] = {{"methods", methods}, {"mean_pearson", matrix}};
  return h + "</table>\n";
}

// Section 13: the survey's Table 3, measured: each method's mean score under each metric, from the
// metrics.json `glassbox evaluate` wrote (the same numbers as metrics.csv).
std::string metric_table(const fs::path& folder, json& numbers) {
  const json m = read_json(folder / "metrics.json");
  if (!m.contains("metrics") || !m.contains("methods")) throw std::runtime_error("report: no metrics in " + (folder / "metrics.json").string());
  std::vector<std::string> methods;
  for (auto& [name, params] : m["methods"].items()) methods.push_back(name);
  std::string h = "<table class=\"num\"><caption>Mean over the inputs of each metric (" + html_escape("↑ higher, ↓ lower is better") +
                  ")</caption>\n<tr><th></th>";
  json table = json::object();
  for (auto& [metric, mj] : m["metrics"].items()) {
    const std::string better = mj.value("better", "");
    h += "<th>" + html_escape(metric) + (better == "higher" ? " ↑" : better == "lower" ? " ↓" : "") + "</th>";
  }
  h += "</tr>\n";
  for (const std::string& method : methods) {
    h += "<tr><th>" + html_escape(method) + "</th>";
    for (auto& [metric, mj] : m["metrics"].items()) {
      const json* e = mj.contains("methods") && mj["methods"].contains(method) ? &mj["methods"][method] : nullptr;
      const bool has = e && e->contains("mean") && (*e)["mean"].is_number();
      const double v = has ? (*e)["mean"].get<double>() : NAN;
      table[method][metric] = has ? json(v) : json(nullptr);
      h += "<td>" + (has ? fmt(v, "%.3g") : std::string("–")) + "</td>";
    }
    h += "</tr>\n";
  }
  numbers["method_metric_table"] = table;
  return h + "</table>\n";
}

// Section 5: the relevance summed at every layer, as a share of the relevance the pass started
// with (the target's logit), mean over the inputs: 1 everywhere is perfect conservation.
std::string conservation_table(const fs::path& folder, json& numbers) {
  const json summary = read_json(folder / "summary.json");
  std::vector<std::string> methods, layers;
  std::map<std::string, std::vector<double>> share;  // per method, per layer
  for (const auto& [m, info] : summary["methods"].items()) {
    if (!info.contains("detail_layers")) continue;
    methods.push_back(m);
    layers = info["detail_layers"].get<std::vector<std::string>>();
    std::vector<double>& v = share[m];
    v.assign(layers.size(), 0.0);
    int n = 0;
    for (const json& im : summary["images"]) {
      const std::vector<double> sums = im["methods"][m]["relevance_per_layer"].get<std::vector<double>>();
      if (sums.size() != layers.size() || sums.back() == 0) continue;
      for (size_t i = 0; i < sums.size(); ++i) v[i] += sums[i] / sums.back();
      ++n;
    }
    for (double& x : v) x = n ? x / n : NAN;
  }
  if (methods.empty()) throw std::runtime_error("report: no relevance per layer in " + (folder / "summary.json").string());
  std::string h = "<table class=\"num\"><caption>Relevance summed at each layer's output, as a share of the logit "
                  "the pass starts from (mean over the inputs)</caption>\n<tr><th>layer</th>";
  for (const std::string& m : methods) h += "<th>" + html_escape(m) + "</th>";
  h += "</tr>\n";
  for (size_t i = layers.size(); i-- > 0;) {
    h += "<tr><th>" + html_escape(layers[i]) + "</th>";
    for (const std::string& m : methods) h += "<td>" + fmt(share[m][i], "%.4f") + "</td>";
    h += "</tr>\n";
  }
  numbers["relevance_share_per_layer"] = {{"layers", layers}, {"share", share}};
  return h + "</table>\n";
}

// Section 5's worked example: a 2-2-1 ReLU network with hand-set weights in the manner of Bach et
// al.'s worked example (not their numbers), written as a model file glassbox explain reads:
// z = W1 x with W1 = [[1, 1], [2, -0.5]], y = w2 . relu(z) with w2 = [1, 2], no biases; x = (1, 2).
const char* const kBachArchitecture = "input(2) dense(2,bias=false) relu dense(1,bias=false)";
void write_bach_example(const fs::path& folder) {
  Graph g = graph_from_text(kBachArchitecture);
  const std::vector<float> w1 = {1, 1, 2, -0.5f}, w2 = {1, 2};
  for (auto& [name, p] : g.named_params()) {
    const std::vector<float>& w = name == "dense1.weight" ? w1 : w2;
    if (p->value.size() != w.size()) throw std::logic_error("report: the worked example's " + name + " has another shape");
    std::copy(w.begin(), w.end(), p->value.data());
  }
  save_model((folder / "net.safetensors").string(), g);
  write_npy((folder / "x.npy").string(), Tensor::from({1, 2}, {1, 2}));
}

// The one .npy attribution a worked-example step wrote (its input is x.npy, one row).
std::vector<float> worked_values(const fs::path& folder, const std::string& method) {
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string f = e.path().filename().string();
    if (f != "x.npy" && f.size() > method.size() + 4 && f.compare(f.size() - method.size() - 4, std::string::npos, method + ".npy") == 0) {
      const Tensor t = read_npy_f32(e.path().string());
      return std::vector<float>(t.data(), t.data() + t.size());
    }
  }
  throw std::runtime_error("report: no " + method + " attribution in " + folder.string());
}

// The worked example's numbers from the two explain runs: relevance at the input (full pass) and
// at the hidden layer (the pass stopped at relu1), beside the values worked by hand.
std::string worked_table(const fs::path& folder, json& numbers) {
  const std::vector<float> in = worked_values(folder, "lrp-zero"), hidden = worked_values(folder.string() + "-hidden", "lrp-zero");
  const json summary = read_json(folder / "summary.json");
  const json& im = summary["images"].at(0);
  const std::vector<double> sums = im["methods"]["lrp-zero"]["relevance_per_layer"].get<std::vector<double>>();
  const std::vector<std::string> layers = summary["methods"]["lrp-zero"]["detail_layers"].get<std::vector<std::string>>();
  std::string h = "<table class=\"num\"><caption>LRP-0 on the 2-2-1 network, x = (1, 2): f(x) = " +
                  fmt(im["logit"].get<double>(), "%.4g") + "</caption>\n<tr><th>where</th><th>glassbox</th><th>by hand</th></tr>\n";
  auto row = [&](const std::string& what, double v, double hand) {
    h += "<tr><th>" + html_escape(what) + "</th><td>" + fmt(v, "%.4g") + "</td><td>" + fmt(hand, "%.4g") + "</td></tr>\n";
  };
  const double hand_hidden[2] = {3, 2}, hand_input[2] = {5, 0};
  for (int k = 0; k < 2 && k < int(hidden.size()); ++k) row("R(hidden " + std::to_string(k + 1) + ")", hidden[k], hand_hidden[k]);
  for (int k = 0; k < 2 && k < int(in.size()); ++k) row("R(x" + std::to_string(k + 1) + ")", in[k], hand_input[k]);
  for (size_t i = sums.size(); i-- > 0;) row("sum at " + layers[i], sums[i], 5);
  numbers["worked_example"] = {{"architecture", kBachArchitecture}, {"relevance_input", in}, {"relevance_hidden", hidden},
                               {"relevance_per_layer", sums}, {"layers", layers}};
  return h + "</table>\n";
}

std::vector<Section> sections(const Settings& s) {
  const std::string idx = s.index(), lenet = model("lenet5"), camnet = model("camnet");
  auto explain = [=](const std::string& folder, const std::string& m, const std::string& methods,
                     std::vector<std::string> extra, const std::string& caption) {
    Step t{folder, {"explain", "--model", m, "--data", s.data, "--index", idx, "--method", methods, "--out", folder},
           {{"grid.png", caption}}, "inputs " + idx + " of the test split, target: the predicted class"};
    t.args.insert(t.args.end(), extra.begin(), extra.end());
    return t;
  };
  std::vector<Section> v;
  v.push_back({1, "Class visualization and fooling images", "survey Fig. 3; the notes' fooling images",
               "Simonyan et al. 2014; Nguyen et al. 2015; CS231n", {"visualize"}, [=] {
                 return std::vector<Step>{
                     {"s1-am", {"visualize", "--model", lenet, "--method", "am", "--unit", "class:all", "--param",
                                "steps=" + std::string(s.quick ? "100" : "400"), "--out", "s1-am"},
                      {{"grid.png", "Activation maximization of every class logit (L2 and TV priors, jitter)"},
                       {"curves.png", "The objective per step"}},
                      "from noise, Adam"},
                     {"s1-fool", {"visualize", "--model", lenet, "--method", "fool", "--unit", "class:all", "--out",
                                  "s1-fool"},
                      {{"grid.png", "Noise that the model calls each class with probability 0.99"}},
                      "normalized gradient steps from noise until p >= 0.99"}};
               }});
  v.push_back({2, "Saliency, DeconvNet and Guided Backprop", "survey Fig. 4; Zeiler & Fergus 2014 Fig. 2 (top activations "
               "per layer)", "Simonyan et al. 2014; Zeiler & Fergus 2014; Springenberg et al. 2015", {"explain", "visualize"}, [=] {
                 std::vector<Step> st{explain("s2", lenet, "saliency,deconvnet,guided-backprop", {},
                                              "The three backward rules side by side on the same images")};
                 const std::string scan = s.quick ? "0:2000" : "all", k = s.quick ? "4" : "9";
                 for (const char* layer : {"conv1", "conv2"})
                   st.push_back({std::string("s2-top-") + layer,
                                 {"visualize", "--model", lenet, "--method", "top-patches", "--unit", std::string(layer) + ":all",
                                  "--data", s.data, "--scan", scan, "--param", "k=" + k, "--out", std::string("s2-top-") + layer},
                                 {{"grid.png", std::string(layer) + ": per channel, the " + k + " test images where it responds "
                                   "most, the patch around the maximum and its DeconvNet projection to pixels"}},
                                 "test images " + scan + " scanned; the projection is seeded with 1 at the maximum and runs "
                                 "through max-pool switches and the DeconvNet ReLU rule"});
                 return st;
               }});
  v.push_back({3, "Four attribution methods on four activations", "survey Table 2 (Ancona et al. 2018): the maps and "
               "the pairwise correlations between methods", "Ancona et al. 2018", {"explain"}, [=] {
                 std::vector<Step> st;
                 for (const char* act : {"lenet5", "lenet5-tanh", "lenet5-sigmoid", "lenet5-softplus"}) {
                   st.push_back(explain(std::string("s3-") + act, model(act),
                                        "input-x-gradient,integrated-gradients,lrp-epsilon,deeplift", {},
                                        std::string(act) + ": Input x Gradient, IG, epsilon-LRP, DeepLIFT"));
                   st.back().settings += "; the table: Pearson r between two methods' maps of an input (all pixels), "
                                         "mean over the inputs (summary.json, correlations.csv)";
                   st.back().table = correlation_table;
                 }
                 return st;
               }});
  v.push_back({4, "SmoothGrad noise levels and sample counts", "SmoothGrad Figs. 3-4 and 8 (noise in training vs. at evaluation)", "Smilkov et al. 2017", {"explain"}, [=] {
                 std::vector<Step> st;
                 for (const char* level : {"0.05", "0.1", "0.2", "0.3"})
                   st.push_back(explain(std::string("s4-level") + level, lenet, "smoothgrad",
                                        {"--param", std::string("level=") + level, "--param",
                                         std::string("n=") + (s.quick ? "16" : "50")},
                                        std::string("SmoothGrad, noise level ") + level + " of the input range"));
                 for (const char* n : {"1", "10", "50"})
                   st.push_back(explain(std::string("s4-n") + n, lenet, "smoothgrad", {"--param", std::string("n=") + n},
                                        std::string("SmoothGrad, ") + n + " noisy samples (noise level 0.15)"));
                 // Fig. 8: noise at training vs. at evaluation; rows: inputs, columns: method, one figure per model.
                 const std::string n = s.quick ? "16" : "50";
                 st.push_back(explain("s4-train-clean", lenet, "saliency,smoothgrad", {"--param", "n=" + n},
                                      "Trained without noise: saliency and SmoothGrad (SmoothGrad Fig. 8, top)"));
                 st.push_back(explain("s4-train-noise", model("lenet5-noise"), "saliency,smoothgrad", {"--param", "n=" + n},
                                      std::string("Trained with Gaussian input noise (sigma ") + kTrainNoise +
                                          " in the normalized input space): saliency and SmoothGrad (SmoothGrad Fig. 8, bottom)"));
                 for (Step* t : {&st[st.size() - 2], &st.back()})
                   t->settings += std::string("; SmoothGrad with noise level 0.15, n = ") + n + "; both models lenet5, " +
                                  std::to_string(s.epochs()) + " epoch(s), the same seed";
                 return st;
               }});
  v.push_back({5, "LRP: a worked example, conservation per layer, composites; IG", "Bach et al. 2015; Montavon et al. 2019 (composites); Sundararajan et al. 2017",
               "Zennit's composites", {"explain"}, [=] {
                 Step worked{"s5-worked", {"explain", "--model", "s5-worked/net.safetensors", "--input", "s5-worked/x.npy",
                                           "--target", "0", "--method", "lrp-zero", "--out", "s5-worked"},
                             {}, std::string("architecture '") + kBachArchitecture + "', W1 = [[1, 1], [2, -0.5]], w2 = [1, 2], "
                             "x = (1, 2) (a hand-set example in the manner of Bach et al.'s, not their numbers); LRP-0"};
                 worked.prepare = write_bach_example;
                 Step hidden{"s5-worked-hidden", {"explain", "--model", "s5-worked/net.safetensors", "--input", "s5-worked/x.npy",
                                                  "--target", "0", "--method", "lrp-zero", "--param", "layer=relu1", "--out",
                                                  "s5-worked-hidden"},
                             {}, worked.settings + "; relevance at the input and per layer from `glassbox " + join(worked.args) +
                                 "`, at the hidden layer from the same pass stopped at relu1 (this command)"};
                 hidden.prepare = write_bach_example;
                 hidden.table = [](const fs::path& folder, json& numbers) {
                   return worked_table(folder.parent_path() / "s5-worked", numbers);
                 };
                 Step lrp = explain("s5-lrp", lenet, "lrp-epsilon,lrp-epsilon-plus-flat,lrp-epsilon-gamma-box,lrp-epsilon-alpha2-beta1",
                                    {}, "LRP composites side by side; the table: relevance at every layer of the same passes");
                 lrp.table = conservation_table;
                 Step exact = explain("s5-ig-exact", lenet, "integrated-gradients", {"--param", "method=exact"},
                                      "Exact Integrated Gradients: the sum over the linear regions the path crosses "
                                      "(summary.json: completeness error at float rounding)");
                 if (s.quick) {  // the region walk dominates section 5: two inputs in quick mode
                   *(std::find(exact.args.begin(), exact.args.end(), "--index") + 1) = "0:2";
                   exact.settings = "inputs 0:2 of the test split (--quick), target: the predicted class";
                 }
                 return std::vector<Step>{
                     worked, hidden, lrp,
                     explain("s5-ig", lenet, "integrated-gradients", {},
                             "Integrated Gradients, 50 Gauss-Legendre steps (black baseline; summary.json: completeness "
                             "error per input)"),
                     exact};
               }});
  v.push_back({6, "Network inversion", "survey Fig. 5; decoder inversion", "Mahendran & Vedaldi 2015; Dosovitskiy & Brox 2016",
               {"visualize"}, [=] {
                 const std::string scan = s.quick ? "0:3000" : "all", epochs = s.quick ? "1" : "3";
                 return std::vector<Step>{{"s6-invert", {"visualize", "--model", lenet, "--method", "invert", "--data",
                                                         s.data, "--index", "0:3", "--out", "s6-invert"},
                                           {{"grid.png", "Images whose representation matches the input's"}},
                                           "inputs 0-2 of the test split"},
                                          {"s6-decoder", {"visualize", "--model", lenet, "--method", "decoder", "--data", s.data,
                                                          "--index", "0:3", "--scan", scan, "--param", "epochs=" + epochs,
                                                          "--out", "s6-decoder"},
                                           {{"grid.png", "Decoder inversion: a decoder per layer trained to map its activations "
                                                         "back to images, applied to each input's activations"}},
                                           "inputs 0-2 of the test split; decoders trained on training images " + scan + " (at most "
                                           "10,000), " + epochs + " epoch(s), squared error in the input space"}};
               }});
  v.push_back({7, "CAM and Guided Grad-CAM", "survey Figs. 6-7", "Zhou et al. 2016; Selvaraju et al. 2017", {"explain"}, [=] {
                 return std::vector<Step>{explain("s7", camnet, "cam,grad-cam,guided-grad-cam,grad-cam++,score-cam", {},
                                                  "camnet: CAM, Grad-CAM, Guided Grad-CAM, Grad-CAM++, Score-CAM")};
               }});
  v.push_back({8, "Occlusion, minimal images and meaningful perturbations", "survey Figs. 8-9",
               "Zeiler & Fergus 2014; Zhou et al. 2015; Fong & Vedaldi 2017",
               {"explain", "visualize"}, [=] {
                 return std::vector<Step>{
                     explain("s8-occlusion", lenet, "occlusion,occlusion-map", {},
                             "The logit's drop under a sliding occluder (Captum's occlusion), and the true class's "
                             "probability with the occluder centred on each pixel (Zeiler & Fergus Fig. 7: dark where "
                             "the class needs the image)"),
                     {"s8-minimal", {"visualize", "--model", lenet, "--method", "minimal-image", "--data", s.data,
                                     "--index", "0:3", "--out", "s8-minimal"},
                      {{"grid.png", "Minimal images: as little of the input as keeps the prediction"}},
                      "inputs 0-2 of the test split"},
                     {"s8-mask", {"visualize", "--model", lenet, "--method", "mask", "--data", s.data, "--index", "0:3",
                                  "--out", "s8-mask"},
                      {{"grid.png", "Meaningful perturbation (Fong & Vedaldi 2017): the smallest smooth mask whose "
                                    "blurring removes the class"}},
                      "inputs 0-2 of the test split"}};
               }});
  v.push_back({9, "LIME, concepts and probes", "the notes' LIME figure; TCAV with significance; probe accuracy per layer; "
               "Network Dissection", "Ribeiro et al. 2016; Kim et al. 2018; Alain & Bengio 2016; Bau et al. 2017",
               {"explain", "concepts", "probe", "dissect"}, [=] {
                 const std::string n = s.quick ? "5000" : "0";
                 return std::vector<Step>{
                     explain("s9-lime", lenet, "lime", {}, "LIME on SLIC superpixels"),
                     {"s9-tcav", {"concepts", "--model", lenet, "--layer", "relu2,dense1", "--class", s.second_class, "--concept",
                                  "stripes-v=pattern:stripes-v", "--concept", "stripes-h=pattern:stripes-h", "--concept",
                                  "dots=pattern:dots", "--out", "s9-tcav"},
                      {{"tcav.png", "TCAV scores for class " + s.second_class_name + ", with one standard deviation over 10 random sets; "
                                    "n.s.: not significant against random CAVs"}},
                      "generated concept patterns, random sets from the training split"},
                     {"s9-probe", {"probe", "--model", lenet, "--layers", "all", "--train-limit", n, "--test-limit",
                                   s.quick ? "2000" : "0", "--out", "s9-probe"},
                      {{"probe_accuracy.png", "Linear-probe test accuracy at every layer"}},
                      "softmax probes on standardized activations"},
                     {"s9-dissect", {"dissect", "--model", lenet, "--concepts", "data:" + s.data + "@split=test,n=1000",
                                     "--param", "quantile=0.05", "--out", "s9-dissect"},
                      {{"detectors.png", "Network Dissection: units that detect a class silhouette or part, per layer"}},
                      "object silhouettes and parts of 1,000 test images; activation quantile 0.05 (28x28 maps are small)"}};
               }});
  v.push_back({10, "Training examples behind a prediction", "survey §4.3.2", "Koh & Liang 2017; Yeh et al. 2018; Kim et al. 2016",
               {"influence", "prototypes"}, [=] {
                 const std::string lim = s.quick ? "3000" : "20000";
                 return std::vector<Step>{
                     {"s10-influence", {"influence", "--model", lenet, "--data", s.data, "--index", "0:2", "--method",
                                        "influence,representer", "--train-limit", lim, "--out", "s10-influence"},
                      {{"influence_grid.png", "Most helpful and harmful training images (influence functions, last layer)"},
                       {"representer_grid.png", "Representer points"}},
                      "the first " + lim + " training images"},
                     {"s10-prototypes", {"prototypes", "--data", s.data, "--limit", s.quick ? "2000" : "10000", "--class",
                                         "all", "--out", "s10-prototypes"},
                      {{"prototypes.png", "MMD-critic prototypes and criticisms (pixels)"}},
                      "RBF kernel on pixels"}};
               }});
  v.push_back({12, "OpenBox regions", "what no other library shows: exact local linear models", "Chu et al. 2018 (OpenBox)",
               {"regions"}, [=] {
                 return std::vector<Step>{
                     {"s12-region", {"regions", "--model", lenet, "--data", s.data, "--index", "0", "--out", "s12-region"},
                      {{"features.png", "The decision features of the region around test image 0"}},
                      "test image 0"},
                     {"s12-line", {"regions", "--model", lenet, "--data", s.data, "--line", "0,1", "--out", "s12-line"},
                      {{"line.png", "The linear regions along the segment between test images 0 and 1"}},
                      "segment between test images 0 and 1"},
                     {"s12-plane", {"regions", "--model", model("toy2d"), "--data", "toy:spirals", "--plane", "--size",
                                    "384", "--out", "s12-plane"},
                      {{"plane.png", "Every linear region of toy2d on the spirals, coloured by class"}},
                      "toy2d trained on toy:spirals"}};
               }});
  v.push_back({13, "Evaluating explanations", "survey Table 3, measured; Adebayo et al. 2018 (sanity checks)",
               "Quantus; Petsiuk et al. 2018", {"evaluate"}, [=] {
                 std::vector<Step> st{
                     {"s13-sanity", {"evaluate", "--model", lenet, "--data", s.data, "--index", "0:4", "--method",
                                     "saliency,guided-backprop,integrated-gradients", "--metric", "cascading-randomisation",
                                     "--out", "s13-sanity"},
                      {{"grid_cascading-randomisation.png", "Sanity check: explanations as the layers are re-initialized "
                                                            "from the top down (Adebayo et al.'s cascade)"},
                       {"curve_cascading-randomisation_spearman-abs.png", "Rank correlation with the original explanation "
                                                                          "per randomized layer"}},
                      "test images 0-3; layers re-initialized with their initializer, seeded"},
                     {"s13", {"evaluate", "--model", lenet, "--data", s.data, "--index", idx,
                                                    "--method", "saliency,integrated-gradients,lrp-epsilon", "--metric",
                                                    "deletion,insertion,max-sensitivity,sparseness", "--out", "s13"},
                                           {{"curve_deletion.png", "Deletion curves per method"},
                                            {"curve_insertion.png", "Insertion curves per method"}},
                                           "inputs " + idx + "; the table: each metric's mean (metrics.csv holds every value)"}};
                 st.back().table = metric_table;
                 return st;
               }});
  v.push_back({11, "Surrogate and interpretable-by-design models", "survey §3.1.2",
               "Frosst & Hinton 2017; Ribeiro et al. 2018; Abbasi-Asl & Yu 2017", {"distill", "prune", "rules"}, [=] {
                 return std::vector<Step>{
                     {"s11-distill", {"distill", "--teacher", lenet, "--student", "soft-tree:6", "--epochs",
                                      s.quick ? "1" : "10", "--limit", s.quick ? "6000" : "0", "--out",
                                      "s11-distill/tree.safetensors"},
                      {{"tree.tree.png", "A depth-6 soft decision tree distilled from lenet5: node filters, leaves and a "
                                         "test input's path"}},
                      "temperature 4, alpha 0.9; tree.tree.json holds accuracy and fidelity"},
                     {"s11-rules", {"rules", "--model", lenet, "--data", s.data, "--index", "0", "--method", "anchors,tree",
                                    "--param", "fill=0", "--out", "s11-rules"},
                      {{s.first_test + "_anchors.png", "An Anchors rule: the superpixels that fix the prediction (red)"}},
                      "superpixels hidden by black; tree_tree.json holds the extracted rule tree and its fidelity"},
                     {"s11-prune", {"prune", "--model", camnet, "--max-drop", "0.01", "--val-limit", s.quick ? "300" : "2000",
                                    "--test-limit", s.quick ? "1000" : "0", "--out", "s11-prune/pruned.safetensors"},
                      {{"pruned.prune.png", "Filter pruning: accuracy as the cheapest filters go"},
                       {"pruned.prune_am.png", "Kept and pruned filters by activation maximization"}},
                      "camnet, greedy by validation-accuracy drop, stop at 1 point"}};
               }});
  v.push_back({14, "Attacks and explanations", "survey §4.1.1 (fragility)", "Madry et al. 2018 (PGD); Ghorbani et al. 2019",
               {"attack"}, [=] {
                 const std::string n = s.quick ? "0:32" : "0:256";
                 return std::vector<Step>{
                     {"s14-pgd", {"attack", "--model", lenet, "--data", s.data, "--index", n, "--method", "pgd", "--eps",
                                  "0,0.01,0.02,0.05,0.1", "--out", "s14-pgd"},
                      {{"curve.png", "Robust accuracy and success rate of PGD over the L-infinity radius (pixels)"},
                       {"grid.png", "Adversarial examples and their explanations"}},
                      "test images " + n + ", PGD-40, untargeted"},
                     {"s14-fragile", {"attack", "--model", lenet, "--data", s.data, "--index", "0:8", "--method",
                                      "explanation-topk", "--eps", "0.01,0.02,0.04", "--out", "s14-fragile"},
                      {{"curve.png", "Explanation fragility: top-k intersection of saliency maps under attacks that keep the label"},
                       {"grid.png", "Inputs, label-preserving perturbations and the maps before and after"}},
                      "test images 0-7, saliency, Ghorbani et al.'s top-k attack"}};
               }});
  std::sort(v.begin(), v.end(), [](const Section& a, const Section& b) { return a.id < b.id; });
  return v;
}

// The training steps a section needs, from the model files its steps read.
std::vector<Step> models_needed(const Settings& s, const std::vector<Step>& steps) {
  std::set<std::string> seen;
  std::vector<Step> out;
  for (const Step& t : steps)
    for (const std::string& a : t.args)
      if (a.rfind("models/", 0) == 0 && t.args[0] != "train" && seen.insert(a).second) {
        const std::string preset = fs::path(a).stem().string();
        const bool toy = preset == "toy2d";
        out.push_back(train_step(s, preset, toy ? "toy:spirals" : s.data, toy ? (s.quick ? 10 : 30) : s.epochs()));
      }
  return out;
}

// Runs `glassbox ARGS` in `dir` with output to log; returns the exit status.
int run_glassbox(const fs::path& dir, const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> full = {"glassbox", "--threads", std::to_string(threads())};
  full.insert(full.end(), args.begin(), args.end());
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("report: cannot start a process");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || chdir(dir.c_str()) != 0) _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  forward_stop_signal_to(pid);
  int status = 0;
  waitpid(pid, &status, 0);
  forward_stop_signal_to(0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string last_lines(const fs::path& file, int n) {
  std::ifstream f(file);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  std::string s;
  for (size_t i = lines.size() > size_t(n) ? lines.size() - n : 0; i < lines.size(); ++i) s += lines[i] + "\n";
  return s;
}

// A file's bytes as a 64-bit FNV-1a hash, in hex.
std::string file_hash(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  uint64_t h = 1469598103934665603ull;
  char buf[1 << 16];
  while (f.read(buf, sizeof buf) || f.gcount() > 0) {
    for (std::streamsize i = 0; i < f.gcount(); ++i) h = (h ^ uint8_t(buf[i])) * 1099511628211ull;
    if (!f) break;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string(hex);
}

// This glassbox binary, as a hash of its bytes: a step made by another build (an upgrade that
// writes more, or fixes a number) is redone, not reused.
const std::string& binary_id() {
  static const std::string id = file_hash("/proc/self/exe");
  return id;
}

// The files a step reads, by content: every argument (and every part of a data spec between ':',
// ',' and '=') that names a file or folder, except --out's. A retrained model or replaced data
// then reruns the steps that read it; they were reused with their old figures. Each file is hashed
// once per run.
std::string inputs_fingerprint(const fs::path& root, const std::vector<std::string>& args) {
  static std::map<std::string, std::string> hashed;  // path + size + time -> hash
  auto hash_of = [](const fs::path& p) {
    std::error_code ec;
    const std::string key = p.string() + "|" + std::to_string(fs::file_size(p, ec)) + "|" +
                            std::to_string(fs::last_write_time(p, ec).time_since_epoch().count());
    auto it = hashed.find(key);
    return it != hashed.end() ? it->second : (hashed[key] = file_hash(p));
  };
  std::string out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--out") {
      ++i;
      continue;
    }
    std::string piece;
    for (size_t k = 0; k <= args[i].size(); ++k) {
      if (k < args[i].size() && std::string(":,=").find(args[i][k]) == std::string::npos) {
        piece += args[i][k];
        continue;
      }
      const fs::path p = fs::path(piece).is_absolute() ? fs::path(piece) : root / piece;
      std::error_code ec;
      if (!piece.empty() && fs::is_regular_file(p, ec)) {
        out += "# reads " + piece + " " + hash_of(p) + "\n";
      } else if (!piece.empty() && fs::is_directory(p, ec)) {
        std::vector<fs::path> files;
        for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
          if (it->is_regular_file(ec)) files.push_back(it->path());
        std::sort(files.begin(), files.end());
        for (const fs::path& f : files) out += "# reads " + f.string() + " " + hash_of(f) + "\n";
      }
      piece.clear();
    }
  }
  return out;
}

fs::path step_stamp(const fs::path& root, const Step& t) {
  return root / t.folder /
         (t.args[0] == "train" ? fs::path(t.args.back()).stem().string() + ".command" : "command.txt");
}

std::string step_stamp_text(const fs::path& root, const Step& t) {
  return join(t.args) + "\n# glassbox build " + binary_id() + "\n" + inputs_fingerprint(root, t.args);
}

// Whether the last run left this step as it would make it now: its stamp (command line, glassbox
// build, the bytes it reads) and its outputs.
bool step_current(const fs::path& root, const Step& t, const std::string& stamp_text) {
  const fs::path stamp = step_stamp(root, t);
  std::ostringstream last;
  last << std::ifstream(stamp).rdbuf();
  bool done = fs::exists(stamp) && last.str() == stamp_text;
  for (const Figure& f : t.figures) done = done && fs::exists(root / t.folder / f.file);
  if (t.args[0] == "train") done = done && fs::exists(root / t.args.back());
  return done;
}

// Runs a step unless it is current (step_current). Returns "" on success, else the error to show.
std::string run_step(const fs::path& root, const Step& t, bool& cached) {
  const fs::path folder = root / t.folder, stamp = step_stamp(root, t);
  fs::create_directories(folder);
  if (t.prepare) {  // deterministic files: rewriting them changes nothing
    try {
      t.prepare(folder);
    } catch (const std::exception& e) {
      cached = false;
      return std::string("writing the inputs of ") + t.folder + " failed: " + e.what();
    }
  }
  const std::string cmd = join(t.args);
  const std::string stamp_text = step_stamp_text(root, t);
  const bool done = step_current(root, t, stamp_text);
  cached = done;
  if (done) return "";
  fs::remove(stamp);
  const fs::path log = folder / (stamp.stem().string() + ".log");
  const int status = run_glassbox(root, t.args, log);
  if (status != 0) return "`glassbox " + cmd + "` failed (exit " + std::to_string(status) + "):\n" + last_lines(log, 6);
  for (const Figure& f : t.figures)
    if (!fs::exists(folder / f.file)) return "`glassbox " + cmd + "` did not write " + (t.folder + "/" + f.file);
  std::ofstream(stamp) << stamp_text;
  return "";
}

// The numbers a step's command wrote (summary.json, metrics.json or region.json), for report.json.
json step_numbers(const fs::path& folder) {
  for (const char* name : {"summary.json", "metrics.json", "region.json"}) {
    std::ifstream f(folder / name);
    if (f) return json::parse(f, nullptr, false);
  }
  return nullptr;
}

// Says on the browser's console when a figure is missing or lies outside the page's folder
// (tools/report_check.sh fails on any console message).
const char* const kSelfCheck =
    "<script>\n"
    "const here = location.href.replace(/[^/]*$/, '');\n"
    "for (const img of document.images) {\n"
    "  const bad = () => console.error('figure not loaded: ' + img.src);\n"
    "  if (!img.src.startsWith(here)) console.error('figure outside the report folder: ' + img.src);\n"
    "  if (img.complete && !img.naturalWidth) bad(); else img.addEventListener('error', bad);\n"
    "}\n"
    "</script>\n";

void write_page(const fs::path& root, const std::string& html, const json& numbers) {
  atomic_write((root / "report.json").string(), numbers.dump(1) + "\n");
  atomic_write((root / "index.html").string(), html);
}

}  // namespace

void add_report_command(Command& app) {
  auto* cmd = app.add_subcommand("report", "The survey's figures reproduced offline in one HTML page (index.html and report.json)");
  struct Opts {
    std::string out, sections, data = "fashion-mnist";
    bool quick = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--out", o->out, "report folder (index.html, report.json, one folder per figure, models/)")->required();
  cmd->add_option("--sections", o->sections, "section numbers to build, comma-separated (default: all)");
  cmd->add_flag("--quick", o->quick, "small sample counts and one epoch on 6,000 images: a few minutes on 2 cores");
  cmd->add_option("--data", o->data, "the image dataset the models are trained on")->capture_default_str();
  cmd->callback([o, &app] {
    const auto t0 = std::chrono::steady_clock::now();
    Settings s;
    s.quick = o->quick;
    s.data = absolute_spec(o->data);  // the steps run in the report folder
    if (s.data != "fashion-mnist") {
      // Read now: a set that is not there (mnist:/nonexistent) failed 61 steps one by one.
      const Dataset test = load_dataset(s.data, "test");
      // The report trains these presets on the data: a shape they cannot take failed every step
      // after minutes of the others.
      for (const char* preset : {"lenet5", "camnet"}) {
        try {
          make_preset(preset, test.x.shape().sample(), test.classes());
        } catch (const std::exception& e) {
          refuse_flag("--data", "'" + o->data + "': its samples " + test.x.shape().sample().str() +
                                    " do not fit the report's models (" + preset + ": " + e.what() + ")");
        }
      }
      if (test.size() > 0) s.first_test = sample_name(test, 0);
      // By number: --class reads a number as an index first, and folder names can be numbers.
      s.second_class = test.classes() > 1 ? "1" : "0";
      s.second_class_name = test.class_names.empty() ? s.second_class : test.class_names[size_t(test.classes() > 1)];
    }
    const std::vector<Section> all = sections(s);
    std::set<int> wanted;
    for (const std::string& item : split_list(o->sections, "--sections")) {
      long n = 0;
      if (!parse_number(item, n) || n < 1 || n > long(all.size()))
        refuse_flag("--sections", "'" + item + "' is not a section number 1.." + std::to_string(all.size()));
      wanted.insert(int(n));
    }
    if (s.data == "fashion-mnist" && !dataset_available("fashion-mnist"))
      throw std::runtime_error("report: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist), or "
                               "give another dataset with --data");
    const fs::path root = o->out;
    make_parent_dir((root / "index.html").string());  // (a file at --out gave a bare filesystem error)
    std::string body, toc;
    json numbers = {{"quick", s.quick}, {"data", s.data}, {"sections", json::array()}};
    int failed = 0;
    for (const Section& sec : all) {
      const int id = sec.id;
      // A section not asked for stays on the page when an earlier run left it current (a
      // --sections run rewrote the page with its sections alone); it is not rebuilt.
      if (!wanted.empty() && !wanted.count(id)) {
        bool current = true;
        std::vector<Step> steps = sec.steps(), need = models_needed(s, steps);
        need.insert(need.end(), steps.begin(), steps.end());
        for (const Step& t : need)
          current = current && fs::is_directory(root / t.folder) && step_current(root, t, step_stamp_text(root, t));
        if (!current || need.empty()) continue;
      }
      const std::string anchor = "s" + std::to_string(id);
      toc += "<li><a href=\"#" + anchor + "\">" + std::to_string(id) + ". " + html_escape(sec.title) + "</a></li>\n";
      body += "<section id=\"" + anchor + "\">\n<h2>" + std::to_string(id) + ". " + html_escape(sec.title) + "</h2>\n";
      body += "<p class=\"src\">Reproduces " + html_escape(sec.reproduces) + ". Source: " + html_escape(sec.source) + ".</p>\n";
      json js = {{"section", id}, {"title", sec.title}, {"steps", json::array()}};
      std::string missing;
      for (const std::string& c : sec.needs)
        if (!app.has_subcommand(c)) missing += (missing.empty() ? "" : ", ") + c;
      if (!missing.empty()) {
        body += "<p class=\"missing\">Not in this build: the <code>" + html_escape(missing) +
                "</code> command (its family has not landed).</p>\n</section>\n";
        js["missing"] = missing;
        numbers["sections"].push_back(js);
        continue;
      }
      std::vector<Step> steps = sec.steps(), need = models_needed(s, steps);
      need.insert(need.end(), steps.begin(), steps.end());
      for (const Step& t : need) {
        bool cached = false;
        poll_interrupt();  // Ctrl-C stops the report between steps (the step it hit fails, as its command stopped)
        std::printf("[%d] glassbox %s", id, join(t.args).c_str());
        const auto t_step = std::chrono::steady_clock::now();
        const std::string err = run_step(root, t, cached);
        const double step_secs = seconds_since(t_step);
        std::printf("%s\n", cached ? "  (reused)" : err.empty() ? ("  (done, " + fmt(step_secs, "%.1f") + " s)").c_str() : "  FAILED");
        json jt = {{"command", "glassbox " + join(t.args)}, {"folder", t.folder}, {"ok", err.empty()}, {"seconds", step_secs},
                   {"reused", cached}};
        if (!err.empty()) {
          ++failed;
          jt["error"] = err;
          body += "<pre class=\"error\">" + html_escape(err) + "</pre>\n";
          js["steps"].push_back(jt);
          continue;
        }
        if (t.args[0] == "train") {
          jt["model"] = t.args.back();
          js["steps"].push_back(jt);
          continue;
        }
        jt["numbers"] = step_numbers(root / t.folder);
        for (const Figure& f : t.figures) {
          const std::string src = t.folder + "/" + f.file;
          jt["figures"].push_back(src);
          body += "<figure><img src=\"" + html_escape(src) + "\" alt=\"" + html_escape(f.caption) + "\">\n<figcaption><b>" +
                  html_escape(f.caption) + ".</b> Settings: " + html_escape(t.settings) + ". Regenerate alone: <code>glassbox " +
                  html_escape(join(t.args)) + "</code> (in this folder).</figcaption></figure>\n";
        }
        if (t.table) {
          try {
            body += "<figure>" + t.table(root / t.folder, jt) + "<figcaption>Settings: " + html_escape(t.settings) +
                    ". Numbers from <code>" + html_escape(t.folder) + "/" +
                    (fs::exists(root / t.folder / "metrics.json") ? "metrics.json" : "summary.json") +
                    "</code>, written by <code>glassbox " +
                    html_escape(join(t.args)) + "</code> (in this folder).</figcaption></figure>\n";
          } catch (const std::exception& e) {
            ++failed;
            jt["ok"] = false;
            jt["error"] = e.what();
            body += "<pre class=\"error\">" + html_escape(e.what()) + "</pre>\n";
          }
        }
        js["steps"].push_back(jt);
      }
      body += "</section>\n";
      numbers["sections"].push_back(js);
    }
    const double secs = seconds_since(t0);
    numbers["seconds"] = secs;
    char took[64];
    std::snprintf(took, sizeof took, "%.0f", secs);
    const std::string html =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>glassbox report</title>\n<style>\n"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}\n"
        // Figures at their own size, scrolled sideways when wider than the page: shrunk to fit, their
        // 7-pixel text lost strokes and could not be read.
        "figure{margin:1.5em 0;overflow-x:auto}img{max-width:none;image-rendering:pixelated;border:1px solid #ccc}\n"
        "figcaption{font-size:0.95em;color:#333}code{background:#f3f3f3;padding:0 0.2em;word-break:break-all}\n"
        "table.num{border-collapse:collapse;margin:0.5em 0}table.num td,table.num th{border:1px solid #ccc;padding:0.2em 0.5em}"
        "table.num td{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;font-weight:bold}\n"
        ".missing{color:#666;font-style:italic}.error{color:#a00;white-space:pre-wrap}.src{color:#444}\n"
        "</style>\n</head>\n<body>\n<h1>glassbox report</h1>\n<p>Models trained on <code>" + html_escape(s.data) + "</code>" +
        (s.quick ? " with <code>--quick</code> (one epoch on 6,000 images, few samples)" : "") + "; this run took " + took +
        " s (steps reused from earlier runs are not redone). Every figure was made by the glassbox command in its caption; "
        "report.json holds the numbers each command wrote.</p>\n<nav><ol>\n" + toc + "</ol></nav>\n" + body + kSelfCheck + "</body>\n</html>\n";
    write_page(root, html, numbers);
    std::printf("wrote %s (%s s)\n", (root / "index.html").c_str(), took);
    if (failed) throw std::runtime_error("report: " + std::to_string(failed) + " step(s) failed; see index.html");
  });
}

static const RegisterCommand registered_report_cmd("report", add_report_command);

}  // namespace gb
