// The method registries: one declaration per method is the source of truth for its parameters.
// Every registered method runs with its defaults and must read exactly the keys it declares
// (explain() checks the reads after the run), rejects keys it does not declare, and parses its
// declared defaults.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "tests/tensor_checks.h"
#include "engine/architecture.h"
#include "engine/layers.h"
#include "explain/attribution/explain.h"

using namespace gb;
using namespace gb::explain;

static Graph small_cam_net() {
  Graph g = graph_from_json(
      parse_architecture("input(1,8,8) conv(4,k=3,p=1) relu conv(4,k=3,p=1) relu gap dense(3)"));
  g.init(3);
  return g;
}

TEST_CASE("every attribution method reads exactly the parameters it declares") {
  Graph g = small_cam_net();
  Tensor x(Shape{2, 1, 8, 8});
  Rng r(5);
  for (size_t i = 0; i < x.size(); ++i) x[i] = r.uniform();
  REQUIRE(methods().size() >= 20);
  for (const MethodInfo& m : methods()) {
    CAPTURE(m.name);
    // Cheap settings where a method declares them, so the loop stays fast; the reads are the same.
    Params p;
    for (const ParamInfo& d : m.params) {
      if (d.name == "n_steps" || d.name == "n") p[d.name] = "4";
      if (d.name == "segments") p[d.name] = "4";
    }
    Result res;
    CHECK_NOTHROW(res = gb::explain::explain(g, x, {0, 2}, m.name, p));  // DeclarationError on a mismatch
    CHECK(res.attribution.shape() == x.shape());
    // Unknown keys are rejected with the method's own key list (a noise tunnel passes them on to
    // its base method, which rejects them).
    Params bad = p;
    bad["no_such_key"] = "1";
    CHECK_THROWS_AS(gb::explain::explain(g, x, {0, 2}, m.name, bad), std::invalid_argument);
  }
}

TEST_CASE("ParamReader: declared defaults, parsing, and the two kinds of mismatch") {
  const MethodInfo info{"demo", "a method for this test",
                        {{"steps", "50", ""}, {"scale", "0.5", ""}, {"mode", "fast", ""}, {"sigma", "", ""},
                         {"on", "false", ""}},
                        "none"};
  SUBCASE("defaults come from the declaration") {
    Params none;
    ParamReader r(none, info);
    CHECK(r.integer("steps") == 50);
    CHECK(r.number("scale") == 0.5);
    CHECK(r.text("mode") == "fast");
    CHECK_FALSE(r.maybe_number("sigma").has_value());
    CHECK_FALSE(r.flag("on"));
    CHECK_NOTHROW(r.done());
  }
  SUBCASE("given values win and are checked") {
    Params p{{"steps", "8"}, {"scale", "nan"}, {"sigma", "0.25"}, {"on", "maybe"}};
    ParamReader r(p, info);
    CHECK(r.integer("steps") == 8);
    CHECK_THROWS_WITH_AS(r.number("scale"), doctest::Contains("scale=nan is not finite"), std::invalid_argument);
    CHECK(*r.maybe_number("sigma") == 0.25);
    CHECK_THROWS_AS(r.flag("on"), std::invalid_argument);
    Params huge{{"steps", "1e12"}};
    ParamReader r2(huge, info);
    CHECK_THROWS_WITH_AS(r2.integer("steps"), doctest::Contains("steps=1e12 is outside the 32-bit integers"),
                         std::invalid_argument);
    Params half{{"steps", "2.5"}};
    ParamReader r3(half, info);
    CHECK_THROWS_WITH_AS(r3.integer("steps"), doctest::Contains("steps=2.5 is not an integer"), std::invalid_argument);
  }
  SUBCASE("an undeclared key given is a user error naming the known keys") {
    Params p{{"stpes", "8"}};
    CHECK_THROWS_WITH_AS(ParamReader(p, info), doctest::Contains("unknown parameter 'stpes' (known: steps, scale"),
                         std::invalid_argument);
  }
  SUBCASE("reading an undeclared key, or never reading a declared one, is a programming error") {
    Params none;
    ParamReader r(none, info);
    CHECK_THROWS_AS(r.number("undeclared"), DeclarationError);
    r.integer("steps");
    CHECK_THROWS_WITH_AS(r.done(), doctest::Contains("declares parameter 'scale' but never reads it"),
                         DeclarationError);
  }
}

