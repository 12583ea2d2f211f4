// 2-D slices of the input space: exact enumeration of the regions a plane crosses, as
// polygons, and their rasterization.
#include <algorithm>
#include <cmath>
#include <deque>
#include <stdexcept>
#include <unordered_set>

#include "explain/openbox/openbox.h"
#include "explain/openbox/rules.h"

namespace gb::openbox {

Plane plane_through(const Tensor& p0, const Tensor& p1, const Tensor& p2, double margin) {
  if (p0.shape() != p1.shape() || p0.shape() != p2.shape()) shape_error("plane point", p0.shape(), p1.shape());
  Plane P;
  P.origin = p0.clone();
  P.d1 = p0.clone();
  P.d2 = p0.clone();
  double d11 = 0, d22 = 0, d12 = 0;
  for (size_t i = 0; i < p0.size(); ++i) {
    P.d1[i] = p1[i] - p0[i];
    P.d2[i] = p2[i] - p0[i];
    d11 += double(P.d1[i]) * P.d1[i], d22 += double(P.d2[i]) * P.d2[i], d12 += double(P.d1[i]) * P.d2[i];
  }
  // The Gram determinant |d1|^2 |d2|^2 - (d1.d2)^2 is 0 when two points coincide or all three lie on
  // a line: a map of that "plane" would be a line or a point drawn as a square.
  if (!(d11 * d22 - d12 * d12 > 1e-10 * d11 * d22))
    throw std::invalid_argument("the three points do not span a plane (two coincide, or all three lie on one line)");
  P.u0 = P.v0 = -margin;
  P.u1 = P.v1 = 1 + margin;
  return P;
}

Plane input_plane(double u0, double u1, double v0, double v1) {
  Plane P;
  P.origin = Tensor({1, 2});
  P.d1 = Tensor::from({1, 2}, {1.f, 0.f});
  P.d2 = Tensor::from({1, 2}, {0.f, 1.f});
  P.u0 = u0, P.u1 = u1, P.v0 = v0, P.v1 = v1;
  return P;
}

double Polygon::area() const {
  double s = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    size_t j = (i + 1) % u.size();
    s += u[i] * v[j] - u[j] * v[i];
  }
  return 0.5 * s;
}

namespace {

struct HalfPlane {
  double a, b, c;  // inside: a u + b v + c >= 0
};

// Clips a convex polygon (with one label per edge i -> i+1) by a half-plane; the new edge gets `label`.
void clip(std::vector<double>& u, std::vector<double>& v, std::vector<int>& e, const HalfPlane& h, int label) {
  const size_t n = u.size();
  std::vector<double> f(n);
  bool any_out = false;
  for (size_t i = 0; i < n; ++i) any_out |= (f[i] = h.a * u[i] + h.b * v[i] + h.c) < 0;
  if (!any_out) return;
  std::vector<double> nu, nv;
  std::vector<int> ne;
  for (size_t i = 0; i < n; ++i) {
    const size_t j = (i + 1) % n;
    auto cross = [&](int lab) {
      const double s = f[i] / (f[i] - f[j]);
      nu.push_back(u[i] + s * (u[j] - u[i]));
      nv.push_back(v[i] + s * (v[j] - v[i]));
      ne.push_back(lab);
    };
    if (f[i] >= 0) {
      nu.push_back(u[i]), nv.push_back(v[i]), ne.push_back(e[i]);
      if (f[j] < 0) cross(label);
    } else if (f[j] >= 0) {
      cross(e[i]);
    }
  }
  u.swap(nu), v.swap(nv), e.swap(ne);
}

}  // namespace

namespace {

// Runs the point (u, v) of the plane with the plane's directions as rows 1 and 2: the
// configuration there, and every constraint as a half-plane in (u, v).
struct PlaneProbe {
  Rules& rules;
  const Plane& P;
  Tensor batch;
  std::vector<HalfPlane> half_planes;  // per constraint, in graph order
  std::vector<std::vector<PoolPair>> pairs;

  PlaneProbe(Rules& r, const Plane& plane) : rules(r), P(plane), batch(with_batch(r.g, 3)), pairs(r.cfg.size()) {}

