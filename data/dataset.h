// Datasets in memory: images as float32 [N,C,H,W] scaled to [0,1] (2-D toy sets as [N,2]), labels,
// class names. Dataset specs are what the command line accepts after --data.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <cstdint>
#include <stdexcept>
#include <map>
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

// Every reader error (missing, truncated or malformed file, bad spec) is a DataError whose message
// starts with the file or the spec it is about.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Specs: fashion-mnist (default; /usr/share/datasets/fashion-mnist), mnist:DIR, idx:IMAGES,LABELS,
// cifar10:DIR, images:DIR, npy:X.npy,Y.npy, toy:NAME[,n=..,seed=..,k=..,noise=..] with NAME in
// moons, circles, spirals, xor. `split` is "train" or "test". Errors name the file or the spec.
//  - fashion-mnist[:DIR], mnist:DIR: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each plain or .gz
//    (MNIST's "train-images.idx3-ubyte" spelling is accepted too).
//  - cifar10:DIR: data_batch_1..5.bin (train), test_batch.bin (test); DIR may also be the folder
//    holding the extracted cifar-10-batches-bin/.
//  - idx:IMAGES,LABELS, npy:X.npy,Y.npy: one set of files, so the split is by index: sample i is
//    in "test" when i % 5 == 4, else in "train" (80/20). Classes are "0".."max label".
//    npy x: float32 as is, uint8 scaled by 1/255; [N,F], [N,H,W] (-> [N,1,H,W]), [N,C,H,W], or
//    [N,H,W,C] with C in {1,3,4} and dim 1 not in {1,3} (transposed to NCHW).
//  - images:DIR[,c=C,h=H,w=W]: DIR/<class>/<image files>, class names = sorted subfolder names.
//    With DIR/train and DIR/test the split is by folder; otherwise image i of each class (sorted by
//    file name) is in "test" when i % 5 == 4. Images are converted to the first image's size and
//    channels (gray if it is gray, else RGB) unless c/h/w are given.
//  - toy:NAME (defaults n=1000, seed=1; n is per split): train draws from Rng(seed*2), test from
//    Rng(seed*2+1), so the splits are independent draws and no seed's test set is another's train set.
// `split` may also be "all": train and test together (train first).
Dataset load_dataset(const std::string& spec, const std::string& split);
// The same spec with its files and folders as absolute paths, for a command run in another folder
// (glassbox report runs its steps in the report's folder).
std::string absolute_spec(const std::string& spec);
// True when the files the spec needs exist (tests that need real data skip otherwise).
bool dataset_available(const std::string& spec);
// The image files an images:DIR spec reads (DIR/<class>/*, or DIR/train/<class>/* and
// DIR/test/<class>/*); none for other specs or a folder that cannot be read.
std::vector<std::string> dataset_image_files(const std::string& spec);

// The samples `indices` of d, in that order (a copy).
Dataset take(const Dataset& d, const std::vector<int>& indices);
// The first n samples of d (all of them when n <= 0 or n >= d.size()): `glassbox train --limit`.
Dataset first_samples(const Dataset& d, int n);

const std::vector<std::string>& fashion_mnist_classes();  // T-shirt/top, Trouser, ..., Ankle boot
const std::vector<std::string>& mnist_classes();          // "0".."9"
const std::vector<std::string>& cifar10_classes();        // airplane, automobile, ..., truck

// IDX files (the MNIST format), each plain or gzip: images 0x00000803 [N,H,W] unsigned bytes,
// labels 0x00000801 [N]. x is [N,1,H,W] in [0,1]. With class_names empty the classes are
// "0".."max label"; otherwise every label must be below class_names.size().
Dataset read_idx(const std::string& images_path, const std::string& labels_path,
                 std::vector<std::string> class_names = {});

// CIFAR-10 binary files (3073-byte records: label byte, then 1024 R, 1024 G, 1024 B), concatenated
// in the order given; x is [N,3,32,32] in [0,1].
Dataset read_cifar10(const std::vector<std::string>& files);

// Synthetic 2-D sets, x [N,2] (coordinates roughly in [-1.5,1.5]), classes balanced (counts differ by
// at most one; sample i has class i % classes). noise < 0 picks the set's default.
//   moons (2 classes, noise 0.1), circles (k rings, default 2, noise 0.05),
//   spirals (k arms, default 3, noise 0.03), xor (4 Gaussian blobs, 2 classes, noise 0.25).
struct ToyParams {
  std::string name = "spirals";
  int n = 1000;
  int k = 0;  // 0 = the set's default
  float noise = -1.f;
  uint64_t seed = 1;
};
Dataset make_toy(const ToyParams& p);

// Per-channel (x - mean) / std; stored in model metadata under "glassbox.normalize" so that explain
// and predict feed a model exactly what it was trained on. Empty = identity.
struct Normalization {
  std::vector<float> mean, std;
  bool empty() const { return mean.empty(); }
  bool operator==(const Normalization&) const = default;
  void apply(Tensor& x) const;   // in place, [N,C,...]
  void invert(Tensor& x) const;  // back to [0,1] pixel space
  nlohmann::json to_json() const;
  static Normalization from_json(const nlohmann::json& j);
  // The normalization a model was trained with (its "glassbox.normalize" metadata; none: identity).
  static Normalization of_model(const std::map<std::string, std::string>& metadata);
};
Normalization channel_stats(const Dataset& d);  // mean and std per channel over the whole set

// Training-time augmentation. Crop and flip apply to images ([N,C,H,W]) only; noise to any data.
struct Augment {
  int crop_pad = 0;        // random crop after zero-padding by this many pixels (CIFAR: 4)
  bool hflip = false;      // random horizontal flip
  float noise_std = 0.f;   // Gaussian noise added in input space (after normalization)
};

// Fisher-Yates with the engine's Rng (std::shuffle's draws differ between standard libraries), so a
// seed and an Rng state fix the order on every platform: a resumed run shuffles as the original did.
void shuffle_order(std::vector<int>& order, Rng& rng);
std::vector<int> shuffled_order(int n, Rng& rng);  // a permutation of 0..n-1

// Copies samples order[begin..end) into x (resized to [end-begin, ...]) and their labels into y,
// then normalizes and, when `aug` is given, augments. Allocates nothing once x and y are sized.
void make_batch(const Dataset& d, const std::vector<int>& order, int begin, int end, const Normalization& norm,
                const Augment* aug, Rng& rng, Tensor& x, std::vector<int>& y);

}  // namespace gb
