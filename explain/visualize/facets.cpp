// Multifaceted feature visualization (Nguyen, Yosinski & Clune 2016): a unit responds to several
// kinds of input (facets). Take its top-activating dataset images, cluster them by their
// activations at a layer (k-means), and run activation maximization from each cluster's mean
// image: one image per facet, all units × facets in one batch.
#include "explain/visualize/kmeans.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "engine/rng.h"
#include "explain/visualize/method.h"

namespace gb::visualize {

namespace {

double dist2(const float* a, const float* b, size_t D) {
  double s = 0;
  for (size_t i = 0; i < D; ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return s;
}

// k-means++: the first center uniformly, each next one with probability ∝ squared distance to the
// nearest chosen center.
void seed_centers(const Tensor& X, int k, Rng& rng, Tensor& centers) {
  const int N = X.batch();
  const size_t D = X.sample_size();
  std::vector<double> d(N, INFINITY);
  int pick = int(rng.below(uint32_t(N)));
  for (int c = 0; c < k; ++c) {
    std::copy_n(X.data() + size_t(pick) * D, D, centers.data() + size_t(c) * D);
    double total = 0;
    for (int n = 0; n < N; ++n) total += d[n] = std::min(d[n], dist2(X.data() + size_t(n) * D, centers.data() + size_t(c) * D, D));
    if (!(total > 0)) {  // every point is a center already: repeat the last
      continue;
    }
    double u = rng.uniform() * total;
    pick = N - 1;
    for (int n = 0; n < N; ++n)
      if ((u -= d[n]) < 0) {
        pick = n;
        break;
      }
  }
}

}  // namespace

Clusters kmeans(const Tensor& X, int k, uint64_t seed, int max_iters) {
  const int N = X.batch();
  if (X.rank() < 2 || k < 1 || N < k)
    throw std::invalid_argument("kmeans: " + std::to_string(k) + " clusters of " + X.shape().str());
  const size_t D = X.sample_size();
  Clusters out;
  out.centers = Tensor(Shape{k, int(D)});
  Rng rng(seed);
  seed_centers(X, k, rng, out.centers);
  out.labels.assign(N, -1);
  std::vector<double> best(N);
  std::vector<int> count(k);
  for (out.iterations = 1; out.iterations <= max_iters; ++out.iterations) {
    bool changed = false;
    for (int n = 0; n < N; ++n) {
      int arg = 0;
      best[n] = INFINITY;
      for (int c = 0; c < k; ++c) {
        const double d = dist2(X.data() + size_t(n) * D, out.centers.data() + size_t(c) * D, D);
        if (d < best[n]) best[n] = d, arg = c;
      }
      changed |= out.labels[n] != arg;
      out.labels[n] = arg;
    }
    if (!changed) break;
    out.centers.fill(0.f);
    std::fill(count.begin(), count.end(), 0);
    for (int n = 0; n < N; ++n) {
      ++count[out.labels[n]];
      float* c = out.centers.data() + size_t(out.labels[n]) * D;
      for (size_t i = 0; i < D; ++i) c[i] += X[size_t(n) * D + i];
    }
    for (int c = 0; c < k; ++c) {
      float* ctr = out.centers.data() + size_t(c) * D;
      if (count[c] == 0) {  // an empty cluster restarts at the point farthest from its center
        const int far = int(std::max_element(best.begin(), best.end()) - best.begin());
        std::copy_n(X.data() + size_t(far) * D, D, ctr);
        best[far] = 0;
        continue;
      }
      for (size_t i = 0; i < D; ++i) ctr[i] /= float(count[c]);
    }
  }
  out.iterations = std::min(out.iterations, max_iters);
  return out;
}

namespace {

// The clustering layer: given, or the unit's own layer, or for classes the layer feeding the
// output (the penultimate representation, Nguyen et al.'s fc7).
int cluster_node(ParamReader& r, const Graph& g, const Unit& u) {
  const std::string name = r.text("layer");
  if (!name.empty()) return g.at(name);
  if (u.kind != Unit::Kind::class_score) return u.at(g);
  const std::vector<int>& in = g.node(g.output()).inputs;
  return in.empty() || in[0] < 0 ? g.output() : in[0];
}

// The `top` samples of data where unit u is highest (ties: the earlier sample).
std::vector<int> top_samples(Graph& g, const Unit& u, Score score, const Tensor& data, int top) {
  std::vector<double> v(data.batch());
  ForwardOptions fo;
  fo.until = u.at(g);
  for (int b = 0; b < data.batch(); b += kScanBatch) {
    const int e = std::min(data.batch(), b + kScanBatch);
    const Tensor& a = g.forward(data.slice(b, e), fo);
    for (int n = b; n < e; ++n) v[n] = unit_value(u, score, a.data() + size_t(n - b) * a.sample_size(), a.shape().sample());
  }
  std::vector<int> order(data.batch());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return v[a] > v[b]; });
  order.resize(top);
  return order;
}

Result run_multifaceted(Graph& g, const Request& q, ParamReader& r) {
  require_data(q, "multifaceted");
  if (q.units.empty()) throw std::invalid_argument("multifaceted needs units (--unit class:K, LAYER:C, ...)");
  AscentOptions o = read_ascent(r, g, q);
  const Score score = read_score(r, q.units);
  const uint64_t seed = uint64_t(read_int(r, "seed", 0, INT_MAX));
  const int facets = read_int(r, "facets", 1, 32), top = read_int(r, "top", 1, 100000);
  const int iters = read_int(r, "kmeans_iters", 1, 1000);
  if (top < facets || top > q.data.batch())
    throw std::invalid_argument("multifaceted: top=" + std::to_string(top) + " images must be at least facets=" +
                                std::to_string(facets) + " and at most the " + std::to_string(q.data.batch()) + " scanned");
  const int U = int(q.units.size()), R = U * facets;
  if (R > 4096) throw std::out_of_range("multifaceted: " + std::to_string(R) + " images in one batch, at most 4096");
  const size_t D = q.data.sample_size();
  Tensor start(Shape::batch_of(R, g.input_shape()));
  std::vector<Unit> rows;
  std::vector<int> sizes(R);
  for (int u = 0; u < U; ++u) {
    const int L = cluster_node(r, g, q.units[u]);
    const std::vector<int> best = top_samples(g, q.units[u], score, q.data, top);
    Tensor images(Shape::batch_of(top, g.input_shape()));
    for (int i = 0; i < top; ++i) std::copy_n(q.data.data() + size_t(best[i]) * D, D, images.data() + size_t(i) * D);
    const Tensor codes = activations(g, images, {L})[0];
    const Clusters c = kmeans(codes.reshaped(Shape{top, int(codes.sample_size())}), facets,
                              mix_seed(seed, q.units[u].key()), iters);
    for (int f = 0; f < facets; ++f) {  // the facet's start: the mean of its images
      float* s = start.data() + size_t(u * facets + f) * D;
      for (int i = 0; i < top; ++i) {
        if (c.labels[i] != f) continue;
        ++sizes[u * facets + f];
        for (size_t j = 0; j < D; ++j) s[j] += images[size_t(i) * D + j];
      }
      for (size_t j = 0; j < D; ++j) s[j] /= float(std::max(1, sizes[u * facets + f]));
      rows.push_back(q.units[u]);
    }
  }
  o.row_seeds = row_seeds(seed, q.units, facets);
  const AscentResult a = ascend(g, unit_objective(g, rows, score), start, o);
  Result res;
  res.panels.push_back({"image", a.x, Draw::pixels});
  res.panels.push_back({"start", start, Draw::pixels});
  res.per_line = facets;
  for (int i = 0; i < R; ++i) {
    Row row;
    row.name = rows[i].name(g) + "_facet" + std::to_string(i % facets);
    row.caption = label(g, q, rows[i]) + " facet " + std::to_string(i % facets) + "\n" + std::to_string(sizes[i]) +
                  " images, score " + number(a.value[i]);
    report(a, i, row);
    row.values["cluster_size"] = sizes[i];
    res.rows.push_back(std::move(row));
  }
  return res;
}

}  // namespace

