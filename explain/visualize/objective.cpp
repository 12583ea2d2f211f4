#include "explain/visualize/objective.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>


namespace gb::visualize {

Unit Unit::cls(int k) {
  Unit u;
  u.index = k;
  return u;
}
Unit Unit::channel(int node, int c) {
  Unit u;
  u.kind = Kind::channel;
  u.node = node;
  u.index = c;
  return u;
}
Unit Unit::neuron(int node, int c, int y, int x) {
  Unit u;
  u.kind = Kind::neuron;
  u.node = node;
  u.index = c, u.y = y, u.x = x;
  return u;
}
Unit Unit::whole(int node) {
  Unit u;
  u.kind = Kind::layer;
  u.node = node;
  return u;
}
Unit Unit::along(int node, Tensor d) {
  Unit u;
  u.kind = Kind::direction;
  u.node = node;
  u.direction = std::move(d);
  return u;
}

std::string Unit::name(const Graph& g) const {
  const std::string layer = g.layer(at(g)).name;
  switch (kind) {
    case Kind::class_score: return "class" + std::to_string(index);
    case Kind::channel: return layer + "_c" + std::to_string(index);
    case Kind::neuron: {
      if (g.shape(at(g)).rank != 4) return layer + "_u" + std::to_string(index);
      return layer + "_c" + std::to_string(index) + "_y" + std::to_string(y) + "_x" + std::to_string(x);
    }
    case Kind::layer: return layer;
    case Kind::direction: return layer + "_direction";
  }
  return layer;
}

std::string Unit::describe(const Graph& g) const {
  const std::string layer = g.layer(at(g)).name;
  switch (kind) {
    case Kind::class_score: return "class " + std::to_string(index);
    case Kind::channel:
      return layer + (g.shape(at(g)).rank == 4 ? " channel " : " unit ") + std::to_string(index);
    case Kind::neuron:
      if (g.shape(at(g)).rank != 4) return layer + " unit " + std::to_string(index);
      return layer + "[" + std::to_string(index) + "," + std::to_string(y) + "," + std::to_string(x) + "]";
    case Kind::layer: return layer + " (whole layer)";
    case Kind::direction: return "a direction at " + layer;
  }
  return layer;
}

uint64_t Unit::key() const {
  // Distinct for distinct units of one model (node, kind, index, position).
  return (uint64_t(node + 2) << 48) ^ (uint64_t(kind) << 44) ^ (uint64_t(uint32_t(index)) << 20) ^
         (uint64_t(uint32_t(y)) << 10) ^ uint64_t(uint32_t(x));
}

void Unit::check(const Graph& g) const {
  if (node < -1 || node >= g.size()) throw std::invalid_argument("unit node " + std::to_string(node) + " does not exist");
  const Shape s = g.shape(at(g), 1);
  const std::string layer = g.layer(at(g)).name;
  const int C = s.rank >= 2 ? s[1] : 1, H = s.rank == 4 ? s[2] : 1, W = s.rank == 4 ? s[3] : 1;
  switch (kind) {
    case Kind::class_score:
      if (at(g) != g.output()) throw std::invalid_argument("a class unit lives at the output layer");
      if (index < 0 || index >= C)
        throw std::out_of_range("class " + std::to_string(index) + " outside the model's classes [0," + std::to_string(C) + ")");
      break;
    case Kind::channel:
      if (index < 0 || index >= C)
        throw std::out_of_range("channel " + std::to_string(index) + " outside layer " + layer + "'s channels [0," +
                                std::to_string(C) + ")");
      break;
    case Kind::neuron:
      if (index < 0 || index >= C || y < 0 || y >= H || x < 0 || x >= W)
        throw std::out_of_range("unit (" + std::to_string(index) + "," + std::to_string(y) + "," + std::to_string(x) +
                                ") outside layer " + layer + "'s output " + s.sample().str());
      break;
    case Kind::layer: break;
    case Kind::direction:
      if (direction.shape() != s.sample() && direction.shape() != s)
        throw ShapeError("direction at layer " + layer + ": expected " + s.sample().str() + ", got " +
                         direction.shape().str());
      for (size_t i = 0; i < direction.size(); ++i)
        if (!std::isfinite(direction[i]))
          throw std::invalid_argument("direction at layer " + layer + ": not finite at element " + std::to_string(i));
      break;
  }
}

namespace {

bool whole_number(const std::string& s, int& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  const long k = std::strtol(s.c_str(), &end, 10);
  if (*end || k < INT_MIN || k > INT_MAX) return false;
  v = int(k);
  return true;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t p = 0;
  for (;;) {
    const size_t q = s.find(',', p);
    out.push_back(s.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) return out;
    p = q + 1;
  }
}

}  // namespace

std::vector<Unit> parse_units(const Graph& g, const std::string& spec, const ReadTensor& read) {
  const std::string accepted =
      "expected class:K, class:all, LAYER:C, LAYER:all, LAYER:C,Y,X, LAYER or LAYER:FILE.npy";
  auto fail = [&](const std::string& why) { return std::invalid_argument("--unit '" + spec + "': " + why); };
  const size_t colon = spec.find(':');
  const std::string head = spec.substr(0, colon), what = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (spec.empty()) throw fail(accepted);
  std::vector<Unit> units;
  auto checked = [&](Unit u) {
    try {
      u.check(g);
    } catch (const std::exception& e) {
      throw fail(e.what());
    }
    units.push_back(std::move(u));
  };
  if (head == "class") {
    const int K = g.classes();
    int k = 0;
    if (what == "all")
      for (int c = 0; c < K; ++c) checked(Unit::cls(c));
    else if (whole_number(what, k))
      checked(Unit::cls(k));
    else
      throw fail("expected class:K (a class number) or class:all");
    return units;
  }
  const int node = g.find(head);
  if (node < 0) {
    std::string names;
    for (int i = 0; i < g.size(); ++i) names += (names.empty() ? "" : ", ") + g.layer(i).name;
    throw fail("no layer '" + head + "' (layers: " + names + "; or class:K)");
  }
  const Shape s = g.shape(node, 1);
  if (colon == std::string::npos) {
    checked(Unit::whole(node));
    return units;
  }
  if (what == "all") {
    for (int c = 0; c < (s.rank >= 2 ? s[1] : 1); ++c) checked(Unit::channel(node, c));
    return units;
  }
  if (what.size() > 4 && what.compare(what.size() - 4, 4, ".npy") == 0) {
    if (!read) throw fail("directions from files are read by the command line");
    Tensor d = read(what);
    if (d.shape() == s) d = d.reshaped(s.sample());
    checked(Unit::along(node, d));
    return units;
  }
  std::vector<int> v;
  for (const std::string& part : split_commas(what)) {
    int k = 0;
    if (!whole_number(part, k)) throw fail("'" + part + "' is not a whole number; " + accepted);
    v.push_back(k);
  }
  if (v.size() == 1)
    checked(Unit::channel(node, v[0]));
  else if (v.size() == 3)
    checked(Unit::neuron(node, v[0], v[1], v[2]));
  else
    throw fail(accepted);
  return units;
}

Score parse_score(const std::string& s) {
  if (s == "logit") return Score::logit;
  if (s == "prob") return Score::prob;
  if (s == "logprob") return Score::logprob;
  throw std::invalid_argument("score '" + s + "' (known: logit, prob, logprob)");
}

double unit_value(const Unit& u, Score score, const float* a, const Shape& sample, float* seed) {
  const size_t D = sample.numel();
  const int C = sample.rank >= 1 ? sample[0] : 1;
  const size_t plane = D / C;
  switch (u.kind) {
    case Unit::Kind::class_score: {
      if (score == Score::logit) {
        if (seed) seed[u.index] = 1.f;
        return a[u.index];
      }
      // log-sum-exp in double, max-subtracted; p_k = exp(z_k - lse).
      const double m = *std::max_element(a, a + D);
      double z = 0;
      for (size_t k = 0; k < D; ++k) z += std::exp(double(a[k]) - m);
      const double lse = m + std::log(z), logp = a[u.index] - lse, p = std::exp(logp);
      if (seed) {  // ∂ log p_c/∂z = e_c − p;  ∂ p_c/∂z = p_c (e_c − p)
        const double f = score == Score::prob ? p : 1.0;
        for (size_t k = 0; k < D; ++k) seed[k] = float(-f * std::exp(double(a[k]) - lse));
        seed[u.index] += float(f);
      }
      return score == Score::prob ? p : logp;
    }
    case Unit::Kind::channel: {
      if (seed) std::fill(seed + size_t(u.index) * plane, seed + size_t(u.index + 1) * plane, float(1.0 / double(plane)));
      return sum(a + size_t(u.index) * plane, plane) / double(plane);
    }
    case Unit::Kind::neuron: {
      const int H = sample.rank == 3 ? sample[1] : 1, W = sample.rank == 3 ? sample[2] : 1;
      const size_t i = (size_t(u.index) * H + u.y) * W + u.x;
      if (seed) seed[i] = 1.f;
      return a[i];
    }
    case Unit::Kind::layer: {
      double e = 0;
      for (size_t i = 0; i < D; ++i) e += double(a[i]) * a[i];
      if (seed)
        for (size_t i = 0; i < D; ++i) seed[i] = float(a[i] / double(D));
      return 0.5 * e / double(D);
    }
    case Unit::Kind::direction: {
      double e = 0;
      for (size_t i = 0; i < D; ++i) e += double(u.direction[i]) * a[i];
      if (seed) std::copy_n(u.direction.data(), D, seed);
      return e;
    }
  }
  return 0;
}

Objective unit_objective(const Graph& g, const std::vector<Unit>& units, Score score) {
  if (units.empty()) throw std::invalid_argument("no units to visualize");
  const int node = units[0].at(g);
  for (const Unit& u : units) {
    u.check(g);
    if (u.at(g) != node)
      throw std::invalid_argument("units at layers " + g.layer(node).name + " and " + g.layer(u.at(g)).name +
                                  ": one batch maximizes units of one layer");
  }
  Objective o;
  o.node = node;
  o.eval = [units, score](const Tensor& a, int row0, double* values, Tensor& seed) {
    const int R = a.batch();
    if (row0 < 0 || row0 + R > int(units.size()))
      throw std::logic_error("objective of " + std::to_string(units.size()) + " units evaluated on rows [" +
                             std::to_string(row0) + "," + std::to_string(row0 + R) + ")");
    seed.resize(a.shape());
    seed.fill(0.f);
    const size_t D = a.sample_size();
    for (int r = 0; r < R; ++r)
      values[r] = unit_value(units[row0 + r], score, a.data() + size_t(r) * D, a.shape().sample(),
                             seed.data() + size_t(r) * D);
  };
  return o;
}

Objective inversion_objective(const Graph& g, int node, Tensor reference) {
  const Shape s = g.shape(node, 1);
  if (reference.rank() != s.rank || reference.shape().sample() != s.sample())
    throw ShapeError("inversion reference at layer " + g.layer(node).name + ": expected [R," +
                     s.sample().str().substr(1) + ", got " + reference.shape().str());
  Objective o;
  o.node = node;
  o.eval = [reference](const Tensor& a, int row0, double* values, Tensor& seed) {
    if (a.shape().sample() != reference.shape().sample() || row0 < 0 || row0 + a.batch() > reference.batch())
      throw std::logic_error("inversion objective of " + reference.shape().str() + " evaluated on " + a.shape().str() +
                             " from row " + std::to_string(row0));
    seed.resize(a.shape());
    const size_t D = a.sample_size();
    for (int r = 0; r < a.batch(); ++r) {
      const float *x = a.data() + size_t(r) * D, *ref = reference.data() + size_t(row0 + r) * D;
      float* s = seed.data() + size_t(r) * D;
      double norm = 0, dist = 0;
      for (size_t i = 0; i < D; ++i) norm += double(ref[i]) * ref[i];
      // A layer that is all zeros for this input: the distance unnormalized (dividing by 1e-12, as
      // before, scaled it by 1e12 against the priors).
      if (norm == 0) norm = 1;
      for (size_t i = 0; i < D; ++i) {
        const double d = double(x[i]) - ref[i];
        dist += d * d;
        s[i] = float(-2 * d / norm);
      }
      values[r] = -dist / norm;
    }
  };
  return o;
}

std::vector<double> evaluate(Graph& g, const Objective& obj, const Tensor& x, int chunk) {
  std::vector<double> v(x.batch());
  Tensor seed;
  ForwardOptions fo;
  fo.until = obj.node;
  for (int b = 0; b < x.batch(); b += chunk) {
    const int e = std::min(x.batch(), b + chunk);
    const Tensor& a = g.forward(x.slice(b, e), fo);
    obj.eval(a, b, v.data() + b, seed);
  }
  return v;
}

}  // namespace gb::visualize
