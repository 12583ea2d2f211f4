#include "explain/surrogates/anchors.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

namespace gb::explain::surrogates {

double kl_bernoulli(double p, double q) {
  p = std::clamp(p, 1e-7, 1 - 1e-16);
  q = std::clamp(q, 1e-7, 1 - 1e-16);
  return p * std::log(p / q) + (1 - p) * std::log((1 - p) / (1 - q));
}

double kl_upper(double p, double level) {
  double lo = p, hi = std::min(1.0, p + std::sqrt(level / 2));  // Pinsker: KL ≥ 2(p − q)²
  while (hi - lo > 1e-9) {
    const double mid = (lo + hi) / 2;
    (kl_bernoulli(p, mid) > level ? hi : lo) = mid;
  }
  return hi;
}

double kl_lower(double p, double level) {
  double lo = std::max(0.0, p - std::sqrt(level / 2)), hi = p;
  while (hi - lo > 1e-9) {
    const double mid = (lo + hi) / 2;
    (kl_bernoulli(p, mid) > level ? lo : hi) = mid;
  }
  return lo;
}

namespace {

// A candidate anchor: its predicates (sorted as the key, and in the order they were added) and the
// samples it may use: those drawn under it, or under its parent and satisfying it.
struct Candidate {
  std::vector<int> key, order;
  std::vector<int> samples;
  long positives = 0;
  double coverage = 1;
  double mean() const { return samples.empty() ? 0 : double(positives) / double(samples.size()); }
  double n() const { return double(samples.size()); }
};

// KL-LUCB's exploration rate (Kaufmann & Kalyanakrishnan 2013, as the anchor package: α 1.1, k 405.5).
double exploration(int arms, int t, double delta) {
  const double v = std::log(405.5 * arms * std::pow(double(t), 1.1) / delta);
  return v + std::log(v);
}

struct Search {
  const AnchorSampler& sampler;
  const AnchorOptions& o;
  std::vector<uint8_t> rows, hits;  // every sample drawn with labels, `predicates` bytes per row
  std::vector<uint8_t> coverage_rows, unused;
  std::map<std::vector<int>, Candidate> candidates;
  long drawn = 0;
  bool exhausted = false;

  bool draw(Candidate& c, int n) {
    if (drawn >= o.max_samples) return !(exhausted = true);
    n = int(std::min<long>(n, o.max_samples - drawn));  // a batch larger than what is left went past the budget
    const size_t first = hits.size();
    sampler.draw(c.order, n, true, rows, hits);
    for (size_t i = first; i < hits.size(); ++i) c.samples.push_back(int(i)), c.positives += hits[i];
    drawn += long(hits.size() - first);
    exhausted = drawn >= o.max_samples;  // said now: the search may not draw again
    return true;
  }
  bool holds(const std::vector<uint8_t>& table, size_t row, const std::vector<int>& key) const {
    for (int p : key)
      if (!table[row * sampler.predicates + p]) return false;
    return true;
  }
  double coverage(const std::vector<int>& key) const {
    const size_t M = coverage_rows.size() / sampler.predicates;
    size_t in = 0;
    for (size_t r = 0; r < M; ++r) in += holds(coverage_rows, r, key);
    return M ? double(in) / double(M) : 0;
  }

  // The candidates one predicate larger than those of `previous`, with the samples they inherit.
  std::vector<Candidate*> extend(const std::vector<Candidate*>& previous) {
    std::vector<Candidate*> out;
    for (Candidate* parent : previous)
      for (int p = 0; p < sampler.predicates; ++p) {
        if (std::find(parent->key.begin(), parent->key.end(), p) != parent->key.end()) continue;
        std::vector<int> key = parent->key;
        key.insert(std::upper_bound(key.begin(), key.end(), p), p);
        if (candidates.count(key)) continue;
        Candidate& c = candidates[key];
        c.key = key;
        c.order = parent->order;
        c.order.push_back(p);
        for (int s : parent->samples)
          if (rows[size_t(s) * sampler.predicates + p]) c.samples.push_back(s), c.positives += hits[s];
        c.coverage = coverage(key);
        out.push_back(&c);
      }
    return out;
  }