namespace {

// small_cam_net's prefix up to relu2 (same weights), then `head` and dense(1, bias=false) whose one
// logit IS a unit of relu2: weight 1 on input `pick` of the dense, 0 elsewhere.
Graph truncated_net(const Graph& full, int relu2, const std::string& head, int pick) {
  Graph t = graph_from_text("input(1,8,8) conv(4,k=3,p=1) relu conv(4,k=3,p=1) relu " + head + " dense(1,bias=false)");
  t.init(99);
  for (int i = 0; i <= relu2; ++i) {
    REQUIRE(t.layer(i).name == full.layer(i).name);
    const std::vector<Param*> to = t.layer(i).params(), from = full.layer(i).params();
    REQUIRE(to.size() == from.size());
    for (size_t k = 0; k < to.size(); ++k) to[k]->value = from[k]->value.clone();
  }
  Dense& d = static_cast<Dense&>(t.layer(t.output()));
  d.weight.value.fill(0.f);
  d.weight.value[pick] = 1.f;
  return t;
}

}  // namespace

// A unit target must explain that unit: for every method, the map differs from the same method's
// map of a class logit, and equals the method's map of a truncated net whose logit is the unit
// (the prefix up to the layer, then GAP or flatten and a dense that picks the unit with weight 1).
TEST_CASE("every method explains a unit of a layer (Captum's neuron attribution), CAM refuses") {
  Graph g = small_cam_net();
  Tensor x(Shape{2, 1, 8, 8});
  Rng r(6);
  for (size_t i = 0; i < x.size(); ++i) x[i] = r.uniform();
  const int relu2 = 3;  // input conv relu conv relu(3) gap dense
  REQUIRE(g.layer(relu2).kind() == "relu");
  const int Y = 3, X = 4;  // the unit relu2[3,3,4] and the mean of channel 0, active in both samples
  struct Case {
    Target unit;
    Graph net;  // its logit 0 is the unit's value
  };
  Case cases[] = {{Target::channel_mean(relu2, 0), truncated_net(g, relu2, "gap", 0)},
                  {Target::unit(g, relu2, 3, Y, X), truncated_net(g, relu2, "flatten", (3 * 8 + Y) * 8 + X)}};
  const Target cls = std::vector<int>{1, 2};  // class logits, for the "differs" check
  // The truncated net's logit as a unit (a direction at its output), not a class: see (2).
  const Tensor one(Shape{1, 1}, 1.f);
  int compared = 0;
  for (Case& c : cases) {
    const Target& t = c.unit;
    CAPTURE(t.describe(g));
    // The truncated net's logit is the unit's value, and the unit is active in both samples (so
    // the maps are not trivially zero).
    g.forward(x);
    const std::vector<double> f = target_values(g, t, 0, 2);
    const Tensor& logit = c.net.forward(x);
    for (int n = 0; n < 2; ++n) {
      CHECK(logit[n] == doctest::Approx(f[n]).epsilon(1e-5));
      CHECK(f[n] > 0.01);
    }
    for (const MethodInfo& m : methods()) {
      CAPTURE(m.name);
      Params p;
      for (const ParamInfo& d : m.params) {
        if (d.name == "n") p[d.name] = m.name == "lime" ? "32" : "8";
        if (d.name == "n_steps") p[d.name] = "8";
        if (d.name == "segments") p[d.name] = "4";
        if (d.name == "seed" && m.name.rfind("lrp", 0) != 0) p[d.name] = "3";  // (LRP's seed is logit|onehot)
        if (d.name == "layer" && m.name.find("cam") != std::string::npos) p[d.name] = "relu1";  // below the unit
      }
      if (m.name == "cam") {
        CHECK_THROWS_WITH_AS(gb::explain::explain(g, x, t, m.name, p), doctest::Contains("cam explains class logits"),
                             std::invalid_argument);
        continue;
      }
      if (m.name == "occlusion-map") {  // a probability map by default, which a unit does not have
        CHECK_THROWS_WITH_AS(gb::explain::explain(g, x, t, m.name, p), doctest::Contains("needs a class target"),
                             std::invalid_argument);
        p["output"] = "logit";
      }
      // LIME regresses the softmax probability of a class (output=prob, refused for a unit, whose
      // raw value it regressed under that name) or the raw value (output=logit).
      if (m.name == "lime") {
        CHECK_THROWS_WITH_AS(gb::explain::explain(g, x, t, m.name, p), doctest::Contains("output=prob needs a class target"),
                             std::invalid_argument);
        p["output"] = "logit";
      }
      Result res;
      REQUIRE_NOTHROW(res = gb::explain::explain(g, x, t, m.name, p));
      REQUIRE(res.attribution.shape() == x.shape());
      if (m.name == "deeplift")  // summation to delta holds for any target
        for (double d : res.delta) CHECK(std::fabs(d) < 1e-4);

      // (1) Not the map of a class logit.
      const Result by_class = gb::explain::explain(g, x, cls, m.name, p);
      const double scale = std::max(max_abs(res.attribution), max_abs(by_class.attribution));
      CHECK(scale > 0);
      CHECK(max_abs_diff(res.attribution, by_class.attribution) > 1e-2 * scale);

      // (2) The map of the truncated net's logit, to float rounding and the LRP stabilizers (1e-6 in
      // the denominators at the head and GAP). RISE and Score-CAM always score a class target by its
      // softmax probability (1 for a net with one logit) and a unit by its value: they are compared
      // with the truncated logit as a unit (Target::along the output), every other method with class
      // 0 of the truncated net (LIME and the occlusions with output=logit, set above). LRP-αβ's dense
      // rule passes on α·R where z⁻ = 0, as at the one-hot head (a ≥ 0 after the ReLU, w ≥ 0): its
      // truncated map is α (the default, 2) times the unit's.
      const bool softmax_of_class = m.name == "rise" || m.name == "score-cam";
      const Target trunc_target = softmax_of_class ? Target::along(c.net.output(), one) : Target{0};
      const Result by_net = gb::explain::explain(c.net, x, trunc_target, m.name, p);
      REQUIRE(by_net.attribution.shape() == x.shape());
      double factor = 1;
      if (m.name == "lrp-alpha-beta")
        for (const ParamInfo& d : m.params)
          if (d.name == "alpha") factor = std::stod(d.default_value);
      Tensor expect = res.attribution.clone();
      for (size_t i = 0; i < expect.size(); ++i) expect[i] = float(expect[i] * factor);
      const double tol = 1e-4 * std::max(max_abs(by_net.attribution), 1e-3);
      CHECK(max_abs_diff(expect, by_net.attribution) <= tol);
      ++compared;
    }
  }
  CHECK(compared == 2 * (int(methods().size()) - 1));  // all but cam, for both targets
}

