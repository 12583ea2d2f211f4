// Seeded synthetic 2-D sets for decision-region plots. Sample i has class i % classes, so every set
// is balanced for any n; each point draws from the one Rng in a fixed order, so a seed fixes the set.
#include <cmath>

#include "data/dataset.h"

namespace gb {

Dataset make_toy(const ToyParams& p) {
  const std::string where = "toy:" + p.name;
  if (p.n <= 0 || p.n > 10'000'000) throw DataError(where + ": n must be in 1..10000000, got " + std::to_string(p.n));
  int classes;
  float noise;
  if (p.name == "moons") {
    classes = 2, noise = 0.1f;
  } else if (p.name == "circles") {
    classes = p.k ? p.k : 2, noise = 0.05f;
  } else if (p.name == "spirals") {
    classes = p.k ? p.k : 3, noise = 0.03f;
  } else if (p.name == "xor") {
    classes = 2, noise = 0.25f;
  } else {
    throw DataError(where + ": unknown toy set (expected moons, circles, spirals or xor)");
  }
  if ((p.name == "moons" || p.name == "xor") && p.k && p.k != 2)
    throw DataError(where + ": has 2 classes; k=" + std::to_string(p.k) + " is only for spirals and circles");
  if (classes < 2 || classes > 100) throw DataError(where + ": k must be in 2..100, got " + std::to_string(classes));
  if (p.noise >= 0) noise = p.noise;
  if (!std::isfinite(noise)) throw DataError(where + ": noise must be finite");

  Dataset d;
  d.name = where;
  for (int c = 0; c < classes; ++c) d.class_names.push_back(std::to_string(c));
  d.x = Tensor(Shape{p.n, 2});
  d.y.resize(p.n);
  Rng rng(p.seed);
  const float pi = 3.14159265358979f;
  float* x = d.x.data();
  for (int i = 0; i < p.n; ++i) {
    const int c = i % classes;
    float a = 0, b = 0;
    if (p.name == "moons") {  // scikit-learn's two half circles, centred on the origin
      float t = pi * rng.uniform();
      if (c == 0) a = std::cos(t) - 0.5f, b = std::sin(t) - 0.25f;
      else a = 0.5f - std::cos(t), b = 0.25f - std::sin(t);
    } else if (p.name == "circles") {  // concentric rings of radius (c+1)/k
      float t = 2 * pi * rng.uniform(), r = float(c + 1) / float(classes);
      a = r * std::cos(t), b = r * std::sin(t);
    } else if (p.name == "spirals") {  // k arms, one full turn each, radius 0.15..1 (no pile-up at the centre)
      float t = rng.uniform(), r = 0.15f + 0.85f * t, th = 2 * pi * (float(c) / float(classes) + t);
      a = r * std::cos(th), b = r * std::sin(th);
    } else {  // xor: class 0 at (+,+) and (-,-), class 1 at (+,-) and (-,+), alternating blobs
      float s = (i / classes) % 2 ? -0.75f : 0.75f;
      a = s, b = c == 0 ? s : -s;
    }
    x[2 * i] = a + noise * rng.normal();
    x[2 * i + 1] = b + noise * rng.normal();
    d.y[i] = c;
  }
  return d;
}

}  // namespace gb
