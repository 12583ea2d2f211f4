// Influence functions (Koh & Liang 2017): the influence of removing training point z on the loss
// of a test input, score(z) = (1/n) ∇L(z_test)ᵀ (H + λI)⁻¹ ∇L(z), H the mean Hessian of the
// training loss over the chosen parameters. This is Koh & Liang's predicted_loss_diffs and
// Captum's NaiveInfluenceFunction score (Captum's Hessian is the sum over the set, so its
// hessian_reg is n·λ here). Positive: the test loss would rise without z (z helps).
//
// The last layer (the default) is the convex case: its Hessian is exact and explicit
// (softmax_regression.h), solved directly by Cholesky, or by conjugate gradients or LiSSA on its
// exact products. Any other set of layers uses the graph's exact Hessian-vector products
// (engine/hvp.h) with CG or LiSSA. I_pert (pert_top) differentiates the score with respect to the
// training image's pixels through the same products; pert_test differentiates it with respect to
// the test input's pixels (one more solve per chosen training point).
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "engine/hvp.h"
#include "engine/interrupt.h"
#include "engine/passes.h"
#include "explain/instances/method.h"
#include "explain/instances/softmax_regression.h"

namespace gb::explain::instances {

namespace {

struct Settings {
  std::vector<int> nodes;
  bool last_layer = false;
  std::string solver;
  double damping = 0;
  int cg_iterations = 0;
  double cg_tolerance = 0;
  LissaOptions lissa;
  int hessian_points = 0;  // 0: all
  int pert_top = 0;
  int pert_test = 0;
  uint64_t seed = 0;
};

int bounded(ParamReader& p, const std::string& key, int lo, int hi) {
  const int v = p.integer(key);
  if (v < lo || v > hi)
    throw std::invalid_argument("influence: --param " + key + "=" + std::to_string(v) + " outside [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

Settings read_settings(const Graph& g, ParamReader& p, int N) {
  Settings s;
  s.nodes = chosen_layers(g, p.text("layers"), "influence");
  // The last dense layer alone is the convex case, however it was named.
  s.last_layer = s.nodes.size() == 1 && s.nodes[0] == g.output() && dynamic_cast<const Dense*>(&g.layer(s.nodes[0]));
  s.solver = p.text("solver");
  if (s.solver != "direct" && s.solver != "cg" && s.solver != "lissa")
    throw std::invalid_argument("influence: --param solver=" + s.solver + " (use direct, cg or lissa)");
  s.damping = p.number("damping");
  if (s.damping < 0) throw std::invalid_argument("influence: --param damping must be >= 0");
  s.cg_iterations = bounded(p, "cg_iterations", 1, 10000);
  s.cg_tolerance = p.number("cg_tolerance");
  if (!(s.cg_tolerance > 0 && s.cg_tolerance < 1))
    throw std::invalid_argument("influence: --param cg_tolerance must be in (0, 1)");
  s.lissa.depth = bounded(p, "lissa_depth", 1, 1000000);
  s.lissa.scale = p.number("lissa_scale");
  if (!(s.lissa.scale > 0)) throw std::invalid_argument("influence: --param lissa_scale must be > 0");
  s.lissa.batch = bounded(p, "lissa_batch", 1, 4096);
  s.lissa.samples = bounded(p, "lissa_samples", 1, 1000);
  s.lissa.damping = s.damping;
  s.seed = uint64_t(bounded(p, "seed", 0, 1 << 30));
  s.lissa.seed = s.seed;
  s.hessian_points = bounded(p, "hessian_points", 0, N);
  s.pert_top = bounded(p, "pert_top", 0, 64);
  s.pert_test = bounded(p, "pert_test", 0, 64);
  if (s.solver == "direct" && s.damping == 0)
    throw std::invalid_argument("influence: the direct solve needs --param damping > 0 (the last layer's softmax "
                                "Hessian is singular: the loss does not change when every logit moves together)");
  if (s.solver == "direct" && !s.last_layer)
    throw std::invalid_argument("influence: solver=direct needs the explicit Hessian, which glassbox forms for the "
                                "last layer only (layers=last); use solver=cg or lissa for other layers");
  return s;
}

// The training points the Hessian is averaged over: all, or a seeded random subset (Captum's
// hessian_dataset), in index order.
std::vector<int> hessian_rows(int N, int count, uint64_t seed) {
  std::vector<int> rows(N);
  std::iota(rows.begin(), rows.end(), 0);
  if (count == 0 || count == N) return rows;
  Rng rng(seed ^ 0x6865737369616eULL);
  for (int i = 0; i < count; ++i) std::swap(rows[i], rows[i + rng.below(uint32_t(N - i))]);
  rows.resize(count);
  std::sort(rows.begin(), rows.end());
  return rows;
}

// (H + λI)⁻¹ b by CG or LiSSA, given H's mean products over all Hessian points or over a batch of them.
std::vector<double> iterative_solve(const Settings& s, int points, const Product& mean_product,
                                    const BatchProduct& batch_product, const std::vector<double>& b,
                                    std::map<std::string, double>& details) {
  std::vector<double> x;
  SolveReport r;
  if (s.solver == "cg") {
    r = conjugate_gradient(
        [&](const double* v, double* out) {
          mean_product(v, out);
          for (size_t j = 0; j < b.size(); ++j) out[j] += s.damping * v[j];
        },
        b, x, s.cg_iterations, s.cg_tolerance);
  } else {
    r = lissa(batch_product, points, b, x, s.lissa);
  }
  details["solver_iterations"] = r.iterations;
  details["solver_residual"] = r.residual;
  return x;
}

std::vector<double> onehot_residuals(const std::vector<double>& probs, const std::vector<int>& y, int K) {
  std::vector<double> r = probs;
  for (size_t i = 0; i < y.size(); ++i) r[i * K + y[i]] -= 1.0;
  return r;
}

// A set of examples as softmax regression on the last layer's features, with the model's
// probabilities and the residuals p − e_y at the examples' classes.
struct LastLayerSet {
  SoftmaxRegression model;
  std::vector<double> probs, residuals;
};

LastLayerSet last_layer_set(Graph& g, int dense, const Examples& ex, const Context& ctx, const std::string& stage) {
  const LastLayerActivations a = last_layer_activations(g, dense, ex.x, ctx, stage);
  const int K = g.classes();
  LastLayerSet set{SoftmaxRegression(a.features, K, static_cast<const Dense&>(g.layer(dense)).has_bias), {}, {}};
  SoftmaxRegression::softmax(std::vector<double>(a.logits.data(), a.logits.data() + a.logits.size()), K, set.probs);
  set.residuals = onehot_residuals(set.probs, ex.y, K);
  return set;
}

// The Cholesky factor of H/|rows| + λI, H summed over the Hessian points `rows`.
SymmetricMatrix last_layer_factor(const LastLayerSet& train, const std::vector<int>& rows, const Settings& s,
                                  const Context& ctx) {
  report(ctx, "Hessian of the last layer", 0, 1);
  std::vector<double> weights(train.model.rows(), 0.0);
  for (int i : rows) weights[i] = 1.0;
  SymmetricMatrix H = train.model.hessian(train.probs, &weights), L;
  for (double& v : H.a) v /= double(rows.size());
  for (int j = 0; j < H.n; ++j) H.at(j, j) += s.damping;
  char damping_text[32];  // (std::to_string printed 1e-300 as 0.000000)
  std::snprintf(damping_text, sizeof damping_text, "%g", s.damping);
  if (!cholesky(H, L))
    throw std::runtime_error("influence: the last layer's Hessian plus damping " + std::string(damping_text) +
                             " is not positive definite; raise --param damping");
  report(ctx, "Hessian of the last layer", 1, 1);
  return L;
}

// (H + λI)⁻¹ b in the last layer: from H's Cholesky factor (solver=direct, factored once) or by CG
// or LiSSA on the exact products of softmax_regression.h.
struct LastLayerSolver {
  const LastLayerSet& train;
  const std::vector<int> rows;
  const Settings& s;
  const Context& ctx;
  SymmetricMatrix L;  // direct

  LastLayerSolver(const LastLayerSet& train, std::vector<int> rows_, const Settings& s, const Context& ctx)
      : train(train), rows(std::move(rows_)), s(s), ctx(ctx) {
    if (s.solver == "direct") L = last_layer_factor(train, rows, s, ctx);
  }
  // Overwrites b (`count` right-hand sides of P values one after another) with the solutions;
  // `details` (one map per right-hand side) get the iterative solvers' iterations and residuals.
  void solve(double* b, int count, std::map<std::string, double>* details, const std::string& stage) const {
    if (s.solver == "direct") {
      cholesky_solve(L, b, count);
      return;
    }
    const int P = train.model.size();
    const double n = double(rows.size());
    const bool all = int(rows.size()) == train.model.rows();
    Product mean = [&](const double* v, double* o) {
      train.model.hessian_product(train.probs, all ? nullptr : &rows, v, o);
      for (int j = 0; j < P; ++j) o[j] /= n;
    };
    std::vector<int> batch;
    BatchProduct on_batch = [&](const std::vector<int>& picks, const double* v, double* o) {
      batch.resize(picks.size());
      for (size_t k = 0; k < picks.size(); ++k) batch[k] = rows[picks[k]];
      train.model.hessian_product(train.probs, &batch, v, o);
      for (int j = 0; j < P; ++j) o[j] /= double(picks.size());
    };
    for (int t = 0; t < count; ++t) {
      report(ctx, stage, t, count);
      const std::vector<double> rhs(b + size_t(t) * P, b + size_t(t + 1) * P);
      const std::vector<double> x = iterative_solve(s, int(rows.size()), mean, on_batch, rhs, details[t]);
      std::copy(x.begin(), x.end(), b + size_t(t) * P);
    }
    report(ctx, stage, count, count);
  }
};

// s_t = (H + λI)⁻¹ ∇L(z_t) for every test input, in the last layer.
std::vector<std::vector<double>> last_layer_solutions(const LastLayerSolver& solver, const LastLayerSet& tests,
                                                      std::vector<std::map<std::string, double>>& details) {
  const int M = tests.model.rows(), P = solver.train.model.size();
  std::vector<double> g(size_t(M) * P);
  tests.model.row_gradients(tests.residuals, 0, M, g.data());
  solver.solve(g.data(), M, details.data(), solver.s.solver + " solve");
  std::vector<std::vector<double>> out(M);
  for (int t = 0; t < M; ++t) out[t].assign(g.begin() + size_t(t) * P, g.begin() + size_t(t + 1) * P);
  return out;
}

// The graph's exact Hessian-vector products for any layers: the mean over the Hessian points.
struct GraphHessian {
  Graph& g;
  const Examples& train;
  const ParamSlice& slice;
  const std::vector<int>& rows;
  const Context& ctx;
  HessianVectorProduct hvp;
  Tensor x;  // the Hessian points' inputs (train.x itself when all)
  std::vector<int> y;
  std::vector<float> vf, out;

  GraphHessian(Graph& g, const Examples& train, const ParamSlice& slice, const std::vector<int>& rows,
               const Context& ctx)
      : g(g), train(train), slice(slice), rows(rows), ctx(ctx), hvp(g, slice), vf(slice.size), out(slice.size) {
    if (int(rows.size()) == train.size()) {
      x = train.x, y = train.y;
      return;
    }
    x = gather(rows);
    for (int i : rows) y.push_back(train.y[i]);
  }
  Tensor gather(const std::vector<int>& picks) const {
    Tensor t(Shape::batch_of(int(picks.size()), train.x.shape().sample()));
    const size_t S = train.x.sample_size();
    for (size_t k = 0; k < picks.size(); ++k) std::copy_n(train.x.data() + picks[k] * S, S, t.data() + k * S);
    return t;
  }
  void product(const Tensor& xs, const std::vector<int>& ys, const double* v, double* o) {
    std::copy(v, v + slice.size, vf.begin());
    hvp(xs, ys, vf.data(), out.data(), nullptr, ctx.batch);
    for (size_t j = 0; j < slice.size; ++j) o[j] = out[j] / double(ys.size());
  }
};

// (H + λI)⁻¹ b by CG or LiSSA on the graph's exact Hessian-vector products.
struct GraphSolver {
  const Settings& s;
  const Examples& train;
  const Context& ctx;
  const std::vector<int> rows;
  GraphHessian H;

  GraphSolver(Graph& g, const Examples& train, const ParamSlice& slice, const Settings& s, const Context& ctx)
      : s(s), train(train), ctx(ctx), rows(hessian_rows(train.size(), s.hessian_points, s.seed)),
        H(g, train, slice, rows, ctx) {}
  // `what` names the right-hand side in the progress lines ("test input 3").
  std::vector<double> solve(const std::vector<double>& b, std::map<std::string, double>& details,
                            const std::string& what) {
    int step = 0;
    Product mean = [&](const double* v, double* o) {
      report(ctx, s.solver + " solve, " + what + ", Hessian-vector products", ++step, s.cg_iterations);
      H.product(H.x, H.y, v, o);
    };
    std::vector<int> ys;
    BatchProduct on_batch = [&](const std::vector<int>& picks, const double* v, double* o) {
      if (++step % 100 == 0) report(ctx, "lissa, " + what, step, s.lissa.depth * s.lissa.samples);
      std::vector<int> chosen(picks.size());
      ys.resize(picks.size());
      for (size_t k = 0; k < picks.size(); ++k) chosen[k] = rows[picks[k]], ys[k] = train.y[chosen[k]];
      H.product(H.gather(chosen), ys, v, o);
    };
    return iterative_solve(s, int(rows.size()), mean, on_batch, b, details);
  }
};

std::vector<std::vector<double>> graph_solutions(GraphSolver& solver, const Tensor& test_grads,
                                                 std::vector<std::map<std::string, double>>& details) {
  const int M = test_grads.batch(), P = test_grads.dim(1);
  std::vector<std::vector<double>> out(M);
  for (int t = 0; t < M; ++t) {
    const std::vector<double> b(test_grads.data() + size_t(t) * P, test_grads.data() + size_t(t + 1) * P);
    out[t] = solver.solve(b, details[t], "test input " + std::to_string(t + 1));
  }
  return out;
}

// A test input's k most helpful training points (largest score first), then its k most harmful
// (smallest first).
std::vector<int> chosen_points(const float* sc, int N, int k) {
  std::vector<int> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return sc[a] > sc[b]; });
  std::vector<int> picks(order.begin(), order.begin() + k);
  picks.insert(picks.end(), order.end() - k, order.end());
  std::reverse(picks.begin() + k, picks.end());  // most harmful first
  return picks;
}

// I_pert (Koh & Liang §2.2) for each test input's pert_top most helpful and most harmful training
// points: the change of the test loss per unit change of the training image's pixels,
// −(1/n) ∇_x (s_testᵀ ∇_θ L(z)), from the input tangent of the Hessian-vector product along s_test.
void add_pert(Graph& g, const Examples& train, const ParamSlice& slice,
              const std::vector<std::vector<double>>& solutions, int top, const Context& ctx, Scores& s) {
  const int M = s.scores.batch(), N = s.scores.dim(1), k = std::min(top, N / 2);
  if (k < 1) return;
  const Shape sample = train.x.shape().sample();
  Tensor pert(Shape::batch_of(M * 2 * k, sample)), index(Shape{M, 2 * k});
  std::vector<float> v(slice.size), out(slice.size);
  HessianVectorProduct hvp(g, slice);
  for (int t = 0; t < M; ++t) {
    report(ctx, "I_pert", t, M);
    const std::vector<int> picks = chosen_points(s.scores.data() + size_t(t) * N, N, k);
    Examples sel{Tensor(Shape::batch_of(2 * k, sample)), {}};
    for (int j = 0; j < 2 * k; ++j) {
      std::copy_n(train.x.data() + size_t(picks[j]) * sel.x.sample_size(), sel.x.sample_size(),
                  sel.x.data() + size_t(j) * sel.x.sample_size());
      sel.y.push_back(train.y[picks[j]]);
      index[size_t(t) * 2 * k + j] = float(picks[j]);
    }
    std::copy(solutions[t].begin(), solutions[t].end(), v.begin());
    Tensor tangent;
    hvp(sel.x, sel.y, v.data(), out.data(), &tangent, ctx.batch);
    float* dst = pert.data() + size_t(t) * 2 * k * sel.x.sample_size();
    for (size_t i = 0; i < tangent.size(); ++i) dst[i] = -tangent[i] / float(N);
  }
  report(ctx, "I_pert", M, M);
  s.extra["pert"] = pert;
  s.extra["pert_index"] = index;
}

// The other side of I_pert: for each test input's pert_test most helpful and most harmful training
// points z, −∂score(z)/∂x_test = −(1/n) ∇_{x_test} (u_zᵀ ∇_θ L(z_test)), u_z = (H + λI)⁻¹ ∇_θ L(z)
// (one solve per distinct chosen point, by `solve`, which overwrites its argument), from the input
// tangent of the Hessian-vector product at the test input along u_z. `train_grads` gives the
// training points' loss gradients in the slice's layout.
using PointSolve = std::function<void(std::vector<double>& b, std::map<std::string, double>& details, int point)>;
using PointGradients = std::function<std::vector<std::vector<double>>(const std::vector<int>& points)>;

void add_pert_test(Graph& g, const Examples& tests, const ParamSlice& slice, const PointGradients& train_grads,
                   const PointSolve& solve, int top, const Context& ctx, Scores& s) {
  const int M = s.scores.batch(), N = s.scores.dim(1), k = std::min(top, N / 2);
  if (k < 1) return;
  const Shape sample = tests.x.shape().sample();
  const size_t S = tests.x.sample_size();
  Tensor pert(Shape::batch_of(M * 2 * k, sample)), index(Shape{M, 2 * k});
  std::map<int, std::vector<double>> solved;  // u_z by training point, shared between test inputs
  std::vector<float> v(slice.size), out(slice.size);
  HessianVectorProduct hvp(g, slice);
  Tensor x(Shape::batch_of(1, sample)), tangent;
  for (int t = 0; t < M; ++t) {
    report(ctx, "pert_test", t, M);
    const std::vector<int> picks = chosen_points(s.scores.data() + size_t(t) * N, N, k);
    std::vector<int> fresh;
    for (int j : picks)
      if (!solved.count(j) && std::find(fresh.begin(), fresh.end(), j) == fresh.end()) fresh.push_back(j);
    if (!fresh.empty()) {
      std::vector<std::vector<double>> grads = train_grads(fresh);
      double residual = 0;
      int iterations = 0;
      for (size_t q = 0; q < fresh.size(); ++q) {
        std::map<std::string, double> d;
        solve(grads[q], d, fresh[q]);
        if (d.count("solver_residual")) residual = std::max(residual, d["solver_residual"]);
        if (d.count("solver_iterations")) iterations = std::max(iterations, int(d["solver_iterations"]));
        solved[fresh[q]] = std::move(grads[q]);
      }
      if (iterations > 0) {
        s.details[t]["pert_test_solver_iterations_max"] = iterations;
        s.details[t]["pert_test_solver_residual_max"] = residual;
      }
    }
    std::copy_n(tests.x.data() + size_t(t) * S, S, x.data());
    for (int j = 0; j < 2 * k; ++j) {
      const std::vector<double>& u = solved.at(picks[j]);
      std::copy(u.begin(), u.end(), v.begin());
      hvp(x, {tests.y[t]}, v.data(), out.data(), &tangent, 1);
      float* dst = pert.data() + (size_t(t) * 2 * k + j) * S;
      for (size_t i = 0; i < S; ++i) dst[i] = -tangent[i] / float(N);
      index[size_t(t) * 2 * k + j] = float(picks[j]);
    }
  }
  report(ctx, "pert_test", M, M);
  s.info["pert_test_solves"] = double(solved.size());
  s.extra["pert_test"] = pert;
  s.extra["pert_test_index"] = index;
}

void common_info(const Settings& s, size_t parameters, int N, Scores& out) {
  out.info["parameters"] = double(parameters);
  out.info["training_points"] = N;
  out.info["hessian_points"] = s.hessian_points ? s.hessian_points : N;
  out.info["damping"] = s.damping;
}

Scores run_influence(Graph& g, const Examples& train, const Examples& tests, ParamReader& p, const Context& ctx) {
  const Settings s = read_settings(g, p, train.size());
  const int N = train.size(), M = tests.size();
  const ParamSlice slice = param_slice(g, s.nodes);
  if (s.pert_top > 0 || s.pert_test > 0) check_hvp_support(g);
  Scores out;
  out.scores = Tensor(Shape{M, N});
  out.details.resize(M);
  std::vector<std::vector<double>> solutions;
  if (s.last_layer) {
    const LastLayerSet tr = last_layer_set(g, s.nodes[0], train, ctx, "features of the training set");
    const LastLayerSet te = last_layer_set(g, s.nodes[0], tests, ctx, "features of the test inputs");
    const LastLayerSolver solver(tr, hessian_rows(N, s.hessian_points, s.seed), s, ctx);
    solutions = last_layer_solutions(solver, te, out.details);
    std::vector<double> dots(N);
    for (int t = 0; t < M; ++t) {
      tr.model.dots(tr.residuals, solutions[t].data(), dots.data());
      for (int j = 0; j < N; ++j) out.scores[size_t(t) * N + j] = float(dots[j] / N);
    }
    if (s.pert_test > 0) {
      const int P = tr.model.size();
      PointGradients grads = [&](const std::vector<int>& points) {
        std::vector<std::vector<double>> r(points.size(), std::vector<double>(P));
        for (size_t q = 0; q < points.size(); ++q) tr.model.row_gradients(tr.residuals, points[q], points[q] + 1, r[q].data());
        return r;
      };
      PointSolve solve = [&](std::vector<double>& b, std::map<std::string, double>& d, int point) {
        solver.solve(b.data(), 1, &d, s.solver + " solve, training point #" + std::to_string(point) + " (pert_test)");
      };
      add_pert_test(g, tests, slice, grads, solve, s.pert_test, ctx, out);
    }
  } else {
    check_hvp_support(g);
    const Tensor test_grads = loss_gradients(g, tests, 0, M, s.nodes);
    GraphSolver solver(g, train, slice, s, ctx);
    solutions = graph_solutions(solver, test_grads, out.details);
    Tensor S(Shape{M, int(slice.size)});
    for (int t = 0; t < M; ++t)
      for (size_t j = 0; j < slice.size; ++j) S[t * slice.size + j] = float(solutions[t][j] / N);
    for (int b = 0; b < N; b += ctx.batch) {
      const int e = std::min(N, b + ctx.batch);
      const Tensor dots = loss_gradient_dots(g, train, b, e, s.nodes, S);  // [e − b, M]
      for (int j = b; j < e; ++j)
        for (int t = 0; t < M; ++t) out.scores[size_t(t) * N + j] = dots[size_t(j - b) * M + t];
      report(ctx, "gradients of the training set", e, N);
    }
    if (s.pert_test > 0) {
      PointGradients grads = [&](const std::vector<int>& points) {
        Examples sel{solver.H.gather(points), {}};
        for (int j : points) sel.y.push_back(train.y[j]);
        const Tensor G = loss_gradients(g, sel, 0, sel.size(), s.nodes);
        std::vector<std::vector<double>> r(points.size());
        for (size_t q = 0; q < points.size(); ++q) r[q].assign(G.data() + q * slice.size, G.data() + (q + 1) * slice.size);
        return r;
      };
      PointSolve solve = [&](std::vector<double>& b, std::map<std::string, double>& d, int point) {
        b = solver.solve(b, d, "training point #" + std::to_string(point) + " (pert_test)");
      };
      add_pert_test(g, tests, slice, grads, solve, s.pert_test, ctx, out);
    }
  }
  if (s.pert_top > 0) add_pert(g, train, slice, solutions, s.pert_top, ctx, out);
  common_info(s, slice.size, N, out);
  return out;
}

// (1/n) ∇L(z)ᵀ (H + λI)⁻¹ ∇L(z) for every training point: ‖L⁻¹ ∇L(z)‖² / n from H's Cholesky
// factor, a chunk of gradient rows at a time.
Scores self_influence_run(Graph& g, const Examples& train, ParamReader& p, const Context& ctx) {
  const Settings s = read_settings(g, p, train.size());
  if (!s.last_layer || s.solver != "direct")
    throw std::invalid_argument("influence: self-influence needs one solve per training point, which glassbox does "
                                "for the last layer with the direct solver only (layers=last solver=direct)");
  if (s.pert_top > 0 || s.pert_test > 0)
    throw std::invalid_argument(std::string("influence: ") + (s.pert_top > 0 ? "pert_top" : "pert_test") +
                                " applies to test inputs, not to self-influence");
  const LastLayerSet tr = last_layer_set(g, s.nodes[0], train, ctx, "features of the training set");
  const SymmetricMatrix L = last_layer_factor(tr, hessian_rows(train.size(), s.hessian_points, s.seed), s, ctx);
  const int N = train.size(), P = tr.model.size(), chunk = 512;
  Scores out;
  out.scores = Tensor(Shape{N});
  out.details.resize(1);
  std::vector<double> rows(size_t(chunk) * P), forms(chunk);
  for (int b = 0; b < N; b += chunk) {
    const int e = std::min(N, b + chunk);
    tr.model.row_gradients(tr.residuals, b, e, rows.data());
    inverse_quadratic_forms(L, rows.data(), e - b, forms.data());
    for (int i = b; i < e; ++i) out.scores[i] = float(forms[i - b] / N);
    report(ctx, "self-influence", e, N);
  }
  common_info(s, size_t(P), N, out);
  return out;
}

// The damped training objective of the last layer, (1/n) Σ_i w_i CE_i + (λ/2)‖θ‖², minimized from
// theta by chord Newton steps with one fixed factor L of its Hessian (a leave-one-out refit starts
// next to the full optimum, where that Hessian is all but exact), to max |gradient| ≤ 1e-10.
std::vector<double> refit(const SoftmaxRegression& m, const std::vector<double>& targets,
                          const std::vector<double>& weights, double lambda, const SymmetricMatrix& L,
                          std::vector<double> theta) {
  const int P = m.size(), K = m.classes();
  std::vector<double> z, p, grad(P);
  for (int it = 0; it < 100; ++it) {
    poll_interrupt();
    m.logits(theta, z);
    SoftmaxRegression::softmax(z, K, p);
    for (size_t i = 0; i < p.size(); ++i) p[i] -= targets[i];
    m.gradient(p, &weights, grad.data());
    double largest = 0;
    for (int j = 0; j < P; ++j) {
      grad[j] = grad[j] / m.rows() + lambda * theta[j];
      largest = std::max(largest, std::fabs(grad[j]));
    }
    if (largest <= 1e-10) break;
    cholesky_solve(L, grad.data());
    for (int j = 0; j < P; ++j) theta[j] -= grad[j];
  }
  return theta;
}

double test_loss(const SoftmaxRegression& tests, int t, int label, const std::vector<double>& theta) {
  std::vector<double> z;
  tests.logits(theta, z);
  const int K = tests.classes();
  const double* zt = z.data() + size_t(t) * K;
  const double m = *std::max_element(zt, zt + K);
  double total = 0;
  for (int k = 0; k < K; ++k) total += std::exp(zt[k] - m);
  return m + std::log(total) - zt[label];
}

}  // namespace

std::vector<LeaveOneOut> leave_one_out(Graph& g, const Examples& train, const Examples& tests, double damping,
                                       int count, const Context& ctx) {
  if (!(damping > 0)) throw std::invalid_argument("leave-one-out: the damping (the refit's L2 weight) must be > 0");
  check_examples(g, train, "training set");
  check_examples(g, tests, "test inputs");
  const int dense = last_dense(g, "leave-one-out"), N = train.size(), K = g.classes();
  if (count < 1 || count > std::min(N, 100))
    throw std::invalid_argument("leave-one-out: " + std::to_string(count) + " points per test input, outside 1.." +
                                std::to_string(std::min(N, 100)) + " (at most 100, and the training set holds " +
                                std::to_string(N) + ")");
  const bool bias = static_cast<const Dense&>(g.layer(dense)).has_bias;
  const LastLayerActivations tr = last_layer_activations(g, dense, train.x, ctx, "features of the training set");
  const LastLayerActivations te = last_layer_activations(g, dense, tests.x, ctx, "features of the test inputs");
  const SoftmaxRegression model(tr.features, K, bias), queries(te.features, K, bias);
  std::vector<double> targets(size_t(N) * K, 0.0), z, p, q;
  for (int i = 0; i < N; ++i) targets[size_t(i) * K + train.y[i]] = 1.0;
  // The optimum of the damped objective, its Hessian's factor, and the influence there.
  report(ctx, "refit of the last layer", 0, 1);
  const std::vector<double> theta =
      fit_softmax_regression(model, targets, nullptr, damping, dense_theta(static_cast<const Dense&>(g.layer(dense))),
                             50, 1e-10).theta;
  model.logits(theta, z);
  SoftmaxRegression::softmax(z, K, p);
  SymmetricMatrix H = model.hessian(p), L;
  for (double& v : H.a) v /= N;
  for (int j = 0; j < H.n; ++j) H.at(j, j) += damping;
  if (!cholesky(H, L)) throw std::runtime_error("leave-one-out: the damped Hessian is not positive definite");
  for (size_t i = 0; i < p.size(); ++i) p[i] -= targets[i];  // residuals at the optimum
  queries.logits(theta, z);
  SoftmaxRegression::softmax(z, K, q);
  for (int t = 0; t < tests.size(); ++t) q[size_t(t) * K + tests.y[t]] -= 1.0;
  std::vector<LeaveOneOut> out(tests.size());
  std::vector<double> s(model.size()), scores(N), weights(N, 1.0);
  for (int t = 0; t < tests.size(); ++t) {
    queries.row_gradients(q, t, t + 1, s.data());
    cholesky_solve(L, s.data());
    model.dots(p, s.data(), scores.data());
    std::vector<int> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + count, order.end(),
                      [&](int a, int b) { return std::fabs(scores[a]) > std::fabs(scores[b]); });
    const double base = test_loss(queries, t, tests.y[t], theta);
    for (int k = 0; k < count; ++k) {
      const int j = order[k];
      weights[j] = 0.0;
      const std::vector<double> without = refit(model, targets, weights, damping, L, theta);
      weights[j] = 1.0;
      out[t].index.push_back(j);
      out[t].predicted.push_back(scores[j] / N);
      out[t].actual.push_back(test_loss(queries, t, tests.y[t], without) - base);
      report(ctx, "leave-one-out refits, test input " + std::to_string(t + 1), k + 1, count);
    }
    out[t].pearson = pearson(out[t].predicted, out[t].actual);
  }
  return out;
}

