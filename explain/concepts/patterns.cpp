#include "explain/concepts/patterns.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "engine/rng.h"

namespace gb::concepts {

namespace {

constexpr double kPi = 3.14159265358979323846;

const std::vector<std::pair<std::string, PatternKind>>& kinds() {
  static const std::vector<std::pair<std::string, PatternKind>> k = {
      {"stripes-h", PatternKind::stripes_h}, {"stripes-v", PatternKind::stripes_v},
      {"checkerboard", PatternKind::checkerboard}, {"dots", PatternKind::dots},
      {"edges", PatternKind::edges},         {"lines", PatternKind::lines},
      {"blobs", PatternKind::blobs},         {"solid", PatternKind::solid},
      {"noise", PatternKind::noise}};
  return k;
}

double parse_double(const std::string& text, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v))
    throw std::invalid_argument(what + ": '" + text + "' is not a finite number");
  return v;
}

Range parse_range(const std::string& text, const std::string& what, double lo, double hi) {
  const size_t colon = text.find(':');
  Range r;
  r.lo = parse_double(text.substr(0, colon), what);
  r.hi = colon == std::string::npos ? r.lo : parse_double(text.substr(colon + 1), what);
  r.given = true;
  if (r.lo > r.hi || r.lo < lo || r.hi > hi) {
    char b[96];
    std::snprintf(b, sizeof b, " (a number or A:B with A <= B, within [%g, %g])", lo, hi);
    throw std::invalid_argument(what + "=" + text + b);
  }
  return r;
}

double draw(const Range& r, Rng& rng) { return r.lo + (r.hi - r.lo) * rng.uniform(); }

// One gray plane H × W with values in [0, 1]: foreground weight f in [0, 1] at each pixel, mixed
// between background and level afterwards.
struct Plane {
  int H, W;
  std::vector<float> f;
  float& at(int y, int x) { return f[size_t(y) * W + x]; }
};

void stripes(Plane& p, double period, Rng& rng, bool horizontal) {
  const double phase = period * rng.uniform();
  for (int y = 0; y < p.H; ++y)
    for (int x = 0; x < p.W; ++x) {
      const double t = std::fmod((horizontal ? y : x) + phase, period) / period;
      p.at(y, x) = t < 0.5 ? 1.f : 0.f;
    }
}

void checkerboard(Plane& p, double period, Rng& rng) {
  const double py = period * rng.uniform(), px = period * rng.uniform();
  for (int y = 0; y < p.H; ++y)
    for (int x = 0; x < p.W; ++x) {
      const bool a = std::fmod(y + py, period) < period / 2, b = std::fmod(x + px, period) < period / 2;
      p.at(y, x) = a != b ? 1.f : 0.f;
    }
}

// Discs of radius period/4 (at least 0.75 px) on a square grid of the period, shifted at random.
void dots(Plane& p, double period, Rng& rng) {
  const double r = std::max(0.75, period / 4), oy = period * rng.uniform(), ox = period * rng.uniform();
  for (int y = 0; y < p.H; ++y)
    for (int x = 0; x < p.W; ++x) {
      const double dy = std::fmod(y + oy, period) - period / 2, dx = std::fmod(x + ox, period) - period / 2;
      p.at(y, x) = dy * dy + dx * dx <= r * r ? 1.f : 0.f;
    }
}

// A straight line at a random angle through a random point of the image's central half.
struct Line {
  double ny, nx, c;  // unit normal and offset: distance = ny*y + nx*x - c
};
Line random_line(const Plane& p, Rng& rng) {
  const double a = kPi * rng.uniform();
  const double cy = (p.H - 1) * (0.25 + 0.5 * rng.uniform()), cx = (p.W - 1) * (0.25 + 0.5 * rng.uniform());
  return {std::sin(a), std::cos(a), std::sin(a) * cy + std::cos(a) * cx};
}

// One step edge: the foreground is the half-plane on one side of a random line.
void edges(Plane& p, Rng& rng) {
  const Line l = random_line(p, rng);
  for (int y = 0; y < p.H; ++y)
    for (int x = 0; x < p.W; ++x) p.at(y, x) = l.ny * y + l.nx * x - l.c >= 0 ? 1.f : 0.f;
}

// Thin lines (one pixel wide) at random angles.
void lines(Plane& p, int count, Rng& rng) {
  for (int k = 0; k < count; ++k) {
    const Line l = random_line(p, rng);
    for (int y = 0; y < p.H; ++y)
      for (int x = 0; x < p.W; ++x)
        if (std::fabs(l.ny * y + l.nx * x - l.c) <= 0.5) p.at(y, x) = 1.f;
  }
}

