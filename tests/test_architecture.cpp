// The architecture text form and JSON form: every layer kind, positional and key=value arguments,
// names and non-sequential inputs, round trips, and errors that say where and what was expected.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "train/presets.h"

using namespace gb;

namespace {

Graph build(const std::string& text) { return graph_from_text(text); }

std::string parse_error(const std::string& text) {
  try {
    parse_architecture(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(parsed without error)";
}

std::string json_error(const json& arch) {
  try {
    graph_from_json(arch);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(built without error)";
}

std::vector<std::string> inputs_of(const Graph& g, int i) {
  std::vector<std::string> v;
  for (int j : g.node(i).inputs) v.push_back(j < 0 ? "input" : g.layer(j).name);
  return v;
}

template <class L>
const L& layer_as(const Graph& g, const std::string& name) {
  const L* p = dynamic_cast<const L*>(&g.layer(g.at(name)));
  REQUIRE_MESSAGE(p, name);
  return *p;
}

const char* kAllKinds =
    "input(3,16,16) conv(8,k=3,s=1,p=1,bias=false) batchnorm(0.001,0.2) relu conv(8,3,p=1) leakyrelu(0.2) "
    "maxpool(3,2,p=1) conv(out=6,k=1) tanh avgpool(2) conv(4,k=3,s=2,p=1) sigmoid dropout(0.25) "
    "conv(4,k=1,name=c5) softplus(2,threshold=10) add(c5) gap dense(10,bias=false) flatten dense(5)";

}  // namespace

TEST_CASE("every layer kind parses, with positional and key=value arguments") {
  Graph g = build(kAllKinds);
  std::vector<std::string> kinds;
  for (int i = 0; i < g.size(); ++i) kinds.push_back(g.layer(i).kind());
  CHECK(kinds == std::vector<std::string>{"conv", "batchnorm", "relu", "conv", "leakyrelu", "maxpool", "conv", "tanh",
                                          "avgpool", "conv", "sigmoid", "dropout", "conv", "softplus", "add", "gap",
                                          "dense", "flatten", "dense"});
  const auto& c1 = layer_as<Conv2d>(g, "conv1");
  CHECK((c1.out_ch == 8 && c1.k == 3 && c1.stride == 1 && c1.pad == 1 && !c1.has_bias));
  const auto& bn = layer_as<BatchNorm2d>(g, "batchnorm1");
  CHECK(bn.eps == 0.001f);
  CHECK(bn.momentum == 0.2f);
  const auto& c2 = layer_as<Conv2d>(g, "conv2");
  CHECK((c2.out_ch == 8 && c2.k == 3 && c2.pad == 1 && c2.has_bias));
  CHECK(layer_as<LeakyReLU>(g, "leakyrelu1").slope == 0.2f);
  const auto& mp = layer_as<MaxPool2d>(g, "maxpool1");
  CHECK((mp.k == 3 && mp.stride == 2 && mp.pad == 1));
  CHECK((layer_as<Conv2d>(g, "conv3").out_ch == 6 && layer_as<Conv2d>(g, "conv3").k == 1));
  const auto& ap = layer_as<AvgPool2d>(g, "avgpool1");
  CHECK((ap.k == 2 && ap.stride == 2 && ap.pad == 0));  // the stride defaults to the window
  CHECK(layer_as<Dropout>(g, "dropout1").p == 0.25f);
  const auto& sp = layer_as<Softplus>(g, "softplus1");
  CHECK((sp.beta == 2.f && sp.threshold == 10.f));
  CHECK(inputs_of(g, g.at("add1")) == std::vector<std::string>{"softplus1", "c5"});
  CHECK(!layer_as<Dense>(g, "dense1").has_bias);
  CHECK(g.shape(g.at("maxpool1"), 1) == Shape{1, 8, 8, 8});
  CHECK(g.shape(g.at("c5"), 1) == Shape{1, 4, 2, 2});
  CHECK(g.shape(g.output(), 3) == Shape{3, 5});
}

TEST_CASE("positional and key=value forms, spacing and empty parentheses give the same architecture") {
  const std::vector<std::vector<std::string>> same = {
      {"input(1,8,8) conv(6,5)", "input(1,8,8) conv(6,k=5)", "input(1,8,8) conv(out=6,k=5)",
       "input(1,8,8) conv(k=5,out=6)", "  input( 1 , 8 ,8 )conv( 6 , k = 5 )  "},
      {"input(1,8,8) maxpool(3,2)", "input(1,8,8) maxpool(k=3,s=2)", "input(1,8,8) maxpool(3,s=2,p=0)"},
      {"input(5) leakyrelu(0.2)", "input(5) leakyrelu(slope=0.2)"},
      {"input(5) dropout(0.3)", "input(5) dropout(p=0.3)"},
      {"input(5) softplus(2)", "input(5) softplus(beta=2)"},
      {"input(5) batchnorm(0.001,0.2)", "input(5) batchnorm(eps=0.001,momentum=0.2)", "input(5) batchnorm(1e-3,0.2)"},
      {"input(5) relu", "input(5) relu()", "input(5)relu"},
      {"input(5) dense(5,name=a) relu add(a)", "input(5) dense(5,name=a) relu add(from=a)"},
      {"input(5) dense(3,bias=false)", "input(5) dense(out=3,bias=false)"},
  };
  for (auto& group : same) {
    CAPTURE(group[0]);
    const json first = architecture_json(build(group[0]));
    for (auto& text : group) {
      CAPTURE(text);
      CHECK(architecture_json(build(text)) == first);
    }
  }
  CHECK(architecture_json(build("input(5) dense(3)")) != architecture_json(build("input(5) dense(4)")));  // not vacuous
}

TEST_CASE("same_architecture compares layers, shapes, names and hyper-parameters, not parameter values") {
  Graph a = build("input(1,8,8) conv(4,k=3,p=1) relu gap dense(3)");
  Graph b = build("input(1,8,8) conv(4,k=3,p=1) relu gap dense(3)");
  a.init(1);
  b.init(2);
  CHECK(a.layer(0).params()[0]->value[0] != b.layer(0).params()[0]->value[0]);
  CHECK(same_architecture(a, b));
  CHECK(same_architecture(a, clone(a)));
  CHECK_FALSE(same_architecture(a, build("input(1,8,8) conv(4,k=3,p=1) relu gap dense(4)")));
  CHECK_FALSE(same_architecture(a, build("input(1,8,8) conv(4,k=3,p=2) relu gap dense(3)")));
  CHECK_FALSE(same_architecture(a, build("input(1,8,8) conv(4,k=3,p=1) relu(name=r) gap dense(3)")));
  CHECK_FALSE(same_architecture(a, build("input(1,9,9) conv(4,k=3,p=1) relu gap dense(3)")));
  CHECK_FALSE(same_architecture(a, build("input(1,8,8) conv(4,k=3,p=1) gap dense(3)")));
}

TEST_CASE("name=, from= and add(NAME) wire the graph; default names follow the graph's") {
  Graph g = build("input(4) dense(8,name=a) relu dense(8,from=a) add(relu1) dense(2,from=input) relu(name=r)");
  CHECK(inputs_of(g, g.at("a")) == std::vector<std::string>{"input"});
  CHECK(inputs_of(g, g.at("relu1")) == std::vector<std::string>{"a"});
  CHECK(inputs_of(g, g.at("dense2")) == std::vector<std::string>{"a"});
  CHECK(inputs_of(g, g.at("add1")) == std::vector<std::string>{"dense2", "relu1"});
  CHECK(inputs_of(g, g.at("dense3")) == std::vector<std::string>{"input"});
  CHECK(inputs_of(g, g.at("r")) == std::vector<std::string>{"dense3"});
  CHECK(g.shape(g.output(), 1) == Shape{1, 2});

  // An explicit name taken by a default: the default skips it, as Graph::add does.
  Graph t = build("input(4) relu(name=relu2) relu relu");
  Graph h(Shape{4});
  auto named = std::make_unique<ReLU>();
  named->name = "relu2";
  h.then(std::move(named)).then<ReLU>().then<ReLU>();
  for (int i = 0; i < 3; ++i) CHECK(t.layer(i).name == h.layer(i).name);
  CHECK(t.layer(2).name == "relu4");
  CHECK(build("input(1,8,8) conv(2,k=3,name=features.0) relu").named_params()[0].first == "features.0.weight");
}

TEST_CASE("text -> graph -> text -> graph keeps the architecture") {
  std::vector<std::string> texts = {
      kAllKinds,
      "input(4) dense(8,name=a) relu dense(8,from=a) add(relu1) dense(2,from=input) relu(name=r)",
      "input(4) relu(name=relu2) relu relu",
      "input(3,5,5) conv(3,k=3,p=1,name=stem) relu(name=b0) conv(3,k=3,p=1) add(b0) add(input) relu",
      "input(7) softplus(0.5,threshold=3.5) leakyrelu(0.01) dropout(0.1) batchnorm dense(2)",
  };
  for (const std::string& p : preset_names()) texts.push_back(preset_architecture(p));
  for (const std::string& text : texts) {
    CAPTURE(text);
    Graph g1 = build(text);
    const std::string t1 = architecture_text(g1);
    CAPTURE(t1);
    Graph g2 = build(t1);
    CHECK(architecture_json(g2) == architecture_json(g1));
    CHECK(architecture_text(g2) == t1);  // a fixed point
    CHECK(architecture_json(graph_from_json(architecture_json(g1))) == architecture_json(g1));
  }
  // The text form is the one people write: defaults left out, the first argument bare, floats short.
  for (const std::string& p : preset_names()) CHECK(architecture_text(make_preset(p)) == preset_architecture(p));
  CHECK(architecture_text(build("input(5) batchnorm(1e-3) leakyrelu(0.2) softplus(threshold=4) dropout(0.25)")) ==
        "input(5) batchnorm(0.001) leakyrelu(0.2) softplus(threshold=4) dropout(0.25)");
  // Names and inputs set in code come back too.
  Graph g(Shape{3});
  auto fc = std::make_unique<Dense>(4);
  fc->name = "fc";
  int a = g.add(std::move(fc), {-1});
  int b = g.add(std::make_unique<Tanh>(), {a});
  g.add(std::make_unique<Dense>(4), {-1});
  g.add(std::make_unique<Add>(), {b + 1, b});
  const std::string t = architecture_text(g);
  CAPTURE(t);
  CHECK(architecture_json(build(t)) == architecture_json(g));
  // An add whose first input is not the previous layer has no text form: say so, don't mis-wire.
  Graph odd(Shape{3});
  int r = odd.add(std::make_unique<ReLU>(), {-1});
  odd.add(std::make_unique<Tanh>(), {-1});
  odd.add(std::make_unique<Add>(), {r, -1});
  CHECK_THROWS_WITH_AS(architecture_text(odd), doctest::Contains("no text form"), std::invalid_argument);
}

TEST_CASE("parse errors give the position and the expected token") {
  struct Case {
    std::string text;
    int position;
    std::vector<std::string> phrases;
  };
  const std::vector<Case> cases = {
      // missing ')'
      {"input(1,28,28) conv(6,k=5", 26, {"expected ',' or ')'", "found end of text"}},
      {"input(1,28,28) conv(6 k=5)", 23, {"expected ',' or ')'", "found 'k'"}},
      {"input(1,28,28", 14, {"expected ',' or ')'"}},
      // unknown layer kind
      {"input(1,28,28) conv(6,k=5) rleu", 28, {"a layer kind", "instead of 'rleu'"}},
      {"input(1,28,28) (6)", 16, {"a layer name"}},
      // unknown parameter
      {"input(1,28,28) conv(6,q=5)", 23, {"a parameter of conv (out, k, s, p, bias, name, from)", "instead of 'q'"}},
      {"input(4) dense(3,k=2)", 18, {"a parameter of dense", "instead of 'k'"}},
      {"input(4) relu(slope=2)", 15, {"a parameter of relu (name, from)"}},
      {"input(4) relu(2)", 15, {"relu takes no positional arguments"}},
      {"input(1,8,8) conv(6,5,1)", 23, {"conv takes 2 positional argument(s)"}},
      {"input(1,8,8) conv(6,k=3,k=5)", 25, {"'k' is given twice"}},
      {"input(1,8,8) input(c=1)", 20, {"a dimension"}},
      // missing input(...) / input not first
      {"conv(6,k=5) relu", 1, {"expected input(...) first"}},
      {"", 1, {"expected input(...)", "end of text"}},
      {"   ", 4, {"expected input(...)"}},
      {"input(4) relu input(4)", 15, {"input(...) must come first"}},
      {"input(4) input(4)", 10, {"input(...) must come first"}},
      {"input()", 1, {"input with 1 to 3 dimensions"}},
      {"input(1,2,3,4)", 1, {"input with 1 to 3 dimensions"}},
      // add without a name
      {"input(4) dense(4) add", 19, {"add(NAME)"}},
      {"input(4) dense(4) add()", 19, {"add(NAME)"}},
      {"input(4) dense(4) add(3)", 23, {"a layer name for 'from'"}},
      // bad numbers
      {"input(1,x,28)", 9, {"a positive integer dimension"}},
      {"input(1,0,28)", 9, {"a positive integer dimension"}},
      {"input(1,2.5,3)", 9, {"a positive integer dimension"}},
      {"input(1,8,8) conv(6,k=2.5)", 23, {"a positive integer for 'k'"}},
      {"input(1,8,8) conv(-3)", 19, {"a positive integer for 'out'"}},
      {"input(1,8,8) conv(0,k=3)", 19, {"a positive integer for 'out'"}},
      {"input(1,8,8) conv(6,p=-1)", 23, {"a non-negative integer for 'p'"}},
      {"input(1,8,8) maxpool(2,s=x)", 26, {"a positive integer for 's'"}},
      {"input(4) leakyrelu(slope=abc)", 26, {"a number for 'slope'"}},
      {"input(4) dropout(p=)", 20, {"a value after '='"}},
      {"input(4) dense(4,bias=maybe)", 23, {"true or false for 'bias'"}},
      {"input(4) dense(4,name=3x)", 23, {"a layer name for 'name'"}},
      {"input(4) dense(4,name=input)", 23, {"a layer name for 'name'"}},
      {"input(4) dense(4,)", 18, {"a value"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    const std::string msg = parse_error(c.text);
    CAPTURE(msg);
    CHECK(msg.find("at position " + std::to_string(c.position) + ":") != std::string::npos);
    for (const std::string& phrase : c.phrases) CHECK_MESSAGE(msg.find(phrase) != std::string::npos, phrase);
    // The message repeats the text with a caret under the position.
    CHECK(msg.find("\n  " + c.text + "\n  " + std::string(size_t(c.position - 1), ' ') + "^") != std::string::npos);
  }
}

TEST_CASE("errors found while building the graph name the layer") {
  // Text that parses but references what is not there.
  auto build_error = [](const std::string& text) {
    try {
      build(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(built without error)");
  };
  CHECK(build_error("input(4) dense(4) add(nope)").find("layer 'add1': no layer named 'nope'") != std::string::npos);
  CHECK(build_error("input(4) relu(from=later) dense(2,name=later)").find("layer 'relu1': no layer named 'later'") !=
        std::string::npos);
  CHECK(build_error("input(1,8,8) conv(2,k=3) dense(3)").find("layer 'dense1'") != std::string::npos);
  CHECK(build_error("input(4) dense(3) add(input)").find("layer 'add1'") != std::string::npos);  // [N,3] + [N,4]
  CHECK(build_error("input(4) relu relu(name=relu1)").find("duplicate layer name 'relu1'") != std::string::npos);
  CHECK(build_error("input(1,4,4) maxpool(2,p=2)").find("layer 'maxpool1': maxpool: padding") != std::string::npos);
  CHECK(build_error("input(1,4,4) conv(2,k=7)").find("layer 'conv1'") != std::string::npos);

  struct Case {
    json arch;
    std::vector<std::string> phrases;
  };
  const std::vector<Case> cases = {
      {{{"input", {4}}, {"layers", {{{"name", "fc"}, {"kind", "dense"}, {"out", -2}}}}},
       {"layer 'fc'", "positive integer"}},
      {{{"input", {4}}, {"layers", {{{"name", "fc"}, {"kind", "dense"}}}}}, {"layer 'fc'", "missing the number of outputs"}},
      {{{"input", {4}}, {"layers", {{{"name", "x"}, {"kind", "conv3d"}}}}}, {"layer 'x'", "unknown layer kind 'conv3d'"}},
      {{{"input", {1, 8, 8}}, {"layers", {{{"name", "c"}, {"kind", "conv"}, {"out", 4}, {"kernel", 3}}}}},
       {"layer 'c'", "unknown parameter 'kernel'"}},
      {{{"input", {1, 8, 8}}, {"layers", {{{"name", "c"}, {"kind", "conv"}, {"out", 4}, {"k", 2.5}}}}},
       {"layer 'c'", "'k' must be an integer"}},
      {{{"input", {1, 8, 8}}, {"layers", {{{"name", "c"}, {"kind", "conv"}, {"out", "four"}}}}},
       {"layer 'c'", "'out' must be a number"}},
      {{{"input", {4}}, {"layers", {{{"name", "d"}, {"kind", "dense"}, {"out", 2}, {"inputs", {"nope"}}}}}},
       {"layer 'd'", "no layer named 'nope'"}},
      {{{"input", {1, 8, 8}}, {"layers", {{{"name", "fc"}, {"kind", "dense"}, {"out", 2}}}}}, {"layer 'fc'", "flatten"}},
      {{{"input", {4}}, {"layers", {{{"kind", "dropout"}, {"p", 1.5}}}}}, {"layer 'dropout'", "p must be in [0, 1)"}},
      {{{"input", {4}}, {"layers", {{{"name", "r"}, {"kind", "relu"}, {"inputs", {"input", "input"}}}}}},
       {"layer 'r'", "takes 1 input(s), got 2"}},
      {{{"layers", json::array()}}, {"\"input\" and \"layers\""}},
      {{{"input", {0, 4}}, {"layers", {{{"kind", "relu"}}}}}, {"\"input\"", "positive"}},
      {{{"input", {4}}, {"layers", json::array()}}, {"no layers"}},
      {{{"input", {4}}, {"layers", {{{"name", "r"}}}}}, {"without a \"kind\""}},
  };
  for (const Case& c : cases) {
    const std::string text = c.arch.dump();
    CAPTURE(text);
    const std::string msg = json_error(c.arch);
    CAPTURE(msg);
    for (const std::string& phrase : c.phrases) CHECK_MESSAGE(msg.find(phrase) != std::string::npos, phrase);
  }
}
