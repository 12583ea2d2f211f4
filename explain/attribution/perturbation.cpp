#include "explain/attribution/perturbation.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "engine/layers.h"
#include "explain/attribution/method.h"
#include "explain/common/resize.h"

namespace gb::explain {

std::vector<float> target_scores(Graph& g, const Tensor& batch, const Target& rows, bool prob) {
  ForwardOptions fo;
  fo.until = rows.at(g);
  const Tensor& out = g.forward(batch, fo);
  const Tensor sm = prob && rows.is_class(g) ? softmax(out) : Tensor();
  std::vector<double> v(batch.batch());
  rows.values(sm.empty() ? out : sm, 0, batch.batch(), v.data());
  return {v.begin(), v.end()};
}

namespace {

struct Window {
  int y0, x0, y1, x1;  // rows y0..y1-1, columns x0..x1-1
};

// The target's score for every sample with every window set to the baseline (o.baseline in every
// channel, or o.channel_baseline): scores[n · windows + w]. Occluded copies are packed into batches.
std::vector<float> occluded_scores(Graph& g, const Tensor& x, const Target& target, const std::vector<Window>& windows,
                                   const OcclusionOptions& o) {
  const int N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), batch_size = o.batch;
  const bool prob = o.prob;
  std::vector<float> fill(size_t(C), o.baseline);
  if (!o.channel_baseline.empty()) {
    if (o.channel_baseline.size() != size_t(C))
      throw std::invalid_argument("occlusion: " + std::to_string(o.channel_baseline.size()) +
                                  " baseline values for inputs of " + std::to_string(C) + " channels");
    fill = o.channel_baseline;
  }
  const size_t HW = size_t(H) * W, CHW = C * HW, nwin = windows.size(), items = size_t(N) * nwin;
  std::vector<float> scores(items);
  Tensor batch({int(std::min(items, size_t(batch_size))), C, H, W});
  for (size_t i0 = 0; i0 < items; i0 += size_t(batch_size)) {
    const int B = int(std::min(items - i0, size_t(batch_size)));
    std::vector<int> samples(B);
    for (int b = 0; b < B; ++b) {
      const size_t n = (i0 + b) / nwin;
      const Window& w = windows[(i0 + b) % nwin];
      samples[b] = int(n);
      float* d = batch.data() + b * CHW;
      std::copy(x.data() + n * CHW, x.data() + (n + 1) * CHW, d);
      for (int c = 0; c < C; ++c)
        for (int yy = w.y0; yy < w.y1; ++yy)
          std::fill(d + c * HW + size_t(yy) * W + w.x0, d + c * HW + size_t(yy) * W + w.x1, fill[size_t(c)]);
    }
    std::vector<float> s = target_scores(g, batch.slice(0, B), target.gather(samples), prob);
    std::copy(s.begin(), s.end(), scores.begin() + long(i0));
  }
  return scores;
}

// The window when none is given: max(2, min(H,W)/7), at most the input (a 1x1 input failed with the
// window it was not given).
int default_window(int H, int W) { return std::min(std::max(2, std::min(H, W) / 7), std::min(H, W)); }

void check_occlusion(Graph& g, const Tensor& x, const Target& target, const OcclusionOptions& o, int win, const char* name) {
  if (win > x.dim(2) || win > x.dim(3))
    throw std::invalid_argument(std::string(name) + ": window " + std::to_string(win) + " exceeds the input " + x.shape().str());
  if (o.batch < 1) throw std::invalid_argument(std::string(name) + ": batch must be positive");
  if (o.prob && !target.is_class(g))
    throw std::invalid_argument(std::string(name) + ": output=prob needs a class target (a unit of a layer has no probability)");
}

// One map per sample, copied into every channel: [N,C,H,W].
Tensor every_channel(const std::vector<double>& maps, int N, int C, size_t HW) {
  Tensor out({N, C, 1, int(HW)});
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (size_t i = 0; i < HW; ++i) out[(size_t(n) * C + c) * HW + i] = float(maps[n * HW + i]);
  return out;
}

}  // namespace

