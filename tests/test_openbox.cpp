// OpenBox: exact local linear classifiers, region polytopes, segment walks and 2-D slices.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "engine/architecture.h"
#include "engine/conv_sparse.h"
#include "engine/layers.h"
#include "engine/threads.h"
#include "explain/openbox/openbox.h"
#include "explain/openbox/rules.h"
#include "train/presets.h"

using namespace gb;
namespace ob = gb::openbox;

namespace {

// A seeded graph from architecture text, with random biases and BatchNorm statistics so that
// regions are not cones through the origin.
Graph net(const std::string& text, uint64_t seed = 7) {
  Graph g = graph_from_text(text);
  g.init(seed);
  Rng r(seed + 1);
  for (auto& [name, p] : g.named_params()) {
    if (name.ends_with(".bias"))
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.3f * r.normal();
    if (name.ends_with("running_mean"))
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.2f * r.normal();
    if (name.ends_with("running_var"))
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.5f + r.uniform();
    if (name.ends_with("weight") && name.find("batchnorm") != std::string::npos)
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.5f + r.uniform();
  }
  return g;
}

Tensor random_input(const Graph& g, Rng& r, int n = 1) {
  Tensor x(Shape::batch_of(n, g.input_shape()));
  for (size_t i = 0; i < x.size(); ++i) x[i] = r.uniform();
  return x;
}

// Row c of W must be the exact gradient of logit c (the graph's own backward pass).
double max_gradient_error(Graph& g, const Tensor& x, const ob::Region& R) {
  const int K = g.classes(), D = int(x.size());
  double worst = 0;
  for (int c = 0; c < K; ++c) {
    g.forward(x);
    Tensor seed({1, K});
    seed[c] = 1;
    const Tensor& gx = g.backward(seed);
    double scale = 1e-6;
    for (int d = 0; d < D; ++d) scale = std::max(scale, double(std::fabs(gx[d])));
    for (int d = 0; d < D; ++d) worst = std::max(worst, std::fabs(gx[d] - R.W[size_t(c) * D + d]) / scale);
  }
  return worst;
}

void check_exact(Graph& g, int inputs = 3) {
  Rng r(11);
  for (int t = 0; t < inputs; ++t) {
    Tensor x = random_input(g, r);
    ob::Region R = ob::region(g, x);
    Tensor logits = g.forward(x).clone();
    std::vector<double> aff = R.affine_logits(x.data());
    double scale = 1e-6;
    for (int k = 0; k < g.classes(); ++k) scale = std::max(scale, double(std::fabs(logits[k])));
    for (int k = 0; k < g.classes(); ++k) {
      CHECK(std::fabs(aff[k] - logits[k]) <= 1e-5 * scale);
      CHECK(R.logits[k] == doctest::Approx(logits[k]).epsilon(1e-5));
    }
    CHECK(max_gradient_error(g, x, R) < 1e-4);
    CHECK(R.constraint_count > 0);
    CHECK(R.nearest_distance > 0);
    CHECK(R.nearest_distance < INFINITY);
    CHECK(R.through_x == 0);  // random inputs lie on no boundary
    CHECK(R.nearest_beyond_distance == R.nearest_distance);
    CHECK(R.config.id == ob::configuration_ids(g, x)[0]);
  }
}

const char* kMlp = "input(12) dense(16) relu dense(16) leakyrelu(0.1) dense(4)";
const char* kConvPool = "input(1,8,8) conv(3,k=3,p=1) relu maxpool(2) conv(4,k=3) relu flatten dense(3)";
const char* kGap = "input(2,7,7) conv(4,k=3,s=2,p=1) relu avgpool(2,s=1) conv(5,k=2) relu gap dense(3)";
const char* kResidual =
    "input(2,6,6) conv(4,k=3,p=1,bias=false) batchnorm relu(name=b0) conv(4,k=3,p=1) batchnorm add(b0) relu "
    "maxpool(2,s=2) flatten dropout(0.5) dense(5)";

}  // namespace

TEST_CASE("W_x x + b_x equals the logits and W_x rows are the gradients (MLP, conv, max-pool, GAP, residual)") {
  for (const char* text : {kMlp, kConvPool, kGap, kResidual}) {
    CAPTURE(text);
    Graph g = net(text);
    check_exact(g);
  }
}

