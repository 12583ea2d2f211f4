// The method registries: one declaration per method is the source of truth for its parameters.
// Every registered method runs with its defaults and must read exactly the keys it declares
// (explain() checks the reads after the run), rejects keys it does not declare, and parses its
// declared defaults.
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>

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
    CHECK_THROWS_WITH_AS(r2.integer("steps"), doctest::Contains("not an integer"), std::invalid_argument);
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

TEST_CASE("every method explains a unit of a layer (Captum's neuron attribution), CAM refuses") {
  Graph g = small_cam_net();
  Tensor x(Shape{2, 1, 8, 8});
  Rng r(6);
  for (size_t i = 0; i < x.size(); ++i) x[i] = r.uniform();
  const int relu2 = 3;  // input conv relu conv relu(3) gap dense
  REQUIRE(g.layer(relu2).kind() == "relu");
  for (const Target& t : {Target::channel_mean(relu2, 1), Target::unit(g, relu2, 2, 3, 4)}) {
    for (const MethodInfo& m : methods()) {
      CAPTURE(m.name);
      CAPTURE(t.describe(g));
      Params p;
      for (const ParamInfo& d : m.params) {
        if (d.name == "n") p[d.name] = "4";
        if (d.name == "segments") p[d.name] = "4";
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
      Result res;
      REQUIRE_NOTHROW(res = gb::explain::explain(g, x, t, m.name, p));
      CHECK(res.attribution.shape() == x.shape());
      if (m.name == "deeplift")  // summation to delta holds for any target
        for (double d : res.delta) CHECK(std::fabs(d) < 1e-4);
    }
  }
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