// Gaussian blobs of σ in [S/14, S/7] (S the shorter side), centres anywhere, summed and clipped at 1.
void blobs(Plane& p, int count, Rng& rng) {
  const double S = std::min(p.H, p.W);
  for (int k = 0; k < count; ++k) {
    const double s = S / 14 + (S / 7 - S / 14) * rng.uniform();
    const double cy = (p.H - 1) * rng.uniform(), cx = (p.W - 1) * rng.uniform();
    for (int y = 0; y < p.H; ++y)
      for (int x = 0; x < p.W; ++x) {
        const double d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
        p.at(y, x) = float(std::min(1.0, p.at(y, x) + std::exp(-d2 / (2 * s * s))));
      }
  }
}

Range default_period(int H, int W) {
  const double S = std::min(H, W);
  return {std::max(2.0, std::round(S / 10)), std::max(3.0, std::round(S / 4)), false};
}

}  // namespace

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x7f4a7c159e3779b9ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

const std::vector<std::string>& pattern_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (auto& [n, k] : kinds()) v.push_back(n);
    return v;
  }();
  return names;
}

std::string pattern_name(PatternKind k) {
  for (auto& [n, kind] : kinds())
    if (kind == k) return n;
  return "?";
}

PatternSpec parse_pattern(const std::string& text) {
  std::vector<std::string> parts;
  for (size_t p = 0; p <= text.size();) {
    const size_t q = std::min(text.find(',', p), text.size());
    parts.push_back(text.substr(p, q - p));
    p = q + 1;
  }
  PatternSpec s;
  bool found = false;
  for (auto& [n, k] : kinds())
    if (n == parts[0]) s.kind = k, found = true;
  if (!found) {
    std::string known;
    for (const std::string& n : pattern_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("pattern '" + parts[0] + "' (known: " + known + ")");
  }
  std::set<std::string> seen;
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t eq = parts[i].find('=');
    const std::string key = parts[i].substr(0, eq), value = eq == std::string::npos ? "" : parts[i].substr(eq + 1);
    const std::string what = "pattern " + parts[0] + ": " + key;
    if (!seen.insert(key).second) throw std::invalid_argument(what + " given twice");
    if (key == "period")
      s.period = parse_range(value, what, 1, 4096);
    else if (key == "level")
      s.level = parse_range(value, what, 0, 1);
    else if (key == "background")
      s.background = parse_range(value, what, 0, 1);
    else if (key == "count")
      s.count = parse_range(value, what, 1, 64);
    else
      throw std::invalid_argument("pattern " + parts[0] + ": unknown key '" + parts[i] +
                                  "' (known: period, level, background, count; each a number or A:B)");
  }
  return s;
}

Tensor make_patterns(const PatternSpec& spec, const Shape& sample, int n, uint64_t seed) {
  if (sample.rank != 3) throw ShapeError("generated patterns need an image shape [C,H,W], got " + sample.str());
  if (n < 0) throw std::invalid_argument("make_patterns: negative count");
  const int C = sample[0], H = sample[1], W = sample[2];
  const Range period = spec.period.given ? spec.period : default_period(H, W);
  const Range count = spec.count.given ? spec.count
                                       : Range{1, spec.kind == PatternKind::blobs ? 4.0 : 3.0, false};
  Tensor out(Shape::batch_of(n, sample));
  Plane p{H, W, std::vector<float>(size_t(H) * W)};
  for (int i = 0; i < n; ++i) {
    Rng rng(mix_seed(seed, uint64_t(i)));
    const double level = draw(spec.level, rng), background = draw(spec.background, rng);
    const double per = draw(period, rng);
    const int cnt = int(std::floor(draw(count, rng) + 0.5));
    std::fill(p.f.begin(), p.f.end(), 0.f);
    switch (spec.kind) {
      case PatternKind::stripes_h: stripes(p, per, rng, true); break;
      case PatternKind::stripes_v: stripes(p, per, rng, false); break;
      case PatternKind::checkerboard: checkerboard(p, per, rng); break;
      case PatternKind::dots: dots(p, per, rng); break;
      case PatternKind::edges: edges(p, rng); break;
      case PatternKind::lines: lines(p, cnt, rng); break;
      case PatternKind::blobs: blobs(p, cnt, rng); break;
      case PatternKind::solid: std::fill(p.f.begin(), p.f.end(), 1.f); break;
      case PatternKind::noise:
        for (float& v : p.f) v = rng.uniform();
        break;
    }
    float* dst = out.data() + size_t(i) * C * H * W;
    for (int c = 0; c < C; ++c)
      for (size_t j = 0; j < p.f.size(); ++j)
        dst[size_t(c) * H * W + j] = float(background + (level - background) * p.f[j]);
  }
  return out;
}

}  // namespace gb::concepts
