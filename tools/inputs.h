// What the explanation commands (explain, regions, evaluate, ...) feed the model: image files and
// dataset samples (pixels, normalized as the model was trained), .npy arrays (N x C x H x W
// float32, pixels by default, see InputSpace), what is explained (--target), and the explanation
// methods' parameters from the command line (routing, baselines); and what the commands share
// around them: output folders, file names, CSV fields, progress lines, a family's --param KEY=VALUE.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/model_file.h"
#include "engine/target.h"
#include "explain/common/params.h"
#include "tools/flags.h"

namespace gb {

// Where the arrays and numbers given on the command line live (--input-space): raw pixels in
// [0, 1], like image files and datasets, with the model's stored normalization applied by glassbox
// (the default), or the model's input space (already normalized, as the Python package takes
// them). Arrays that glassbox writes for feeding back (adversarial examples) follow the same flag.
enum class InputSpace { pixels, model };
void add_input_space_flag(Command* command, InputSpace* space);
const char* space_name(InputSpace s);  // "pixels" or "model"

struct Inputs {
  Tensor x;                        // [N, model input...], in the model's input space
  std::vector<int> labels;         // -1 where unknown (files)
  std::vector<std::string> names;  // for output file names: "trouser_12", "shirt.png", "x.npy[3]"
};

// The model's class names ("glassbox.classes" metadata; `fallback`, a dataset's names, when it has
// none), numbers for classes without one.
std::vector<std::string> model_classes(const Model& m, const std::vector<std::string>& fallback = {});
// The dataset spec a model was trained on (its glassbox.dataset; absolute paths since train and
// distill record them so), or "" when it has none.
std::string model_dataset(const Model& m);

// What outputs call sample `index` of a data set: its class name made file-safe, then the index
// ("ankle-boot_0").
std::string sample_name(const Dataset& d, int index);

// `index` is "I", "I:J" (half-open) or "I,J,K" (given as `index_flag`). `space` says where .npy
// files are. Errors name the file or flag.
Inputs read_inputs(const Model& model, const std::vector<std::string>& files, const std::string& data_spec,
                   const std::string& index, const std::string& split, InputSpace space,
                   const std::string& index_flag = "--index");

// The logits of every input ([N, classes], in rows of 256), refused when one is not finite (finite
// weights whose products overflow float32) unless --allow-nonfinite: the error names `model` and
// the input.
Tensor all_logits(Graph& g, const Inputs& in, const std::string& model);

// --labels Y.npy: labels (an integer array) of the --input rows, in order, for --target label.
void read_input_labels(Inputs& in, const std::string& path);

// --index picks samples of --data: given with --input files that are used instead (no --data, or
// influence's --data, which is its training set) it was ignored without a word, every file's rows
// used. Refused, naming both flags. `indexed_data`: whether --index applies to a --data here.
void refuse_index_with_inputs(const Command& command, const std::vector<std::string>& inputs, bool indexed_data);

// "a,b,c" -> {"a", "b", "c"} (`sep` ','); "" -> {}; an empty item ("a,,b", "a,") or, for `distinct`
// lists (names, settings), a repeated one is an error naming `flag` (the flag or spec the list came
// from) and the list.
std::vector<std::string> split_list(const std::string& s, const std::string& flag, char sep = ',', bool distinct = true);

// What every input's explanation explains (--target): its predicted class (pred, from `logits`
// [N,K]), its label (label), a class number, a class per input ("9,2,1"), or a unit of a layer: LAYER:C (channel C's mean),
// LAYER:C,Y,X (one unit) or LAYER:FILE.npy (a direction shaped like the layer's output, for one
// sample or for each input). Errors name the flag and the value.
Target read_target(const std::string& spec, const Graph& g, const Inputs& in, const Tensor& logits);

// A baseline named on the command line, as a tensor [1 or N, input...] in the model's input space:
// black, white or gray (pixel 0, 1 or 0.5 through the model's normalization, so a standardized
// model gets a black image, not its mean image), mean (the training mean: the normalization's
// per-channel means), blur[:SIGMA] (each input blurred, σ = 5 pixels unless given; per input),
// uniform:SEED (one U(0,1) pixel image, seeded), a number (a pixel value; with InputSpace::model a
// value in the model's input space, returned as an empty tensor: the method takes it as a number),
// or FILE.npy [1 or N, input...] in `space`. `x` is the batch being explained (for blur).
Tensor baseline_tensor(const std::string& spec, const Graph& g, const Normalization& norm, InputSpace space,
                       const Tensor& x);

// Pixels into the model's input space: its normalization applied, then a value that overflowed
// float32 there ((x - mean) / std of a huge pixel) refused, naming `what`.
void normalize_checked(const Normalization& norm, Tensor& x, const std::string& what);
void normalize_for(const Model& m, Tensor& x, const std::string& what = "the inputs");  // m's normalization

// [C,H,W] pixels for display: the model's normalization undone, then clamped to [0,1] (or min-max
// scaled when the values are clearly not pixels).
Tensor display_pixels(const Tensor& sample, const Normalization& norm);

// ---- explanation-method parameters from the command line ----

// The keys a method accepts (a noise tunnel also accepts its base method's, the base named in
// `all` or its default).
std::set<std::string> accepted_keys(const std::string& method, const explain::Params& all);

// KEY=VALUE strings into `all` (read_key_values, `twice_hint` its advice for a repeated key), then
// routed to every method that accepts the key; a key that no method accepts is an error naming
// `flag`, the methods and where to look (`see`), or the shorthand flag that gave the key
// (`shorthands`: key -> flag, e.g. baseline -> --baseline).
std::vector<explain::Params> route_method_params(const std::vector<std::string>& key_values,
                                                 const std::vector<std::string>& methods, explain::Params& all,
                                                 const std::string& flag, const std::string& see,
                                                 const std::string& twice_hint = "",
                                                 const std::map<std::string, std::string>& shorthands = {});

// Defaults that depend on the model's normalization: the zB box (the pixel range [0, 1] through
// the normalization, over all channels) and the baselines (black unless given), turned into
// tensors for the methods that take one (IG and DeepLIFT, also under a noise tunnel). Returns,
// per method, the baseline as given (for summaries), empty where the method takes none.
std::vector<std::string> resolve_baselines(const std::vector<std::string>& methods, const explain::Params& all,
                                           std::vector<explain::Params>& per_method, const Graph& g,
                                           const Normalization& norm, InputSpace space, const Tensor& x);

// Creates the output folder `dir` (and its parents); an error names `flag` and the path (an
// existing file there, no permission) instead of the filesystem's own text. Starts the record of
// the files the command writes there (tools/outputs.h).
void make_out_dir(const std::string& dir, const std::string& flag = "--out");
// The same for the folder an output file (`flag` FILE) goes in.
void make_parent_dir(const std::string& file, const std::string& flag = "--out");

// An --input file in the --out folder under a name an output takes (`written(file name)`) would be
// replaced by it: refused before anything is written.
void check_inputs_survive(const std::vector<std::string>& inputs, const std::string& out,
                          const std::function<bool(const std::string& file_name)>& written);

// A name usable as a file name: letters, digits, '-' and '.' kept, runs of anything else one '_'
// ("x[3]" -> "x_3"), "input" when nothing is left.
std::string safe_name(const std::string& s);
// An input's name as explain's file stem; rows of an .npy input lose the extension ("x.npy[3]" ->
// "x_3"). read_inputs makes these (and so the safe_name forms) distinct.
std::string output_stem(std::string s);

// A CSV field, quoted when it holds a comma, a quote or a newline.
std::string csv_field(const std::string& s);

// Progress of long passes on stderr: one updating line per stage on a terminal, the finished
// stages otherwise.
std::function<void(const std::string& stage, int done, int total)> stage_progress();

// Progress of a long loop on stdout, a line at every tenth: "  WHAT: done/total[ UNIT]".
std::function<void(int done, int total)> tenth_progress(const std::string& what, const std::string& unit = "");

// 0.1234 -> "12.34%".
std::string percent(double fraction);

// Seconds since t.
double seconds_since(std::chrono::steady_clock::time_point t);

// ---- a family's --param KEY=VALUE ----

// The strings as parameters. A key given twice is an error naming `flag`: the last value would
// win and the first would never be checked; so is an empty value (KEY=). `twice_hint` ends the
// first error, its KEY replaced by the key.
explain::Params read_key_values(const std::vector<std::string>& given, const std::string& flag = "--param",
                                const std::string& twice_hint = "");

// The same, each key routed to every one of `methods` that declares it (`declared(method)`); a key
// that none declares is an error naming the methods, what they are (`kind`: method, metric) and
// where to look (`see`).
using DeclaredParams = std::function<const std::vector<explain::ParamInfo>&(const std::string& method)>;
std::vector<explain::Params> route_params(const std::vector<std::string>& given, const std::vector<std::string>& methods,
                                          const DeclaredParams& declared, const std::string& kind,
                                          const std::string& see);

}  // namespace gb
