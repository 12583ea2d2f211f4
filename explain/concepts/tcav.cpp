// TCAV (Kim et al. 2018; Captum's TCAV, tensorflow/tcav): CAVs of every concept and of the random
// baseline against R random sets, the target's gradients at each layer for every input (one
// backward pass per batch), and the scores of every CAV at once as one product of the gradient
// rows with the stacked CAVs.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>

#include "engine/blas.h"
#include "engine/interrupt.h"
#include "engine/rng.h"
#include "engine/threads.h"
#include "explain/concepts/cav.h"
#include "explain/concepts/method.h"
#include "explain/concepts/patterns.h"

namespace gb::concepts {

namespace {
struct TcavOptions {
  CavOptions cav;
  int runs = 10, random_size = 100, batch = 256;
  double p_threshold = 0.05;
  uint64_t seed = 0;
  bool pooled = false;  // random_baseline=pooled: every ordered pair of random sets 1..R
};
TcavOptions read_tcav_options(ParamReader& r);
}  // namespace

void add_tcav_methods(std::vector<Method>& registry) {
  registry.push_back(
      {{"tcav",
        "Testing with CAVs: per concept and layer, the fraction of inputs whose target logit rises along the "
        "concept's CAV, over R runs against random sets, t-tested against random-vs-random CAVs",
        {{"classifier", "svm", "svm (hinge loss: a linear SVM) or logistic (log loss), both fitted by SGD"},
         {"alpha", "0.01", "L2 strength of the SGD classifier, (0, 10]"},
         {"max_iter", "1000", "SGD epochs at most, 1..100000"},
         {"tol", "0.001", "stop when an epoch's summed loss improves by less than tol*n for 5 epochs; 0..1"},
         {"test_fraction", "0.33", "held-out fraction of each set for the CAV's accuracy, [0.05, 0.9]"},
         {"runs", "10", "R: random sets a concept is tested against (and random-vs-random runs), 2..500"},
         {"random_size", "100", "examples per random set, drawn from the random pool, 2..100000"},
         {"p_threshold", "0.05", "significance level of the two-sided t-test, (0, 0.5]"},
         explain::seed_param("0", "seed of the random sets, the held-out splits and the SGD order"),
         {"batch", "256", "inputs per forward/backward pass, 1..65536"},
         {"random_baseline", "counterpart",
          "counterpart: R runs of random set 0 against sets 1..R (tcav's random_counterpart); pooled: every "
          "ordered pair of sets 1..R, R(R-1) runs (tcav's default when no counterpart is given)"}},
        "Captum TCAV / tensorflow/tcav: sklearn SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3) CAVs, 33% "
        "held out, the logit's gradient at the layer (Captum's LayerGradientXActivation without inputs), "
        "sign count = fraction of S > 0, ttest_ind against random_counterpart runs (random_baseline=counterpart) or, as "
        "tcav without a counterpart, against the pooled runs of every ordered pair of random sets (pooled). Differences: the CAV is the "
        "unit normal (Captum keeps the raw weights: sign counts agree); magnitude = sum max(S,0)/sum |S| (Captum's "
        "docstring; its code reports mean S, given here as mean_derivative)"},
       Kind::tcav,
       [](ParamReader& r) { read_tcav_options(r); }});
}

namespace {

// A stable hash of a name (FNV-1a), so a concept's seeds do not depend on its position.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

TcavOptions read_tcav_options(ParamReader& r) {
  TcavOptions o;
  o.cav.sgd.loss = read_choice(r, "classifier", {"svm", "logistic"}) == "svm" ? Loss::hinge : Loss::log;
  o.cav.sgd.alpha = read_number(r, "alpha", 1e-12, 10);
  o.cav.sgd.max_iter = read_int(r, "max_iter", 1, 100000);
  o.cav.sgd.tol = read_number(r, "tol", 0, 1);
  o.cav.test_fraction = read_number(r, "test_fraction", 0.05, 0.9);
  o.runs = read_int(r, "runs", 2, 500);
  o.random_size = read_int(r, "random_size", 2, 100000);
  o.p_threshold = read_number(r, "p_threshold", 1e-12, 0.5);
  o.seed = uint64_t(read_number(r, "seed", 0, 9007199254740992.0));
  o.batch = read_int(r, "batch", 1, 65536);
  o.pooled = read_choice(r, "random_baseline", {"counterpart", "pooled"}) == "pooled";
  return o;
}

void check_request(const Graph& g, const TcavRequest& q) {
  if (q.concepts.empty()) throw std::invalid_argument("tcav: no concepts given");
  std::set<std::string> names;
  for (const ConceptSet& c : q.concepts) {
    if (c.name.empty() || c.name == "random")
      throw std::invalid_argument("tcav: concept name '" + c.name + "' (must be non-empty and not 'random')");
    if (!names.insert(c.name).second) throw std::invalid_argument("tcav: two concepts named '" + c.name + "'");
    check_examples(g, c.x, "concept '" + c.name + "'");
    if (c.x.batch() < 2) throw std::invalid_argument("concept '" + c.name + "': needs at least 2 examples, has 1");
  }
  check_examples(g, q.random_pool, "random pool");
  check_examples(g, q.inputs, "tcav inputs");
  if (q.layers.empty()) throw std::invalid_argument("tcav: no layers given");
  std::set<int> seen;
  for (int l : q.layers) {
    if (l < -1 || l >= g.size()) throw std::invalid_argument("tcav: node " + std::to_string(l) + " is not a layer");
    if (!seen.insert(l).second) throw std::invalid_argument("tcav: layer " + layer_name(g, l) + " given twice");
  }
  q.target.check(g, q.inputs.batch());
}

Tensor gather(const Tensor& x, const std::vector<int>& rows) {
  Tensor out(x.shape().with_batch(int(rows.size())));
  const size_t s = x.sample_size();
  for (size_t i = 0; i < rows.size(); ++i) std::copy_n(x.data() + rows[i] * s, s, out.data() + i * s);
  return out;
}

// One CAV to train: rows of `positive` against rows of `negative`, with its seed.
struct CavJob {
  Tensor positive, negative;
  uint64_t seed;
  Cav cav;
};

void train_jobs(std::vector<CavJob>& jobs, const CavOptions& base) {
  const int T = std::max(1, std::min(threads(), int(jobs.size())));
  parallel_polled(T, jobs.size(), [&](size_t j) {  // independent fits, each with its own seed
    CavOptions o = base;
    o.sgd.seed = jobs[j].seed;
    jobs[j].cav = train_cav(jobs[j].positive, jobs[j].negative, o);
  });
}

// Scores of column m of S ([N, M]).
void column_scores(const Tensor& S, int m, ConceptScores& c) {
  const int N = S.dim(0), M = S.dim(1);
  int positive = 0;
  double pos = 0, abs = 0, sum = 0;
  for (int n = 0; n < N; ++n) {
    const double s = S[size_t(n) * M + m];
    positive += s > 0;
    pos += std::max(s, 0.0);
    abs += std::fabs(s);
    sum += s;
  }
  c.sign_count.push_back(double(positive) / N);
  c.magnitude.push_back(abs > 0 ? pos / abs : 0.0);
  c.mean_derivative.push_back(sum / N);
}

}  // namespace

std::vector<Tensor> layer_gradients(Graph& g, const Tensor& x, const Target& target, const std::vector<int>& layers,
                                    int batch, const Progress& progress) {
  check_examples(g, x, "inputs");
  if (layers.empty()) throw std::invalid_argument("layer_gradients: no layers given");
  if (batch < 1) throw std::invalid_argument("layer_gradients: batch must be >= 1");
  const int N = x.batch(), top = target.at(g);
  target.check(g, N);
  for (int l : layers)
    if (l < -1 || l >= top)
      throw std::invalid_argument("layer " + (l >= 0 && l < g.size() ? layer_name(g, l) : std::to_string(l)) +
                                  " is not below the target's node " + layer_name(g, top));
  std::vector<Tensor> out;
  for (int l : layers) out.emplace_back(Shape{N, int(g.shape(l).numel())});
  std::vector<char> reached(layers.size());
  int b = 0;
  ForwardOptions fo;
  fo.until = top;
  BackwardOptions bo;
  bo.seed_at = top;
  bo.stop_at = *std::min_element(layers.begin(), layers.end());
  bo.input_grad = bo.stop_at < 0;
  bo.on_node = [&](int node, const Tensor& signal) {
    for (size_t k = 0; k < layers.size(); ++k)
      if (layers[k] == node) {
        std::copy_n(signal.data(), signal.size(), out[k].data() + size_t(b) * out[k].dim(1));
        reached[k] = 1;
      }
  };
  Tensor seed;
  for (; b < N; b += batch) {
    const int e = std::min(N, b + batch);
    g.forward(x.slice(b, e), fo);
    target.seed(g, b, e, seed);
    std::fill(reached.begin(), reached.end(), 0);
    g.backward(seed, bo);
    for (size_t k = 0; k < layers.size(); ++k)
      if (!reached[k])
        throw std::invalid_argument("layer " + layer_name(g, layers[k]) + ": no signal from " + layer_name(g, top) +
                                    " reaches it");
    if (progress) progress(e, N);
  }
  return out;
}

Tensor directional_derivatives(const Tensor& gradients, const Tensor& directions) {
  if (gradients.rank() != 2 || directions.rank() != 2 || gradients.dim(1) != directions.dim(1))
    throw ShapeError("directional_derivatives: expected [N, D] and [M, D], got " + gradients.shape().str() + " and " +
                     directions.shape().str());
  const int N = gradients.dim(0), M = directions.dim(0), D = gradients.dim(1);
  Tensor S({N, M});
  gemm(false, true, N, M, D, 1.f, gradients.data(), directions.data(), 0.f, S.data());
  return S;
}

std::vector<std::vector<int>> draw_random_sets(int pool, int sets, int size, uint64_t seed) {
  if (pool < size)
    throw std::invalid_argument("tcav: the random pool has " + std::to_string(pool) + " examples, random_size is " +
                                std::to_string(size));
  if (pool == size && sets > 1)  // the random CAVs would separate a set from itself
    throw std::invalid_argument("tcav: the random pool has exactly random_size=" + std::to_string(size) +
                                " examples, so every random set would be the whole pool; give a larger pool or a "
                                "smaller random_size");
  std::vector<std::vector<int>> out(sets);
  std::vector<int> idx(pool);
  // idx's first `count` entries become a uniform draw without replacement (partial Fisher-Yates).
  auto draw = [&](int count, Rng rng) {
    std::iota(idx.begin(), idx.end(), 0);
    for (int k = 0; k < count; ++k) std::swap(idx[k], idx[k + rng.below(uint32_t(pool - k))]);
  };
  // Disjoint sets when the pool holds them: one shuffle, cut into consecutive sets. Otherwise each
  // set is drawn on its own from the stream (seed, i).
  const bool disjoint = int64_t(pool) >= int64_t(sets) * size;
  if (disjoint) draw(sets * size, Rng(mix_seed(seed, 0x6469736a6f696eULL)));
  for (int i = 0; i < sets; ++i) {
    if (!disjoint) draw(size, Rng(mix_seed(mix_seed(seed, 0x72616e646f6dULL), uint64_t(i))));
    const int at = disjoint ? i * size : 0;
    out[i].assign(idx.begin() + at, idx.begin() + at + size);
  }
  return out;
}

TcavResult tcav(Graph& g, const TcavRequest& q, const Params& params, const std::string& method) {
  const Method& m = find_method(method, Kind::tcav);
  ParamReader reader(params, m.info);
  const TcavOptions o = read_tcav_options(reader);
  reader.done();
  check_request(g, q);
  const int C = int(q.concepts.size()), R = o.runs, L = int(q.layers.size());
  auto report = [&](const std::string& stage, int done, int total) {
    if (q.progress) q.progress(stage, done, total);
  };

  // Activations of every set at every layer in one batched pass, flattened: acts[set][layer] is a
  // view [n, D_layer] of the pass's rows.
  const std::vector<std::vector<int>> random_rows = draw_random_sets(q.random_pool.batch(), R + 1, o.random_size, o.seed);
  std::vector<Tensor> sets;
  for (const ConceptSet& c : q.concepts) sets.push_back(c.x);
  for (const std::vector<int>& rows : random_rows) sets.push_back(gather(q.random_pool, rows));
  const Tensor all = concat(sets);
  const std::vector<Tensor> pass =
      activations(g, all, q.layers, o.batch, [&](int d, int t) { report("activations", d, t); });
  std::vector<std::vector<Tensor>> acts(sets.size());
  for (size_t s = 0, row = 0; s < sets.size(); row += sets[s].batch(), ++s)
    for (int l = 0; l < L; ++l) {
      const int D = int(g.shape(q.layers[l]).numel());
      acts[s].push_back(pass[l].slice(int(row), int(row) + sets[s].batch()).reshaped(Shape{sets[s].batch(), D}));
    }
  const std::vector<Tensor> grads =
      layer_gradients(g, q.inputs, q.target, q.layers, o.batch, [&](int d, int t) { report("gradients", d, t); });

  TcavResult result;
  result.runs = R;
  result.comparisons = C * L;
  result.p_threshold = o.p_threshold;
  for (int l = 0; l < L; ++l) {
    // Jobs: concept c's run r at c·R + r, then the baseline's B runs: random set 0 against set r
    // (counterpart), or set i against set j for every i != j in 1..R (pooled).
    std::vector<CavJob> jobs;
    const uint64_t layer_seed = mix_seed(o.seed, uint64_t(q.layers[l] + 1));
    for (int c = 0; c < C; ++c)
      for (int r = 1; r <= R; ++r)
        jobs.push_back({acts[c][l], acts[C + r][l], mix_seed(mix_seed(layer_seed, name_hash(q.concepts[c].name)), uint64_t(r)), {}});
    const uint64_t base_seed = mix_seed(layer_seed, 0x62617365ULL);
    auto random_run = [&](int i, int r) {  // random set i against set r
      jobs.push_back({acts[C + i][l], acts[C + r][l], mix_seed(base_seed, uint64_t(i * (R + 1) + r)), {}});
    };
    if (o.pooled) {
      for (int i = 1; i <= R; ++i)
        for (int r = 1; r <= R; ++r)
          if (r != i) random_run(i, r);
    } else {
      for (int r = 1; r <= R; ++r) random_run(0, r);
    }
    try {
      train_jobs(jobs, o.cav);
    } catch (const std::exception& e) {
      throw std::runtime_error("tcav at layer " + layer_name(g, q.layers[l]) + ": " + e.what());
    }
    report("CAVs at " + layer_name(g, q.layers[l]), int(jobs.size()), int(jobs.size()));
    const int D = grads[l].dim(1), M = int(jobs.size());
    Tensor V({M, D});
    for (int j = 0; j < M; ++j) std::copy_n(jobs[j].cav.direction.data(), D, V.data() + size_t(j) * D);
    const Tensor S = directional_derivatives(grads[l], V);

    LayerScores ls;
    ls.node = q.layers[l];
    ls.layer = layer_name(g, ls.node);
    for (int c = 0; c <= C; ++c) {
      ConceptScores cs;
      cs.name = c < C ? q.concepts[c].name : "random";
      const int first = c * R, runs = c < C ? R : M - C * R;
      cs.cavs = Tensor({runs, D});
      std::copy_n(V.data() + size_t(first) * D, size_t(runs) * D, cs.cavs.data());
      for (int r = first; r < first + runs; ++r) {
        column_scores(S, r, cs);
        cs.cav_accuracy.push_back(jobs[r].cav.accuracy);
        cs.cav_epochs.push_back(jobs[r].cav.fit.epochs);
      }
      if (c < C)
        ls.concepts.push_back(std::move(cs));
      else
        ls.random = std::move(cs);
    }
    for (ConceptScores& cs : ls.concepts) {
      cs.sign_test = ttest_ind(cs.sign_count, ls.random.sign_count);
      cs.magnitude_test = ttest_ind(cs.magnitude, ls.random.magnitude);
      cs.significant = cs.sign_test.p < o.p_threshold;
      cs.significant_bonferroni = cs.sign_test.p < o.p_threshold / result.comparisons;
    }
    result.layers.push_back(std::move(ls));
  }
  return result;
}

}  // namespace gb::concepts
