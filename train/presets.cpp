#include "train/presets.h"

#include <cmath>
#include <stdexcept>

#include "engine/architecture.h"
#include "engine/layers.h"

namespace gb {

namespace {

struct Preset {
  const char* name;
  const char* input;  // default input
  int classes;
  const char* body;   // {C} is replaced by the class count
};

// The LeNet-5 of the PyTorch tutorials (61,706 parameters on 1x28x28, ten classes).
#define LENET(act)                                                                                    \
  "conv(6,k=5,p=2) " act " maxpool(2) conv(16,k=5) " act " maxpool(2) flatten dense(120) " act " dense(84) " act \
  " dense({C})"

const Preset kPresets[] = {
    {"lenet5", "1,28,28", 10, LENET("relu")},
    {"lenet5-tanh", "1,28,28", 10, LENET("tanh")},
    {"lenet5-sigmoid", "1,28,28", 10, LENET("sigmoid")},
    {"lenet5-softplus", "1,28,28", 10, LENET("softplus")},
    // conv stack -> global average pooling -> dense: the head CAM needs.
    {"camnet", "1,28,28", 10,
     "conv(32,k=3,p=1) relu maxpool(2) conv(64,k=3,p=1) relu maxpool(2) conv(128,k=3,p=1) relu gap dense({C})"},
    {"mlp", "1,28,28", 10, "flatten dense(256) relu dense(128) relu dense({C})"},
    {"toy2d", "2", 2, "dense(32) relu dense(32) relu dense(32) relu dense({C})"},
    // A neural additive model (Agarwal et al. 2021): one small ReLU network per input feature
    // (1 -> 64 -> 32 -> classes), their outputs summed: logits = sum_j f_j(x_j). {F} is the number
    // of features: the input's own for flat inputs, 4x4-average-pooled pixels for images ({POOL}).
    {"nam", "2", 2,
     "{POOL}groupdense(64,groups={F}) relu groupdense(32,groups={F}) relu groupdense({C},groups={F}) groupsum({F})"},
    {"cifar-convnet", "3,32,32", 10,
     "conv(32,k=3,p=1,bias=false) batchnorm relu conv(32,k=3,p=1,bias=false) batchnorm relu maxpool(2) "
     "conv(64,k=3,p=1,bias=false) batchnorm relu conv(64,k=3,p=1,bias=false) batchnorm relu maxpool(2) "
     "conv(128,k=3,p=1,bias=false) batchnorm relu conv(128,k=3,p=1,bias=false) batchnorm relu maxpool(2) "
     "gap dense({C})"},
    // ResNet-8: a stem and three residual blocks (16, 32, 64 channels), 1x1 projections where the
    // shape changes.
    {"resnet8", "3,32,32", 10,
     "conv(16,k=3,p=1,bias=false,name=stem) batchnorm relu(name=b0) "
     "conv(16,k=3,p=1,bias=false) batchnorm relu conv(16,k=3,p=1,bias=false) batchnorm add(b0) relu(name=b1) "
     "conv(32,k=3,s=2,p=1,bias=false) batchnorm relu conv(32,k=3,p=1,bias=false) batchnorm(name=r2) "
     "conv(32,k=1,s=2,bias=false,from=b1) batchnorm add(r2) relu(name=b2) "
     "conv(64,k=3,s=2,p=1,bias=false) batchnorm relu conv(64,k=3,p=1,bias=false) batchnorm(name=r3) "
     "conv(64,k=1,s=2,bias=false,from=b2) batchnorm add(r3) relu gap dense({C})"},
};

const Preset& find_preset(const std::string& name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return p;
  std::string names;
  for (const Preset& p : kPresets) names += (names.empty() ? "" : ", ") + std::string(p.name);
  throw std::invalid_argument("unknown preset '" + name + "' (presets: " + names + ")");
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> v;
  for (const Preset& p : kPresets) v.push_back(p.name);
  return v;
}

bool toy_defaults(const std::string& model, const Shape& sample) {
  return model == "toy2d" || (model == "nam" && sample.rank == 1);
}

bool is_preset(const std::string& name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return true;
  return false;
}

std::string preset_architecture(const std::string& name, const Shape& input, int classes) {
  const Preset& p = find_preset(name);
  std::string in = p.input;
  if (input.rank) {
    in.clear();
    for (int d : input.vec()) in += (in.empty() ? "" : ",") + std::to_string(d);
  }
  std::string body = p.body;
  body.replace(body.find("{C}"), 3, std::to_string(classes > 0 ? classes : p.classes));
  if (body.find("{F}") != std::string::npos) {
    const Shape shape = input.rank ? input : Shape{std::stoi(p.input)};
    std::string pool;
    int features = shape[0];
    if (shape.rank == 3) {
      pool = "avgpool(4) flatten ";
      features = shape[0] * (shape[1] / 4) * (shape[2] / 4);
    }
    if (shape.rank == 2 || features < 1)
      throw std::invalid_argument("preset " + name + " takes flat features [F] or images [C,H,W] of at least 4x4, not " +
                                  shape.str());
    body.replace(body.find("{POOL}"), 6, pool);
    for (size_t at; (at = body.find("{F}")) != std::string::npos;) body.replace(at, 3, std::to_string(features));
  }
  return "input(" + in + ") " + body;
}

// Xavier (Glorot) uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)). He init (the layer
// default) suits ReLU; saturating activations need the smaller Glorot scale to keep the signal in
// their linear range (PyTorch's gains: tanh 5/3, sigmoid 1).
static void xavier_reinit(Graph& g, float gain, uint64_t seed) {
  Rng rng(seed ^ 0x78617669657273ULL);
  for (int i = 0; i < g.size(); ++i) {
    Tensor* w = nullptr;
    int fan_in = 0, fan_out = 0;
    if (auto* c = dynamic_cast<Conv2d*>(&g.layer(i))) {
      w = &c->weight.value;
      fan_in = c->in_ch * c->k * c->k;
      fan_out = c->out_ch * c->k * c->k;
    } else if (auto* d = dynamic_cast<Dense*>(&g.layer(i))) {
      w = &d->weight.value;
      fan_in = d->in_features;
      fan_out = d->out_features;
    }
    if (!w) continue;
    const float b = gain * std::sqrt(6.f / float(fan_in + fan_out));
    for (size_t e = 0; e < w->size(); ++e) (*w)[e] = (2 * rng.uniform() - 1) * b;
  }
}

Graph make_preset(const std::string& name, const Shape& input, int classes, uint64_t seed) {
  Graph g = graph_from_text(preset_architecture(name, input, classes));
  g.init(seed);
  if (name == "lenet5-tanh") xavier_reinit(g, 5.f / 3.f, seed);
  if (name == "lenet5-sigmoid" || name == "lenet5-softplus") xavier_reinit(g, 1.f, seed);
  return g;
}

}  // namespace gb
