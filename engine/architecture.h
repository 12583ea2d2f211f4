// Architectures as data: the JSON form stored in model files, the one-line text form used on the
// command line, and a table describing a graph (glassbox info).
#pragma once
#include <nlohmann/json_fwd.hpp>  // json.hpp where a json value is used: it is slow to compile
#include <string>

#include "engine/graph.h"

namespace gb {

// {"input":[1,28,28], "layers":[{"name":"conv1","kind":"conv","inputs":["input"],"out":6,...},...]}
json architecture_json(const Graph& g);
Graph graph_from_json(const json& arch);  // throws std::invalid_argument naming the bad layer/key

// Text form, e.g. "input(1,28,28) conv(6,k=5,p=2) relu maxpool(2) flatten dense(10)".
// Any layer takes name=... and from=NAME (feed it from layer NAME instead of the previous one);
// add(NAME) sums the previous layer's output with layer NAME's.
// Errors name the position and the expected token.
json parse_architecture(const std::string& text);
Graph graph_from_text(const std::string& text);  // graph_from_json(parse_architecture(text))
std::string architecture_text(const Graph& g);  // the inverse, for sequential graphs and add()

// Same layers, shapes, names and hyper-parameters (parameter values are not compared).
bool same_architecture(const Graph& a, const Graph& b);

std::unique_ptr<Layer> make_layer(const std::string& kind, const json& hyper);

// A copy with the same architecture and parameter values.
Graph clone(const Graph& g);

// Table of layers: name, kind, output shape, parameters, forward FLOPs; and totals.
std::string describe(const Graph& g);

}  // namespace gb
