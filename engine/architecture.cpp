#include "engine/architecture.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <type_traits>

#include "engine/interpretable_layers.h"
#include "engine/layers.h"
#include "engine/sizes.h"

namespace gb {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument(msg); }

template <class T>
T get(const json& h, const char* key, T fallback) {
  auto it = h.find(key);
  if (it == h.end()) return fallback;
  if (!it->is_number() && !it->is_boolean())
    bad(std::string("parameter '") + key + "' must be a number, got " + it->dump());
  if constexpr (std::is_integral_v<T>) {  // json's get<int> would truncate 5.5 to 5, and 2^32+6 to 6
    if (!it->is_number_integer()) bad(std::string("parameter '") + key + "' must be an integer, got " + it->dump());
    if (it->is_number_unsigned() && it->template get<uint64_t>() > uint64_t(INT64_MAX))
      bad(std::string("parameter '") + key + "' = " + it->dump() + " is out of range");
    const int64_t v = it->template get<int64_t>();
    if (v < INT_MIN || v > INT_MAX)
      bad(std::string("parameter '") + key + "' = " + std::to_string(v) + " is out of range (at most " +
          std::to_string(INT_MAX) + ")");
    return T(v);
  } else {
    // A non-finite hyper-parameter would be saved as JSON null, and the model could never be loaded.
    const double v = it->template get<double>();
    if (!std::isfinite(v) || std::fabs(v) > FLT_MAX)  // checked before the conversion to float
      bad(std::string("parameter '") + key + "' must be a finite number, got " + it->dump());
    return T(v);
  }
}

bool flag(const json& h, const char* key, bool fallback) {
  auto it = h.find(key);
  if (it == h.end()) return fallback;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number()) return it->get<double>() != 0;
  bad(std::string("parameter '") + key + "' must be true/false, got " + it->dump());
}

int positive(const json& h, const char* key, int fallback, const std::string& kind) {
  int v = get<int>(h, key, fallback);
  if (v <= 0) bad(kind + ": parameter '" + key + "' must be a positive integer, got " + std::to_string(v));
  return v;
}

void only_keys(const json& h, const std::string& kind, std::initializer_list<const char*> keys) {
  for (auto& [k, v] : h.items()) {
    bool ok = k == "name" || k == "kind" || k == "inputs";
    for (const char* allowed : keys) ok |= k == allowed;
    if (!ok) {
      std::string list;
      for (const char* a : keys) list += std::string(list.empty() ? "" : ", ") + a;
      bad(kind + ": unknown parameter '" + k + "'" + (list.empty() ? " (it takes none)" : " (expected " + list + ")"));
    }
  }
}

}  // namespace