TEST_CASE("a unit of a linear layer, by hand: saliency is its weight row, IG is x times it") {
  Graph g = graph_from_text("input(5) dense(4,name=d) relu dense(3)");
  g.init(11);
  const Dense& d = static_cast<const Dense&>(g.layer(0));
  Tensor x = Tensor::from({2, 5}, {0.3f, -1.f, 2.f, 0.5f, 1.5f, -0.2f, 0.7f, 0.1f, -2.f, 1.f});
  const Target unit = Target::unit(g, 0, 2);
  Result s = gb::explain::explain(g, x, unit, "saliency");
  Result ig = gb::explain::explain(g, x, unit, "integrated-gradients");  // baseline 0
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 5; ++i) {
      const float w = d.weight.value[2 * 5 + i];
      CHECK(s.attribution[n * 5 + i] == doctest::Approx(w));
      CHECK(ig.attribution[n * 5 + i] == doctest::Approx(x[n * 5 + i] * w).epsilon(1e-5));
    }
  for (double delta : ig.delta) CHECK(std::fabs(delta) < 1e-5);  // f(x) − f(0) = w·x (zero bias at init)
}

TEST_CASE("LRP-0 from a direction at a layer conserves ⟨v, a⟩ on a bias-free ReLU net") {
  Graph g = graph_from_text(
      "input(1,8,8) conv(4,k=3,p=1,bias=false) relu(name=r1) conv(6,k=3,p=1,bias=false) relu(name=r2) gap "
      "dense(3,bias=false)");
  g.init(12);
  Tensor x(Shape{3, 1, 8, 8});
  Rng r(13);
  for (size_t i = 0; i < x.size(); ++i) x[i] = r.uniform();
  const int r2 = g.at("r2");
  Tensor v(g.shape(r2, 1));
  for (size_t i = 0; i < v.size(); ++i) v[i] = r.uniform() - 0.3f;
  const Target t = Target::along(r2, v);
  Result res = gb::explain::explain(g, x, t, "lrp-zero");
  g.forward(x);
  const std::vector<double> f = target_values(g, t, 0, 3);
  for (int n = 0; n < 3; ++n) {
    double s = 0;
    for (size_t i = 0; i < 64; ++i) s += res.attribution[n * 64 + i];
    CHECK(s == doctest::Approx(f[n]).epsilon(1e-4));
    CHECK(std::fabs(res.delta[n]) < 1e-4 * std::max(1.0, std::fabs(f[n])));
  }
}
