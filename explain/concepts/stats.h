// The statistics TCAV reports: means, standard deviations and Student's two-sample t-test (equal
// variances, two-sided), as scipy.stats.ttest_ind computes it, which tensorflow/tcav and Captum's
// TCAV tutorial call to compare a concept's scores with random-vs-random scores.
#pragma once
#include <vector>

namespace gb::concepts {

double mean(const std::vector<double>& v);
// Population standard deviation (numpy's np.std, ddof = 0: tcav's error bars).
double stdev(const std::vector<double>& v);

// The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1] (continued fraction,
// Lentz's method, to about 1e-14).
double incomplete_beta(double a, double b, double x);

// P(|T| >= |t|) for Student's t with df > 0 degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
double t_two_sided_p(double t, double df);

struct TTest {
  double t = 0, df = 0, p = 1;
};
// Student's t-test of two independent samples with pooled variance (scipy's ttest_ind default),
// two-sided. Each sample needs at least one value and together at least three. When both samples
// have zero variance, t is ±infinity and p is 0 if the means differ, and t = 0, p = 1 if they are
// equal (scipy gives NaN there).
TTest ttest_ind(const std::vector<double>& a, const std::vector<double>& b);
// Student's paired t-test (scipy's ttest_rel, ACE's test): the differences a_i − b_i over the first
// min(|a|, |b|) pairs (at least two), df = n − 1, two-sided. Zero variance as ttest_ind above.
TTest ttest_rel(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace gb::concepts