std::unique_ptr<Layer> make_layer(const std::string& kind, const json& h) {
  std::unique_ptr<Layer> L;
  if (kind == "conv") {
    only_keys(h, kind, {"out", "k", "s", "p", "bias"});
    if (!h.contains("out")) bad("conv: missing the number of output channels (e.g. conv(16,k=3))");
    int p = get<int>(h, "p", 0);
    if (p < 0) bad("conv: padding must be >= 0");
    L = std::make_unique<Conv2d>(positive(h, "out", 1, kind), positive(h, "k", 3, kind), positive(h, "s", 1, kind), p,
                                 flag(h, "bias", true));
  } else if (kind == "convt") {
    only_keys(h, kind, {"out", "k", "s", "p", "op", "bias"});
    if (!h.contains("out")) bad("convt: missing the number of output channels (e.g. convt(16,k=4,s=2,p=1))");
    const int p = get<int>(h, "p", 0), op = get<int>(h, "op", 0), s = positive(h, "s", 1, kind);
    if (p < 0) bad("convt: padding must be >= 0");
    if (op < 0 || op >= s) bad("convt: output padding must be in [0, s)");
    L = std::make_unique<ConvTranspose2d>(positive(h, "out", 1, kind), positive(h, "k", 3, kind), s, p, op,
                                          flag(h, "bias", true));
  } else if (kind == "upsample") {
    only_keys(h, kind, {"scale"});
    L = std::make_unique<Upsample2d>(positive(h, "scale", 2, kind));
  } else if (kind == "dense") {
    only_keys(h, kind, {"out", "bias"});
    if (!h.contains("out")) bad("dense: missing the number of outputs (e.g. dense(10))");
    L = std::make_unique<Dense>(positive(h, "out", 1, kind), flag(h, "bias", true));
  } else if (kind == "relu") {
    only_keys(h, kind, {});
    L = std::make_unique<ReLU>();
  } else if (kind == "leakyrelu") {
    only_keys(h, kind, {"slope"});
    L = std::make_unique<LeakyReLU>(get<float>(h, "slope", 0.01f));
  } else if (kind == "tanh") {
    only_keys(h, kind, {});
    L = std::make_unique<Tanh>();
  } else if (kind == "sigmoid") {
    only_keys(h, kind, {});
    L = std::make_unique<Sigmoid>();
  } else if (kind == "softplus") {
    only_keys(h, kind, {"beta", "threshold"});
    const float beta = get<float>(h, "beta", 1.f);
    if (!(beta > 0)) bad("softplus: beta must be > 0, got " + std::to_string(beta));
    L = std::make_unique<Softplus>(beta, get<float>(h, "threshold", 20.f));
  } else if (kind == "maxpool" || kind == "avgpool") {
    only_keys(h, kind, {"k", "s", "p"});
    int k = positive(h, "k", 2, kind), s = positive(h, "s", k, kind), p = get<int>(h, "p", 0);
    if (p < 0 || 2 * int64_t(p) > k) bad(kind + ": padding must be between 0 and k/2");
    if (kind == "maxpool")
      L = std::make_unique<MaxPool2d>(k, s, p);
    else
      L = std::make_unique<AvgPool2d>(k, s, p);
  } else if (kind == "gap") {
    only_keys(h, kind, {});
    L = std::make_unique<GlobalAvgPool>();
  } else if (kind == "flatten") {
    only_keys(h, kind, {});
    L = std::make_unique<Flatten>();
  } else if (kind == "dropout") {
    only_keys(h, kind, {"p"});
    float p = get<float>(h, "p", 0.5f);
    if (!(p >= 0 && p < 1)) bad("dropout: p must be in [0, 1)");
    L = std::make_unique<Dropout>(p);
  } else if (kind == "batchnorm") {
    only_keys(h, kind, {"eps", "momentum"});
    const float eps = get<float>(h, "eps", 1e-5f), momentum = get<float>(h, "momentum", 0.1f);
    if (!(eps > 0)) bad("batchnorm: eps must be > 0, got " + std::to_string(eps));
    if (!(momentum >= 0 && momentum <= 1)) bad("batchnorm: momentum must be in [0, 1], got " + std::to_string(momentum));
    L = std::make_unique<BatchNorm2d>(eps, momentum);
  } else if (kind == "add") {
    only_keys(h, kind, {});
    const size_t n = h.contains("inputs") ? h["inputs"].size() : 2;
    if (n < 2) bad("add: needs at least 2 inputs, got " + std::to_string(n));
    L = std::make_unique<Add>(int(n));
  } else if (kind == "softtree") {
    only_keys(h, kind, {"depth", "out", "beta"});
    if (!h.contains("depth") || !h.contains("out"))
      bad("softtree: missing the depth or the number of classes (e.g. softtree(6,10))");
    const int depth = positive(h, "depth", 1, kind);
    if (depth > SoftTree::kMaxDepth)
      bad("softtree: depth " + std::to_string(depth) + " is above the maximum " + std::to_string(SoftTree::kMaxDepth));
    const float beta = get<float>(h, "beta", 1.f);
    if (!(beta > 0) || !std::isfinite(beta)) bad("softtree: beta must be a finite number > 0");
    L = std::make_unique<SoftTree>(depth, positive(h, "out", 1, kind), beta);
  } else if (kind == "groupdense") {
    only_keys(h, kind, {"out", "groups", "bias"});
    if (!h.contains("out") || !h.contains("groups"))
      bad("groupdense: missing the outputs per group or the number of groups (e.g. groupdense(32,groups=2))");
    L = std::make_unique<GroupDense>(positive(h, "out", 1, kind), positive(h, "groups", 1, kind), flag(h, "bias", true));
  } else if (kind == "groupsum") {
    only_keys(h, kind, {"groups"});
    if (!h.contains("groups")) bad("groupsum: missing the number of groups (e.g. groupsum(2))");
    L = std::make_unique<GroupSum>(positive(h, "groups", 1, kind));
  } else {
    bad("unknown layer kind '" + kind +
        "' (known: conv, convt, upsample, dense, relu, leakyrelu, tanh, sigmoid, softplus, maxpool, avgpool, gap, "
        "flatten, dropout, batchnorm, add, softtree, groupdense, groupsum)");
  }
  if (h.contains("name")) L->name = h["name"].get<std::string>();
  return L;
}

