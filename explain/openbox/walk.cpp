// The segment walk: exact enumeration of the regions crossed by a + t (b - a), t in [0, 1].
#include <algorithm>
#include <cstring>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "engine/argmax.h"
#include "explain/openbox/openbox.h"
#include "explain/openbox/rules.h"

namespace gb::openbox {

namespace {

// Evaluates [a + t dir; dir] and reports, per constraint, its value and slope in t.
struct LineProbe {
  Rules& rules;
  const Tensor& a;
  const Tensor& dir;
  Tensor batch;
  std::vector<std::vector<PoolPair>> pairs;

  LineProbe(Rules& r, const Tensor& a_, const Tensor& d_) : rules(r), a(a_), dir(d_) {
    batch = with_batch(rules.g, 2);
    pairs.resize(rules.cfg.size());
  }
  // Runs at t; `visit(value, slope)` is called for every constraint.
  template <class F>
  const Tensor& run(double t, F&& visit) {
    const size_t D = a.size();
    for (size_t d = 0; d < D; ++d) {
      batch[d] = float(double(a[d]) + t * double(dir[d]));
      batch[D + d] = dir[d];
    }
    rules.on_relu = [&](int li, const Tensor& pre, const ForwardCall&) {
      const size_t n = pre.sample_size();
      const uint8_t* on = rules.cfg[li].on.data();
      for (size_t i = 0; i < n; ++i) {
        const double z = pre[i], dz = pre[n + i];
        if (on[i])
          visit(z, dz);
        else
          visit(-z, -dz);
      }
    };
    rules.on_pool = [&](int li, const Tensor& in, const ForwardCall&) {
      const size_t n = in.sample_size();
      pairs[li] = pool_pairs(rules.g, rules.cfg[li]);
      for (const PoolPair& q : pairs[li])
        visit(double(in[q.win]) - in[q.other], double(in[n + q.win]) - in[n + q.other]);
    };
    const Tensor& out = rules.run(batch);
    rules.on_relu = nullptr;
    rules.on_pool = nullptr;
    return out;
  }
};

uint64_t hash_floats(const float* v, int K) {
  Hasher H;
  for (int k = 0; k < K; ++k) {
    float f = v[k] == 0.f ? 0.f : v[k];  // -0 and +0 are the same map
    uint32_t u;
    std::memcpy(&u, &f, 4);
    H.u32(u);
  }
  return H.h;
}

// Class changes inside the piece [t, tn): follows the upper envelope of the K affine logits
// l + (tt - mid) s. Returns the class at the piece's end.
int follow_classes(const std::vector<float>& l, const std::vector<float>& s, double mid, double t, double tn,
                   int last_label, std::vector<double>& changes) {
  const int K = int(l.size());
  auto at = [&](int k, double tt) { return double(l[k]) + (tt - mid) * s[k]; };
  double tt = t;
  int cur = 0;
  for (int k = 1; k < K; ++k)
    if (at(k, tt) > at(cur, tt) || (at(k, tt) == at(cur, tt) && s[k] > s[cur])) cur = k;
  if (last_label >= 0 && cur != last_label) changes.push_back(t);
  for (;;) {
    double best = tn;
    int nxt = -1;
    for (int k = 0; k < K; ++k) {
      if (k == cur || s[k] <= s[cur]) continue;
      const double tc = tt + (at(cur, tt) - at(k, tt)) / (double(s[k]) - s[cur]);
      if (tc > tt && tc < best) best = tc, nxt = k;
    }
    if (nxt < 0) return cur;
    changes.push_back(best);
    tt = best;
    cur = nxt;
  }
}

// Appends the piece [pc.t0, tn), merging it with the previous pieces where they are the same
// region.
void add_piece(Walk& w, const Piece& pc, double tn, double eps) {
  const size_t n = w.pieces.size();
  if (n && w.pieces.back().id == pc.id) {
    w.pieces.back().t1 = tn;  // the same region seen twice around a degenerate probe
  } else if (n >= 2 && w.pieces[n - 2].id == pc.id && w.pieces[n - 1].t1 - w.pieces[n - 1].t0 < 10 * eps) {
    // A, B, A with B a few eps wide: float32 noise flipping a neuron whose pre-activation
    // barely moves along the segment, not a region (regions are convex: A cannot come back).
    w.pieces.pop_back();
    w.pieces.back().t1 = tn;
    w.degenerate++;
  } else {
    w.pieces.push_back(pc);
  }
}

}  // namespace

Walk walk(Graph& g, const Tensor& a, const Tensor& b, const WalkOptions& opt) {
  check_one(g, a, "segment start");
  check_one(g, b, "segment end");
  Rules rules(g);
  const size_t D = a.size();
  const int K = g.classes();
  Tensor dir = with_batch(g, 1);
  for (size_t d = 0; d < D; ++d) dir[d] = b[d] - a[d];
  LineProbe probe(rules, a, dir);
  Walk w;
  std::unordered_map<uint64_t, int> maps;
  std::vector<float> l(K), s(K);
  int last_label = -1;
  double t = 0;
  while (t < 1 && int(w.pieces.size()) < opt.max_pieces) {
    // Probe just past the piece's start: a crossing lies exactly at t, and a (real image) may lie
    // exactly on boundaries (z = 0 for a blank background), where the configuration of t = 0
    // itself is not the one of the piece that follows.
    const double tp = std::min(t + opt.eps, 0.5 * (t + 1));
    double tn = 1;
    probe.run(tp, [&](double val, double slope) {
      // val >= 0 in the region; it leaves the region when val + (t - tp) slope reaches 0.
      if (slope < 0) {
        const double tc = tp + val / -slope;
        if (tc > tp && tc < tn) tn = tc;
      }
    });
    const uint64_t probe_id = rules.id();
    tn = std::max(tn, std::min(1.0, tp + opt.eps));  // progress even on a degenerate probe
    // The piece's own configuration, map and class come from its midpoint.
    const double mid = 0.5 * (t + tn);
    const Tensor& out = probe.run(mid, [](double, double) {});
    Piece pc{t, tn, rules.id(), -1, -1};
    std::memcpy(l.data(), out.data(), K * sizeof(float));
    std::memcpy(s.data(), out.data() + K, K * sizeof(float));
    if (pc.id != probe_id) w.degenerate++;
    pc.label = argmax(l.data(), int(l.size()));
    pc.map = maps.emplace(hash_floats(s.data(), K), int(maps.size())).first->second;
    last_label = follow_classes(l, s, mid, t, tn, last_label, w.decision_changes);
    add_piece(w, pc, tn, opt.eps);
    t = tn;
  }
  std::unordered_set<uint64_t> ids;
  std::set<int> used;
  for (const Piece& q : w.pieces) ids.insert(q.id), used.insert(q.map);
  w.regions = int(ids.size());
  w.affine_maps = int(used.size());
  return w;
}

}  // namespace gb::openbox