void add_facet_methods(std::vector<Method>& reg) {
  // am's priors with fewer, smaller steps and no blur: the facet's mean image is the prior, and
  // 256 blurred steps of lr 0.05 wash it out.
  AscentDefaults d = am_defaults();
  d.steps = "100";
  d.lr = "0.02";
  d.blur_every = "0";
  std::vector<ParamInfo> p = ascent_params(d);
  p.insert(p.end(), {
      {"facets", "4", "clusters (facets) per unit, 1..32"},
      {"top", "100", "the unit's top dataset images that are clustered"},
      {"layer", "", "the layer whose activations are clustered (default: the unit's own; for classes the layer "
                    "feeding the output)"},
      {"kmeans_iters", "100", "at most this many k-means iterations"},
      {"score", "logit", "class units: logit, prob or logprob (ranks the top images and is ascended)"},
      explain::seed_param("0", "random seed (k-means++ seeds, jitter)"),
  });
  reg.push_back({{"multifaceted",
                  "multifaceted visualization: cluster each unit's top dataset images (k-means on a layer's "
                  "activations) and run activation maximization from each cluster's mean image; glassbox visualize "
                  "scans the training split by default, as the paper does (--scan-split test|all for another)",
                  p,
                  "Nguyen, Yosinski & Clune 2016 without their t-SNE step (k-means on the raw activations) and "
                  "without the center-biased regularization; am's optimizer and priors with 100 steps of lr 0.02 "
                  "and no blur, so the facet's start stays visible"},
                 run_multifaceted});
}

}  // namespace gb::visualize
