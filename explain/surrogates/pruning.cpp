#include "explain/surrogates/pruning.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>

#include "engine/edit.h"
#include "engine/layers.h"
#include "explain/surrogates/distill.h"
#include "explain/surrogates/drawing.h"
#include "explain/visualize/visualize.h"

namespace gb::explain::surrogates {

namespace {

int filter_count(const Layer& L) {
  if (auto* c = dynamic_cast<const Conv2d*>(&L)) return c->out_ch;
  if (auto* d = dynamic_cast<const Dense*>(&L)) return d->out_features;
  return 0;
}

// The batch normalization that alone consumes node i's output, or null.
BatchNorm2d* following_batchnorm(Graph& g, int i) {
  int consumers = 0, last = -1;
  for (int j = i + 1; j < g.size(); ++j)
    for (int in : g.node(j).inputs)
      if (in == i) ++consumers, last = j;
  return consumers == 1 ? dynamic_cast<BatchNorm2d*>(&g.layer(last)) : nullptr;
}

// What remove_filter overwrites, to put it back after a trial removal.
struct SavedFilter {
  Filter f;
  std::vector<std::vector<float>> values;

  // The parameter ranges remove_filter zeroes: the filter's weights and bias, the following
  // batch normalization's scale and shift of that channel.
  static std::vector<std::pair<float*, size_t>> ranges(Graph& g, Filter f) {
    std::vector<std::pair<float*, size_t>> r;
    for (Param* p : g.layer(f.node).params()) {
      const size_t per = p->value.size() / size_t(filter_count(g.layer(f.node)));
      r.emplace_back(p->value.data() + size_t(f.index) * per, per);
    }
    if (BatchNorm2d* bn = following_batchnorm(g, f.node)) {
      r.emplace_back(bn->weight.value.data() + f.index, 1);
      r.emplace_back(bn->bias.value.data() + f.index, 1);
    }
    return r;
  }
  SavedFilter(Graph& g, Filter filter) : f(filter) {
    for (auto [p, n] : ranges(g, f)) values.emplace_back(p, p + n);
  }
  void restore(Graph& g) const {
    const auto r = ranges(g, f);
    for (size_t i = 0; i < r.size(); ++i) std::copy(values[i].begin(), values[i].end(), r[i].first);
  }
};

struct Pruner {
  Graph& g;
  const LabelledSet& val;
  const PruneOptions& o;
  PruneResult res;

