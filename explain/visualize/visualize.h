// Feature visualization, the family's API: visualize(model, request, method, params) runs one
// registered method (activation maximization, DeepDream, fooling images, network inversion, top
// dataset patches, filters, activation maps, multifaceted visualization, minimal images,
// meaningful-perturbation masks) and returns images batch first, one row per unit, restart or
// input, with per-row numbers. Every method is a batched use of the model's one graph (a forward
// up to a node, a backward seeded there), never a copy of its layers.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/passes.h"
#include "explain/common/params.h"
#include "explain/visualize/image_ops.h"
#include "explain/visualize/objective.h"

namespace gb::visualize {

using explain::MethodInfo;
using explain::ParamInfo;
using explain::ParamReader;
using explain::Params;

// How a decoder is trained (method decoder): the command line's loop (Adam, mini-batches, MSE),
// handed in because explain/ never depends on train/. Returns the last epoch's mean loss.
struct DecoderFit {
  int epochs = 3, batch = 64;
  double lr = 1e-3;
  uint64_t seed = 0;
  std::string what;  // "decoder from relu2", for progress lines
};
using FitDecoder = std::function<double(Graph& decoder, const Tensor& codes, const Tensor& targets, const DecoderFit&)>;

struct Request {
  std::vector<Unit> units;  // what to visualize; methods that explain inputs take one unit, or one per input
  Tensor inputs;            // [N, input...] images in the model's input space (start images, images to invert...)
  std::vector<std::string> input_names;  // for row names; default "input0", "input1", ...
  std::vector<std::string> class_names;  // for captions ("class 3 Dress"); optional
  Tensor data;              // a dataset in the model's input space, scanned for scales, top patches, facets
  Bounds bounds;            // the valid input range (pixels 0 and 1 through the model's normalization)
  Progress progress;        // (done, total) of the longest loop
  FitDecoder fit_decoder;   // the decoder method's training loop
};

// How a panel's rows are drawn: as images (through the bounds to pixels), or as maps (signed:
// blue-white-red around 0; unsigned: hot), each with the panel's own scale.
// unit_range: values already in [0, 1] per channel (filters scaled for display).
enum class Draw { pixels, signed_map, unsigned_map, unit_range };
struct Panel {
  std::string name;  // "image", "projection", "mask", "change"...
  Tensor values;     // [R, C, h, w]: row r belongs to Result::rows[r]
  Draw draw = Draw::pixels;
  bool shared = false;  // the same for every row of a grid line (e.g. the input): drawn once, first
};

struct Row {
  std::string name;     // file stem, unique within the result: "class3", "relu2_c5_r1", "shirt_12_conv1"
  std::string caption;  // a short label for the grid
  std::map<std::string, double> values;                // start, value, penalty, steps, dataset_max, ...
  std::map<std::string, std::vector<double>> curves;   // e.g. the objective at each step
};

struct Result {
  std::vector<Panel> panels;  // panels[0] is the main image of each row
  std::vector<Row> rows;
  int per_line = 1;           // the grid puts this many consecutive rows on one line (restarts, patches, layers)
  std::string note;           // a line under the figure's title: how values became colours where no colorbar says
};

// The input pixels [y0, y1) × [x0, x1) that unit (y, x) of a node's output depends on through the
// convolution and pooling windows on its paths from the input (Zeiler & Fergus's patches). Not
// clipped to the image: a padded window reaches outside it. Units of [N, F] layers (after flatten,
// dense, gap) depend on the whole image.
struct Box {
  int y0 = 0, x0 = 0, y1 = 0, x1 = 0;
  int h() const { return y1 - y0; }
  int w() const { return x1 - x0; }
};
Box receptive_field(const Graph& g, int node, int y, int x);

// The decoder of a layer's activations (shape `code`, one sample) back to images (`image`, [C,H,W]),
// as architecture text. Codes with positions [c,h,w]: one transposed convolution of stride
// s = ceil(H/h) whose kernel and padding land exactly on H (or nearest upsampling by s and a
// convolution that trims to H), then 3×3 convolutions, `width` channels, ReLU between. Flat codes
// [F]: a perceptron with 16·width hidden units and C·H·W outputs (flat images).
std::string decoder_architecture(const Shape& code, const Shape& image, int width, bool nearest = false);

const std::vector<MethodInfo>& methods();
const MethodInfo& method_info(const std::string& name);  // throws listing the known methods

// Throws on an unknown method or parameter, a parameter out of its documented range, units the
// method cannot take, or inputs/data that do not fit the model.
Result visualize(Graph& model, const Request& request, const std::string& method, const Params& params = {});

}  // namespace gb::visualize
