// Datasets in memory: images as float32 [N,C,H,W] scaled to [0,1] (2-D toy sets as [N,2]), labels,
// class names. Dataset specs are what the command line accepts after --data.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "engine/tensor.h"

namespace gb {

struct Dataset {
  Tensor x;                              // [N,C,H,W] in [0,1], or [N,F] for 2-D toy sets
  std::vector<int> y;                    // labels in [0, classes())
  std::vector<std::string> class_names;  // one per class
  std::string name;                      // e.g. "fashion-mnist:test", for messages
  int size() const { return x.empty() ? 0 : x.batch(); }
  int classes() const { return int(class_names.size()); }
};

// Specs: fashion-mnist (default; /usr/share/datasets/fashion-mnist), mnist:DIR, idx:IMAGES,LABELS,
// cifar10:DIR, images:DIR, npy:X.npy,Y.npy, toy:NAME[,n=..,seed=..,k=..,noise=..] with NAME in
// moons, circles, spirals, xor. `split` is "train" or "test". Errors name the file or the spec.
Dataset load_dataset(const std::string& spec, const std::string& split);
// True when the files the spec needs exist (tests that need real data skip otherwise).
bool dataset_available(const std::string& spec);

// Per-channel (x - mean) / std; stored in model metadata under "glassbox.normalize" so that explain
// and predict feed a model exactly what it was trained on. Empty = identity.
struct Normalization {
  std::vector<float> mean, std;
  bool empty() const { return mean.empty(); }
  void apply(Tensor& x) const;   // in place, [N,C,...]
  void invert(Tensor& x) const;  // back to [0,1] pixel space
  nlohmann::json to_json() const;
  static Normalization from_json(const nlohmann::json& j);
};
Normalization channel_stats(const Dataset& d);  // mean and std per channel over the whole set

// Training-time augmentation.
struct Augment {
  int crop_pad = 0;        // random crop after zero-padding by this many pixels (CIFAR: 4)
  bool hflip = false;      // random horizontal flip
  float noise_std = 0.f;   // Gaussian noise added in input space (after normalization)
};

// Copies samples order[begin..end) into x (resized to [end-begin, ...]) and their labels into y,
// then normalizes and, when `aug` is given, augments. Allocates nothing once x and y are sized.
void make_batch(const Dataset& d, const std::vector<int>& order, int begin, int end, const Normalization& norm,
                const Augment* aug, Rng& rng, Tensor& x, std::vector<int>& y);

}  // namespace gb
