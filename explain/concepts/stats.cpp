#include "explain/concepts/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace gb::concepts {

double mean(const std::vector<double>& v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double stdev(const std::vector<double>& v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size()));
}

namespace {

// The continued fraction of I_x(a, b) (modified Lentz), converging fast for x < (a + 1)/(a + b + 2).
double beta_fraction(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-15;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    double num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));  // even step
    d = 1 + num * d;
    c = 1 + num / c;
    if (std::fabs(d) < tiny) d = tiny;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));  // odd step
    d = 1 + num * d;
    c = 1 + num / c;
    if (std::fabs(d) < tiny) d = tiny;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double step = d * c;
    h *= step;
    if (std::fabs(step - 1) < eps) break;
  }
  return h;
}

}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || !(x >= 0 && x <= 1))
    throw std::invalid_argument("incomplete_beta: needs a, b > 0 and x in [0, 1]");
  if (x == 0 || x == 1) return x;
  // x^a (1-x)^b / (a B(a, b)), in logs.
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_fraction(a, b, x) / a;
  return 1 - front * beta_fraction(b, a, 1 - x) / b;  // the symmetry I_x(a,b) = 1 − I_{1−x}(b,a)
}

double t_two_sided_p(double t, double df) {
  if (!(df > 0)) throw std::invalid_argument("t_two_sided_p: degrees of freedom must be > 0");
  if (std::isnan(t)) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(t)) return 0;
  return incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

TTest ttest_ind(const std::vector<double>& a, const std::vector<double>& b) {
  const double na = double(a.size()), nb = double(b.size());
  if (a.empty() || b.empty() || na + nb < 3)
    throw std::invalid_argument("t-test: needs at least one value in each sample and three in all");
  const double ma = mean(a), mb = mean(b);
  double ssa = 0, ssb = 0;
  for (double x : a) ssa += (x - ma) * (x - ma);
  for (double x : b) ssb += (x - mb) * (x - mb);
  TTest r;
  r.df = na + nb - 2;
  const double pooled = (ssa + ssb) / r.df;
  const double se = std::sqrt(pooled * (1 / na + 1 / nb));
  if (se == 0) {
    r.t = ma == mb ? 0 : (ma > mb ? 1 : -1) * std::numeric_limits<double>::infinity();
    r.p = ma == mb ? 1 : 0;
    return r;
  }
  r.t = (ma - mb) / se;
  r.p = t_two_sided_p(r.t, r.df);
  return r;
}

}  // namespace gb::concepts

namespace gb::concepts {

TTest ttest_rel(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = std::min(a.size(), b.size());  // ace.py truncates both to the shorter
  if (n < 2) throw std::invalid_argument("paired t-test: needs at least two pairs");
  std::vector<double> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
  const double md = mean(d);
  double ss = 0;
  for (double x : d) ss += (x - md) * (x - md);
  TTest r;
  r.df = double(n) - 1;
  const double se = std::sqrt(ss / r.df / double(n));
  if (se == 0) {  // every difference equal: as ttest_ind's zero-variance case
    r.t = md == 0 ? 0 : (md > 0 ? 1 : -1) * std::numeric_limits<double>::infinity();
    r.p = md == 0 ? 1 : 0;
    return r;
  }
  r.t = md / se;
  r.p = t_two_sided_p(r.t, r.df);
  return r;
}

}  // namespace gb::concepts
