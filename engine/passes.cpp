#include "engine/passes.h"

#include <algorithm>
#include <stdexcept>

#include "engine/blas.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/threads.h"

namespace gb {

static double sum_of_squares(const Tensor& t) {
  double s = 0;
  for (size_t i = 0; i < t.size(); ++i) s += double(t[i]) * t[i];
  return s;
}

static void check_nodes(const Graph& g, const std::vector<int>& nodes, bool input_ok, const char* what) {
  if (nodes.empty()) throw std::invalid_argument(std::string(what) + ": no layers chosen");
  for (int i : nodes)
    if (i < (input_ok ? -1 : 0) || i >= g.size())
      throw std::invalid_argument(std::string(what) + ": node " + std::to_string(i) + " is not a layer of the model");
}

std::vector<Tensor> activations(Graph& g, const Tensor& x, const std::vector<int>& nodes, int batch,
                                const Progress& progress) {
  check_nodes(g, nodes, true, "activations");
  if (batch < 1) throw std::invalid_argument("activations: batch must be >= 1, got " + std::to_string(batch));
  const int N = x.rank() ? x.batch() : 0, last = *std::max_element(nodes.begin(), nodes.end());
  std::vector<Tensor> out;
  for (int i : nodes) out.emplace_back(g.shape(i, N));
  ForwardOptions fo;
  fo.until = last;
  for (int b = 0; b < N; b += batch) {
    const int e = std::min(N, b + batch);
    const Tensor xb = x.slice(b, e);
    if (last >= 0) g.forward(xb, fo);
    for (size_t k = 0; k < nodes.size(); ++k) {
      const Tensor& a = nodes[k] < 0 ? xb : g.activation(nodes[k]);
      std::copy_n(a.data(), a.size(), out[k].data() + size_t(b) * out[k].sample_size());
    }
    if (progress) progress(e, N);
  }
  return out;
}

ParamSlice param_slice(const Graph& g, const std::vector<int>& nodes) {
  check_nodes(g, nodes, false, "per-sample gradients");
  ParamSlice s;
  for (int i = 0; i < g.size(); ++i) {
    if (std::find(nodes.begin(), nodes.end(), i) == nodes.end()) continue;
    for (Param* p : g.layer(i).params())
      if (p->trainable) {
        s.names.push_back(g.layer(i).name + "." + p->name);
        s.params.push_back(p);
        s.size += p->value.size();
      }
  }
  if (s.size == 0) throw std::invalid_argument("per-sample gradients: the chosen layers have no trainable parameters");
  return s;
}

namespace {

// The chosen layers in graph order, each once, after one backward pass from the seed (made from
// the graph's output) has left the signal at each of their outputs.
using SeedOf = std::function<const Tensor&(const Tensor& output)>;

std::vector<int> signals_at_layers(Graph& g, const Tensor& x, const SeedOf& seed_of, const std::vector<int>& nodes) {
  std::vector<int> chosen;
  for (int i = 0; i < g.size(); ++i)
    if (std::find(nodes.begin(), nodes.end(), i) != nodes.end()) chosen.push_back(i);
  const Tensor& seed = seed_of(g.forward(x));
  std::vector<char> reached(g.size(), 0);
  BackwardOptions bo;
  bo.input_grad = false;
  bo.stop_at = chosen.front();
  bo.on_node = [&](int i, const Tensor&) {
    if (i >= 0) reached[i] = 1;
  };
  g.backward(seed, bo);
  for (int i : chosen)
    if (!reached[i]) throw std::invalid_argument("per-sample gradients: no signal reaches layer " + g.layer(i).name);
  return chosen;
}

size_t trainable_size(Layer& L) {
  size_t n = 0;
  for (Param* p : L.params())
    if (p->trainable) n += p->value.size();
  return n;
}

// Sample n's gradient of layer i's trainable parameters, added into `row` (their values one after
// another, in params() order) by the layer's own backward on that sample. The vectors are kept
// between calls, so a thread's calls allocate nothing once they are sized.
struct SampleGrad {
  std::vector<Tensor> views, ins, unused;  // unused: targets for non-trainable parameters
  std::vector<const Tensor*> in;
  std::vector<Tensor*> grads;

