// Decoder inversion (Dosovitskiy & Brox 2016, "Inverting visual representations with
// convolutional networks"): train a network that maps a layer's activations back to the images
// they came from (MSE), then decode the inputs' activations. What comes back is what the layer
// keeps about the image, as far as a decoder trained on the data distribution can recover it.
// The training loop is handed in (Request::fit_decoder): explain/ never depends on train/.
#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "explain/visualize/method.h"

namespace gb::visualize {

std::string decoder_architecture(const Shape& code, const Shape& image, int width, bool nearest) {
  if (image.rank != 3) throw ShapeError("decoder: images must be [C,H,W], got " + image.str());
  const std::string C = std::to_string(image[0]), W = std::to_string(width);
  auto dims = [](const Shape& s) {
    std::string t;
    for (int i = 0; i < s.rank; ++i) t += (i ? "," : "") + std::to_string(s[i]);
    return t;
  };
  std::string a = "input(" + dims(code) + ")";
  if (code.rank != 3) {  // flat codes: a perceptron to flat images
    return a + " flatten dense(" + std::to_string(16 * width) + ") relu dense(" + std::to_string(image.numel()) + ")";
  }
  const int h = code[1], H = image[1];
  if (code[1] * image[2] != code[2] * image[1])
    throw ShapeError("decoder: code " + code.str() + " and image " + image.str() + " have different aspect ratios");
  if (h > H) throw ShapeError("decoder: code " + code.str() + " is larger than the image " + image.str());
  if (h < H) {
    const int s = (H + h - 1) / h;  // (h − 1)s < H ≤ hs, so r = H − (h − 1)s is in (0, s]
    if (nearest) {
      const int trim = h * s - H;  // a valid convolution of kernel trim + 1 removes it
      a += " upsample(" + std::to_string(s) + ") conv(" + W + ",k=" + std::to_string(trim ? trim + 1 : 3) +
           (trim ? "" : ",p=1") + ") relu";
    } else {
      // Kernel s (every output covered once or twice), padding p and output padding op with
      // (h − 1)s − 2p + s + op = H: 2p − op = s − r.
      const int r = H - (h - 1) * s, p = (s - r + 1) / 2, op = 2 * p - (s - r);
      a += " convt(" + W + ",k=" + std::to_string(s) + ",s=" + std::to_string(s) + (p ? ",p=" + std::to_string(p) : "") +
           (op ? ",op=" + std::to_string(op) : "") + ") relu";
    }
  }
  return a + " conv(" + W + ",k=3,p=1) relu conv(" + C + ",k=3,p=1)";
}

namespace {

// The layers to decode from: names, or the default: every pooling layer and the output.
std::vector<int> decoder_layers(ParamReader& r, const Graph& g) {
  const std::string spec = r.text("layers");
  std::vector<int> nodes;
  if (spec.empty()) {
    for (int i = 0; i < g.size(); ++i) {
      const Layer& L = g.layer(i);
      if (dynamic_cast<const MaxPool2d*>(&L) || dynamic_cast<const AvgPool2d*>(&L) ||
          dynamic_cast<const GlobalAvgPool*>(&L) || i == g.output())
        nodes.push_back(i);
    }
    return nodes;
  }
  return named_layers(g, spec, "decoder");
}

Result run_decoder(Graph& g, const Request& q, ParamReader& r) {
  require_inputs(q, "decoder");
  require_data(q, "decoder");
  if (!q.fit_decoder) throw std::invalid_argument("decoder needs a training loop (glassbox visualize provides one)");
  const std::vector<int> layers = decoder_layers(r, g);
  const int width = read_int(r, "width", 1, 256);
  const bool nearest = read_choice(r, "upsampling", {"convt", "nearest"}) == "nearest";
  const int train = std::min(read_int(r, "train_samples", 1, 1000000), q.data.batch());
  DecoderFit fit;
  fit.epochs = read_int(r, "epochs", 1, 1000);
  fit.batch = read_int(r, "batch", 1, 4096);
  fit.lr = read_number(r, "lr", 1e-12, 10);
  fit.seed = uint64_t(read_int(r, "seed", 0, INT_MAX));
  const int N = q.inputs.batch(), L = int(layers.size());
  const Shape image = g.input_shape();
  const Tensor data = q.data.slice(0, train);

  Result res;
  res.panels.push_back({"input", Tensor(Shape::batch_of(N * L, image)), Draw::pixels, true});
  res.panels.push_back({"image", Tensor(Shape::batch_of(N * L, image)), Draw::pixels});
  res.rows.resize(N * L);
  res.per_line = L;
  const size_t D = image.numel();
  for (int l = 0; l < L; ++l) {
    const int node = layers[l];
    const std::string text = decoder_architecture(g.shape(node).sample(), image, width, nearest);
    Graph dec = graph_from_text(text);
    dec.init(mix_seed(fit.seed, uint64_t(node)));
    const Tensor codes = activations(g, data, {node})[0];
    const Tensor targets = data.reshaped(dec.shape(dec.output(), train));
    fit.what = "decoder from " + g.layer(node).name;
    const double loss = q.fit_decoder(dec, codes, targets, fit);
    const Tensor decoded = dec.forward(activations(g, q.inputs, {node})[0]).reshaped(Shape::batch_of(N, image)).clone();
    for (int n = 0; n < N; ++n) {
      const int i = n * L + l;
      std::copy_n(decoded.data() + size_t(n) * D, D, res.panels[1].values.data() + size_t(i) * D);
      std::copy_n(q.inputs.data() + size_t(n) * D, D, res.panels[0].values.data() + size_t(i) * D);
      double mse = 0;
      for (size_t j = 0; j < D; ++j) {
        const double d = double(decoded[size_t(n) * D + j]) - q.inputs[size_t(n) * D + j];
        mse += d * d / double(D);
      }
      Row& row = res.rows[i];
      row.name = input_name(q, n) + "_" + g.layer(node).name;
      row.caption = g.layer(node).name + "\nmse " + number(mse);
      row.values = {{"mse", mse}, {"train_loss", loss}, {"train_samples", train}};
    }
  }
  return res;
}

}  // namespace

void add_decoder_methods(std::vector<Method>& reg) {
  reg.push_back({{"decoder",
                  "decoder inversion: train a decoder from a layer's activations back to the images (MSE on the "
                  "scanned data), then decode each input's activations; one decoder per layer",
                  {{"layers", "", "layer names separated by commas (default: every pooling layer and the output)"},
                   {"width", "16", "decoder channels (a perceptron decoder has 16x as many hidden units)"},
                   {"upsampling", "convt", "convt (a transposed convolution) or nearest (upsample, then convolve)"},
                   {"train_samples", "10000", "at most this many scanned samples train each decoder"},
                   {"epochs", "3", "training epochs (Adam, shuffled mini-batches, mean squared error)"},
                   {"batch", "64", "mini-batch size"},
                   {"lr", "0.001", "Adam's learning rate [1e-12, 10]"},
                   explain::seed_param("0", "random seed (decoder initialization, shuffling)")},
                  "Dosovitskiy & Brox 2016 (a decoder trained with the squared error in the model's input space, "
                  "images as they are fed to the model); much smaller decoders than theirs (28x28 images) and no "
                  "adversarial or feature losses"},
                 run_decoder});
}

}  // namespace gb::visualize