json architecture_json(const Graph& g) {
  json layers = json::array();
  for (int i = 0; i < g.size(); ++i) {
    const Layer& L = g.layer(i);
    json e = {{"name", L.name}, {"kind", L.kind()}};
    json inputs = json::array();
    for (int j : g.node(i).inputs) inputs.push_back(j < 0 ? "input" : g.layer(j).name);
    e["inputs"] = inputs;
    json hyper = L.hyper();
    for (auto& [k, v] : hyper.items()) e[k] = v;
    layers.push_back(e);
  }
  return {{"input", g.input_shape().vec()}, {"layers", layers}};
}

Graph graph_from_json(const json& arch) {
  if (!arch.is_object() || !arch.contains("input") || !arch.contains("layers"))
    bad("architecture must be an object with \"input\" and \"layers\"");
  std::vector<int> in;
  const json& input = arch["input"];
  if (!input.is_array() || input.empty() || input.size() > 3)
    bad("architecture \"input\" must be a list of 1 to 3 positive integers");
  for (auto& d : input) {
    if (!d.is_number_integer() || (d.is_number_unsigned() && d.get<uint64_t>() > uint64_t(INT_MAX)) ||
        d.get<int64_t>() <= 0 || d.get<int64_t>() > INT_MAX)
      bad("architecture \"input\" dimension " + d.dump() + " is not a positive integer up to " + std::to_string(INT_MAX));
    in.push_back(int(d.get<int64_t>()));
  }
  Graph g(Shape::of(in));
  if (!arch["layers"].is_array() || arch["layers"].empty()) bad("architecture has no layers");
  for (auto& e : arch["layers"]) {
    if (!e.is_object() || !e.contains("kind") || !e["kind"].is_string()) bad("architecture layer without a \"kind\"");
    if (e.contains("name") && !e["name"].is_string())
      bad("architecture layer " + std::to_string(g.size()) + " (" + e["kind"].get<std::string>() +
          "): \"name\" must be a string, got " + e["name"].dump());
    std::string who = e.value("name", e["kind"].get<std::string>());
    try {
      std::vector<int> inputs;
      if (e.contains("inputs")) {
        if (!e["inputs"].is_array()) bad("\"inputs\" must be a list of layer names");
        for (auto& s : e["inputs"]) {
          std::string n = s.get<std::string>();
          inputs.push_back(n == "input" ? -1 : g.at(n));
        }
      } else {
        inputs.push_back(g.size() - 1);
      }
      g.add(make_layer(e["kind"].get<std::string>(), e), inputs);
    } catch (const json::exception& ex) {
      bad("layer '" + who + "': " + ex.what());
    } catch (const std::exception& ex) {
      bad("layer '" + who + "': " + ex.what());
    }
  }
  return g;
}

// ---- text form --------------------------------------------------------------------------------

