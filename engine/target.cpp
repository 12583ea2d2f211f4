#include "engine/target.h"

#include <stdexcept>

namespace gb {

Target Target::unit(const Graph& g, int node, int c, int y, int x) {
  const Shape s = g.shape(node, 1);
  const int C = s[1], H = s.rank == 4 ? s[2] : 1, W = s.rank == 4 ? s[3] : 1;
  const std::string name = g.layer(node).name;
  if (s.rank == 2 && (y != 0 || x != 0))
    throw std::invalid_argument("layer " + name + " has no spatial positions (output " + s.sample().str() + ")");
  if (c < 0 || c >= C || y < 0 || y >= H || x < 0 || x >= W)
    throw std::out_of_range("unit (" + std::to_string(c) + "," + std::to_string(y) + "," + std::to_string(x) +
                            ") outside layer " + name + "'s output " + s.sample().str());
  Target t;
  t.node = node;
  t.index = {(c * H + y) * W + x};
  return t;
}

Target Target::channel_mean(int node, int c) {
  Target t;
  t.kind = Kind::channel_mean;
  t.node = node;
  t.channel = c;
  return t;
}

Target Target::along(int node, Tensor direction) {
  Target t;
  t.kind = Kind::direction;
  t.node = node;
  t.direction = std::move(direction);
  return t;
}

void Target::check(const Graph& g, int n) const {
  if (node < -1 || node >= g.size()) throw std::invalid_argument("target node " + std::to_string(node) + " does not exist");
  const int at_node = at(g);
  const Shape s = g.shape(at_node, 1);
  const std::string where = at_node == g.output() && kind == Kind::element ? "" : " at layer " + g.layer(at_node).name;
  switch (kind) {
    case Kind::element: {
      if (index.size() != 1 && int(index.size()) != n)
        throw std::invalid_argument(std::to_string(index.size()) + " targets for a batch of " + std::to_string(n));
      const long size = long(s.numel());
      for (int i : index)
        if (i < 0 || i >= size)
          throw std::out_of_range(at_node == g.output() && s.rank == 2
                                      ? "target class " + std::to_string(i) + " outside [0," + std::to_string(size) + ")"
                                      : "target unit " + std::to_string(i) + where + " outside its " +
                                            std::to_string(size) + " units");
      break;
    }
    case Kind::channel_mean:
      if (s.rank < 2 || channel < 0 || channel >= s[1])
        throw std::out_of_range("target channel " + std::to_string(channel) + where + " outside [0," +
                                std::to_string(s.rank < 2 ? 0 : s[1]) + ")");
      break;
    case Kind::direction:
      if (direction.rank() != s.rank || direction.shape().sample() != s.sample() ||
          (direction.batch() != 1 && direction.batch() != n))
        throw ShapeError("target direction" + where + ": expected " + s.str() + " (or " + std::to_string(n) +
                         " of them), got " + direction.shape().str());
      break;
  }
}

Target Target::gather(const std::vector<int>& rows) const {
  Target t = *this;
  if (kind == Kind::element && index.size() != 1) {
    t.index.clear();
    for (int r : rows) t.index.push_back(index.at(r));
  }
  if (kind == Kind::direction && direction.batch() != 1) {
    const size_t D = direction.sample_size();
    t.direction = Tensor(direction.shape().with_batch(int(rows.size())));
    for (size_t r = 0; r < rows.size(); ++r)
      std::copy_n(direction.data() + size_t(rows[r]) * D, D, t.direction.data() + r * D);
  }
  return t;
}

void Target::seed(const Graph& g, int b, int e, Tensor& s) const {
  const Shape shape = g.shape(at(g), e - b);
  s.resize(shape);
  s.fill(0.f);
  const size_t D = shape.sample().numel();
  for (int n = b; n < e; ++n) {
    float* row = s.data() + size_t(n - b) * D;
    switch (kind) {
      case Kind::element:
        row[element(n)] = 1.f;
        break;
      case Kind::channel_mean: {
        const size_t plane = D / shape[1];
        for (size_t i = 0; i < plane; ++i) row[size_t(channel) * plane + i] = 1.f / float(plane);
        break;
      }
      case Kind::direction:
        std::copy_n(direction.data() + (direction.batch() == 1 ? 0 : size_t(n) * D), D, row);
        break;
    }
  }
}

Tensor Target::seed(const Graph& g, int b, int e) const {
  Tensor s;
  seed(g, b, e, s);
  return s;
}

void Target::values(const Tensor& a, int b, int e, double* out) const {
  const size_t D = a.sample_size();
  for (int n = b; n < e; ++n) {
    const float* row = a.data() + size_t(n - b) * D;
    double v = 0;
    switch (kind) {
      case Kind::element:
        v = row[element(n)];
        break;
      case Kind::channel_mean: {
        const size_t plane = D / a.dim(1);
        v = sum(row + size_t(channel) * plane, plane) / double(plane);
        break;
      }
      case Kind::direction: {
        const float* w = direction.data() + (direction.batch() == 1 ? 0 : size_t(n) * D);
        for (size_t i = 0; i < D; ++i) v += double(w[i]) * row[i];
        break;
      }
    }
    out[n - b] = v;
  }
}

std::string Target::describe(const Graph& g, int sample) const {
  const int at_node = at(g);
  const std::string name = g.layer(at_node).name;
  switch (kind) {
    case Kind::element: {
      const int i = element(sample);
      if (at_node == g.output()) return "class " + std::to_string(i);
      const Shape s = g.shape(at_node, 1);
      if (s.rank != 4) return name + "[" + std::to_string(i) + "]";
      const int HW = s[2] * s[3];
      return name + "[" + std::to_string(i / HW) + "," + std::to_string(i % HW / s[3]) + "," +
             std::to_string(i % s[3]) + "]";
    }
    case Kind::channel_mean: return name + " channel " + std::to_string(channel) + " (mean)";
    case Kind::direction: return "a direction at " + name;
  }
  return name;
}

std::vector<double> target_values(Graph& g, const Target& t, int b, int e) {
  std::vector<double> v(e - b);
  t.values(g.activation(t.at(g)), b, e, v.data());
  return v;
}

}  // namespace gb
