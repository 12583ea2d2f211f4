// Exact Hessian-vector products (engine/hvp.h): against central differences of gradients on small
// nets with every layer kind that has a tangent rule, symmetry uᵀHv = vᵀHu, softmax regression by
// hand, the input tangent (I_pert's mixed derivative) against differences of input gradients,
// chosen layers only, threads and batch splits, and a layer without a rule refused by name.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>

#include "engine/architecture.h"
#include "engine/hvp.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/threads.h"

using namespace gb;

namespace {

Tensor seeded_uniform(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Rng r(seed);
  Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = lo + (hi - lo) * r.uniform();
  return t;
}

// A seeded graph with non-zero biases, and BatchNorm layers with non-trivial statistics and
// affine parameters.
Graph net(const std::string& text, uint64_t seed = 3) {
  Graph g = graph_from_text(text);
  g.init(seed);
  Rng r(seed + 1);
  for (auto& [name, p] : g.named_params()) {
    if (name.ends_with(".bias"))
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.3f * (2 * r.uniform() - 1);
    if (name.find("batchnorm") == std::string::npos) continue;
    const bool var = name.ends_with("running_var");
    for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = var ? 0.5f + r.uniform() : 0.4f * (2 * r.uniform() - 1) + (name.ends_with("weight") ? 1.f : 0.f);
  }
  return g;
}

std::vector<int> labels(int n, int K) {
  std::vector<int> y(n);
  for (int i = 0; i < n; ++i) y[i] = (3 * i + 1) % K;
  return y;
}

std::vector<int> all_nodes(const Graph& g) {
  std::vector<int> v;
  for (int i = 0; i < g.size(); ++i)
    if (!g.layer(i).params().empty()) v.push_back(i);
  return v;
}

// The gradient of Σ_n CE over the slice's parameters, in the slice's layout.
std::vector<double> slice_grad(Graph& g, const Tensor& x, const std::vector<int>& y, const ParamSlice& s) {
  g.zero_grad();
  Tensor grad;
  softmax_cross_entropy(g.forward(x), y, &grad, Reduction::sum);
  BackwardOptions bo;
  bo.param_grads = true;
  bo.input_grad = false;
  g.backward(grad, bo);
  std::vector<double> out;
  for (Param* p : s.params)
    for (size_t i = 0; i < p->grad.size(); ++i) out.push_back(p->grad[i]);
  return out;
}

// ∇_x Σ_n CE.
Tensor input_grad(Graph& g, const Tensor& x, const std::vector<int>& y) {
  Tensor grad;
  softmax_cross_entropy(g.forward(x), y, &grad, Reduction::sum);
  return g.backward(grad).clone();
}

void move_params(const ParamSlice& s, const std::vector<float>& v, float step) {
  size_t k = 0;
  for (Param* p : s.params)
    for (size_t i = 0; i < p->value.size(); ++i) p->value[i] += step * v[k++];
}

std::vector<float> direction(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (float& e : v) e = 2 * r.uniform() - 1;
  return v;
}

std::vector<float> hvp(Graph& g, const Tensor& x, const std::vector<int>& y, const ParamSlice& s,
                       const std::vector<float>& v, Tensor* input_tangent = nullptr, int batch = 128) {
  std::vector<float> out(s.size);
  hessian_vector_product(g, x, y, s, v.data(), out.data(), input_tangent, batch);
  return out;
}

double max_abs(const std::vector<double>& a) {
  double m = 1e-30;
  for (double e : a) m = std::max(m, std::fabs(e));
  return m;
}

// Which side of every kink x sits on: the signs of ReLU inputs, the winners of max-pooling.
std::vector<int> kinks(Graph& g, const Tensor& x) {
  g.forward(x);
  std::vector<int> out;
  for (int i = 0; i < g.size(); ++i) {
    const Tensor& in = g.activation(g.node(i).inputs[0]);
    if (g.layer(i).kind() == "relu" || g.layer(i).kind() == "leakyrelu")
      for (size_t k = 0; k < in.size(); ++k) out.push_back(in[k] > 0);
    if (auto* pool = dynamic_cast<MaxPool2d*>(&g.layer(i))) {
      std::vector<int32_t> w(g.activation(i).size());
      pool->winners(in, w.data());
      out.insert(out.end(), w.begin(), w.end());
    }
  }
  return out;
}

// A step small enough that θ ± εv crosses no kink of a piecewise-linear layer, where central
// differences of gradients would jump.
float kink_free_step(Graph& g, const Tensor& x, const ParamSlice& s, const std::vector<float>& v, float eps) {
  const std::vector<int> here = kinks(g, x);
  for (;; eps /= 2) {
    move_params(s, v, eps);
    const bool plus = kinks(g, x) == here;
    move_params(s, v, -2 * eps);
    const bool minus = kinks(g, x) == here;
    move_params(s, v, eps);
    if ((plus && minus) || eps < 1e-5f) return eps;
  }
}

// max |Hv − (∇(θ + εv) − ∇(θ − εv)) / 2ε|, relative to max |Hv|.
double fd_error(Graph& g, const Tensor& x, const std::vector<int>& y, const std::vector<int>& nodes, uint64_t seed) {
  const ParamSlice s = param_slice(g, nodes);
  const std::vector<float> v = direction(s.size, seed);
  const std::vector<float> hv = hvp(g, x, y, s, v);
  const float eps = kink_free_step(g, x, s, v, 1e-3f);
  move_params(s, v, eps);
  const std::vector<double> plus = slice_grad(g, x, y, s);
  move_params(s, v, -2 * eps);
  const std::vector<double> minus = slice_grad(g, x, y, s);
  move_params(s, v, eps);
  std::vector<double> exact(hv.begin(), hv.end()), diff(s.size);
  for (size_t i = 0; i < s.size; ++i) diff[i] = hv[i] - (plus[i] - minus[i]) / (2 * double(eps));
  return max_abs(diff) / max_abs(exact);
}

const char* kNets[] = {
    // conv with padding, tanh, max-pool, softplus, sigmoid, dense
    "input(2,6,6) conv(3,k=3,p=1) tanh maxpool(2) conv(4,k=2) softplus(2) flatten dense(5) sigmoid dense(3)",
    // relu, average pooling (padding counted), leaky relu, a conv without bias
    "input(1,7,7) conv(2,k=3,bias=false) relu avgpool(2,p=1) flatten dense(4) leakyrelu(0.1) dense(3)",
    // batchnorm (eval), a residual sum, global average pooling, dropout (eval), stride 2
    ("input(2,6,6) conv(4,k=3,p=1,name=a) batchnorm tanh conv(4,k=3,p=1) add(a) conv(3,k=3,s=2) relu gap dropout(0.5) "
     "dense(3)"),
    // a Winograd convolution (3x3, stride 1, >= 16 channels in and out) and a dense batchnorm
    "input(16,4,4) conv(16,k=3,p=1) softplus gap dense(6) batchnorm tanh dense(3)",
};

}  // namespace

