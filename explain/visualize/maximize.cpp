// Activation maximization (Erhan et al. 2009; Simonyan et al. 2014; Yosinski et al. 2015),
// DeepDream (Mordvintsev et al. 2015) and fooling images (Nguyen et al. 2015; CS231n): all three
// are ascend() with different objectives, starts and settings.
#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>

#include "engine/argmax.h"
#include "engine/layers.h"
#include "explain/visualize/method.h"

namespace gb::visualize {

namespace {

constexpr int kMaxRows = 4096;  // rows of one batch (units × restarts, inputs × units): memory bound

void check_rows(long rows, const std::string& method) {
  if (rows > kMaxRows)
    throw std::out_of_range(method + ": " + std::to_string(rows) + " images in one batch, at most " +
                            std::to_string(kMaxRows) + " (fewer units, restarts or inputs)");
}

uint64_t read_seed(ParamReader& r) { return uint64_t(read_int(r, "seed", 0, INT_MAX)); }

// The rows' start images: noise or a constant (pixels, through the bounds), or the inputs: one
// input for every row, or input u for the rows of unit u.
Tensor read_start(ParamReader& r, const Graph& g, const Request& q, const std::vector<uint64_t>& seeds, int units) {
  const std::string kind = read_choice(r, "start", {"noise", "constant", "data"});
  const double value = read_number(r, "start_value", 0, 1), init_std = read_number(r, "init_std", 0, 10);
  if (kind != "data") return start_images(g, kind, value, init_std, seeds, q.bounds);
  require_inputs(q, r.method() + " --param start=data");
  const int N = q.inputs.batch(), R = int(seeds.size()), per_unit = R / units;
  if (N != 1 && N != units)
    throw std::invalid_argument(r.method() + ": start=data takes one input for all units or one per unit, got " +
                                std::to_string(N) + " inputs for " + std::to_string(units) + " units");
  Tensor x(Shape::batch_of(R, g.input_shape()));
  const size_t D = x.sample_size();
  for (int row = 0; row < R; ++row)
    std::copy_n(q.inputs.data() + (N == 1 ? 0 : size_t(row / per_unit)) * D, D, x.data() + size_t(row) * D);
  return x;
}

std::vector<ParamInfo> am_params() {
  std::vector<ParamInfo> p = ascent_params(am_defaults());
  p.insert(p.end(), {
      {"score", "logit", "class units: logit, prob (softmax probability) or logprob"},
      {"restarts", "1", "images per unit, each from its own seed (1..64)"},
      explain::seed_param("0", "random seed (start noise and jitter of each unit and restart)"),
      {"start", "noise", "noise (pixel 0.5 + N(0, init_std^2)), constant (pixel start_value) or data (the inputs)"},
      {"start_value", "0.5", "the pixel value of start=constant, 0..1"},
      {"init_std", "0.1", "the pixel noise of start=noise, 0..10"},
  });
  return p;
}

Result run_am(Graph& g, const Request& q, ParamReader& r) {
  if (q.units.empty()) throw std::invalid_argument("am needs units (--unit class:K, LAYER:C, ...)");
  AscentOptions o = read_ascent(r, g, q);
  const Score score = read_score(r, q.units);
  const int restarts = read_int(r, "restarts", 1, 64);
  const uint64_t seed = read_seed(r);
  check_rows(long(q.units.size()) * restarts, "am");
  o.row_seeds = row_seeds(seed, q.units, restarts);
  const Tensor start = read_start(r, g, q, o.row_seeds, int(q.units.size()));
  std::vector<Unit> rows;
  for (const Unit& u : q.units) rows.insert(rows.end(), restarts, u);
  const AscentResult a = ascend(g, unit_objective(g, rows, score), start, o);
  const std::vector<double> top = dataset_max(g, q.units, score, q.data);

  Result res;
  res.panels.push_back({"image", a.x, Draw::pixels});
  res.per_line = restarts > 1 ? restarts : int(q.units.size());
  for (size_t u = 0; u < q.units.size(); ++u)
    for (int k = 0; k < restarts; ++k) {
      const int i = int(u) * restarts + k;
      Row row;
      row.name = q.units[u].name(g) + (restarts > 1 ? "_r" + std::to_string(k) : "");
      row.caption = label(g, q, q.units[u]) + (restarts > 1 ? " #" + std::to_string(k) : "") + "\nscore " + number(a.value[i]);
      report(a, i, row);
      if (!top.empty()) {
        row.values["dataset_max"] = top[u];
        row.values["value_over_dataset_max"] = top[u] != 0 ? a.value[i] / top[u] : 0.0;
        row.caption += "\ndata " + number(top[u]);  // the highest score of a --data image
      }
      res.rows.push_back(std::move(row));
    }
  if (!top.empty()) res.note = "score: the unit's value for the image; data: its highest value over the scanned images";
  return res;
}

// DeepDream: from each input, ascend the unit (a layer's ½·mean a², a channel's mean, a class)
// over octaves: at octave o the optimized image has the size H/scale^(octaves-1-o) and the model
// sees it upsampled; the detail gained at one octave is upsampled and carried to the next.
Result run_deepdream(Graph& g, const Request& q, ParamReader& r) {
  require_inputs(q, "deepdream");
  if (q.units.empty()) throw std::invalid_argument("deepdream needs units (--unit LAYER, LAYER:C, class:K...)");
  AscentOptions o = read_ascent(r, g, q);
  const int octaves = read_int(r, "octaves", 1, 8);
  const double scale = read_number(r, "octave_scale", 1.01, 4);
  const uint64_t seed = read_seed(r);
  if (o.fourier_decay > 0 && octaves > 1)
    throw std::invalid_argument("deepdream: --param fourier needs octaves=1 (octaves optimize smaller images)");
  const int N = q.inputs.batch(), U = int(q.units.size()), H = g.input_shape()[1], W = g.input_shape()[2];
  check_rows(long(N) * U, "deepdream");
  std::vector<Unit> rows;
  Tensor base(Shape::batch_of(N * U, g.input_shape()));
  const size_t D = base.sample_size();
  for (int n = 0; n < N; ++n)
    for (int u = 0; u < U; ++u) {
      rows.push_back(q.units[u]);
      std::copy_n(q.inputs.data() + size_t(n) * D, D, base.data() + size_t(n * U + u) * D);
    }
  const Objective obj = unit_objective(g, rows, Score::logit);
  o.row_seeds = row_seeds(seed, q.units, 1);
  for (int n = 1; n < N; ++n) o.row_seeds.insert(o.row_seeds.end(), o.row_seeds.begin(), o.row_seeds.begin() + U);
  const Progress progress = o.progress;
  Tensor detail;  // what the octaves so far added, at the last octave's size
  AscentResult a;
  std::vector<int> steps(N * U, 0);
  for (int k = 0; k < octaves; ++k) {
    const double f = std::pow(scale, octaves - 1 - k);
    const int h = std::max(1, int(std::lround(H / f))), w = std::max(1, int(std::lround(W / f)));
    const Tensor base_k = resize(base, h, w);
    Tensor start = base_k.clone();
    if (!detail.empty()) {
      const Tensor up = resize(detail, h, w);
      for (size_t i = 0; i < start.size(); ++i) start[i] += up[i];
    }
    if (progress) o.progress = [&, k](int done, int total) { progress(k * total + done, octaves * total); };
    AscentResult ak = ascend(g, obj, start, o);
    detail = ak.param.clone();
    for (size_t i = 0; i < detail.size(); ++i) detail[i] -= base_k[i];
    for (int i = 0; i < N * U; ++i) steps[i] += ak.steps[i];
    a.x = ak.x, a.value = ak.value, a.penalty = ak.penalty, a.steps = steps;
    a.curve.resize(N * U);
    for (int i = 0; i < N * U; ++i) a.curve[i].insert(a.curve[i].end(), ak.curve[i].begin(), ak.curve[i].end());
  }
  // The start is the input's own value at full size: the coarsest octave starts from the input
  // shrunk and blurred, whose (lower) value made every run look like a gain.
  a.start = evaluate(g, obj, base);
  a.start_penalty.assign(a.start.size(), 0.0);
  penalties(base, o.penalties, a.start_penalty.data(), nullptr);
  Result res;
  res.panels.push_back({"input", base, Draw::pixels, true});
  res.panels.push_back({"image", a.x, Draw::pixels});
  res.per_line = U;
  for (int n = 0; n < N; ++n)
    for (int u = 0; u < U; ++u) {
      Row row;
      row.name = input_name(q, n) + "_" + q.units[u].name(g);
      row.caption = label(g, q, q.units[u]) + "\nscore " + number(a.start[n * U + u]) + " -> " + number(a.value[n * U + u]);
      report(a, n * U + u, row);
      res.rows.push_back(std::move(row));
    }
  return res;
}

// Fooling images: from each input (or from noise), ascend each target class until its softmax
// probability reaches the threshold; rows that reach it stop.
Result run_fool(Graph& g, const Request& q, ParamReader& r) {
  if (q.units.empty()) throw std::invalid_argument("fool needs target classes (--unit class:K or class:all)");
  for (const Unit& u : q.units)
    if (u.kind != Unit::Kind::class_score) throw std::invalid_argument("fool targets classes, not " + u.describe(g));
  AscentOptions o = read_ascent(r, g, q);
  const double threshold = read_number(r, "threshold", 1e-6, 1 - 1e-6);
  const Score score = read_score(r, q.units);
  const uint64_t seed = read_seed(r);
  const double init_std = read_number(r, "init_std", 0, 10);
  const int U = int(q.units.size()), N = q.inputs.empty() ? 1 : q.inputs.batch(), R = N * U;
  check_rows(R, "fool");
  std::vector<Unit> rows;
  for (int n = 0; n < N; ++n) rows.insert(rows.end(), q.units.begin(), q.units.end());
  o.row_seeds = row_seeds(seed, q.units, 1);
  for (int n = 1; n < N; ++n) o.row_seeds.insert(o.row_seeds.end(), o.row_seeds.begin(), o.row_seeds.begin() + U);
  Tensor start;
  if (q.inputs.empty()) {
    start = start_images(g, "noise", 0.5, init_std, o.row_seeds, q.bounds);
  } else {
    start = Tensor(Shape::batch_of(R, g.input_shape()));
    const size_t D = start.sample_size();
    for (int i = 0; i < R; ++i) std::copy_n(q.inputs.data() + size_t(i / U) * D, D, start.data() + size_t(i) * D);
  }
  const int K = g.classes();
  auto probability = [&](int i, const float* logits) {
    return unit_value(rows[i], Score::prob, logits, Shape{K});
  };
  o.done = [&](int i, const float* logits) { return probability(i, logits) >= threshold; };
  const AscentResult a = ascend(g, unit_objective(g, rows, score), start, o);

  Result res;
  Tensor change = to_pixels(a.x, q.bounds), start_px = to_pixels(start, q.bounds);
  for (size_t i = 0; i < change.size(); ++i) change[i] -= start_px[i];
  res.panels.push_back({"input", start, Draw::pixels, true});
  res.panels.push_back({"image", a.x, Draw::pixels});
  res.panels.push_back({"change", change, Draw::signed_map});
  res.per_line = U;
  const Tensor& logits_end = g.forward(a.x);
  const Tensor end = logits_end.clone();
  const Tensor begin = g.forward(start).clone();
  const size_t D = change.sample_size();
  for (int i = 0; i < R; ++i) {
    Row row;
    row.name = (q.inputs.empty() ? std::string("noise") : input_name(q, i / U)) + "_to_" + rows[i].name(g);
    row.caption = "to " + label(g, q, rows[i]);
    report(a, i, row);
    const float* e = end.data() + size_t(i) * K;
    const float* b = begin.data() + size_t(i) * K;
    row.values["start_probability"] = probability(i, b);
    row.values["probability"] = probability(i, e);
    row.values["reached"] = probability(i, e) >= threshold ? 1 : 0;
    row.values["start_predicted"] = double(argmax(b, K));
    row.values["predicted"] = double(argmax(e, K));
    double l2 = 0, linf = 0;
    for (size_t j = 0; j < D; ++j) {
      const double d = change[size_t(i) * D + j];
      l2 += d * d;
      linf = std::max(linf, std::fabs(d));
    }
    row.values["l2_change_pixels"] = std::sqrt(l2);
    row.values["linf_change_pixels"] = linf;
    row.caption += "\np=" + number(probability(i, e)) + " in " + std::to_string(a.steps[i]) + " steps";
    res.rows.push_back(std::move(row));
  }
  return res;
}

}  // namespace

Score read_score(ParamReader& r, const std::vector<Unit>& units) {
  const Score s = parse_score(read_choice(r, "score", {"logit", "prob", "logprob"}));
  if (s != Score::logit)
    for (const Unit& u : units)
      if (u.kind != Unit::Kind::class_score)
        throw std::invalid_argument(r.method() + ": --param score=" + r.text("score") +
                                    " scores classes; these units are not classes");
  return s;
}

// The per-row report of an ascent: the objective's start and final values, penalty, steps and curve.
void report(const AscentResult& a, int r, Row& row) {
  row.values["start"] = a.start[r];
  row.values["start_objective"] = a.start[r] - a.start_penalty[r];
  row.values["value"] = a.value[r];
  row.values["penalty"] = a.penalty[r];
  row.values["objective"] = a.value[r] - a.penalty[r];
  row.values["steps"] = a.steps[r];
  row.curves["objective"] = a.curve[r];
}

// CS231n's L2 weight; blur every 4 steps (CS231n: 10 on 224-pixel images) on 28-pixel images.
AscentDefaults am_defaults() {
  AscentDefaults d;
  d.l2 = "0.001";
  d.blur_every = "4";
  return d;
}

void add_maximize_methods(std::vector<Method>& reg) {
  reg.push_back({{"am",
                  "activation maximization: ascend each unit's objective from noise, a constant or an input, one row "
                  "per unit x restart, all in one batch",
                  am_params(),
                  "Simonyan et al. 2014 / Yosinski et al. 2015 with CS231n's priors (L2 1e-3, jitter, blur, "
                  "clipping); Lucent's Adam lr 0.05 and channel mean; penalties are sums in the model's input space; "
                  "jitter rolls each image by [-j, j] (CS231n: [0, j]); fourier=1 is Lucent's fft_image in a real "
                  "(Hartley) basis with clipping instead of a sigmoid; no Lucent transform stack"},
                 run_am});
  AscentDefaults dd;
  dd.steps = "10";
  dd.optimizer = "sgd-meanabs";
  dd.lr = "0.02";
  dd.jitter = "2";
  std::vector<ParamInfo> dp = ascent_params(dd);
  dp.insert(dp.end(), {{"octaves", "4", "scales, coarse to fine (1..8); steps is per octave"},
                       {"octave_scale", "1.4", "size ratio between octaves (1.01..4)"},
                       explain::seed_param("0", "random seed (jitter)")});
  reg.push_back({{"deepdream",
                  "DeepDream: amplify a layer's activation energy (--unit LAYER: 1/2 mean a^2) or a channel's mean, "
                  "from each input, over octaves",
                  dp,
                  "Mordvintsev et al. 2015 (the L2 objective, 10 steps of lr*g/mean|g| per octave, 4 octaves x1.4, jitter; lr 0.02 in input space is Google's 1.5/255 for a std-0.35 normalization); the "
                  "objective is a mean instead of Google's sum (same direction under mean-|g| steps); the model's "
                  "input size is fixed, so each octave's image is upsampled bilinearly for the model instead of "
                  "running the model on the small image"},
                 run_deepdream});
  AscentDefaults fd;
  fd.steps = "1000";
  fd.optimizer = "sgd-l2norm";
  fd.lr = "0.25";
  fd.jitter = "0";
  std::vector<ParamInfo> fp = ascent_params(fd);
  fp.insert(fp.end(), {{"threshold", "0.99", "stop a row once its target's softmax probability reaches this"},
                       {"score", "logprob", "what is ascended: logit (CS231n), prob or logprob"},
                       explain::seed_param("0", "random seed (start noise, jitter)"),
                       {"init_std", "0.1", "without inputs: the pixel noise of the start, around pixel 0.5"}});
  reg.push_back({{"fool",
                  "fooling images: from each input (or noise), ascend each target class until its probability "
                  "reaches the threshold; reports steps and the L2/Linf change in pixels",
                  fp,
                  "CS231n's fooling images (normalized gradient steps lr*g/|g|_2, stop when reached); ascends the "
                  "log-probability by default, where CS231n ascends the logit and stops at the argmax"},
                 run_fool});
}

}  // namespace gb::visualize
