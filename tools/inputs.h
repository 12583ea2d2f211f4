// What `glassbox explain` and `glassbox regions` feed the model: image files (converted and
// normalized as the model was trained), .npy arrays already in the model's input space
// (N x C x H x W float32), or samples of a dataset.
#pragma once
#include <string>
#include <vector>

#include "engine/model_file.h"

namespace gb {

struct Inputs {
  Tensor x;                        // [N, model input...], in the model's input space
  std::vector<int> labels;         // -1 where unknown (files)
  std::vector<std::string> names;  // for output file names: "trouser_12", "shirt.png", "x.npy[3]"
};

// `index` is "I", "I:J" (half-open) or "I,J,K". Errors name the file or flag.
Inputs read_inputs(const Model& model, const std::vector<std::string>& files, const std::string& data_spec,
                   const std::string& index, const std::string& split = "test");

}  // namespace gb