  double measure() {
    ++res.evaluations;
    return accuracy(g, val, o.batch);
  }
  void report(const std::string& stage, int done, int total) const {
    if (o.progress) o.progress(stage, done, total);
  }
  // The accuracy lost, against `from`, when each filter of `alive` alone is removed.
  void rank(const std::vector<int>& alive, double from, std::vector<double>& drop, const std::string& stage) {
    for (size_t k = 0; k < alive.size(); ++k) {
      const SavedFilter saved(g, res.filters[alive[k]]);
      remove_filter(g, saved.f);
      drop[alive[k]] = from - measure();
      saved.restore(g);
      report(stage, int(k) + 1, int(alive.size()));
    }
  }
};

}  // namespace

std::vector<int> prunable_layers(const Graph& g, const std::string& names) {
  std::vector<int> out;
  if (names.empty() || names == "all") {
    for (int i = 0; i < g.size(); ++i)
      if (dynamic_cast<const Conv2d*>(&g.layer(i))) out.push_back(i);
    if (out.empty()) throw std::invalid_argument("the model has no conv layers to prune (name dense layers with --layers)");
    return out;
  }
  for (size_t p = 0; p <= names.size();) {
    const size_t q = std::min(names.find(',', p), names.size());
    const std::string name = names.substr(p, q - p);
    p = q + 1;
    const int i = g.find(name);
    if (i < 0) throw std::invalid_argument("--layers: no layer named '" + name + "'");
    if (!filter_count(g.layer(i)) || i == g.output())
      throw std::invalid_argument("--layers: " + name + " (" + g.layer(i).kind() +
                                  ") has no filters to prune (conv or dense layers before the output)");
    if (std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
  }
  return out;
}

void remove_filter(Graph& g, Filter f) {
  mask_units(g, f.node, {f.index});
  if (BatchNorm2d* bn = following_batchnorm(g, f.node)) bn->weight.value[f.index] = bn->bias.value[f.index] = 0.f;
}

double accuracy(Graph& g, const LabelledSet& s, int batch) {
  const std::vector<int> p = predict(g, s.x, batch);
  int correct = 0;
  for (size_t n = 0; n < p.size(); ++n) correct += p[n] == s.y[n];
  return p.empty() ? NAN : double(correct) / double(p.size());
}

PruneResult prune_filters(Graph& g, const LabelledSet& val, const PruneOptions& o) {
  if (!(o.max_drop >= 0 && o.max_drop <= 1)) throw std::invalid_argument("--max-drop must be in [0, 1]");
  if (o.rerank < 0) throw std::invalid_argument("--rerank must be >= 0");
  if (val.x.batch() != int(val.y.size()) || val.y.empty())
    throw std::invalid_argument("pruning needs a labelled validation set");
  Pruner p{g, val, o, {}};
  PruneResult& r = p.res;
  for (int node : o.layers.empty() ? prunable_layers(g, "") : o.layers)
    for (int f = 0; f < filter_count(g.layer(node)); ++f) r.filters.push_back({node, f});
  r.base_accuracy = p.measure();
  if (o.curve) r.base_curve_accuracy = accuracy(g, *o.curve, o.batch);
  std::vector<int> alive(r.filters.size());
  std::iota(alive.begin(), alive.end(), 0);
  r.drop.assign(r.filters.size(), 0.0);
  p.rank(alive, r.base_accuracy, r.drop, "measuring each filter's drop");
  std::vector<double> current = r.drop;  // the drops the next choice is made by
  double acc = r.base_accuracy;
  int since_rank = 0;
  while (!alive.empty()) {
    // The cheapest filter; ties to the earlier candidate (lower layer, then lower index).
    const auto best = std::min_element(alive.begin(), alive.end(), [&](int a, int b) {
      return current[a] < current[b] || (current[a] == current[b] && a < b);
    });
    const int c = *best;
    const SavedFilter saved(g, r.filters[c]);
    remove_filter(g, saved.f);
    const double after = p.measure();
    if (r.base_accuracy - after > o.max_drop) {
      saved.restore(g);
      r.stopped_at = saved.f;
      r.stopped_accuracy = after;
      break;
    }
    PruneStep step{saved.f, current[c], after, NAN};
    if (o.curve) step.curve_accuracy = accuracy(g, *o.curve, o.batch);
    r.steps.push_back(step);
    acc = after;
    alive.erase(best);
    p.report("pruning", int(r.steps.size()), int(r.filters.size()));
    if (o.rerank > 0 && ++since_rank == o.rerank && !alive.empty()) {
      p.rank(alive, acc, current, "re-measuring after " + std::to_string(r.steps.size()) + " removals");
      since_rank = 0;
    }
  }
  return r;
}

namespace {

std::string percent(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%+.1f%%", 100 * v);  // six characters: within a 56 px cell
  return b;
}

// One layer's kept filters (most important first) and pruned filters (in removal order).
void kept_and_pruned(const PruneResult& r, int node, int count, std::vector<int>& kept, std::vector<int>& pruned,
                     std::vector<double>& kept_drop, std::vector<double>& pruned_drop) {
  std::vector<int> all;
  for (size_t c = 0; c < r.filters.size(); ++c)
    if (r.filters[c].node == node) all.push_back(int(c));
  for (const PruneStep& s : r.steps)
    if (s.filter.node == node && int(pruned.size()) < count) pruned.push_back(s.filter.index), pruned_drop.push_back(s.drop);
  std::vector<int> rest;
  for (int c : all) {
    const bool gone = std::any_of(r.steps.begin(), r.steps.end(), [&](const PruneStep& s) { return s.filter == r.filters[c]; });
    if (!gone) rest.push_back(c);
  }
  std::stable_sort(rest.begin(), rest.end(), [&](int a, int b) { return r.drop[a] > r.drop[b]; });
  for (int c : rest)
    if (int(kept.size()) < count) kept.push_back(r.filters[c].index), kept_drop.push_back(r.drop[c]);
}

}  // namespace

Image kept_vs_pruned(Graph& original, const PruneResult& r, const visualize::Bounds& bounds, int count,
                     const Params& am_params) {
  std::vector<int> layers;
  for (const Filter& f : r.filters)
    if (std::find(layers.begin(), layers.end(), f.node) == layers.end() &&
        original.shape(f.node).rank == 4)  // conv outputs: a channel to maximize
      layers.push_back(f.node);
  const Shape in = original.input_shape();
  const int cell = std::clamp(2 * in[2], 48, 96), cell_h = cell * in[1] / std::max(1, in[2]), gap = 8;
  const int lh = line_height(), label_h = lh + 2, line_h = label_h + cell_h + 2 * lh + 16, title_h = 2 * lh + 16;
  const int half = count * (cell + gap) + 3 * gap;
  Image im(std::max(2 * half + gap, 480), title_h + int(layers.size()) * line_h + gap);
  text(im, gap, 6, "activation maximization of kept (most important first) and pruned (in removal order) filters",
       kBlack, im.w - 2 * gap);
  text(im, gap, 6 + lh, "numbers: validation accuracy lost when the filter alone is removed", kGray, im.w - 2 * gap);
  for (size_t li = 0; li < layers.size(); ++li) {
    const int node = layers[li], y = title_h + int(li) * line_h;
    std::vector<int> kept, pruned;
    std::vector<double> kept_drop, pruned_drop;
    kept_and_pruned(r, node, count, kept, pruned, kept_drop, pruned_drop);
    const std::string name = original.layer(node).name;
    text(im, gap, y, name + ": kept", kBlue, half - gap);
    text(im, half + gap, y, name + ": pruned" + (pruned.empty() ? " (none)" : ""), kRed, half - gap);
    for (int side = 0; side < 2; ++side) {
      const std::vector<int>& idx = side ? pruned : kept;
      if (idx.empty()) continue;
      visualize::Request q;
      for (int c : idx) q.units.push_back(visualize::Unit::channel(node, c));
      q.bounds = bounds;
      const visualize::Result a = visualize::visualize(original, q, "am", am_params);
      const Tensor px = visualize::to_pixels(a.panels.at(0).values, bounds);
      for (size_t k = 0; k < idx.size(); ++k) {
        const int x = (side ? half + gap : gap) + int(k) * (cell + gap);
        paste(im, pixels(px.sample(int(k)), cell, cell_h), x, y + label_h + 2);
        frame(im, x, y + label_h + 2, x + cell, y + label_h + 2 + cell_h, side ? kRed : kBlue, 1);
        text(im, x, y + label_h + cell_h + 5, "c" + std::to_string(idx[k]), kBlack, cell + gap / 2);
        text(im, x, y + label_h + cell_h + 5 + lh, percent(side ? pruned_drop[k] : kept_drop[k]), kGray, cell + gap / 2);
      }
    }
  }
  return im;
}

}  // namespace gb::explain::surrogates
