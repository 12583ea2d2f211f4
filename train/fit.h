// The training loop: shuffled mini-batches, a held-out validation split checked each epoch,
// best/last model files and a resumable checkpoint, a JSON-lines log, progress output, and a
// stop on NaN/Inf that leaves every file of the last good epoch untouched.
//
// Files written for out = "dir/m.safetensors" (all atomically):
//   dir/m.safetensors            the model after the last completed epoch
//   dir/m.best.safetensors       the model of the epoch with the best validation accuracy
//   dir/m.ckpt.safetensors       the checkpoint of the last completed epoch (for --resume)
//   dir/m.log.jsonl              one JSON line per epoch
//   dir/m.epochE.safetensors     with save_every = N: the model after every N-th epoch E, its
//                                metadata holding train.epoch and train.lr (the mean learning
//                                rate over the save_every epochs it ends, from the schedule's
//                                formula: after a resume with another --epochs or --save-every,
//                                the new settings'): the checkpoints TracIn sums over, each
//                                weighted by that rate
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/loss.h"
#include "engine/model_file.h"
#include "train/optimizer.h"

namespace gb {

struct EpochStats {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0;  // val_*: NaN without validation
  double lr = 0;       // learning rate at the epoch's last step
  double seconds = 0;  // wall time of the epoch (training + validation)
  double images_per_s = 0;
  nlohmann::json to_json() const;
};

enum class ProgressStyle { automatic, terminal, plain, quiet };

// The training loss of one batch, for losses other than cross-entropy against the labels
// (distillation's soft targets, a penalty): given the graph after its training forward, the
// batch's inputs x (normalized, augmented) and labels, and the logits, it returns the loss
// (LossResult::loss, the batch mean; `correct` counts what the train accuracy reports) and writes
// d(loss)/d(logits) into `grad`. It may also add gradients of terms that do not pass through the
// logits (a penalty on a layer) to the graph's parameter gradients, which fit() zeroes before the
// forward and back-propagates `grad` into afterwards.
using BatchLoss = std::function<LossResult(Graph& g, const Tensor& x, const std::vector<int>& labels,
                                           const Tensor& logits, Tensor& grad)>;

struct FitOptions {
  int epochs = 10;
  int batch = 64;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  uint64_t seed = 42;         // validation split, shuffling, augmentation, dropout
  float val_fraction = 0.1f;  // of the training set held out for validation (0: none)
  Normalization norm;         // applied to every batch (train, validation)
  Augment augment;            // training batches only
  std::string out;            // model path; empty: write nothing
  std::vector<std::string> inputs;  // files read (a model fine-tuned, a teacher): no output may be one
  std::string resume;         // checkpoint to continue from
  int save_every = 0;         // > 0: keep the model of every N-th epoch (needs out)
  Metadata metadata;          // stored in the model files and checkpoints (classes, normalization...)
  nlohmann::json extra_config;  // more settings compared on resume (e.g. the data spec)
  ProgressStyle progress = ProgressStyle::automatic;
  BatchLoss loss;  // empty: softmax cross-entropy against the labels
  // Called after each epoch (after the files are written); return false to stop early (as an
  // interruption would).
  std::function<bool(const EpochStats&)> on_epoch;
};

// Thrown when the loss or a weight becomes NaN/Inf; no file was written for the failing epoch.
struct DivergedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct FitResult {
  std::vector<EpochStats> history;  // this run's epochs (after a resume: only the new ones)
  std::string run;                  // the run's id (train.run) in the files written; empty: none
  int best_epoch = 0;
  double best_val_acc = -1;
};

// The samples of a training set of n that fit() holds out for validation with this seed and
// fraction (a seeded permutation's first round(n·fraction)), and the rest; both sorted.
void validation_split(int n, uint64_t seed, float fraction, std::vector<int>& train_idx, std::vector<int>& val_idx);

// Trains g on `train`. Checks that the data fits the model (input shape, class count).
FitResult fit(Graph& g, const Dataset& train, const FitOptions& opt);

struct EvalResult {
  double loss = 0, accuracy = 0;
  int n = 0;
  std::vector<std::vector<int>> confusion;  // [true][predicted]
  std::vector<double> per_class;            // accuracy per true class (NaN when absent)
};
// Evaluates in eval mode over d's samples (or only `indices`), batch by batch.
EvalResult evaluate(Graph& g, const Dataset& d, const Normalization& norm, int batch = 256,
                    const std::vector<int>* indices = nullptr);

// Throws std::invalid_argument naming both shapes when d's samples do not fit g's input, or when d
// has more classes than g has outputs.
void check_fits(const Graph& g, const Dataset& d, const std::string& flag = "--model");  // errors name `flag`

// File names derived from the --out path.
std::string sibling_path(const std::string& out, const std::string& suffix);  // "m.safetensors" + ".best"
std::string epoch_path(const std::string& out, int epoch);                      // "m.epoch3.safetensors"
// Training replaces OUT, OUT.best/.ckpt.safetensors, OUT.epochN.safetensors (--save-every) and
// OUT.log.jsonl after every epoch. Refuses, before anything is read or trained, where one of them
// exists and is not what training writes there (a folder, another file): a failed run must not have
// replaced OUT first, and no other file is overwritten. fit() checks; the command checks earlier.
// `inputs`: files read (the model fine-tuned, a teacher) that no output may be.
void check_train_outputs(const std::string& out, int epochs, int save_every, const std::vector<std::string>& inputs = {});
// Refuses `path` where it exists and is not a model file (a folder, a foreign file): the check for
// a command that writes a model file (prune; training checks its own); `who` names it ("--out 'x'").
void check_model_output(const std::string& path, const std::string& who);
// What an epoch's model file holds besides the run's metadata: train.epoch, train.lr, train.optimizer.
Metadata epoch_metadata(const Metadata& run_meta, const FitOptions& o, int epoch, double lr);
// MODEL.epochE.safetensors beside a model file, by epoch, of the run that wrote the model (train.run
// in their metadata; a model without one takes every file) and not past the model's own epoch
// (train.epoch). `skipped` counts the others (an earlier run under the same --out with another seed,
// schedule or more epochs). None for a model that is not a regular file (a pipe).
// `model_meta` is the model's own (read already: the model may have come through a pipe).
std::vector<std::pair<int, std::string>> epoch_models(const std::string& model_path, const Metadata& model_meta,
                                                      int* skipped = nullptr);

}  // namespace gb
