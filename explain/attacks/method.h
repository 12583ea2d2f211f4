// How the family's attacks plug into attack(): each file appends its attacks (declaration and run
// function) to the registry. attack() checks the request, resolves each input's class, puts the
// inputs into pixels and builds a ParamReader on the declaration, so a run function reads exactly
// the declared keys (checked afterwards); it then measures what the run function returns
// (predictions, success, norms).
#pragma once
#include <functional>

#include "engine/argmax.h"
#include "engine/rng.h"
#include "explain/attacks/attacks.h"

namespace gb::attacks {

// The model seen from pixel space: logits of pixel images and gradients with respect to pixels,
// through the model's normalization. Buffers are kept from call to call, so a loop of forward and
// backward passes allocates nothing once they have grown.
class PixelModel {
 public:
  PixelModel(Graph& g, const PixelSpace& s) : g_(g), s_(s) {}
  Graph& graph() { return g_; }
  const PixelSpace& space() const { return s_; }
  int classes() const { return g_.classes(); }

  // The logits of pixel images p [n, input...]; valid until the next call.
  const Tensor& logits(const Tensor& p);
  // The gradient of Σ_n ⟨seed_n, logits_n⟩ with respect to the pixels of the last logits() call
  // (seed [n, classes]); valid until the next call. May be called again with another seed.
  const Tensor& gradient(const Tensor& seed);
  // Each sample's cross-entropy at classes[n] (its own loss: Reduction::sum) and its gradient with
  // respect to p. Losses go to `losses` when given.
  const Tensor& loss_gradient(const Tensor& p, const int* classes, std::vector<double>* losses = nullptr);
  // The predicted class of each row of p.
  std::vector<int> predict(const Tensor& p, int batch = 256);

 private:
  Graph& g_;
  const PixelSpace& s_;
  Tensor x_, grad_, seed_;
  std::vector<int> classes_;
};

// One run of an attack: the inputs in pixels, each input's class and target, and where the run
// function puts its answer.
struct Job {
  Graph& model;
  const Request& request;
  const PixelSpace& pixels;
  Tensor start;             // [N, input...]: the inputs in pixels
  std::vector<int> predicted;  // per input: the model's class
  std::vector<int> label;   // per input: its class (the request's label, or the prediction)
  std::vector<int> target;  // targeted: per input; empty: untargeted
  Tensor adversarial;       // the run function's answer, in pixels, shaped like start
  std::map<std::string, std::vector<double>> values;  // per input numbers (Result::values)
  std::map<std::string, Tensor> maps;
  std::map<std::string, double> totals;
  std::map<std::string, std::string> notes;  // Result::notes
  std::vector<char> success;  // set by methods whose success is not a change of class

  int size() const { return start.batch(); }
  bool targeted() const { return !target.empty(); }
  // The class each input's loss is taken at: the target (targeted) or the label.
  const int* loss_classes() const { return targeted() ? target.data() : label.data(); }
  // Progress: inputs [b, e) are `done` of `total` steps through.
  void progress(int b, int e, int done, int total) const;
};

using RunFn = std::function<void(Job&, ParamReader&)>;

struct Method {
  MethodInfo info;
  RunFn run;
};

void add_gradient_attacks(std::vector<Method>& registry);   // gradient_attacks.cpp: fgsm, pgd
void add_cw(std::vector<Method>& registry);                  // cw.cpp: cw (Carlini-Wagner L2)
void add_deepfool(std::vector<Method>& registry);            // deepfool.cpp
void add_jsma(std::vector<Method>& registry);                // jsma.cpp
void add_explanation_attacks(std::vector<Method>& registry);  // explanation_attacks.cpp
void add_detection(std::vector<Method>& registry);           // detect.cpp
void add_substitute(std::vector<Method>& registry);          // substitute.cpp

// Rows per batch of graph passes: enough to keep both cores busy, small enough for the
// activations of every layer of an image model to stay in memory.
constexpr int kChunk = 256;
// Calls fn(b, e) on consecutive chunks of [0, n) of at most `chunk` rows.
void for_chunks(int n, int chunk, const std::function<void(int b, int e)>& fn);

// Readers that bound what drives run time: an error names the method, the key, the value and the
// accepted range.
using explain::read_choice;
using explain::read_int;
using explain::read_number;

// Clamps every element of p into [lo, hi].
void clamp_pixels(Tensor& p, const PixelSpace& s);
// Row n of a tensor [N, ...] as a pointer.
inline float* row(Tensor& t, int n) { return t.data() + size_t(n) * t.sample_size(); }
inline const float* row(const Tensor& t, int n) { return t.data() + size_t(n) * t.sample_size(); }

}  // namespace gb::attacks
