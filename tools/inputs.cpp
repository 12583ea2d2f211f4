// The inputs of explain/regions: image files and dataset samples are brought to the model's input
// space with the normalization stored in the model ("glassbox.normalize"); .npy arrays are taken
// as already in that space.
#include "tools/inputs.h"

#include <cctype>
#include <climits>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "tools/commands.h"

namespace gb {


// Lower-case letters, digits and '-' only, so class names make safe file names ("T-shirt/top" -> "t-shirt-top").
static std::string file_safe(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c))
      o += char(std::tolower(c));
    else if (!o.empty() && o.back() != '-')
      o += '-';
  }
  while (!o.empty() && o.back() == '-') o.pop_back();
  return o.empty() ? "x" : o;
}

static int parse_int(const std::string& s, const std::string& what) {
  long v = 0;
  if (!parse_number(s, v) || v < INT_MIN || v > INT_MAX)
    throw std::invalid_argument("--index '" + what + "': '" + s + "' is not an integer");
  return int(v);
}

static std::vector<int> parse_index(const std::string& index, int size) {
  std::vector<int> out;
  if (index.empty()) throw std::invalid_argument("--index is empty");
  if (auto colon = index.find(':'); colon != std::string::npos) {
    int a = parse_int(index.substr(0, colon), index), b = parse_int(index.substr(colon + 1), index);
    if (a < 0 || b <= a) throw std::invalid_argument("--index '" + index + "': expected I:J with 0 <= I < J");
    for (int i = a; i < b; ++i) out.push_back(i);
  } else {
    size_t p = 0;
    while (p <= index.size()) {
      size_t q = index.find(',', p);
      if (q == std::string::npos) q = index.size();
      out.push_back(parse_int(index.substr(p, q - p), index));
      p = q + 1;
    }
  }
  for (int i : out)
    if (i < 0 || i >= size)
      throw std::out_of_range("--index " + std::to_string(i) + " outside the dataset's " + std::to_string(size) +
                              " samples");
  return out;
}

Inputs read_inputs(const Model& model, const std::vector<std::string>& files, const std::string& data_spec,
                   const std::string& index, const std::string& split) {
  const Shape sample = model.graph.input_shape();
  const Normalization norm = Normalization::of_model(model.metadata);
  std::vector<Tensor> parts;
  Inputs in;
  for (const std::string& f : files) {
    const std::string base = std::filesystem::path(f).filename().string();
    std::string ext = std::filesystem::path(f).extension().string();
    for (auto& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".npy") {
      Tensor t = read_npy_f32(f);
      if (t.rank() == sample.rank) t = t.reshaped(Shape::batch_of(1, t.shape()));  // one sample without batch
      if (t.rank() != sample.rank + 1 || t.shape().sample() != sample)
        throw ShapeError(f + ": expected N x " + sample.str() + " float32 (model input space), got " + t.shape().str());
      for (int n = 0; n < t.batch(); ++n) {
        in.names.push_back(base + "[" + std::to_string(n) + "]");
        in.labels.push_back(-1);
      }
      parts.push_back(t);
    } else {
      if (sample.rank != 3) throw ShapeError(f + ": image input for a model whose input is " + sample.str());
      Tensor t = load_image(f, sample);
      if (!norm.empty()) norm.apply(t);
      in.names.push_back(base);
      in.labels.push_back(-1);
      parts.push_back(t);
    }
  }
  if (!data_spec.empty()) {
    Dataset d = load_dataset(data_spec, split);
    if (d.x.shape().sample() != sample)
      throw ShapeError("--data " + data_spec + ": samples are " + d.x.shape().sample().str() + ", the model takes " +
                       sample.str());
    std::vector<int> idx = parse_index(index.empty() ? "0" : index, d.size());
    Dataset s = take(d, idx);
    if (!norm.empty()) norm.apply(s.x);
    for (size_t k = 0; k < idx.size(); ++k) {
      const int y = s.y[k];
      std::string cls = y >= 0 && y < d.classes() ? d.class_names[y] : std::to_string(y);
      in.names.push_back(file_safe(cls) + "_" + std::to_string(idx[k]));
      in.labels.push_back(y);
    }
    parts.push_back(s.x);
  }
  if (parts.empty()) throw std::invalid_argument("no inputs: give --input FILE... or --data SPEC");
  in.x = concat(parts);
  return in;
}

}  // namespace gb
