#include "engine/passes.h"

#include <algorithm>
#include <stdexcept>

#include "engine/threads.h"

namespace gb {

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

Tensor per_sample_param_grads(Graph& g, const Tensor& x, const Tensor& seed, const std::vector<int>& nodes) {
  const ParamSlice slice = param_slice(g, nodes);
  std::vector<int> chosen;  // in graph order, each once
  for (int i = 0; i < g.size(); ++i)
    if (std::find(nodes.begin(), nodes.end(), i) != nodes.end()) chosen.push_back(i);
  g.forward(x);
  // The signal at every chosen layer's output, from one backward pass.
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

  const int N = x.batch(), T = std::max(1, std::min(threads(), N));
  Tensor out(Shape{N, int(slice.size)});
  std::vector<Workspace> ws(T);
  BlasSerial serial;
  parallel(T, [&](int t) {
    int b, e;
    part(t, T, N, b, e);
    std::vector<Tensor> views, ins(4), unused;  // unused: targets for non-trainable parameters
    std::vector<const Tensor*> in;
    std::vector<Tensor*> grads;
    for (int n = b; n < e; ++n) {
      const Tensor row = out.sample(n).reshaped(Shape{int(slice.size)});
      size_t offset = 0;
      for (int i : chosen) {
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
        for (size_t p = 0; p < params.size(); ++p) {
          if (params[p]->trainable) {
            const size_t len = params[p]->value.size();
            views[p] = row.slice(int(offset), int(offset + len)).reshaped(params[p]->value.shape());
            offset += len;
          }
          grads.push_back(params[p]->trainable ? &views[p] : &unused[p]);
        }
        const Tensor a_out = g.activation(i).sample(n), sig = g.signal(i).sample(n);
        BackwardCall call{i,     L,    in,    a_out, sig, std::vector<Tensor*>(inputs.size(), nullptr), true,
                          ws[t], Mode::eval, grads, false, n,   t};
        L.backward(call);
      }
    }
  });
  return out;
}

}  // namespace gb
