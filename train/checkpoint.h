// Training checkpoints: one safetensors file holding the model parameters (BatchNorm statistics
// included, under the model's own tensor names), the optimizer state ("optim.*" tensors) and, in
// the metadata, the epoch, step count, RNG states, best validation result and the training
// configuration. Written atomically, so an existing checkpoint survives a failed or killed run.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/model_file.h"
#include "engine/rng.h"
#include "train/optimizer.h"

namespace gb {

struct TrainState {
  int epoch = 0;               // epochs completed
  Rng data_rng{0};             // shuffling and augmentation
  Rng graph_rng{0};            // dropout masks (Graph::rng)
  double best_val_acc = -1.0;  // -1: none yet
  int best_epoch = 0;
  nlohmann::json config;       // the run's settings, compared on resume
  std::string run;             // the run's id (train.run in its files): another run's files are told apart
};

// `model_meta` (classes, normalization, dataset) is stored too, so a checkpoint describes its model.
void save_checkpoint(const std::string& path, const Graph& g, const Optimizer& opt, const TrainState& st,
                     const Metadata& model_meta);

struct Checkpoint {
  TrainState state;
  Metadata metadata;  // everything in the file's metadata
  int64_t steps = 0;
};

// Loads parameters into g and optimizer state into opt; checks that the checkpoint's architecture
// and optimizer match. Throws std::runtime_error("<path>: <what is wrong>"), or
// std::invalid_argument naming the file for NaN/Inf weights or optimizer state.
Checkpoint load_checkpoint(const std::string& path, Graph& g, Optimizer& opt);

}  // namespace gb