void add_influence_method(std::vector<Method>& registry) {
  registry.push_back(
      {{"influence",
        "influence functions: the predicted change of the test loss when a training point is removed",
        {{"layers", "last", "parameters the influence is taken over: last (the last dense layer: the convex case), "
                            "all, or comma-separated layer names"},
         {"solver", "direct", "direct (Cholesky of the explicit Hessian; last layer only), cg or lissa (exact "
                              "Hessian-vector products)"},
         {"damping", "0.01", "lambda added to the mean Hessian (Koh & Liang's damping for MNIST CNNs); > 0 for "
                             "the last layer, whose softmax Hessian is singular"},
         {"cg_iterations", "100", "conjugate-gradient steps at most, one Hessian-vector product each (1..10000; "
                                  "fewer than Koh & Liang's fmin_ncg maxiter=100, which counts Newton iterations)"},
         {"cg_tolerance", "1e-6", "stop conjugate gradients at this relative residual ||b - Ax|| / ||b||"},
         {"lissa_depth", "5000", "LiSSA recursion depth (1..1000000)"},
         {"lissa_scale", "25", "LiSSA scale: must exceed the Hessian's largest eigenvalue plus damping"},
         {"lissa_batch", "1", "training points per LiSSA Hessian-vector product (1..4096)"},
         {"lissa_samples", "10", "independent LiSSA recursions averaged (1..1000)"},
         {"hessian_points", "0", "average the Hessian over this many seeded random training points (0: all)"},
         explain::seed_param("0", "seed of LiSSA's batches and of the Hessian points"),
         {"pert_top", "0", "also I_pert (the test loss's gradient with respect to a training image's pixels) for "
                           "this many most helpful and most harmful training points (0..64)"},
         {"pert_test", "0", "also -d score / d x_test (which pixels of the test input the score of a training "
                            "point rests on) for this many most helpful and most harmful training points (0..64); "
                            "one more (H + damping I) solve per chosen point: cheap with layers=last "
                            "solver=direct, one CG/LiSSA run each otherwise"}},
        "Koh & Liang 2017: score = (1/n) grad L(test)^T (H + damping I)^-1 grad L(z), H the mean Hessian of the "
        "per-example cross-entropy without regularizer (their predicted_loss_diffs for a model trained without "
        "weight decay: theirs is in their Hessian, add it to damping to match; Captum NaiveInfluenceFunction "
        "with hessian_reg = n*damping and every eigenvalue kept); positive = helpful. LiSSA's damping is the same "
        "lambda (Koh & Liang's recursion factor 1 - d has d = damping/scale); defaults are Koh & Liang's MNIST "
        "settings (damping 0.01 for CNNs; LiSSA scale 25, depth 5000, batch 1, 10 samples). Koh & Liang add the "
        "weight-decay gradient to each training gradient; glassbox and Captum do not"},
       run_influence,
       self_influence_run});
}

}  // namespace gb::explain::instances