TEST_CASE("lenet5: exact local linear classifier; configuration ids agree with batched forward") {
  Graph g = make_preset("lenet5");
  Rng r(3);
  for (auto& [name, p] : g.named_params())
    if (name.ends_with(".bias"))
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.05f * r.normal();
  check_exact(g, 2);
  Tensor xs = random_input(g, r, 4);
  std::vector<uint64_t> ids = ob::configuration_ids(g, xs);
  for (int n = 0; n < 4; ++n) CHECK(ob::configuration(g, xs.sample(n)).id == ids[n]);
  ob::Region R = ob::region(g, xs.sample(0));
  // Every ReLU neuron of lenet5 depends on the input, so each one is a constraint.
  int relu_units = 0, windows = 0;
  for (auto& L : R.config.layers) (L.kind == "maxpool" ? windows : relu_units) += L.units;
  CHECK(relu_units == 4704 + 1600 + 120 + 84);
  CHECK(windows == 1176 + 400);
  CHECK(R.constraint_count >= relu_units);
}

TEST_CASE("max-pool ties go to the lowest index and are counted") {
  Graph g = net("input(1,4,4) maxpool(2) flatten dense(2)");
  Tensor x(Shape{1, 1, 4, 4});  // all equal: every window is a tie
  ob::Configuration c = ob::configuration(g, x);
  REQUIRE(c.layers.size() == 1);
  CHECK(c.layers[0].ties == 4);
  CHECK(c.layers[0].argmax == std::vector<int32_t>{0, 2, 8, 10});
  CHECK(c.hex().size() == 16);
}

TEST_CASE("points inside the polytope share configuration and map; just across the nearest boundary they do not") {
  for (const char* text : {kMlp, kConvPool, kResidual}) {
    CAPTURE(text);
    Graph g = net(text, 5);
    Rng r(17);
    Tensor x = random_input(g, r);
    ob::RegionOptions opt;
    opt.polytope = true;
    ob::Region R = ob::region(g, x, opt);
    const int D = int(x.size()), M = R.constraint_count;
    REQUIRE(R.A.dim(0) == M);
    auto Az = [&](const std::vector<float>& z, int m) {
      double s = 0;
      for (int d = 0; d < D; ++d) s += double(R.A[size_t(m) * D + d]) * z[d];
      return s;
    };
    std::vector<float> xv(x.data(), x.data() + D);
    for (int m = 0; m < M; ++m) CHECK(Az(xv, m) <= R.c[m] + 1e-4);
    // Slack of each row at x equals the constraint's recorded slack times its norm's sign convention.
    for (int m = 0; m < M; ++m) CHECK(R.c[m] - Az(xv, m) == doctest::Approx(R.constraints[m].slack).epsilon(1e-3).scale(1));

    int inside = 0;
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> dir(D);
      for (auto& v : dir) v = r.normal();
      double smax = 1e30;
      for (int m = 0; m < M; ++m) {
        double ad = 0;
        for (int d = 0; d < D; ++d) ad += double(R.A[size_t(m) * D + d]) * dir[d];
        if (ad > 0) smax = std::min(smax, (R.c[m] - Az(xv, m)) / ad);
      }
      const double s = smax * (0.05 + 0.85 * r.uniform());
      Tensor z = x.clone();
      std::vector<float> zv(D);
      for (int d = 0; d < D; ++d) zv[d] = z[d] = float(x[d] + s * dir[d]);
      bool in = true;
      for (int m = 0; m < M; ++m) in &= Az(zv, m) <= R.c[m] + 1e-6;
      REQUIRE(in);
      ++inside;
      ob::Region Rz = ob::region(g, z);
      CHECK(Rz.config.id == R.config.id);
      double dw = 0, db = 0, wmax = 0;
      for (size_t i = 0; i < R.W.size(); ++i) {
        dw = std::max(dw, double(std::fabs(R.W[i] - Rz.W[i])));
        wmax = std::max(wmax, double(std::fabs(R.W[i])));
      }
      for (size_t i = 0; i < R.b.size(); ++i) db = std::max(db, double(std::fabs(R.b[i] - Rz.b[i])));
      CHECK(dw <= 1e-5 * wmax);
      CHECK(db <= 1e-4);
      // The region's affine map predicts the network at z.
      Tensor fz = g.forward(z).clone();
      std::vector<double> az = R.affine_logits(z.data());
      for (int k = 0; k < g.classes(); ++k) CHECK(az[k] == doctest::Approx(fz[k]).epsilon(1e-4).scale(1));
    }
    CHECK(inside == 20);

    // The nearest boundary: its row of A; step along it to just before and just past the boundary.
    int mn = -1;
    for (int m = 0; m < M; ++m)
      if (R.constraints[m].node == R.nearest.node && R.constraints[m].index == R.nearest.index &&
          R.constraints[m].other == R.nearest.other)
        mn = m;
    REQUIRE(mn >= 0);
    double an = 0;
    for (int d = 0; d < D; ++d) an += double(R.A[size_t(mn) * D + d]) * R.A[size_t(mn) * D + d];
    an = std::sqrt(an);
    CHECK(an == doctest::Approx(R.nearest.norm).epsilon(1e-4));
    CHECK((R.c[mn] - Az(xv, mn)) / an == doctest::Approx(R.nearest_distance).epsilon(1e-3));
    auto stepped = [&](double f) {
      Tensor z = x.clone();
      for (int d = 0; d < D; ++d) z[d] = float(x[d] + f * R.nearest_distance * R.A[size_t(mn) * D + d] / an);
      return z;
    };
    CHECK(ob::configuration(g, stepped(0.98)).id == R.config.id);
    CHECK(ob::configuration(g, stepped(1.02)).id != R.config.id);
  }
}