Tensor occlusion(Graph& g, const Tensor& x, const Target& target, const OcclusionOptions& o) {
  require_images(x, "occlusion");
  const int N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int win = o.window > 0 ? o.window : default_window(H, W);
  const int stride = o.stride > 0 ? o.stride : std::max(1, win / 2);
  check_occlusion(g, x, target, o, win, "occlusion");
  // Pixels between windows would be covered by none: their mean drop is 0/0 (Captum returns NaN there).
  if (stride > win)
    throw std::invalid_argument("occlusion: --param stride=" + std::to_string(stride) + " is larger than the window (" +
                                std::to_string(win) + "): pixels between windows would have no attribution");
  auto starts = [&](int D) {
    std::vector<int> v;
    const int n = (D - win + stride - 1) / stride + 1;  // ⌈(D−w)/s⌉ + 1
    for (int k = 0; k < n; ++k) v.push_back(std::min(k * stride, D - win));
    return v;
  };
  std::vector<Window> windows;
  for (int y0 : starts(H))
    for (int x0 : starts(W)) windows.push_back({y0, x0, y0 + win, x0 + win});
  const size_t HW = size_t(H) * W, nwin = windows.size();
  // How many windows cover each pixel: the same for every sample.
  std::vector<float> count(HW, 0.f);
  for (const Window& w : windows)
    for (int yy = w.y0; yy < w.y1; ++yy)
      for (int xx = w.x0; xx < w.x1; ++xx) count[size_t(yy) * W + xx] += 1.f;
  const std::vector<float> base = target_scores(g, x, target, o.prob);
  const std::vector<float> s = occluded_scores(g, x, target, windows, o);
  std::vector<double> sum(N * HW, 0.0);
  for (int n = 0; n < N; ++n)
    for (size_t wi = 0; wi < nwin; ++wi) {
      const double drop = double(base[n]) - s[n * nwin + wi];
      const Window& w = windows[wi];
      double* acc = sum.data() + n * HW;
      for (int yy = w.y0; yy < w.y1; ++yy)
        for (int xx = w.x0; xx < w.x1; ++xx) acc[size_t(yy) * W + xx] += drop;
    }
  for (int n = 0; n < N; ++n)
    for (size_t i = 0; i < HW; ++i) sum[n * HW + i] /= count[i];
  return every_channel(sum, N, C, HW).reshaped(x.shape());
}

Tensor occlusion_map(Graph& g, const Tensor& x, const Target& target, const OcclusionOptions& o) {
  require_images(x, "occlusion-map");
  const int N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int win = o.window > 0 ? o.window : default_window(H, W);
  check_occlusion(g, x, target, o, win, "occlusion-map");
  std::vector<Window> windows;
  for (int y = 0; y < H; ++y)
    for (int xx = 0; xx < W; ++xx) {
      const int y0 = y - win / 2, x0 = xx - win / 2;
      windows.push_back({std::max(0, y0), std::max(0, x0), std::min(H, y0 + win), std::min(W, x0 + win)});
    }
  const std::vector<float> s = occluded_scores(g, x, target, windows, o);
  return every_channel(std::vector<double>(s.begin(), s.end()), N, C, size_t(H) * W).reshaped(x.shape());
}

void rise_mask(Rng& rng, int s, float p, int H, int W, float* mask) {
  const int ch = (H + s - 1) / s, cw = (W + s - 1) / s;
  const int UH = (s + 1) * ch, UW = (s + 1) * cw;
  std::vector<float> grid(size_t(s) * s), up(size_t(UH) * UW);
  for (float& v : grid) v = rng.uniform() < p ? 1.f : 0.f;
  resize_bilinear(grid.data(), s, s, up.data(), UH, UW);
  const int dy = int(rng.below(uint32_t(ch))), dx = int(rng.below(uint32_t(cw)));
  for (int y = 0; y < H; ++y) std::copy_n(up.data() + size_t(y + dy) * UW + dx, W, mask + size_t(y) * W);
}

Tensor rise(Graph& g, const Tensor& x, const Target& target, const RiseOptions& o) {
  require_images(x, "rise");
  if (o.masks < 1 || o.grid < 1 || o.batch < 1 || !(o.p > 0 && o.p <= 1))
    throw std::invalid_argument("rise: needs n ≥ 1, s ≥ 1, batch ≥ 1 and 0 < p ≤ 1");
  const int N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  // Cells smaller than a pixel mean nothing, and each mask is drawn at (s+1)² cells whatever the
  // input: s=4096 on 12×12 took half a second per mask. The default 7 runs on any input.
  if (o.grid > std::max({H, W, 7}))
    throw std::invalid_argument("rise: s=" + std::to_string(o.grid) + " cells a side is more than the input's " +
                                std::to_string(H) + "x" + std::to_string(W) + " pixels (at most " +
                                std::to_string(std::max({H, W, 7})) + ")");
  const size_t HW = size_t(H) * W, CHW = C * HW;
  std::vector<double> sal(N * HW, 0.0);
  Rng rng(o.seed);
  std::vector<float> masks;
  // Masks are drawn a batch at a time (memory stays at `batch` masks for any N), each batch
  // scoring every sample, so all samples see the same mask sequence.
  for (int m0 = 0; m0 < o.masks; m0 += o.batch) {
    const int B = std::min(o.batch, o.masks - m0);
    masks.resize(B * HW);
    for (int b = 0; b < B; ++b) rise_mask(rng, o.grid, o.p, H, W, masks.data() + b * HW);
    Tensor batch({B, C, H, W});
    for (int n = 0; n < N; ++n) {
      const float* xn = x.data() + n * CHW;
      for (int b = 0; b < B; ++b)
        for (int c = 0; c < C; ++c) {
          float* d = batch.data() + b * CHW + c * HW;
          const float* m = masks.data() + b * HW;
          for (size_t i = 0; i < HW; ++i) d[i] = xn[c * HW + i] * m[i];
        }
      std::vector<float> s = target_scores(g, batch, target.gather(std::vector<int>(B, n)), true);
      double* acc = sal.data() + n * HW;
      for (int b = 0; b < B; ++b) {
        const float* m = masks.data() + b * HW;
        for (size_t i = 0; i < HW; ++i) acc[i] += double(s[b]) * m[i];
      }
    }
  }
  Tensor out({N, 1, H, W});
  const double norm = double(o.masks) * o.p;
  for (size_t i = 0; i < out.size(); ++i) out[i] = float(sal[i] / norm);
  return out;
}