TEST_CASE("hvp: equals central differences of gradients on nets with every supported layer kind") {
  RestoreThreads guard;
  for (int threads : {1, 2}) {
    set_threads(threads);
    for (const char* text : kNets) {
      const std::string net_text = text;
      CAPTURE(net_text);
      CAPTURE(threads);
      Graph g = net(text);
      const Tensor x = seeded_uniform(g.shape(-1, 5), 11);
      const std::vector<int> y = labels(5, g.classes());
      CHECK(fd_error(g, x, y, all_nodes(g), 21) < 5e-3);
      // One layer's block of the Hessian: the others' parameters stay fixed.
      CHECK(fd_error(g, x, y, {all_nodes(g).front()}, 22) < 5e-3);
      CHECK(fd_error(g, x, y, {all_nodes(g).back()}, 23) < 5e-3);
    }
  }
}

TEST_CASE("hvp: symmetric, uᵀHv = vᵀHu, and independent of threads and batch splits") {
  RestoreThreads guard;
  for (const char* text : kNets) {
    const std::string net_text = text;
      CAPTURE(net_text);
    Graph g = net(text);
    const Tensor x = seeded_uniform(g.shape(-1, 7), 12);
    const std::vector<int> y = labels(7, g.classes());
    const ParamSlice s = param_slice(g, all_nodes(g));
    const std::vector<float> u = direction(s.size, 31), v = direction(s.size, 32);
    set_threads(1);
    const std::vector<float> hv = hvp(g, x, y, s, v), hu = hvp(g, x, y, s, u);
    double uhv = 0, vhu = 0, scale = 0;
    for (size_t i = 0; i < s.size; ++i) {
      uhv += double(u[i]) * hv[i];
      vhu += double(v[i]) * hu[i];
      scale += std::fabs(double(u[i]) * hv[i]);
    }
    CHECK(std::fabs(uhv - vhu) < 1e-5 * scale);
    // One object reused for several directions and batch sizes gives the same products.
    HessianVectorProduct reused(g, s);
    std::vector<float> ru(s.size), rv(s.size);
    reused(x, y, u.data(), ru.data(), nullptr, 2);
    reused(x, y, v.data(), rv.data());
    std::vector<double> du(s.size), dv(s.size), ref_u(hu.begin(), hu.end()), ref_v(hv.begin(), hv.end());
    for (size_t i = 0; i < s.size; ++i) du[i] = ru[i] - hu[i], dv[i] = rv[i] - hv[i];
    CHECK(max_abs(du) < 1e-5 * max_abs(ref_u));
    CHECK(max_abs(dv) < 1e-6 * max_abs(ref_v));
    set_threads(2);
    const std::vector<float> split = hvp(g, x, y, s, v, nullptr, 3);  // 3 + 3 + 1 samples, 2 threads
    std::vector<double> diff(s.size), ref(hv.begin(), hv.end());
    for (size_t i = 0; i < s.size; ++i) diff[i] = split[i] - hv[i];
    CHECK(max_abs(diff) < 1e-5 * max_abs(ref));
  }
}