TEST_CASE("segment walk: every densely sampled configuration appears in order, none missing") {
  for (const char* text : {"input(5) dense(10) relu dense(10) relu dense(3)", kConvPool}) {
    CAPTURE(text);
    Graph g = net(text, 9);
    Rng r(23);
    Tensor a = random_input(g, r), b = random_input(g, r);
    for (size_t i = 0; i < a.size(); ++i) a[i] = 4 * a[i] - 2, b[i] = 4 * b[i] - 2;
    ob::Walk w = ob::walk(g, a, b);
    REQUIRE(!w.pieces.empty());
    CHECK(w.pieces.front().t0 == 0);
    CHECK(w.pieces.back().t1 == 1);
    for (size_t i = 1; i < w.pieces.size(); ++i) CHECK(w.pieces[i].t0 == w.pieces[i - 1].t1);
    CHECK(w.regions == int(w.pieces.size()));
    CHECK(w.affine_maps <= w.regions);
    CHECK(w.degenerate == 0);

    const int N = 20000;
    Tensor pts(Shape::batch_of(N, g.input_shape()));
    const size_t D = a.size();
    for (int n = 0; n < N; ++n) {
      const double t = (n + 0.5) / N;
      for (size_t d = 0; d < D; ++d) pts[n * D + d] = float(a[d] + t * (double(b[d]) - a[d]));
    }
    std::vector<uint64_t> ids = ob::configuration_ids(g, pts);
    Tensor logits = g.forward(pts).clone();
    // Each sample lies in the piece containing its t (away from the piece's ends).
    size_t k = 0;
    int checked = 0;
    std::set<uint64_t> sampled;
    for (int n = 0; n < N; ++n) {
      const double t = (n + 0.5) / N;
      while (w.pieces[k].t1 <= t) ++k;
      sampled.insert(ids[n]);
      if (t - w.pieces[k].t0 < 1e-5 || w.pieces[k].t1 - t < 1e-5) continue;
      CHECK(ids[n] == w.pieces[k].id);
      ++checked;
    }
    CHECK(checked > N - 100);
    // Pieces wider than two samples are seen by the sampling.
    for (auto& pc : w.pieces)
      if (pc.t1 - pc.t0 > 2.0 / N) CHECK(sampled.count(pc.id));
    CHECK(w.pieces.size() >= sampled.size());
    MESSAGE(std::string(text) << ": " << w.pieces.size() << " pieces, " << w.affine_maps << " maps, " << sampled.size()
                  << " sampled configurations");
  }
}

