// Activation configurations: which layers OpenBox can freeze, and configuration ids, from the
// rule set or from one plain batched forward.
#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "engine/argmax.h"
#include "explain/openbox/openbox.h"
#include "explain/openbox/rules.h"

namespace gb::openbox {

namespace {

// Layers OpenBox freezes (ReLU, LeakyReLU, max-pool), applies (conv, dense, batchnorm) or that
// are linear already.
bool known(const Layer& L) {
  return dynamic_cast<const ReLU*>(&L) || dynamic_cast<const LeakyReLU*>(&L) || dynamic_cast<const MaxPool2d*>(&L) ||
         dynamic_cast<const Conv2d*>(&L) || dynamic_cast<const Dense*>(&L) || dynamic_cast<const BatchNorm2d*>(&L) ||
         dynamic_cast<const AvgPool2d*>(&L) || dynamic_cast<const GlobalAvgPool*>(&L) ||
         dynamic_cast<const Flatten*>(&L) || dynamic_cast<const Dropout*>(&L) || dynamic_cast<const Add*>(&L);
}

const MaxPool2d* as_max_pool(const Layer& L) { return dynamic_cast<const MaxPool2d*>(&L); }
bool is_relu(const Layer& L) { return dynamic_cast<const ReLU*>(&L) || dynamic_cast<const LeakyReLU*>(&L); }

// The predicted class of each of the nb rows of logits y, into labels[n0...].
void write_labels(const Tensor& y, int K, int n0, int nb, std::vector<int>& labels) {
  for (int n = 0; n < nb; ++n) {
    const float* row = y.data() + size_t(n) * K;
    labels[n0 + n] = argmax(row, K);
  }
}

}  // namespace

void check_piecewise_linear(const Graph& g) {
  for (int i = 0; i < g.size(); ++i) {
    const Layer& L = g.layer(i);
    if (!L.piecewise_linear())
      throw std::invalid_argument("OpenBox needs a piecewise-linear network: layer '" + L.name + "' (" + L.kind() +
                                  ") is smooth, so the network has no linear regions");
    if (!known(L))
      throw std::invalid_argument("OpenBox cannot freeze layer '" + L.name + "' (" + L.kind() +
                                  ") into an affine map");
  }
}

std::string hex_id(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}
std::string Configuration::hex() const { return hex_id(id); }

std::vector<uint64_t> configuration_ids(Graph& g, const Tensor& x, std::vector<int>* labels) {
  check_piecewise_linear(g);
  std::vector<int> nodes;                // the configuration layers, in graph order
  std::vector<const MaxPool2d*> pools;  // per configuration layer: the max-pool, or null (a ReLU)
  for (int i = 0; i < g.size(); ++i)
    if (is_relu(g.layer(i)) || as_max_pool(g.layer(i))) {
      nodes.push_back(i);
      pools.push_back(as_max_pool(g.layer(i)));
    }
  const int N = x.batch();
  std::vector<uint64_t> ids(N);
  if (labels) labels->resize(N);
  std::vector<std::vector<int32_t>> winners(nodes.size());  // per max-pool node, for the chunk
  const int chunk = 256;
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int nb = std::min(chunk, N - n0);
    const Tensor& y = g.forward(x.slice(n0, n0 + nb), Mode::eval);
    if (labels) write_labels(y, g.classes(), n0, nb, *labels);
    for (size_t li = 0; li < nodes.size(); ++li)
      if (pools[li]) {
        winners[li].resize(g.activation(nodes[li]).size());
        pools[li]->winners(g.activation(g.node(nodes[li]).inputs[0]), winners[li].data());
      }
    for (int n = 0; n < nb; ++n) {
      Hasher H;
      for (size_t li = 0; li < nodes.size(); ++li) {
        const int i = nodes[li];
        if (pools[li]) {
          const size_t per = g.shape(i, 1).numel();
          H.pool(int(li), winners[li].data() + size_t(n) * per, per);
        } else {
          const Tensor& pre = g.activation(g.node(i).inputs[0]);
          const size_t per = pre.sample_size();
          H.relu_pre(int(li), pre.data() + size_t(n) * per, per);
        }
      }
      ids[n0 + n] = H.h;
    }
  }
  return ids;
}

Configuration configuration(Graph& g, const Tensor& x1) {
  check_one(g, x1, "openbox input");
  Rules rules(g);
  rules.run(x1);
  return rules.configuration();
}

}  // namespace gb::openbox