namespace {

struct Lexer {
  const std::string& s;
  size_t i = 0;
  void skip() {
    while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
  }
  [[noreturn]] void fail(const std::string& expected) const {
    std::string found = i < s.size() ? "'" + std::string(1, s[i]) + "'" : "end of text";
    bad("architecture: at position " + std::to_string(i + 1) + ": expected " + expected + ", found " + found + "\n  " +
        s + "\n  " + std::string(i, ' ') + "^");
  }
  bool eat(char c) {
    skip();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  std::string word() {  // identifier or number
    skip();
    size_t b = i;
    while (i < s.size() && (std::isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-' ||
                            (s[i] == '+' && i > b && (s[i - 1] == 'e' || s[i - 1] == 'E'))))
      ++i;
    return s.substr(b, i - b);
  }
};

json value_of(const std::string& w) {
  if (w == "true") return true;
  if (w == "false") return false;
  char* end = nullptr;
  double d = std::strtod(w.c_str(), &end);
  if (end && *end == '\0' && !w.empty()) {
    // Integers stay exact (strtoll, not through double); make_layer checks their range.
    if (w.find_first_of(".eEnNiI") == std::string::npos) {
      errno = 0;
      const long long v = std::strtoll(w.c_str(), &end, 10);
      if (*end == '\0' && errno == 0) return int64_t(v);
      return d;  // beyond int64: a number, refused as out of range later
    }
    return d;
  }
  return w;
}

// Positional arguments per kind, in order.
std::vector<std::string> positional(const std::string& kind) {
  if (kind == "conv" || kind == "convt") return {"out", "k"};
  if (kind == "upsample") return {"scale"};
  if (kind == "dense") return {"out"};
  if (kind == "maxpool" || kind == "avgpool") return {"k", "s"};
  if (kind == "leakyrelu") return {"slope"};
  if (kind == "dropout") return {"p"};
  if (kind == "softplus") return {"beta"};
  if (kind == "batchnorm") return {"eps", "momentum"};
  if (kind == "softtree") return {"depth", "out"};
  if (kind == "groupdense") return {"out"};
  if (kind == "groupsum") return {"groups"};
  return {};
}

// What each kind accepts in the text form, so that errors point at the argument: 'i' positive
// integer, 'n' non-negative integer, 'f' number, 'b' true/false, 's' a layer name.
std::vector<std::pair<std::string, char>> arg_specs(const std::string& kind) {
  std::vector<std::pair<std::string, char>> v;
  if (kind == "conv") v = {{"out", 'i'}, {"k", 'i'}, {"s", 'i'}, {"p", 'n'}, {"bias", 'b'}};
  if (kind == "convt") v = {{"out", 'i'}, {"k", 'i'}, {"s", 'i'}, {"p", 'n'}, {"op", 'n'}, {"bias", 'b'}};
  if (kind == "upsample") v = {{"scale", 'i'}};
  if (kind == "dense") v = {{"out", 'i'}, {"bias", 'b'}};
  if (kind == "maxpool" || kind == "avgpool") v = {{"k", 'i'}, {"s", 'i'}, {"p", 'n'}};
  if (kind == "leakyrelu") v = {{"slope", 'f'}};
  if (kind == "softplus") v = {{"beta", 'f'}, {"threshold", 'f'}};
  if (kind == "dropout") v = {{"p", 'f'}};
  if (kind == "batchnorm") v = {{"eps", 'f'}, {"momentum", 'f'}};
  if (kind == "softtree") v = {{"depth", 'i'}, {"out", 'i'}, {"beta", 'f'}};
  if (kind == "groupdense") v = {{"out", 'i'}, {"groups", 'i'}, {"bias", 'b'}};
  if (kind == "groupsum") v = {{"groups", 'i'}};
  v.push_back({"name", 's'});
  v.push_back({"from", 's'});
  return v;
}

// Stores key=v in h after checking it against the kind's specs; errors point at key_at / val_at.
void set_arg(Lexer& lx, const std::string& kind, json& h, const std::string& key, const std::string& v, size_t key_at,
             size_t val_at) {
  auto specs = arg_specs(kind);
  char type = 0;
  std::string list;
  for (auto& [k, t] : specs) {
    list += (list.empty() ? "" : ", ") + k;
    if (k == key) type = t;
  }
  if (!type) {
    lx.i = key_at;
    lx.fail("a parameter of " + kind + " (" + list + ") instead of '" + key + "'");
  }
  if (h.contains(key)) {
    lx.i = key_at;
    lx.fail("each parameter once ('" + key + "' is given twice)");
  }
  json j = value_of(v);
  lx.i = val_at;
  switch (type) {
    case 'i':
      if (!j.is_number_integer() || j.get<int64_t>() <= 0 || j.get<int64_t>() > INT_MAX)
        lx.fail("a positive integer for '" + key + "' (at most " + std::to_string(INT_MAX) + ")");
      break;
    case 'n':
      if (!j.is_number_integer() || j.get<int64_t>() < 0 || j.get<int64_t>() > INT_MAX)
        lx.fail("a non-negative integer for '" + key + "' (at most " + std::to_string(INT_MAX) + ")");
      break;
    case 'f':
      if (!j.is_number() || !std::isfinite(j.get<double>()) || std::fabs(j.get<double>()) > FLT_MAX)
        lx.fail("a number for '" + key + "' (finite, within float range)");
      break;
    case 'b':
      if (!j.is_boolean()) lx.fail("true or false for '" + key + "'");
      break;
    default:
      if (!j.is_string() || !(std::isalpha((unsigned char)v[0]) || v[0] == '_') || (key == "name" && v == "input"))
        lx.fail("a layer name for '" + key + "' (a letter first; 'input' is the graph input)");
      j = v;
  }
  lx.i = val_at + v.size();
  h[key] = j;
}

// The graph's default name for the next layer of this kind: kind plus its count, skipping names
// already taken by earlier layers (as Graph::add does).
std::string default_name(const std::string& kind, std::map<std::string, int>& count, const std::set<std::string>& taken) {
  int k = ++count[kind];
  while (taken.count(kind + std::to_string(k))) ++k;
  return kind + std::to_string(k);
}

}  // namespace

json parse_architecture(const std::string& text) {
  Lexer lx{text};
  json layers = json::array();
  json input;
  lx.skip();
  while (lx.i < text.size()) {
    size_t start = lx.i;
    std::string kind = lx.word();
    if (kind.empty() || !std::isalpha((unsigned char)kind[0])) {
      lx.i = start;
      lx.fail(input.is_null() ? "input(...)" : "a layer name (conv, dense, relu, ...)");
    }
    static const std::set<std::string> kinds = {"input",   "conv",     "convt",   "upsample", "dense",
                                                "relu",    "leakyrelu", "tanh",   "sigmoid",  "softplus",
                                                "maxpool", "avgpool",  "gap",     "flatten",  "dropout",
                                                "batchnorm", "add", "softtree", "groupdense", "groupsum"};
    if (!kinds.count(kind)) {
      lx.i = start;
      lx.fail("a layer kind (input, conv, convt, upsample, dense, relu, leakyrelu, tanh, sigmoid, softplus, maxpool, "
              "avgpool, gap, flatten, dropout, batchnorm, add, softtree, groupdense, groupsum) instead of '" + kind +
              "'");
    }
    std::vector<std::pair<std::string, size_t>> pos_vals;  // input(...) dimensions and where they are
    json h = json::object();
    if (lx.eat('(')) {
      auto pos = positional(kind);
      size_t npos = 0;
      if (!lx.eat(')')) {
        do {
          lx.skip();
          size_t at = lx.i;
          std::string w = lx.word();
          if (w.empty()) lx.fail("a value");
          if (lx.eat('=')) {
            if (kind == "input") {
              lx.i = at;
              lx.fail("a dimension (input takes positive integers only)");
            }
            lx.skip();
            const size_t vat = lx.i;
            std::string v = lx.word();
            if (v.empty()) lx.fail("a value after '='");
            set_arg(lx, kind, h, w, v, at, vat);
          } else if (kind == "input") {
            pos_vals.emplace_back(w, at);
          } else if (kind == "add") {
            set_arg(lx, kind, h, "from", w, at, at);
          } else {
            if (npos >= pos.size()) {
              lx.i = at;
              lx.fail(pos.empty() ? "key=value (" + kind + " takes no positional arguments)"
                                  : "key=value (" + kind + " takes " + std::to_string(pos.size()) +
                                        " positional argument(s))");
            }
            set_arg(lx, kind, h, pos[npos++], w, at, at);
          }
        } while (lx.eat(','));
        if (!lx.eat(')')) lx.fail("',' or ')'");
      }
    }
    if (kind == "input") {
      if (!input.is_null() || !layers.empty()) {
        lx.i = start;
        lx.fail("a layer (input(...) must come first, once)");
      }
      input = json::array();
      for (auto& [v, at] : pos_vals) {
        json j = value_of(v);
        if (!j.is_number_integer() || j.get<int64_t>() <= 0 || j.get<int64_t>() > INT_MAX) {
          lx.i = at;
          lx.fail("a positive integer dimension in input(C,H,W)");
        }
        input.push_back(j);
      }
      if (input.empty() || input.size() > 3) {
        lx.i = start;
        lx.fail("input with 1 to 3 dimensions");
      }
    } else {
      if (input.is_null()) {
        lx.i = start;
        lx.fail("input(...) first");
      }
      h["kind"] = kind;
      if (kind == "add") {
        if (!h.contains("from")) {
          lx.i = start;
          lx.fail("add(NAME): the layer whose output to add");
        }
      }
      if (h.contains("from") && kind != "add") {  // feed this layer from an earlier named layer
        h["inputs"] = json::array({h["from"]});  // not {h["from"]}: clang reads that as a copy
        h.erase("from");
      }
      if (!h.contains("name")) h["name"] = "";  // filled below
      layers.push_back(h);
    }
    lx.skip();
  }
  if (input.is_null()) lx.fail("input(...)");
  // Give unnamed layers the graph's default names so that add(NAME) can refer to them.
  std::map<std::string, int> count;
  std::set<std::string> taken;
  for (auto& l : layers) {
    const std::string kind = l["kind"];
    if (l["name"] == "")
      l["name"] = default_name(kind, count, taken);
    else
      ++count[kind];
    taken.insert(l["name"].get<std::string>());
  }
  std::string prev = "input";
  for (auto& l : layers) {
    if (l["kind"] == "add") {
      l["inputs"] = {prev, l["from"]};
      l.erase("from");
    } else if (!l.contains("inputs")) {
      l["inputs"] = json::array({prev});
    }
    prev = l["name"];
  }
  return {{"input", input}, {"layers", layers}};
}

namespace {

// make_layer's defaults, left out of the text form.
json defaults_of(const std::string& kind, const json& hyper) {
  if (kind == "conv") return {{"s", 1}, {"p", 0}, {"bias", true}};
  if (kind == "convt") return {{"s", 1}, {"p", 0}, {"op", 0}, {"bias", true}};
  if (kind == "dense") return {{"bias", true}};
  if (kind == "maxpool" || kind == "avgpool") return {{"s", hyper.value("k", 0)}, {"p", 0}};
  if (kind == "leakyrelu") return {{"slope", 0.01f}};
  if (kind == "softplus") return {{"beta", 1.f}, {"threshold", 20.f}};
  if (kind == "dropout") return {{"p", 0.5f}};
  if (kind == "batchnorm") return {{"eps", 1e-5f}, {"momentum", 0.1f}};
  if (kind == "softtree") return {{"beta", 1.f}};
  if (kind == "groupdense") return {{"bias", true}};
  return json::object();
}

// The shortest text that reads back as the same float (hyper-parameters are floats): 1e-05, not
// 9.999999747378752e-06.
std::string number_text(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (!v.is_number_float()) return v.dump();
  const float f = v.get<float>();
  char buf[32];
  if (f == std::floor(f) && std::fabs(f) < 1e7f) {
    std::snprintf(buf, sizeof buf, "%.0f", double(f));
    return buf;
  }
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, double(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return buf;
}

}  // namespace

std::string architecture_text(const Graph& g) {
  std::ostringstream o;
  o << "input(";
  auto in = g.input_shape().vec();
  for (size_t i = 0; i < in.size(); ++i) o << (i ? "," : "") << in[i];
  o << ")";
  std::map<std::string, int> count;
  std::set<std::string> taken;
  auto name_of = [&](int j) { return j < 0 ? std::string("input") : g.layer(j).name; };
  for (int i = 0; i < g.size(); ++i) {
    const Layer& L = g.layer(i);
    const std::vector<int>& in = g.node(i).inputs;
    o << " " << L.kind();
    std::vector<std::string> args;
    if (dynamic_cast<const Add*>(&L)) {
      if (in.size() != 2 || in[0] != i - 1)  // the text form sums the previous layer with one other
        throw std::invalid_argument("add '" + L.name + "' has no text form (it must add the previous layer and one other)");
      args.push_back(name_of(in[1]));
    } else if (in.size() == 1 && in[0] != i - 1) {
      args.push_back("from=" + name_of(in[0]));
    }
    // Hyper-parameters in the documented order, defaults left out, the first positional one bare:
    // conv(6,k=5,p=2), maxpool(2), dense(10,bias=false).
    const json hyper = L.hyper(), defaults = defaults_of(L.kind(), hyper);
    const std::vector<std::string> pos = positional(L.kind());
    const auto specs = arg_specs(L.kind());
    std::vector<std::string> hargs;
    for (auto& [k, t] : specs) {
      if (!hyper.contains(k) || (defaults.contains(k) && defaults[k] == hyper[k])) continue;
      const bool bare = !pos.empty() && k == pos[0];
      hargs.insert(bare ? hargs.begin() : hargs.end(), (bare ? "" : k + "=") + number_text(hyper[k]));
    }
    for (auto& [k, v] : hyper.items()) {  // anything a layer reports beyond the specs (none today)
      const std::string& key = k;  // clang before 16 cannot capture a structured binding
      if (std::none_of(specs.begin(), specs.end(), [&](auto& a) { return a.first == key; }))
        hargs.push_back(key + "=" + number_text(v));
    }
    args.insert(args.begin(), hargs.begin(), hargs.end());
    if (L.name != default_name(L.kind(), count, taken)) args.push_back("name=" + L.name);
    taken.insert(L.name);
    if (!args.empty()) {
      o << "(";
      for (size_t a = 0; a < args.size(); ++a) o << (a ? "," : "") << args[a];
      o << ")";
    }
  }
  return o.str();
}

Graph graph_from_text(const std::string& text) { return graph_from_json(parse_architecture(text)); }

bool same_architecture(const Graph& a, const Graph& b) { return architecture_json(a) == architecture_json(b); }

Graph clone(const Graph& g) {
  Graph c = graph_from_json(architecture_json(g));
  auto src = g.named_params(), dst = c.named_params();
  for (size_t i = 0; i < src.size(); ++i) dst[i].second->value.copy_from(src[i].second->value);
  return c;
}

std::string describe(const Graph& g) {
  std::ostringstream o;
  char line[256];
  std::snprintf(line, sizeof line, "%-12s %-10s %-16s %12s %14s\n", "layer", "kind", "output", "parameters", "FLOPs");
  o << line << std::string(68, '-') << "\n";
  std::snprintf(line, sizeof line, "%-12s %-10s %-16s %12s %14s\n", "input", "", g.input_shape().str().c_str(), "", "");
  o << line;
  double total_flops = 0;
  size_t total_params = 0;
  for (int i = 0; i < g.size(); ++i) {
    Layer& L = g.layer(i);
    std::vector<Shape> in;
    for (int j : g.node(i).inputs) in.push_back(g.shape(j, 1));
    double f = L.flops(in);
    size_t p = 0;
    for (Param* q : L.params())
      if (q->trainable) p += q->value.size();
    total_flops += f;
    total_params += p;
    std::snprintf(line, sizeof line, "%-12s %-10s %-16s %12zu %14.0f\n", L.name.c_str(), L.kind().c_str(),
                  g.shape(i, 1).sample().str().c_str(), p, f);
    o << line;
  }
  o << std::string(68, '-') << "\n";
  std::snprintf(line, sizeof line, "%-12s %-10s %-16s %12zu %14.0f\n", "total", "", "", total_params, total_flops);
  o << line;
  return o.str();
}

}  // namespace gb

// ---- hyper-parameters, as written in the architecture JSON ----------------------------------------

namespace gb {
json Layer::hyper() const { return json::object(); }
json LeakyReLU::hyper() const { return {{"slope", slope}}; }
json Softplus::hyper() const { return {{"beta", beta}, {"threshold", threshold}}; }
json MaxPool2d::hyper() const { return {{"k", k}, {"s", stride}, {"p", pad}}; }
json AvgPool2d::hyper() const { return {{"k", k}, {"s", stride}, {"p", pad}}; }
json Dropout::hyper() const { return {{"p", p}}; }
json BatchNorm2d::hyper() const { return {{"eps", eps}, {"momentum", momentum}}; }
json Conv2d::hyper() const { return {{"out", out_ch}, {"k", k}, {"s", stride}, {"p", pad}, {"bias", has_bias}}; }
json Dense::hyper() const { return {{"out", out_features}, {"bias", has_bias}}; }
json ConvTranspose2d::hyper() const {
  return {{"out", out_ch}, {"k", k}, {"s", stride}, {"p", pad}, {"op", out_pad}, {"bias", has_bias}};
}
json Upsample2d::hyper() const { return {{"scale", scale}}; }
}  // namespace gb
