// The black-box substitute attack (Papernot et al. 2017, "Practical black-box attacks against
// machine learning"). The attacker sees only the target model's labels (the oracle Õ). From a
// small initial set S₀ (Request::data, the attacker's own images) it trains a substitute F on
// Õ(S_ρ) and grows the set by Jacobian-based dataset augmentation, `rounds` times:
//   S_{ρ+1} = S_ρ ∪ { clip(p + λ_ρ · sign(∇_p F_{Õ(p)}(p))) : p ∈ S_ρ },  λ_ρ = λ·(−1)^⌊ρ/τ⌋
// (the periodic step size of the paper's §5; F_k the substitute's logit of class k, as the
// paper's Jacobian of F). Then a white-box attack (fgsm or pgd, `epsilon`) on the substitute
// makes the adversarial inputs, and the target model judges them: success on the target is the
// transfer. Training is the caller's (Request::fit_substitute): explain/ never depends on train/.
// Reported: transfer_rate (success on the target), transfer_rate_initially_correct (the same over
// the inputs the target classified correctly before), substitute_success_rate (on the substitute),
// substitute_agreement (the substitute's agreement with the oracle on the attacked inputs),
// oracle_queries (the labels asked for: the initial set, then each round's new half).
#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/architecture.h"
#include "engine/sizes.h"
#include "explain/attacks/method.h"

