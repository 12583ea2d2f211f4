// Dataset specs (what --data accepts): resolving a spec to files, the train/test split of each
// source, and the built-in class names.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <filesystem>

#include "data/dataset.h"
#include "data/images.h"
#include "data/io_util.h"
#include "data/npy.h"
#include "engine/finite.h"

namespace gb {

namespace fs = std::filesystem;
using detail::fail;

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

const std::vector<std::string>& mnist_classes() {
  static const std::vector<std::string> names{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return names;
}

Dataset take(const Dataset& d, const std::vector<int>& indices) {
  Dataset out;
  out.class_names = d.class_names;
  out.name = d.name;
  const int n = d.size();
  Shape s = d.x.shape().with_batch(int(indices.size()));
  out.x = Tensor(s);
  out.y.resize(indices.size());
  const size_t per = d.x.sample_size();
  for (size_t i = 0; i < indices.size(); ++i) {
    int k = indices[i];
    if (k < 0 || k >= n)
      throw DataError(d.name + ": sample index " + std::to_string(k) + " out of range for " + std::to_string(n) + " samples");
    std::memcpy(out.x.data() + i * per, d.x.data() + size_t(k) * per, per * sizeof(float));
    out.y[i] = d.y[k];
  }
  return out;
}

Dataset first_samples(const Dataset& d, int n) {
  if (n <= 0 || n >= d.size()) return d;
  std::vector<int> first(n);
  std::iota(first.begin(), first.end(), 0);
  return take(d, first);
}

namespace {

const char* kForms =
    "fashion-mnist[:DIR], mnist:DIR, idx:IMAGES,LABELS, cifar10:DIR, images:DIR[,c=C,h=H,w=W], npy:X.npy,Y.npy, "
    "toy:NAME[,n=N,k=K,noise=S,seed=S] with NAME moons, circles, spirals or xor";
const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

// A spec resolved to files (existence checked, contents not read yet).
struct Source {
  std::string kind;  // "idx2" (train and test files), "idx1" (one pair), "cifar", "images", "npy", "toy"
  std::vector<std::string> train, test;  // idx2: images, labels; cifar: batches; idx1/npy: x, y
  std::vector<std::string> classes;
  std::string dir;
  bool split_dirs = false;  // images: DIR/train and DIR/test
  int c = 0, h = 0, w = 0;  // images: requested size (0 = the first image's)
  ToyParams toy;
};

// DIR/base with .gz or not; MNIST's own spelling "train-images.idx3-ubyte" is accepted too.
std::string find_idx(const std::string& dir, const std::string& base) {
  std::string dotted = base;
  size_t dash = dotted.find("-idx");
  if (dash != std::string::npos) dotted[dash] = '.';
  for (const std::string& name : {base + ".gz", base, dotted + ".gz", dotted}) {
    std::string p = (fs::path(dir) / name).string();
    if (detail::is_file(p)) return p;
  }
  return "";
}

Source resolve_idx_dir(const std::string& spec, const std::string& dir, bool fashion) {
  Source s;
  s.kind = "idx2";
  s.classes = fashion ? fashion_mnist_classes() : mnist_classes();
  const char* bases[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                          "t10k-labels-idx1-ubyte"};
  for (int i = 0; i < 4; ++i) {
    std::string p = find_idx(dir, bases[i]);
    if (p.empty()) {
      std::string msg = spec + ": " + (fs::path(dir) / bases[i]).string() + "[.gz] not found";
      if (fashion && dir == kFashionDir)
        msg += "; install the Debian package dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist), "
               "or give mnist:DIR or idx:IMAGES,LABELS for files elsewhere";
      throw DataError(msg);
    }
    (i < 2 ? s.train : s.test).push_back(p);
  }
  return s;
}

void require_file(const std::string& spec, const std::string& p) {
  if (detail::is_dir(p)) throw DataError(spec + ": " + p + " is a folder, not a file");
  std::error_code ec;
  if (!detail::is_file(p) && fs::exists(p, ec))  // (/dev/zero was "not found")
    throw DataError(spec + ": " + p + " is not a regular file (a device or a pipe)");
  if (!detail::is_file(p)) throw DataError(spec + ": " + p + " not found");
}

// "key=value" items after the first comma-separated part.
int parse_int(const std::string& spec, const std::string& key, const std::string& v, long long lo, long long hi) {
  size_t used = 0;
  long long r = 0;
  try {
    r = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size() || r < lo || r > hi)
    throw DataError(spec + ": bad value for " + key + ": '" + v + "' (an integer in " + std::to_string(lo) + ".." +
                    std::to_string(hi) + ")");
  return int(r);
}

Source resolve(const std::string& spec_in) {
  std::string spec = spec_in.empty() ? "fashion-mnist" : spec_in;
  size_t colon = spec.find(':');
  std::string kind = spec.substr(0, colon), rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  bool has_arg = colon != std::string::npos && !rest.empty();
  if (kind == "fashion-mnist") return resolve_idx_dir(spec, has_arg ? rest : kFashionDir, true);
  if (kind == "mnist" && has_arg) return resolve_idx_dir(spec, rest, false);
  if (kind == "idx" || kind == "npy") {
    auto parts = detail::split(rest, ',');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty())
      throw DataError(spec + ": expected " + kind + (kind == "idx" ? ":IMAGES,LABELS" : ":X.npy,Y.npy"));
    Source s;
    s.kind = kind == "idx" ? "idx1" : "npy";
    for (auto& p : parts) require_file(spec, p);
    s.train = parts;
    return s;
  }
  if (kind == "cifar10" && has_arg) {
    Source s;
    s.kind = "cifar";
    std::string dir = rest;
    // The archive extracts to cifar-10-batches-bin/; accept the folder above it too.
    if (!detail::is_file((fs::path(dir) / "test_batch.bin").string()) &&
        detail::is_dir((fs::path(dir) / "cifar-10-batches-bin").string()))
      dir = (fs::path(dir) / "cifar-10-batches-bin").string();
    for (int i = 1; i <= 5; ++i) s.train.push_back((fs::path(dir) / ("data_batch_" + std::to_string(i) + ".bin")).string());
    s.test.push_back((fs::path(dir) / "test_batch.bin").string());
    for (auto& p : s.train) require_file(spec, p);
    require_file(spec, s.test[0]);
    return s;
  }
  if (kind == "images" && has_arg) {
    Source s;
    s.kind = "images";
    std::vector<std::string> path_parts;
    for (auto& part : detail::split(rest, ',')) {
      // c=, h=, w= are options; anything else is part of the folder name (which may contain commas).
      if (part.size() > 2 && part[1] == '=' && (part[0] == 'c' || part[0] == 'h' || part[0] == 'w')) {
        // (within the image readers' cap: 65536 a side made a 17 GB tensor and as much again to resize)
        int v = parse_int(spec, part.substr(0, 1), part.substr(2), 1, part[0] == 'c' ? 3 : kMaxImageSide);
        (part[0] == 'c' ? s.c : part[0] == 'h' ? s.h : s.w) = v;
      } else {
        path_parts.push_back(part);
      }
    }
    for (size_t i = 0; i < path_parts.size(); ++i) s.dir += (i ? "," : "") + path_parts[i];
    if (int64_t(s.h) * s.w > kMaxImagePixels)
      throw DataError(spec + ": h x w = " + std::to_string(int64_t(s.h) * s.w) + " pixels, more than images may have (" +
                      std::to_string(kMaxImagePixels) + ")");
    std::error_code ec;
    if (!fs::exists(s.dir, ec)) throw DataError(spec + ": " + s.dir + " not found");  // FileNotFoundError in Python
    if (!detail::is_dir(s.dir)) throw DataError(spec + ": " + s.dir + " is not a directory");
    s.split_dirs = detail::is_dir((fs::path(s.dir) / "train").string()) && detail::is_dir((fs::path(s.dir) / "test").string());
    return s;
  }
  if (kind == "toy" && has_arg) {
    Source s;
    s.kind = "toy";
    auto parts = detail::split(rest, ',');
    s.toy.name = parts[0];
    std::vector<std::string> seen;  // n=5,n=7 ran with 7
    for (size_t i = 1; i < parts.size(); ++i) {
      size_t eq = parts[i].find('=');
      std::string key = parts[i].substr(0, eq), v = eq == std::string::npos ? "" : parts[i].substr(eq + 1);
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) throw DataError(spec + ": '" + key + "' given twice");
      seen.push_back(key);
      if (key == "n") s.toy.n = parse_int(spec, key, v, 1, 10'000'000);
      else if (key == "k") s.toy.k = parse_int(spec, key, v, 2, 100);
      else if (key == "seed") s.toy.seed = uint64_t(parse_int(spec, key, v, 0, 2'000'000'000));
      else if (key == "noise") {
        size_t used = 0;
        float f = -1;
        try {
          f = std::stof(v, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != v.size() || !(f >= 0 && f < 100))
          throw DataError(spec + ": bad value for noise: '" + v + "' (a number >= 0)");
        s.toy.noise = f;
      } else {
        throw DataError(spec + ": unknown option '" + parts[i] + "' (toy options: n, k, noise, seed)");
      }
    }
    make_toy(ToyParams{s.toy.name, 2, s.toy.k, s.toy.noise, 0});  // validates name and k now, cheaply
    return s;
  }
  throw DataError("unknown dataset spec '" + spec + "'; expected one of: " + kForms);
}

// Index split of a single file set: sample i is in "test" when i % 5 == 4.
std::vector<int> index_split(const std::vector<int>& candidates, bool test) {
  std::vector<int> out;
  for (size_t i = 0; i < candidates.size(); ++i)
    if ((i % 5 == 4) == test) out.push_back(candidates[i]);
  return out;
}

// The training split is compacted in place (each kept sample moves down over dropped ones, so no
// second copy of the set is made; the tensor keeps its storage), the test split copied.
Dataset split_by_index(Dataset d, const std::string& split) {
  if (split == "all") return d;
  std::vector<int> all(d.size());
  for (int i = 0; i < d.size(); ++i) all[i] = i;
  const std::vector<int> keep = index_split(all, split == "test");
  if (split == "test") return take(d, keep);
  const size_t per = d.x.sample_size();
  float* x = d.x.data();
  for (size_t j = 0; j < keep.size(); ++j) {  // keep[j] >= j: a move down never overwrites a sample still to move
    if (size_t(keep[j]) != j) std::memmove(x + j * per, x + size_t(keep[j]) * per, per * sizeof(float));
    d.y[j] = d.y[size_t(keep[j])];
  }
  d.x = d.x.slice(0, int(keep.size()));
  d.y.resize(keep.size());
  return d;
}

// The train split, then the test split (--split all); spec names the set when their samples differ.
Dataset concat_sets(Dataset a, const Dataset& b, const std::string& spec) {
  if (a.x.shape().sample() != b.x.shape().sample())
    throw DataError(spec + ": the train split's samples are " + a.x.shape().sample().str() + ", the test split's " +
                    b.x.shape().sample().str() + "; --split all needs one shape");
  a.x = concat({a.x, b.x});
  a.y.insert(a.y.end(), b.y.begin(), b.y.end());
  return a;
}

Dataset npy_dataset(const std::string& xpath, const std::string& ypath) {
  std::string descr;
  Tensor x = read_npy_f32(xpath, &descr);
  uint8_to_unit(x, descr);  // uint8 pixels to [0,1], like the other image readers
  const int n = x.dim(0);
  if (x.rank() == 1) fail(xpath, "x must be [N,F], [N,H,W], [N,C,H,W] or [N,H,W,C], got " + x.shape().str());
  if (x.rank() == 3) x = x.reshaped(Shape{n, 1, x.dim(1), x.dim(2)});
  if (is_channel_last(x.shape())) x = channel_last_to_nchw(x);
  std::vector<int64_t> labels = read_npy_labels(ypath);
  if (labels.size() != size_t(n))
    fail(ypath, std::to_string(labels.size()) + " labels but " + xpath + " holds " + std::to_string(n) + " samples");
  Dataset d;
  d.x = x;
  int64_t maxl = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= 65536)
      fail(ypath, "label " + std::to_string(labels[i]) + " at index " + std::to_string(i) + " is out of range (0..65535)");
    maxl = std::max(maxl, labels[i]);
  }
  d.y.assign(labels.begin(), labels.end());
  for (int c = 0; c <= maxl; ++c) d.class_names.push_back(std::to_string(c));
  return d;
}

Dataset images_dataset(const Source& s, const std::string& split) {
  std::string train_dir = s.split_dirs ? (fs::path(s.dir) / "train").string() : s.dir;
  Shape sample;
  if (s.c || s.h || s.w) {
    Shape first = image_folder_sample(train_dir);
    sample = Shape{s.c ? s.c : first[0], s.h ? s.h : first[1], s.w ? s.w : first[2]};
  }
  if (s.split_dirs) {
    if (split == "train") return load_image_folder(train_dir, sample);
    if (sample.rank == 0) sample = image_folder_sample(train_dir);  // test images take the training size
    Dataset test = load_image_folder((fs::path(s.dir) / "test").string(), sample, image_folder_classes(train_dir));
    if (split == "test") return test;
    return concat_sets(load_image_folder(train_dir, sample), test, s.dir);
  }
  Dataset all = load_image_folder(s.dir, sample);
  if (split == "all") return all;
  // Per-class index split, so both splits hold every class.
  std::vector<std::vector<int>> by_class(all.class_names.size());
  for (int i = 0; i < all.size(); ++i) by_class[all.y[i]].push_back(i);
  std::vector<int> pick;
  for (auto& members : by_class)
    for (int i : index_split(members, split == "test")) pick.push_back(i);
  std::sort(pick.begin(), pick.end());
  return take(all, pick);
}

}  // namespace

std::vector<std::string> dataset_image_files(const std::string& spec) {
  if (spec.rfind("images:", 0) != 0) return {};
  std::vector<std::string> files;
  try {
    const Source s = resolve(spec);
    const std::vector<std::string> roots = s.split_dirs ? std::vector<std::string>{(fs::path(s.dir) / "train").string(),
                                                                                   (fs::path(s.dir) / "test").string()}
                                                        : std::vector<std::string>{s.dir};
    for (const std::string& root : roots)
      for (const std::string& cls : image_folder_classes(root)) try {
          for (std::string& f : image_files_in((fs::path(root) / cls).string())) files.push_back(std::move(f));
        } catch (const std::exception&) {  // one class folder unreadable: the others still count
        }
  } catch (const std::exception&) {  // the command that reads the spec reports it
  }
  return files;
}

Dataset load_dataset(const std::string& spec_in, const std::string& split) {
  std::string spec = spec_in.empty() ? "fashion-mnist" : spec_in;
  if (split != "train" && split != "test" && split != "all")
    throw DataError(spec + ": split must be train, test or all, got '" + split + "'");
  Source s = resolve(spec);
  Dataset d;
  if (s.kind == "idx2") {
    auto load = [&](const std::vector<std::string>& f) { return read_idx(f[0], f[1], s.classes); };
    if (split == "all") d = concat_sets(load(s.train), load(s.test), spec);
    else d = load(split == "train" ? s.train : s.test);
  } else if (s.kind == "idx1") {
    d = split_by_index(read_idx(s.train[0], s.train[1]), split);
  } else if (s.kind == "cifar") {
    std::vector<std::string> files = split == "train" ? s.train : s.test;
    if (split == "all") files.insert(files.begin(), s.train.begin(), s.train.end());
    d = read_cifar10(files);
  } else if (s.kind == "npy") {
    d = split_by_index(npy_dataset(s.train[0], s.train[1]), split);
  } else if (s.kind == "images") {
    d = images_dataset(s, split);
  } else {  // toy: disjoint seeds per split
    ToyParams p = s.toy;
    p.seed = s.toy.seed * 2 + (split == "test");
    d = make_toy(p);
    if (split == "all") {
      p.seed = s.toy.seed * 2 + 1;
      d = concat_sets(d, make_toy(p), spec);
    }
  }
  d.name = spec + ":" + split;
  // NaN data would surface far from its cause (training "diverged", a NaN explanation, a refusal
  // deep in a method): name the set here, once for every command.
  check_finite(d.x, spec + " (" + split + " split)");
  return d;
}

std::string absolute_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos || colon + 1 == spec.size()) return spec;
  const std::string kind = spec.substr(0, colon), rest = spec.substr(colon + 1);
  // Not normalized: "link/.." need not be the folder holding the link.
  auto absolute = [](const std::string& p) { return fs::absolute(p).string(); };
  if (kind == "fashion-mnist" || kind == "mnist" || kind == "cifar10") return kind + ":" + absolute(rest);
  if (kind == "idx" || kind == "npy") {
    const std::vector<std::string> parts = detail::split(rest, ',');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) return spec;  // load_dataset names the error
    return kind + ":" + absolute(parts[0]) + "," + absolute(parts[1]);
  }
  if (kind == "images") {  // as resolve: c=, h=, w= are options, the other parts the folder's name
    std::string dir, options;
    for (const std::string& part : detail::split(rest, ','))
      if (part.size() > 2 && part[1] == '=' && (part[0] == 'c' || part[0] == 'h' || part[0] == 'w'))
        options += "," + part;
      else
        dir += (dir.empty() ? "" : ",") + part;
    return dir.empty() ? spec : kind + ":" + absolute(dir) + options;  // load_dataset names an empty folder
  }
  return spec;  // toy sets and the default fashion-mnist name no files
}

bool dataset_available(const std::string& spec) {
  try {
    resolve(spec);
    return true;
  } catch (const DataError&) {
    return false;
  }
}

}  // namespace gb