TEST_CASE("2-D slice: the exact region count bounds the grid count and equals it at high resolution") {
  Graph g = net("input(2) dense(8) relu dense(8) relu dense(2)", 3);
  ob::Plane P = ob::input_plane(-3, 3, -3, 3);
  ob::SliceRegions S = ob::slice_regions(g, P);
  const int exact = int(S.regions.size());
  std::set<uint64_t> exact_ids;
  double area = 0;
  for (auto& q : S.regions) {
    exact_ids.insert(q.id);
    CHECK(q.area() > 0);
    area += q.area();
  }
  CHECK(int(exact_ids.size()) == exact);
  CHECK(area == doctest::Approx(36).epsilon(1e-7));  // the polygons tile the window
  auto grid = [&](int res) {
    Tensor pts({res * res, 2});
    for (int j = 0; j < res; ++j)
      for (int i = 0; i < res; ++i) {
        pts[2 * (j * res + i)] = float(-3 + 6 * (i + 0.5) / res);
        pts[2 * (j * res + i) + 1] = float(-3 + 6 * (j + 0.5) / res);
      }
    std::vector<uint64_t> ids = ob::configuration_ids(g, pts);
    std::set<uint64_t> s(ids.begin(), ids.end());
    for (uint64_t id : s) CHECK(exact_ids.count(id));
    return int(s.size());
  };
  const int coarse = grid(40), fine = grid(1000);
  MESSAGE("exact " << exact << ", grid 40: " << coarse << ", grid 1000: " << fine);
  CHECK(coarse <= fine);
  CHECK(fine <= exact);
  // Every exact region is real (its centroid has its configuration), and every region larger than
  // a few grid cells is seen by the fine grid: so the grid count converges to the exact count.
  const double cell = (6.0 / 1000) * (6.0 / 1000);
  int big = 0;
  Tensor cent({exact, 2});
  for (int q = 0; q < exact; ++q) {
    const auto& poly = S.regions[q];
    double cu = 0, cv = 0;
    for (size_t i = 0; i < poly.u.size(); ++i) cu += poly.u[i], cv += poly.v[i];
    cent[2 * q] = float(cu / poly.u.size());
    cent[2 * q + 1] = float(cv / poly.v.size());
    big += poly.area() > 4 * cell;
  }
  std::vector<uint64_t> cid = ob::configuration_ids(g, cent);
  for (int q = 0; q < exact; ++q) CHECK(cid[q] == S.regions[q].id);
  CHECK(fine >= big);
  // The raster agrees with the network pixel by pixel.
  std::vector<int> reg, lab;
  const int W = 120, H = 100;
  ob::rasterize(S, P, W, H, reg, lab);
  Tensor pts({W * H, 2});
  for (int j = 0; j < H; ++j)
    for (int i = 0; i < W; ++i) {
      pts[2 * (j * W + i)] = float(-3 + 6 * (i + 0.5) / W);
      pts[2 * (j * W + i) + 1] = float(3 - 6 * (j + 0.5) / H);  // row 0 is the top
    }
  std::vector<uint64_t> ids = ob::configuration_ids(g, pts);
  Tensor logits = g.forward(pts).clone();
  int agree = 0, label_agree = 0;
  for (int p = 0; p < W * H; ++p) {
    agree += reg[p] >= 0 && S.regions[reg[p]].id == ids[p];
    label_agree += lab[p] == (logits[2 * p + 1] > logits[2 * p] ? 1 : 0);
  }
  CHECK(agree >= W * H - 20);
  CHECK(label_agree >= W * H - 20);
}

TEST_CASE("smooth layers are refused, naming the layer") {
  Graph g = make_preset("lenet5-tanh");
  Tensor x(Shape{1, 1, 28, 28});
  CHECK_THROWS_WITH_AS(ob::region(g, x), doctest::Contains("'tanh1' (tanh)"), std::invalid_argument);
  Graph s = net("input(3) dense(4) softplus dense(2)");
  CHECK_THROWS_WITH_AS(ob::walk(s, Tensor({1, 3}), Tensor({1, 3})), doctest::Contains("softplus1"),
                       std::invalid_argument);
}

TEST_CASE("dataset statistics count shared configurations") {
  Graph g = net(kMlp);
  Rng r(1);
  Tensor x = random_input(g, r, 50);
  // Duplicate the first ten samples: they share configurations with their copies.
  Tensor both = concat({x, x.slice(0, 10).clone()});
  ob::ConfigStats st = ob::config_stats(g, both, 16);
  CHECK(st.inputs == 60);
  CHECK(st.distinct <= 50);
  CHECK(st.largest >= 2);
  CHECK(st.shared_inputs >= 20);
  CHECK(st.singletons + st.shared_inputs == 60);
}

namespace {
Tensor threads_noise(const Shape& s, uint64_t seed) {
  Rng r(seed);
  Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = 2 * r.uniform() - 1;
  return t;
}
}  // namespace

