// A lab in 20 lines: load a trained model, take Fashion-MNIST test images, explain them with
// Integrated Gradients, check completeness, and save a heatmap.
#include <cstdio>

#include "data/dataset.h"
#include "data/images.h"
#include "engine/model_file.h"
#include "explain/attribution/explain.h"
#include "explain/common/heatmap.h"

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: lab MODEL.safetensors\n"), 2;
  gb::Model m = gb::load_model(argv[1]);
  gb::Dataset test = gb::load_dataset("fashion-mnist", "test");
  gb::Tensor x = test.x.slice(0, 8).clone();  // batch first: [8,1,28,28]
  gb::Normalization::of_model(m.metadata).apply(x);  // as the model was trained
  std::vector<int> targets(test.y.begin(), test.y.begin() + 8);
  auto r = gb::explain::explain(m.graph, x, targets, "integrated-gradients", {{"n_steps", "64"}});
  for (int i = 0; i < 8; ++i) std::printf("image %d (%s): completeness delta %.2e\n", i, test.class_names[targets[i]].c_str(), r.delta[i]);
  gb::explain::Image im = gb::explain::heatmap(r.attribution.sample(0).reshaped(gb::Shape{1, 28, 28}));
  gb::write_png("ig_0.png", im.w, im.h, 3, im.rgb.data());
}
