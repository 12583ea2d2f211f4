// Anchors (Ribeiro, Singh & Guestrin 2018): an if-then rule over interpretable predicates (a
// superpixel kept, a feature inside a quantile range) that "anchors" the model's prediction: with
// the predicates fixed and everything else perturbed, the model keeps its class with precision
// ≥ τ, and among such rules the one covering most of the perturbation distribution is chosen. The
// search is the paper's (and the anchor package's anchor_beam): rules grow one predicate at a
// time, a beam of the best of each size chosen by KL-LUCB, each candidate's precision bounded by
// KL confidence bounds on Bernoulli means.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/rng.h"

namespace gb::explain::surrogates {

// The perturbation distribution. draw() appends n samples in which every predicate of `anchor`
// holds: per sample, a row of `predicates` bytes (1 where predicate p holds) to `rows`, and whether
// the model keeps the explained class to `hits` (with labels false: rows only, for coverage).
struct AnchorSampler {
  int predicates = 0;
  std::function<void(const std::vector<int>& anchor, int n, bool labels, std::vector<uint8_t>& rows,
                     std::vector<uint8_t>& hits)>
      draw;
};

struct AnchorOptions {
  double threshold = 0.95;     // τ: the precision an anchor must reach
  double delta = 0.1;          // confidence: bounds hold with probability 1 − δ
  double epsilon = 0.15;       // KL-LUCB's tolerance when choosing the beam (the package's tau)
  double epsilon_stop = 0.05;  // how close to τ a candidate's bound must come to decide it
  int batch = 100;             // samples drawn per step
  int beam = 1;                // candidates kept per size
  int max_size = 0;            // most predicates in an anchor (0: no limit)
  int coverage_samples = 10000;
  long max_samples = 200000;   // a budget on the model's evaluations; the best anchor so far is returned
};

struct Anchor {
  std::vector<int> predicates;  // in the order they were added
  double precision = 0;         // the estimate from its samples
  double coverage = 1;          // the fraction of unconditioned samples it holds on
  long samples = 0;             // drawn for the whole search
  bool found = false;           // precision ≥ τ established (else: the most precise candidate)
  bool budget_exhausted = false;
  std::vector<double> precision_by_size, coverage_by_size;  // after each predicate
};

Anchor anchor_beam(const AnchorSampler& sampler, const AnchorOptions& o);

// KL(p ‖ q) of Bernoulli means, and the bounds KL-LUCB uses: the largest q ≥ p (smallest q ≤ p)
// with KL(p ‖ q) ≤ level, by bisection to 1e-9.
double kl_bernoulli(double p, double q);
double kl_upper(double p, double level);
double kl_lower(double p, double level);

}  // namespace gb::explain::surrogates