static const char* const kOccluderBaseline =
    "the occluder's value in the model's input space: one number for every channel (Captum's default 0), or one "
    "per channel V0,V1,...; glassbox explain and Python default to black and take black, white, gray, mean or a "
    "number as pixels, through the model's normalization (per channel when it is)";

// baseline=V or V0,V1,... (one per channel).
static void read_occluder(ParamReader& pr, OcclusionOptions& o) {
  const std::string text = pr.text("baseline");
  const std::vector<float> values = channel_values(text, pr.method() + ": baseline=" + text);
  if (values.size() == 1) o.baseline = values[0];
  else o.channel_baseline = values;
}

void add_perturbation_methods(std::vector<Method>& registry) {
  registry.push_back(
      {{"occlusion", "Occlusion: mean drop of the target logit over the windows covering each pixel",
        {{"window", "0", "square window side; 0: max(2, min(H,W)/7) within the input, 4 on 28×28", 0, 1e9},
         {"stride", "0", "window step, at most the window; 0: max(1, window/2)", 0, 1e9},
         {"baseline", "0", kOccluderBaseline},
         {"batch", "256", "occluded copies per forward pass", 1, 65536},
         {"output", "logit", "what drops: logit (Captum) or prob (the class's softmax probability, Zeiler & Fergus)"}},
        "Zeiler & Fergus 2014 / Captum Occlusion with a (C,w,w) window and logits: windows at k·stride, "
        "⌈(D−w)/s⌉+1 per axis, the last clamped inside (Captum crops it; equal when s divides D−w). "
        "The same map in every channel."},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader& pr) {
         OcclusionOptions o;
         o.window = pr.integer("window");
         o.stride = pr.integer("stride");
         read_occluder(pr, o);
         o.batch = pr.integer("batch");
         const std::string output = pr.text("output");
         if (output != "logit" && output != "prob")
           throw std::invalid_argument("occlusion: output=" + output + ": use logit or prob");
         o.prob = output == "prob";
         if (o.window < 0) throw std::invalid_argument("occlusion: window must be ≥ 1 (0: automatic)");
         if (o.stride < 0) throw std::invalid_argument("occlusion: stride must be ≥ 1 (0: automatic)");
         return Result{occlusion(g, x, t, o), {}, true, {}};
       }});
  registry.push_back(
      {{"occlusion-map", "Zeiler & Fergus's occlusion map: the class's probability with the occluder centred on each pixel",
        {{"window", "0", "square occluder side; 0: max(2, min(H,W)/7) within the input, 4 on 28×28", 0, 1e9},
         {"baseline", "0", kOccluderBaseline},
         {"batch", "256", "occluded copies per forward pass", 1, 65536},
         {"output", "prob", "what is mapped: prob (the class's softmax probability, as the paper) or logit"}},
        "Zeiler & Fergus 2014, Fig. 7 (b, d): one occluded copy per pixel, the occluder centred there (rows "
        "y-floor(w/2) .. y-floor(w/2)+w-1, clipped to the image); a score, not a drop: low values mark what the "
        "class needs. Captum has no such map (its Occlusion averages drops). The same map in every channel."},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader& pr) {
         OcclusionOptions o;
         o.window = pr.integer("window");
         read_occluder(pr, o);
         o.batch = pr.integer("batch");
         const std::string output = pr.text("output");
         if (output != "logit" && output != "prob")
           throw std::invalid_argument("occlusion-map: output=" + output + ": use prob or logit");
         o.prob = output == "prob";
         return Result{occlusion_map(g, x, t, o), {}, !o.prob, {}};
       }});
  registry.push_back(
      {{"rise", "RISE: saliency = Σ P_c(x ⊙ M) M / (N·p) over random smooth masks",
        {{"n", "2000", "number of masks", 1, 100000},
         {"s", "7", "grid size (at most the input's larger side, or 7)", 1, 4096},
         {"p", "0.5", "probability of keeping a grid cell (above 0)", 1e-6, 1},
         explain::seed_param("0", "mask generator seed"),
         {"batch", "256", "masked copies per forward pass", 1, 65536}},
        "Petsiuk et al. 2018 with P_c the softmax probability (a unit of a layer: its value) (Captum has no RISE); "
        "masks bilinearly upsampled "
        "(align_corners=False, clamped borders) and randomly shifted; the same masks for every sample; the map is "
        "broadcast over the input's channels."},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader& pr) {
         RiseOptions o;
         o.masks = pr.integer("n");
         o.grid = pr.integer("s");
         o.p = float(pr.number("p"));
         o.seed = uint64_t(pr.integer("seed"));
         o.batch = pr.integer("batch");
         require_images(x, "rise");
         return Result{broadcast_channels(rise(g, x, t, o), x.dim(1)), {}, false, {}};
       }});
}

}  // namespace gb::explain
