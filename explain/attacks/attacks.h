// Adversarial examples and attacks on explanations, the family's API: attack(model, request,
// method, params) runs one registered attack on a batch of inputs and returns the adversarial
// inputs (batch first, shaped like the inputs, in the model's input space) with each input's
// prediction before and after, success and perturbation norms.
//
// Every attack moves pixels: ε, step sizes and norms are in pixel units, inside the valid pixel
// range ([0, 1] by default), and the model sees each candidate through its stored normalization
// (PixelSpace). Every attack is a batched use of the model's one graph (a forward pass, then a
// backward pass seeded at the logits), never a copy of its layers; the second-order terms of the
// attacks on explanations run on a softplus copy of it (surrogate.h). The definitions, defaults
// and the reference conventions they follow are in explain/attacks/METHODS.md and `--list`.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/passes.h"
#include "explain/common/params.h"

namespace gb::attacks {

using explain::MethodInfo;
using explain::ParamInfo;
using explain::ParamReader;
using explain::Params;

// Where an attack's variable lives: pixels p in [lo, hi], which the model takes as
// x = (p − mean_c) / std_c per channel c (dim 1), its stored normalization ("glassbox.normalize").
struct PixelSpace {
  std::vector<float> mean, std;  // one per channel, or one for all; empty: x = p
  float lo = 0.f, hi = 1.f;      // the valid pixel range; ±infinity: unbounded (non-image inputs)

  float mean_of(int c) const { return mean.empty() ? 0.f : mean[size_t(c) % mean.size()]; }
  float std_of(int c) const { return std.empty() ? 1.f : std[size_t(c) % std.size()]; }
  bool bounded() const;  // both ends finite
  void to_pixels(const Tensor& x, Tensor& p) const;  // p = x · std + mean (p resized)
  void to_input(const Tensor& p, Tensor& x) const;   // x = (p − mean) / std (x resized)
  // A gradient with respect to x, made one with respect to p (÷ std), in place.
  void gradient_to_pixels(Tensor& g) const;
  // Throws naming the problem unless mean and std fit `channels` and std > 0, lo < hi.
  void check(int channels) const;
};

// How a substitute model is trained for the black-box attack: the command line's loop (train/),
// handed in because explain/ never depends on train/. Trains `substitute` in place on x (input
// space) with labels; `round` counts the augmentation rounds from 0.
struct SubstituteFit {
  int epochs = 10, batch = 32, round = 0;
  double lr = 1e-3;
  uint64_t seed = 0;
};
using FitSubstitute =
    std::function<void(Graph& substitute, const Tensor& x, const std::vector<int>& labels, const SubstituteFit&)>;

struct Request {
  Tensor inputs;              // [N, input...] in the model's input space, inside the pixel range
  std::vector<int> labels;    // the class an untargeted attack moves each input away from; -1 or empty: its prediction
  std::vector<int> targets;   // targeted attacks: the class each input should reach; empty: untargeted
  PixelSpace pixels;
  std::vector<std::string> names;  // what errors call each input (the command: "--input a.png"); empty: "input N"
  Progress progress;          // (inputs done, inputs) of long runs
  // Detection and the substitute attack: a labelled set the defender (detection: clean class
  // maps) or the attacker (substitute: the initial training set) holds, in the model's input space.
  Tensor data;
  std::vector<int> data_labels;
  FitSubstitute fit_substitute;
};

struct Result {
  Tensor adversarial;            // [N, input...] in the model's input space
  std::vector<int> label;        // the class each input was attacked away from (or kept, for explanation attacks)
  std::vector<int> target;       // targeted: the class to reach; else -1
  std::vector<int> before, after;  // predicted class of the input and of the adversarial input
  std::vector<char> success;     // untargeted: after ≠ label; targeted: after = target; explanation attacks: see METHODS.md
  std::vector<double> l0, l2, linf;  // of the perturbation in pixels (L0: elements changed by more than 1e-6)
  std::map<std::string, std::vector<double>> values;  // per input: the method's own numbers (steps, c, intersection...)
  std::map<std::string, Tensor> maps;   // explanation attacks: "benign" and "attacked" importance maps [N,1,H,W]
  std::map<std::string, double> totals;  // over the batch: detection's ROC-AUC, the substitute's transfer rate...
  std::map<std::string, std::string> notes;  // why a total is undefined (NaN), by its key
};

const std::vector<MethodInfo>& methods();
const MethodInfo& method_info(const std::string& name);  // throws listing the known attacks

// Runs one attack on every input. Throws on an unknown attack or parameter, a parameter outside
// its documented range, inputs that do not fit the model or lie outside the pixel range or are not
// finite, labels or targets outside the model's classes, or a method's own conditions (named in
// its message).
Result attack(Graph& model, const Request& request, const std::string& method, const Params& params = {});

// The keys through which `--eps` reaches an attack (epsilon, or PGD's radius, as Captum names
// them); empty when the attack has no ε (CW, DeepFool and JSMA look for the smallest change).
std::string epsilon_key(const std::string& method);

// Whether the attack reads Request::data (a reference set): substitute (the attacker's initial
// images) and detect-explanation with score=class-map (clean inputs per class). Others ignore it,
// so the command and the Python package refuse one given to them.
bool reads_reference_set(const std::string& method, const Params& params);

// The fraction of inputs with success.
double success_rate(const Result& r);
// Whether the model classified input n correctly before the attack: before[n] == label[n] (the
// request's label; without one the label is the prediction, so every input counts).
inline bool initially_correct(const Result& r, int n) { return r.before[size_t(n)] == r.label[size_t(n)]; }
// How many inputs were initially correct.
int initially_correct_count(const Result& r);
// The fraction with success among the initially correct inputs, as Foolbox and torchattacks report
// an attack's success (an input already misclassified is no success of the attack); NaN when none
// was correct.
double success_rate_initially_correct(const Result& r);

}  // namespace gb::attacks