  const Tensor& run(double u, double v) {
    const size_t D = P.origin.size();
    for (size_t d = 0; d < D; ++d) {
      batch[d] = float(P.origin[d] + u * double(P.d1[d]) + v * double(P.d2[d]));
      batch[D + d] = P.d1[d];
      batch[2 * D + d] = P.d2[d];
    }
    half_planes.clear();
    // A constraint of value val at (u, v) and slopes du, dv along the plane.
    auto add = [&](double val, double du, double dv) { half_planes.push_back({du, dv, val - du * u - dv * v}); };
    rules.on_relu = [&](int li, const Tensor& pre, const ForwardCall&) {
      const size_t n = pre.sample_size();
      const uint8_t* on = rules.cfg[li].on.data();
      for (size_t i = 0; i < n; ++i) {
        const double sg = on[i] ? 1 : -1;
        add(sg * pre[i], sg * pre[n + i], sg * pre[2 * n + i]);
      }
    };
    rules.on_pool = [&](int li, const Tensor& in, const ForwardCall&) {
      const size_t n = in.sample_size();
      pairs[li] = pool_pairs(rules.g, rules.cfg[li]);
      for (const PoolPair& q : pairs[li])
        add(double(in[q.win]) - in[q.other], double(in[n + q.win]) - in[n + q.other],
            double(in[2 * n + q.win]) - in[2 * n + q.other]);
    };
    const Tensor& out = rules.run(batch);
    rules.on_relu = nullptr;
    rules.on_pool = nullptr;
    return out;
  }
};

// The region of the probe's point: the window clipped by every constraint (each edge labeled
// with the constraint that made it, -1 for the window's), and its logits over the plane.
Polygon polygon_of(const PlaneProbe& probe, const Tensor& out, uint64_t id, double u, double v,
                   std::vector<int>& edges) {
  const Plane& P = probe.P;
  const std::vector<HalfPlane>& hp = probe.half_planes;
  Polygon poly;
  poly.id = id;
  poly.u = {P.u0, P.u1, P.u1, P.u0};
  poly.v = {P.v0, P.v0, P.v1, P.v1};
  edges = {-1, -1, -1, -1};
  for (size_t k = 0; k < hp.size() && poly.u.size() >= 3; ++k)
    if (hp[k].a != 0 || hp[k].b != 0) clip(poly.u, poly.v, edges, hp[k], int(k));
  const int K = out.dim(1);
  poly.l0.resize(K), poly.lu.resize(K), poly.lv.resize(K);
  for (int k = 0; k < K; ++k) {
    poly.lu[k] = out[K + k];
    poly.lv[k] = out[2 * K + k];
    poly.l0[k] = out[k] - poly.lu[k] * u - poly.lv[k] * v;
  }
  return poly;
}

// Queues a point a small step past the midpoint of every edge that a constraint made.
void cross_edges(const PlaneProbe& probe, const Polygon& poly, const std::vector<int>& edges, double step,
                 std::deque<std::pair<double, double>>& queue) {
  const Plane& P = probe.P;
  const size_t n = poly.u.size();
  for (size_t i = 0; i < n && n >= 3; ++i) {
    if (edges[i] < 0) continue;
    const size_t j = (i + 1) % n;
    const HalfPlane& h = probe.half_planes[edges[i]];
    const double len = std::hypot(h.a, h.b);
    const double mu = 0.5 * (poly.u[i] + poly.u[j]) - step * h.a / len;
    const double mv = 0.5 * (poly.v[i] + poly.v[j]) - step * h.b / len;
    if (mu <= P.u0 || mu >= P.u1 || mv <= P.v0 || mv >= P.v1) continue;
    queue.emplace_back(mu, mv);
  }
}

}  // namespace

SliceRegions slice_regions(Graph& g, const Plane& P, double eps, int max_regions) {
  Rules rules(g);
  if (P.origin.shape() != Shape::batch_of(1, g.input_shape()) || P.d1.shape() != P.origin.shape() ||
      P.d2.shape() != P.origin.shape())
    shape_error("plane origin", Shape::batch_of(1, g.input_shape()), P.origin.shape());
  PlaneProbe probe(rules, P);
  const double step = eps * std::max(P.u1 - P.u0, P.v1 - P.v0);
  SliceRegions S;
  std::unordered_set<uint64_t> seen;
  std::vector<int> edges;
  // Start off-center: the center of a plane through three inputs is (p1 + p2) / 2, which can lie
  // exactly on many boundaries (pixels blank in both), where the polygon degenerates to a point.
  std::deque<std::pair<double, double>> queue{
      {P.u0 + 0.5137 * (P.u1 - P.u0), P.v0 + 0.4771 * (P.v1 - P.v0)}};
  while (!queue.empty() && int(S.regions.size()) < max_regions) {
    auto [u, v] = queue.front();
    queue.pop_front();
    const Tensor& out = probe.run(u, v);
    S.probes++;
    const uint64_t id = rules.id();
    if (!seen.insert(id).second) continue;
    S.regions.push_back(polygon_of(probe, out, id, u, v, edges));
    cross_edges(probe, S.regions.back(), edges, step, queue);
  }
  S.truncated = !queue.empty();
  return S;
}

void rasterize(const SliceRegions& s, const Plane& p, int w, int h, std::vector<int>& region_of,
               std::vector<int>& label_of) {
  region_of.assign(size_t(w) * h, -1);
  label_of.assign(size_t(w) * h, -1);
  const double du = (p.u1 - p.u0) / w, dv = (p.v1 - p.v0) / h;
  for (size_t r = 0; r < s.regions.size(); ++r) {
    const Polygon& q = s.regions[r];
    const size_t n = q.u.size();
    if (n < 3) continue;
    const double umin = *std::min_element(q.u.begin(), q.u.end()), umax = *std::max_element(q.u.begin(), q.u.end());
    const double vmin = *std::min_element(q.v.begin(), q.v.end()), vmax = *std::max_element(q.v.begin(), q.v.end());
    const int i0 = std::max(0, int(std::floor((umin - p.u0) / du - 0.5))), i1 = std::min(w - 1, int((umax - p.u0) / du));
    const int j0 = std::max(0, int(std::floor((vmin - p.v0) / dv - 0.5))), j1 = std::min(h - 1, int((vmax - p.v0) / dv));
    const int K = int(q.l0.size());
    for (int j = j0; j <= j1; ++j)
      for (int i = i0; i <= i1; ++i) {
        const double u = p.u0 + (i + 0.5) * du, v = p.v0 + (j + 0.5) * dv;
        bool in = true;
        for (size_t a = 0; a < n && in; ++a) {
          const size_t b = (a + 1) % n;
          in = (q.u[b] - q.u[a]) * (v - q.v[a]) - (q.v[b] - q.v[a]) * (u - q.u[a]) >= 0;
        }
        if (!in) continue;
        const size_t px = size_t(h - 1 - j) * w + i;  // row 0 is the top (v1)
        region_of[px] = int(r);
        int best = 0;
        double bv = -INFINITY;
        for (int k = 0; k < K; ++k) {
          const double l = q.l0[k] + u * q.lu[k] + v * q.lv[k];
          if (l > bv) bv = l, best = k;
        }
        label_of[px] = best;
      }
  }
}

}  // namespace gb::openbox
