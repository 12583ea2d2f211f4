// The method registries: one declaration per method is the source of truth for its parameters.
// Every registered method runs with its defaults and must read exactly the keys it declares
// (explain() checks the reads after the run), rejects keys it does not declare, and parses its
// declared defaults.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/architecture.h"
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