TEST_CASE("hvp: softmax regression by hand, Σ_n (diag p − p pᵀ) ⊗ x̃ x̃ᵀ v") {
  Graph g = net("input(4) dense(3)");
  const Tensor x = seeded_uniform(Shape{6, 4}, 13);
  const std::vector<int> y = labels(6, 3);
  const ParamSlice s = param_slice(g, {0});  // weight [3,4], then bias [3]
  const std::vector<float> v = direction(s.size, 33);
  const std::vector<float> hv = hvp(g, x, y, s, v);
  const Tensor& W = static_cast<Dense&>(g.layer(0)).weight.value;
  const Tensor& b = static_cast<Dense&>(g.layer(0)).bias.value;
  std::vector<double> want(s.size, 0.0);
  for (int n = 0; n < 6; ++n) {
    double z[3], p[3], u[3], m = -1e30, total = 0, pu = 0;
    for (int k = 0; k < 3; ++k) {
      z[k] = b[k];
      u[k] = v[12 + k];  // the bias direction
      for (int d = 0; d < 4; ++d) z[k] += W[k * 4 + d] * x[n * 4 + d], u[k] += v[k * 4 + d] * x[n * 4 + d];
      m = std::max(m, z[k]);
    }
    for (int k = 0; k < 3; ++k) total += p[k] = std::exp(z[k] - m);
    for (int k = 0; k < 3; ++k) pu += (p[k] /= total) * u[k];
    for (int k = 0; k < 3; ++k) {
      const double w = p[k] * (u[k] - pu);  // ((diag p − p pᵀ) u)_k
      for (int d = 0; d < 4; ++d) want[k * 4 + d] += w * x[n * 4 + d];
      want[12 + k] += w;
    }
  }
  std::vector<double> diff(s.size);
  for (size_t i = 0; i < s.size; ++i) diff[i] = hv[i] - want[i];
  CHECK(max_abs(diff) < 1e-5 * max_abs(want));
}

TEST_CASE("hvp: the input tangent is d/dr ∇_x L(θ + r v), against central differences") {
  for (const char* text : kNets) {
    const std::string net_text = text;
      CAPTURE(net_text);
    Graph g = net(text);
    const Tensor x = seeded_uniform(g.shape(-1, 4), 14);
    const std::vector<int> y = labels(4, g.classes());
    for (const std::vector<int>& nodes : {all_nodes(g), std::vector<int>{all_nodes(g).back()}}) {
      const ParamSlice s = param_slice(g, nodes);
      const std::vector<float> v = direction(s.size, 34);
      Tensor tangent;
      hvp(g, x, y, s, v, &tangent);
      const float eps = kink_free_step(g, x, s, v, 1e-3f);
      move_params(s, v, eps);
      const Tensor plus = input_grad(g, x, y);
      move_params(s, v, -2 * eps);
      const Tensor minus = input_grad(g, x, y);
      move_params(s, v, eps);
      REQUIRE(tangent.shape() == x.shape());
      std::vector<double> diff(x.size()), ref(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        ref[i] = tangent[i];
        diff[i] = tangent[i] - (double(plus[i]) - minus[i]) / (2 * double(eps));
      }
      CHECK(max_abs(diff) < 2e-3 * max_abs(ref));
    }
  }
}

namespace {
struct Mystery : Layer {  // a layer kind without tangent rules
  std::string kind() const override { return "mystery"; }
  Shape out_shape(const std::vector<Shape>& in) const override { return in[0]; }
  void forward(ForwardCall&) override {}
  void backward(BackwardCall&) override {}
};
}  // namespace

TEST_CASE("hvp: a layer without tangent rules and a bad label are refused by name") {
  Graph g(Shape{4});
  g.then<Dense>(3);
  auto m = std::make_unique<Mystery>();
  m->name = "odd";
  g.then(std::move(m));
  g.init(1);
  const ParamSlice s = param_slice(g, {0});
  std::vector<float> v(s.size, 1.f), out(s.size);
  const Tensor x = seeded_uniform(Shape{2, 4}, 1);
  CHECK_THROWS_WITH_AS(hessian_vector_product(g, x, {0, 1}, s, v.data(), out.data()),
                       doctest::Contains("layer 'odd' (mystery) has no tangent rule"), std::invalid_argument);
  Graph h = net("input(4) dense(3)");
  const ParamSlice hs = param_slice(h, {0});
  CHECK_THROWS_WITH_AS(hessian_vector_product(h, x, {0, 3}, hs, v.data(), out.data()),
                       doctest::Contains("label 3 outside [0,3)"), std::out_of_range);
}
