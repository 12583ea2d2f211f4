// How the family's methods plug into visualize(): each file appends its methods (declaration and
// run function) to the registry; visualize() builds a ParamReader on the declaration, so a run
// function reads exactly the declared keys, and checks afterwards that it read them all.
#pragma once
#include <functional>

#include "explain/visualize/ascent.h"
#include "explain/visualize/visualize.h"

namespace gb::visualize {

using RunFn = std::function<Result(Graph&, const Request&, ParamReader&)>;

struct Method {
  MethodInfo info;
  RunFn run;
};

void add_maximize_methods(std::vector<Method>& registry);  // maximize.cpp: am, deepdream, fool
void add_facet_methods(std::vector<Method>& registry);     // facets.cpp: multifaceted
void add_invert_methods(std::vector<Method>& registry);    // invert.cpp: invert
void add_patch_methods(std::vector<Method>& registry);     // patches.cpp: top-patches, filters, maps
void add_perturb_methods(std::vector<Method>& registry);   // perturb.cpp: minimal-image, mask
void add_decoder_methods(std::vector<Method>& registry);   // decoder.cpp: decoder

// Rows per forward when a dataset is scanned: 64 keeps a conv layer's outputs in cache while the
// scan reads them (256 ran top-patches 1.4x slower).
constexpr int kScanBatch = 64;

// Readers that bound what drives run time and memory: an error names the method, the key, the
// value and the accepted range.
using explain::read_choice;
using explain::read_int;
using explain::read_number;

// Declarations shared by the methods built on ascend(): the optimizer and the image priors, with
// the defaults given (a method's own defaults differ: DeepDream steps with mean-|g| SGD).
struct AscentDefaults {
  std::string steps = "256", optimizer = "adam", lr = "0.05", l2 = "0", l1 = "0", tv = "0", tv_beta = "2",
              jitter = "1", blur_every = "0", blur_sigma = "0.5";
};
std::vector<ParamInfo> ascent_params(const AscentDefaults& d);
AscentDefaults am_defaults();  // activation maximization's (maximize.cpp)
AscentOptions read_ascent(ParamReader& r, const Graph& g, const Request& q);

// --param score (logit, prob, logprob); other than logit only for class units.
Score read_score(ParamReader& r, const std::vector<Unit>& units);
// Row r's numbers from an ascent: start, start_objective, value, penalty, objective (value −
// penalty), steps and the objective curve.
void report(const AscentResult& a, int r, Row& row);

// Start images [R, C, H, W] for rows whose random stream is row_seeds[r]: "noise" (pixel 0.5 plus
// N(0, init_std²) per pixel, through the bounds), "constant" (pixel `value`), or rows of `images`.
Tensor start_images(const Graph& g, const std::string& kind, double value, double init_std,
                    const std::vector<uint64_t>& row_seeds, const Bounds& b);

// The units' scalar per dataset sample, maximized over the data: the scale of a unit's activation
// ("the unit's top dataset activation"). Empty when there is no data.
std::vector<double> dataset_max(Graph& g, const std::vector<Unit>& units, Score score, const Tensor& data,
                                const Progress& progress = {});

// Throw naming `method` when it needs inputs (or a dataset to scan) and has none.
void require_inputs(const Request& q, const std::string& method);
void require_data(const Request& q, const std::string& method);
std::string input_name(const Request& q, int n);  // q.input_names[n] or "input<n>"
// Layer names separated by commas as node ids; an unknown or repeated name is refused naming
// `method`'s --param layers (a repeated one made two rows of one name, refused after the work).
std::vector<int> named_layers(const Graph& g, const std::string& spec, const std::string& method);
std::string label(const Graph& g, const Request& q, const Unit& u);  // describe(), with the class name when known
std::string number(double v);  // a short number for captions (3 significant digits)

// Class units for methods that explain inputs: one for all inputs, or one per input.
std::vector<Unit> per_input_units(const Graph& g, const Request& q, const std::string& method, bool classes_only);

}  // namespace gb::visualize