TEST_CASE("region() on several threads follows every hyper-parameter of the graph") {
  // Two graphs alike but for a LeakyReLU slope: the second region must not reuse the first's copy.
  RestoreThreads guard;
  set_threads(2);
  for (const char* slope : {"0.01", "0.5"}) {
    CAPTURE(slope);
    Graph g = graph_from_text(std::string("input(1,12,12) conv(4,k=3,p=1) leakyrelu(slope=") + slope +
                                                 ") maxpool(2) flatten dense(10)");
    g.init(5);
    Tensor x = threads_noise(Shape{1, 1, 12, 12}, 6);
    openbox::RegionOptions o;
    o.budget_floats = 4096;  // small chunks: several per thread
    openbox::Region r = openbox::region(g, x, o);
    std::vector<double> z = r.affine_logits(x.data());
    for (int k = 0; k < 10; ++k) CHECK(z[k] == doctest::Approx(r.logits[k]).epsilon(1e-5).scale(1e-4));
  }
}

namespace {
// Nets whose passes of direction rows are large enough (over 4 MFLOP) for the graph to split
// them across threads; with D = 225 and 99 the last unit of rows is padded with zero rows.
const char* kSplitConv =
    "input(1,15,15) conv(8,k=3,p=1) relu maxpool(2) conv(16,k=3,p=1) relu maxpool(2) flatten dense(32) relu dense(10)";
const char* kSplitMlp = "input(99) dense(256) relu dense(256) leakyrelu(0.1) dense(10)";

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
bool same_constraint(const ob::Constraint& a, const ob::Constraint& b) {
  return a.node == b.node && a.index == b.index && a.other == b.other && a.window == b.window && a.on == b.on &&
         std::memcmp(&a.slack, &b.slack, sizeof(double)) == 0 && std::memcmp(&a.norm, &b.norm, sizeof(double)) == 0;
}
}  // namespace

TEST_CASE("region() gives the same bits at 1, 2 and 3 threads, and W_x x + b_x equals the logits") {
  RestoreThreads guard;
  for (const char* text : {kSplitConv, kSplitMlp}) {
    CAPTURE(text);
    Graph g = net(text, 13);
    Rng r(29);
    const Tensor x = random_input(g, r);
    ob::RegionOptions o;
    o.budget_floats = 48 * ob::floats_per_row(g);  // passes of about 48 rows: several per call
    o.polytope = true;
    std::vector<ob::Region> rs;
    for (int T : {1, 2, 3}) {
      set_threads(T);
      rs.push_back(ob::region(g, x, o));
    }
    set_threads(guard.before);
    const Tensor logits = g.forward(x).clone();
    const std::vector<double> aff = rs[0].affine_logits(x.data());
    for (int k = 0; k < g.classes(); ++k) CHECK(aff[k] == doctest::Approx(logits[k]).epsilon(1e-5).scale(1e-4));
    CHECK(max_gradient_error(g, x, rs[0]) < 1e-4);
    // Each constraint's norm is the length of its row of A (padding rows add nothing to either).
    const int D = int(x.size());
    int wrong_norms = 0;
    for (size_t m = 0; m < rs[0].constraints.size(); ++m) {
      double a2 = 0;
      for (int d = 0; d < D; ++d) a2 += double(rs[0].A[m * D + d]) * rs[0].A[m * D + d];
      wrong_norms += std::fabs(std::sqrt(a2) - rs[0].constraints[m].norm) > 1e-5 * rs[0].constraints[m].norm;
    }
    CHECK(wrong_norms == 0);
    for (int t = 1; t < 3; ++t) {
      CAPTURE(t + 1);
      const ob::Region &a = rs[0], &b = rs[t];
      CHECK(same_bits(a.W, b.W));
      CHECK(same_bits(a.b, b.b));
      CHECK(same_bits(a.logits, b.logits));
      CHECK(same_bits(a.A, b.A));
      CHECK(same_bits(a.c, b.c));
      CHECK(a.config.id == b.config.id);
      REQUIRE(a.constraints.size() == b.constraints.size());
      int differ = 0;
      for (size_t m = 0; m < a.constraints.size(); ++m) differ += !same_constraint(a.constraints[m], b.constraints[m]);
      CHECK(differ == 0);
      CHECK(same_constraint(a.nearest, b.nearest));
      CHECK(std::memcmp(&a.nearest_distance, &b.nearest_distance, sizeof(double)) == 0);
      CHECK(same_constraint(a.nearest_beyond, b.nearest_beyond));
    }
  }
}

