// The metric registry: every family file adds its metrics; evaluate() validates and dispatches.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "explain/attribution/explain.h"
#include "explain/metrics/common.h"

namespace gb::metrics {

static const explain::MethodTable<Metric>& table() {
  static const explain::MethodTable<Metric> t("metric", [] {
    std::vector<Metric> m;
    add_faithfulness_metrics(m);
    add_complexity_metrics(m);
    add_robustness_metrics(m);
    add_randomisation_metrics(m);
    add_axiom_metrics(m);
    add_localisation_metrics(m);
    return m;
  }());
  return t;
}

const std::vector<MetricInfo>& all_metrics() { return table().infos(); }

const MetricInfo& metric_info(const std::string& name) { return table().find(name).info; }

Better better_for(const MetricInfo& m, const Params& params) {
  const auto& declared = m.declaration.params;
  const auto p = std::find_if(declared.begin(), declared.end(), [](const ParamInfo& i) { return i.name == "order"; });
  if (p == declared.end()) return m.better;
  const auto given = params.find("order");
  const std::string& order = given != params.end() ? given->second : p->default_value;
  if (order == "morf") return m.better;
  if (order != "lerf") return Better::neither;
  return m.better == Better::higher ? Better::lower : m.better == Better::lower ? Better::higher : Better::neither;
}

const char* better_name(Better b) { return b == Better::higher ? "higher" : b == Better::lower ? "lower" : ""; }

std::string list_text() {
  std::vector<MethodInfo> decls;
  for (const MetricInfo& m : all_metrics()) {
    MethodInfo d = m.declaration;
    const std::string better = *better_name(m.better) ? std::string(", ") + better_name(m.better) + " is better" : "";
    d.summary = "[" + m.family + better + "] " + d.summary;
    if (m.needs_masks) d.summary += " (needs --masks)";
    decls.push_back(d);
  }
  return explain::list_text(decls);
}

Evaluation evaluate(Graph& model, const Tensor& x, const Target& target, const Explanation& explanation,
                    const std::string& metric, const Params& params, const Context& context) {
  const Metric& m = table().find(metric);
  explain::method_info(explanation.method);  // an unknown method fails here, listing the methods
  if (x.rank() != model.input_shape().rank + 1 || x.shape().sample() != model.input_shape())
    shape_error("input to " + metric, Shape::batch_of(x.rank() ? x.batch() : 1, model.input_shape()), x.shape());
  if (x.batch() < 1) throw std::invalid_argument(metric + ": no inputs");
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i]))
      throw std::invalid_argument(metric + ": input " + std::to_string(i / x.sample_size()) + " is not finite at element " +
                                  std::to_string(i % x.sample_size()));
  target.check(model, x.batch());
  if (m.info.needs_masks && !context.masks)
    throw std::invalid_argument(metric + " needs masks (glassbox evaluate --masks FILE.npy)");
  if (m.info.needs_label_random_model && !context.label_random_model)
    throw std::invalid_argument(metric + " needs a model trained on shuffled labels");
  explain::ParamReader reader(params, m.info.declaration);
  Evaluation e;
  try {
    e = m.run(model, x, target, explanation, reader, context);
  } catch (const std::range_error& err) {  // a score that is not finite: say which metric
    throw std::invalid_argument(metric + ": " + err.what());
  }
  reader.done();
  e.metric = metric;
  return e;
}

double finite_mean(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double e : v)
    if (std::isfinite(e)) s += e, ++n;
  return n ? s / n : NAN;
}

}  // namespace gb::metrics