  void add(Graph& g, int i, int n, const Tensor& row, Workspace& ws, int thread) {
    Layer& L = g.layer(i);
    const std::vector<int>& inputs = g.node(i).inputs;
    ins.resize(std::max(ins.size(), inputs.size()));
    in.clear();
    for (size_t a = 0; a < inputs.size(); ++a) {
      ins[a] = g.activation(inputs[a]).sample(n);
      in.push_back(&ins[a]);
    }
    const std::vector<Param*> params = L.params();
    views.assign(params.size(), Tensor());
    unused.assign(params.size(), Tensor());
    grads.clear();
    size_t offset = 0;
    for (size_t p = 0; p < params.size(); ++p) {
      if (params[p]->trainable) {
        const size_t len = params[p]->value.size();
        views[p] = row.slice(int(offset), int(offset + len)).reshaped(params[p]->value.shape());
        offset += len;
      }
      grads.push_back(params[p]->trainable ? &views[p] : &unused[p]);
    }
    const Tensor a_out = g.activation(i).sample(n), sig = g.signal(i).sample(n);
    BackwardCall call{i, L, in, a_out, sig, std::vector<Tensor*>(inputs.size(), nullptr), true, ws, Mode::eval, grads,
                      false, n, thread};
    L.backward(call);
  }
};

}  // namespace

Tensor per_sample_param_grads(Graph& g, const Tensor& x, const Tensor& seed, const std::vector<int>& nodes) {
  const ParamSlice slice = param_slice(g, nodes);
  const std::vector<int> chosen = signals_at_layers(g, x, [&](const Tensor&) -> const Tensor& { return seed; }, nodes);
  const int N = x.batch(), T = std::max(1, std::min(threads(), N));
  Tensor out(Shape{N, int(slice.size)});
  std::vector<Workspace> ws(T);
  BlasSerial serial;
  parallel(T, [&](int t) {
    int b, e;
    part(t, T, N, b, e);
    SampleGrad grad;
    for (int n = b; n < e; ++n) {
      const Tensor row = out.sample(n).reshaped(Shape{int(slice.size)});
      size_t offset = 0;
      for (int i : chosen) {
        const size_t len = trainable_size(g.layer(i));
        grad.add(g, i, n, row.slice(int(offset), int(offset + len)), ws[t], t);
        offset += len;
      }
    }
  });
  return out;
}

// Dense layers by GEMMs over the batch: ⟨s_n a_nᵀ, W_t⟩ = Σ_j (S W_t)_nj A_nj, the bias ⟨s_n, b_t⟩.
static void dense_dots(Graph& g, int i, size_t offset, const Tensor& V, Tensor& out, std::vector<double>* norms) {
  const Dense& L = static_cast<const Dense&>(g.layer(i));
  const Tensor& A = g.activation(g.node(i).inputs[0]);
  const Tensor& S = g.signal(i);
  const int N = A.batch(), I = L.in_features, O = L.out_features, M = V.batch();
  const size_t P = V.sample_size();
  Tensor U(Shape{N, I});
  for (int t = 0; t < M; ++t) {
    const float* W = V.data() + t * P + offset;
    gemm(false, false, N, I, O, 1.f, S.data(), W, 0.f, U.data());
    for (int n = 0; n < N; ++n) {
      double d = 0;
      for (int j = 0; j < I; ++j) d += double(U[size_t(n) * I + j]) * A[size_t(n) * I + j];
      if (L.has_bias)
        for (int o = 0; o < O; ++o) d += double(S[size_t(n) * O + o]) * W[size_t(O) * I + o];
      out[size_t(n) * M + t] += float(d);
    }
  }
  if (!norms) return;
  for (int n = 0; n < N; ++n) {
    double ss = 0, aa = L.has_bias ? 1.0 : 0.0;  // the bias's input is 1
    for (int o = 0; o < O; ++o) ss += double(S[size_t(n) * O + o]) * S[size_t(n) * O + o];
    for (int j = 0; j < I; ++j) aa += double(A[size_t(n) * I + j]) * A[size_t(n) * I + j];
    (*norms)[n] += ss * aa;
  }
}

static Tensor grad_dots(Graph& g, const Tensor& x, const SeedOf& seed_of, const std::vector<int>& nodes,
                        const Tensor& V, std::vector<double>* squared_norms) {
  const ParamSlice slice = param_slice(g, nodes);
  if (V.rank() != 2 || V.dim(1) != int(slice.size))
    shape_error("per-sample gradient dots: directions", Shape{V.rank() ? V.dim(0) : 1, int(slice.size)}, V.shape());
  const std::vector<int> chosen = signals_at_layers(g, x, seed_of, nodes);
  const int N = x.batch(), M = V.batch(), T = std::max(1, std::min(threads(), N));
  Tensor out(Shape{N, M});
  if (squared_norms) squared_norms->assign(N, 0.0);
  std::vector<size_t> offsets;
  size_t offset = 0;
  for (int i : chosen) offsets.push_back(offset), offset += trainable_size(g.layer(i));
  auto dense = [&](int i) { return dynamic_cast<const Dense*>(&g.layer(i)) != nullptr; };
  for (size_t k = 0; k < chosen.size(); ++k)
    if (dense(chosen[k])) dense_dots(g, chosen[k], offsets[k], V, out, squared_norms);
  std::vector<Workspace> ws(T);
  BlasSerial serial;
  parallel(T, [&](int t) {
    int b, e;
    part(t, T, N, b, e);
    SampleGrad grad;
    Tensor row;
    for (int n = b; n < e; ++n)
      for (size_t k = 0; k < chosen.size(); ++k) {
        if (dense(chosen[k])) continue;
        const size_t len = trainable_size(g.layer(chosen[k]));
        row.resize(Shape{int(len)});
        row.fill(0.f);
        grad.add(g, chosen[k], n, row, ws[t], t);
        for (int q = 0; q < M; ++q) {
          const float* v = V.data() + q * slice.size + offsets[k];
          double d = 0;
          for (size_t j = 0; j < len; ++j) d += double(row[j]) * v[j];
          out[size_t(n) * M + q] += float(d);
        }
        if (squared_norms) (*squared_norms)[n] += sum_of_squares(row);
      }
  });
  return out;
}

Tensor per_sample_grad_dots(Graph& g, const Tensor& x, const Tensor& seed, const std::vector<int>& nodes,
                            const Tensor& V, std::vector<double>* squared_norms) {
  return grad_dots(g, x, [&](const Tensor&) -> const Tensor& { return seed; }, nodes, V, squared_norms);
}

Tensor per_sample_loss_grad_dots(Graph& g, const Tensor& x, const std::vector<int>& labels,
                                 const std::vector<int>& nodes, const Tensor& V, std::vector<double>* squared_norms) {
  Tensor seed;
  auto seed_of = [&](const Tensor& logits) -> const Tensor& {
    softmax_cross_entropy(logits, labels, &seed, Reduction::sum);  // row n: sample n's own loss gradient
    return seed;
  };
  return grad_dots(g, x, seed_of, nodes, V, squared_norms);
}

}  // namespace gb