namespace gb::attacks {

namespace {

struct SubstituteOptions {
  std::string architecture, attack;
  double epsilon = 0.3, lambda = 0.1, lr = 1e-3, zero_thresh = 1e-6;
  int rounds = 4, tau = 3, epochs = 10, batch = 32, max_set = 40000;
  uint64_t seed = 0;
};

// The substitute's initial graph: the target's architecture ("same") or an architecture text,
// freshly initialized; its input shape and class count must be the target's.
Graph substitute_graph(const Graph& target, const SubstituteOptions& o) {
  nlohmann::json text;
  try {
    text = o.architecture == "same" ? architecture_json(target) : parse_architecture(o.architecture);
  } catch (const std::invalid_argument& e) {  // (the parser's errors; a size the budget refuses passes on)
    if (dynamic_cast<const SizeError*>(&e)) throw;
    throw std::invalid_argument("substitute: --param architecture='" + o.architecture + "': " + e.what() +
                                " (same, or an architecture text such as the target's; preset names are not taken here)");
  }
  Graph s = graph_from_json(text);
  if (s.input_shape() != target.input_shape() || s.classes() != target.classes())
    throw std::invalid_argument("substitute: --param architecture takes " + s.input_shape().str() + " to " +
                                std::to_string(s.classes()) + " classes; the target takes " +
                                target.input_shape().str() + " to " + std::to_string(target.classes()));
  s.init(o.seed + 1);
  return s;
}

// Jacobian-based augmentation: rows [n, 2n) of `set` (pixels) become the rows [0, n) stepped by λ
// along the sign of the substitute's gradient of the oracle's class.
void augment(Graph& sub, const PixelSpace& s, Tensor& set, int n, const std::vector<int>& labels, double lambda) {
  PixelModel pm(sub, s);
  const int K = sub.classes();
  Tensor seed;
  for_chunks(n, kChunk, [&](int b, int e) {
    pm.logits(set.slice(b, e));
    seed.resize(Shape{e - b, K});
    seed.fill(0.f);
    for (int i = b; i < e; ++i) seed[size_t(i - b) * K + labels[i]] = 1.f;
    const Tensor& g = pm.gradient(seed);
    const Tensor in = set.slice(b, e);
    Tensor out = set.slice(n + b, n + e);
    const float l = float(lambda);
    for (size_t i = 0; i < g.size(); ++i) out[i] = in[i] + (g[i] > 0 ? l : g[i] < 0 ? -l : 0.f);
    clamp_pixels(out, s);
  });
}

void run_substitute(Job& job, ParamReader& r) {
  SubstituteOptions o;
  o.architecture = r.text("architecture");
  o.attack = read_choice(r, "attack", {"fgsm", "pgd"});
  o.epsilon = read_number(r, "epsilon", 0, 1e6);
  o.zero_thresh = read_number(r, "zero_thresh", 0, 1e6);
  o.rounds = read_int(r, "rounds", 1, 10);
  o.lambda = read_number(r, "lambda", 0, 1e6);
  o.tau = read_int(r, "tau", 1, 100);
  o.epochs = read_int(r, "epochs", 1, 1000);
  o.batch = read_int(r, "batch", 1, 4096);
  o.lr = read_number(r, "lr", 1e-8, 10);
  o.max_set = read_int(r, "max_set", 1, 1000000);
  o.seed = uint64_t(read_int(r, "seed", 0, 1 << 30));
  const Request& q = job.request;
  if (q.data.empty())
    throw std::invalid_argument("substitute needs the attacker's initial set (--ref-data)");
  if (!q.fit_substitute) throw std::invalid_argument("substitute needs a training function (Request::fit_substitute)");
  const int n0 = q.data.batch();
  if (long(n0) << (o.rounds - 1) > o.max_set)
    throw std::out_of_range("substitute: " + std::to_string(n0) + " initial inputs doubled over " +
                            std::to_string(o.rounds) + " rounds exceed --param max_set=" + std::to_string(o.max_set));

  Graph sub = substitute_graph(job.model, o);
  PixelModel oracle(job.model, job.pixels);
  Tensor set;
  job.pixels.to_pixels(q.data, set);
  clamp_pixels(set, job.pixels);
  long queries = 0;
  std::vector<int> labels;  // the oracle's answers so far: each round asks about its new half only
  for (int round = 0; round < o.rounds; ++round) {
    const int known = int(labels.size());
    const std::vector<int> fresh = oracle.predict(set.slice(known, set.batch()));
    labels.insert(labels.end(), fresh.begin(), fresh.end());
    queries += long(fresh.size());  // Papernot et al.'s cost: relabelling known points counted twice
    Tensor x;
    job.pixels.to_input(set, x);
    SubstituteFit fit{o.epochs, o.batch, round, o.lr, o.seed + uint64_t(round)};
    q.fit_substitute(sub, x, labels, fit);
    if (round + 1 == o.rounds) break;
    const int n = set.batch();
    Tensor grown(Shape::batch_of(2 * n, set.shape().sample()));
    grown.slice(0, n).copy_from(set);
    const double lambda = (round / o.tau) % 2 ? -o.lambda : o.lambda;
    augment(sub, job.pixels, grown, n, labels, lambda);
    set = std::move(grown);
    job.progress(0, job.size(), round + 1, o.rounds);
  }

  // The white-box attack on the substitute, from the same inputs with the same labels/targets.
  Request white = q;
  white.data = Tensor();
  white.progress = nullptr;
  white.labels = job.label;
  Params ap;
  ap[epsilon_key(o.attack)] = explain::exact_text(o.epsilon);
  ap["zero_thresh"] = explain::exact_text(o.zero_thresh);  // a saturated substitute moves no pixel at 1e-6
  const Result on_sub = attack(sub, white, o.attack, ap);
  job.pixels.to_pixels(on_sub.adversarial, job.adversarial);
  clamp_pixels(job.adversarial, job.pixels);
  double agree = 0;
  for (int n = 0; n < job.size(); ++n) agree += on_sub.before[n] == job.predicted[n];
  job.totals["substitute_success_rate"] = success_rate(on_sub);
  job.totals["substitute_agreement"] = agree / job.size();
  job.totals["oracle_queries"] = double(queries);
  // The transfer, judged on the target: over all inputs (= success_rate) and over the inputs the
  // target classified correctly before the attack (Foolbox / torchattacks count only those).
  const std::vector<int> after = oracle.predict(job.adversarial);
  int transferred = 0, correct = 0, correct_transferred = 0;
  for (int n = 0; n < job.size(); ++n) {
    const bool t = job.targeted() ? after[n] == job.target[n] : after[n] != job.label[n];
    transferred += t;
    if (job.predicted[n] == job.label[n]) ++correct, correct_transferred += t;
  }
  job.totals["transfer_rate"] = double(transferred) / job.size();
  job.totals["transfer_rate_initially_correct"] = correct ? double(correct_transferred) / correct : NAN;
  job.values["substitute_success"].assign(on_sub.success.begin(), on_sub.success.end());
}

}  // namespace

void add_substitute(std::vector<Method>& reg) {
  reg.push_back(
      {{"substitute",
        "black-box transfer attack: train a substitute on the target's labels with Jacobian-based dataset "
        "augmentation, attack the substitute, judge on the target (success = transfer)",
        {{"architecture", "same", "the substitute: same (the target's architecture, freshly initialized) or an "
                                  "architecture text with the target's input and classes"},
         {"attack", "fgsm", "the white-box attack on the substitute: fgsm or pgd (its defaults)"},
         {"epsilon", "0.3", "that attack's epsilon (fgsm) or radius (pgd), pixels (Papernot et al.: 0.3 on MNIST)", 0, 1e6},
         {"zero_thresh", "1e-6", "that attack's zero_thresh: pixels whose substitute loss gradient is at most this are "
                                 "not moved (0: step along its sign anyway, for a substitute whose softmax saturates)"},
         {"rounds", "4", "substitute training rounds rho (1..10; the set doubles each round; Papernot et al.: 6)"},
         {"lambda", "0.1", "augmentation step in pixels (Papernot et al.: 0.1)"},
         {"tau", "3", "the step's sign flips every tau rounds (Papernot et al. section 5: 3)"},
         {"epochs", "10", "training epochs per round (Papernot et al.: 10)"},
         {"batch", "32", "training batch size"},
         {"lr", "0.001", "training learning rate (the caller's optimizer; glassbox attack: Adam)"},
         {"max_set", "40000", "largest substitute training set allowed (bounds memory and time)"},
         explain::seed_param("0", "substitute initialization and training seed")},
        "Papernot et al. 2017 (Jacobian-based dataset augmentation with the periodic step size, the substitute's "
        "logit Jacobian of the oracle's label, FGSM on the substitute); differences: the initial set is the "
        "attacker's Request::data (the command: --ref-data, default 150 training images), Adam instead of SGD "
        "with momentum, pgd may replace fgsm; transfer_rate = success on the target of all attacked inputs, "
        "transfer_rate_initially_correct over those the target classified correctly before"},
       run_substitute});
}

}  // namespace gb::attacks