  // KL-LUCB: the `top` arms of largest precision, sampled until the best's lower bound and the
  // rest's upper bound are within epsilon.
  std::vector<Candidate*> lucb(std::vector<Candidate*> arms, int top) {
    for (Candidate* c : arms)
      if (c->samples.empty()) draw(*c, 1);
    if (int(arms.size()) <= top) return arms;
    std::vector<double> ub(arms.size()), lb(arms.size());
    auto by_mean = [&] {
      std::vector<int> order(arms.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return arms[a]->mean() > arms[b]->mean(); });
      return order;
    };
    for (int t = 1;; ++t) {
      const std::vector<int> order = by_mean();
      const double beta = exploration(int(arms.size()), t, o.delta);
      int worst_in = order[0], best_out = order[top];
      for (int i = 0; i < int(order.size()); ++i) {
        Candidate& c = *arms[order[i]];
        if (i < top) {
          lb[order[i]] = kl_lower(c.mean(), beta / c.n());
          if (lb[order[i]] < lb[worst_in]) worst_in = order[i];
        } else {
          ub[order[i]] = kl_upper(c.mean(), beta / c.n());
          if (ub[order[i]] > ub[best_out]) best_out = order[i];
        }
      }
      if (ub[best_out] - lb[worst_in] <= o.epsilon || exhausted) {
        std::vector<Candidate*> chosen;
        for (int i = 0; i < top; ++i) chosen.push_back(arms[order[i]]);
        return chosen;
      }
      draw(*arms[best_out], o.batch);
      draw(*arms[worst_in], o.batch);
    }
  }
};

void check(const AnchorOptions& o, int predicates) {
  if (!(o.threshold > 0 && o.threshold <= 1)) throw std::invalid_argument("anchors: threshold must be in (0, 1]");
  if (!(o.delta > 0 && o.delta < 1)) throw std::invalid_argument("anchors: delta must be in (0, 1)");
  if (!(o.epsilon > 0 && o.epsilon < 1) || !(o.epsilon_stop > 0 && o.epsilon_stop < 1))
    throw std::invalid_argument("anchors: tau and the stopping tolerance must be in (0, 1)");
  if (o.batch < 1 || o.beam < 1 || o.max_size < 0 || o.coverage_samples < 1 || o.max_samples < 1)
    throw std::invalid_argument("anchors: batch, beam, coverage samples and the sample budget must be positive");
  if (predicates < 1) throw std::invalid_argument("anchors: no predicates to build a rule from");
}

}  // namespace

Anchor anchor_beam(const AnchorSampler& sampler, const AnchorOptions& o) {
  check(o, sampler.predicates);
  Search s{sampler, o, {}, {}, {}, {}, {}, 0, false};
  sampler.draw({}, o.coverage_samples, false, s.coverage_rows, s.unused);
  Candidate& root = s.candidates[{}];
  s.draw(root, 1);
  const double tau = o.threshold;
  auto lower = [&](const Candidate& c, double beta) { return kl_lower(c.mean(), beta / c.n()); };
  auto upper = [&](const Candidate& c, double beta) { return kl_upper(c.mean(), beta / c.n()); };
  const double beta0 = std::log(1 / o.delta);
  while (root.mean() > tau && lower(root, beta0) < tau - o.epsilon && s.draw(root, o.batch)) {
  }
  // The empty rule when the model keeps its class under every perturbation anyway.
  Candidate* best = lower(root, beta0) > tau ? &root : nullptr;
  std::vector<std::vector<Candidate*>> best_of_size = {{&root}};
  const int max_size = o.max_size > 0 ? std::min(o.max_size, sampler.predicates) : sampler.predicates;
  double best_coverage = best ? 1 : -1;
  // Larger rules keep being tried while some candidate could still cover more than the best one.
  for (int size = 1; best != &root && size <= max_size && !s.exhausted; ++size) {
    std::vector<Candidate*> tuples = s.extend(best_of_size.back()), kept;
    for (Candidate* c : tuples)
      if (c->coverage > best_coverage) kept.push_back(c);
    if (kept.empty()) break;
    best_of_size.push_back(s.lucb(kept, std::min(o.beam, int(kept.size()))));
    // The beam's union bound over every size (the package's β).
    const double beta = std::log(1 / (o.delta / (1 + (o.beam - 1) * sampler.predicates)));
    bool stop = false;
    for (Candidate* c : best_of_size.back()) {
      while (((c->mean() >= tau && lower(*c, beta) < tau - o.epsilon_stop) ||
              (c->mean() < tau && upper(*c, beta) >= tau + o.epsilon_stop)) &&
             s.draw(*c, o.batch)) {
      }
      if (c->mean() >= tau && lower(*c, beta) > tau - o.epsilon_stop && c->coverage > best_coverage) {
        best_coverage = c->coverage;
        best = c;
        stop |= best_coverage == 1;
      }
    }
    if (stop) break;
  }
  Anchor a;
  if (best) {
    a.found = true;
  } else {  // no anchor reached τ: the most precise of the beams' rules of one predicate or more
    // (as the anchor package, whose fallback never returns the empty rule it has not accepted)
    std::vector<Candidate*> all;
    for (size_t k = 1; k < best_of_size.size(); ++k) all.insert(all.end(), best_of_size[k].begin(), best_of_size[k].end());
    if (all.empty()) all.push_back(&root);  // no rule of one predicate was tried
    best = s.lucb(all, 1).front();
  }
  a.predicates = best->order;
  a.precision = best->mean();
  a.coverage = best->coverage;
  a.samples = s.drawn;
  a.budget_exhausted = s.exhausted;
  std::vector<int> prefix;
  for (int p : best->order) {
    prefix.insert(std::upper_bound(prefix.begin(), prefix.end(), p), p);
    auto it = s.candidates.find(prefix);
    a.precision_by_size.push_back(it == s.candidates.end() ? NAN : it->second.mean());
    a.coverage_by_size.push_back(s.coverage(prefix));
  }
  return a;
}

}  // namespace gb::explain::surrogates