TEST_CASE("OpenBox rules on a split batch: value rows get biases by their row in the whole batch") {
  // 64 rows, split at row 32 on two threads: rows [0, 40) are values z (W_x z + b_x under x's
  // configuration), rows [40, 64) directions d (W_x d), so the second thread's slice holds both.
  RestoreThreads guard;
  set_threads(2);
  Graph g = net(kSplitConv, 17);
  Rng r(31);
  const Tensor x = random_input(g, r);
  const ob::Region R = ob::region(g, x);
  const int N = 64, values = 40, K = g.classes();
  Tensor batch = random_input(g, r, N);
  for (size_t i = size_t(values) * x.size(); i < batch.size(); ++i) batch[i] -= 0.5f;
  ob::Rules rules(g);
  rules.run(x);  // x decides the configuration
  rules.frozen = true;
  rules.n_affine = values;
  const Tensor out = rules.run(batch, true).clone();
  CHECK(rules.id() == R.config.id);
  double worst = 0, scale = 1e-6;
  for (int n = 0; n < N; ++n) {
    std::vector<double> want = R.affine_logits(batch.data() + size_t(n) * x.size());
    for (int k = 0; k < K; ++k) {
      if (n >= values) want[k] -= R.b[k];
      scale = std::max(scale, std::fabs(want[k]));
      worst = std::max(worst, std::fabs(want[k] - out[size_t(n) * K + k]));
    }
  }
  CHECK(worst <= 1e-5 * scale);
}

TEST_CASE("conv_sparse equals Conv2d::conv on sparse rows (identity, random sparse, dense; strides and paddings)") {
  struct Case {
    int in_ch, out_ch, k, stride, pad, H, W;
  };
  for (const Case& cs : {Case{1, 6, 5, 1, 0, 12, 12}, Case{3, 4, 3, 2, 1, 9, 7}, Case{2, 5, 3, 1, 2, 6, 8},
                         Case{4, 3, 2, 2, 0, 8, 8}, Case{16, 16, 3, 1, 1, 8, 8}}) {
    CAPTURE(cs.in_ch);
    CAPTURE(cs.out_ch);
    CAPTURE(cs.k);
    CAPTURE(cs.stride);
    CAPTURE(cs.pad);
    Conv2d C(cs.out_ch, cs.k, cs.stride, cs.pad);
    const Shape in{1, cs.in_ch, cs.H, cs.W};
    C.build({in});
    Rng r(cs.k * 100 + cs.stride * 10 + cs.pad);
    C.init(r);
    const int D = int(in.numel());
    // Identity rows e_0, e_7, ..., then random rows with 1, 3 and 10 nonzeros, then a dense row.
    std::vector<std::vector<float>> rows;
    for (int d = 0; d < D; d += 7) {
      rows.emplace_back(D, 0.f);
      rows.back()[d] = 1.f;
    }
    for (int nnz : {1, 3, 10, 10})
      for (int rep = 0; rep < 3; ++rep) {
        rows.emplace_back(D, 0.f);
        for (int e = 0; e < nnz; ++e) rows.back()[r.below(uint32_t(D))] = r.normal();
      }
    rows.emplace_back(D);
    for (float& v : rows.back()) v = r.normal();
    const int N = int(rows.size());
    Tensor x(in.with_batch(N));
    for (int n = 0; n < N; ++n) std::copy(rows[n].begin(), rows[n].end(), x.data() + size_t(n) * D);
    const Shape out = C.out_shape({in.with_batch(N)});
    Tensor want(out), got(out, 7.f);  // got starts dirty: every element must be written
    Workspace ws;
    C.conv(x, C.weight.value, nullptr, want, ws);
    const SparseConv plan = sparse_conv(C, in);
    SparseConvScratch scratch;
    conv_sparse(plan, x, got, ws, scratch);
    double worst = 0, scale = 1e-6;
    for (size_t i = 0; i < want.size(); ++i) {
      scale = std::max(scale, double(std::fabs(want[i])));
      worst = std::max(worst, double(std::fabs(want[i] - got[i])));
    }
    CHECK(worst <= 1e-5 * scale);
    // A row's result does not depend on the rows around it.
    Tensor one(out.with_batch(1));
    conv_sparse(plan, x.sample(N - 2), one, ws, scratch);
    CHECK(std::memcmp(one.data(), got.data() + size_t(N - 2) * one.size(), one.size() * sizeof(float)) == 0);
  }
}
