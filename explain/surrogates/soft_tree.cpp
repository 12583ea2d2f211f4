#include "explain/surrogates/soft_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/argmax.h"
#include "explain/common/plot.h"
#include "explain/surrogates/drawing.h"

namespace gb::explain::surrogates {

int soft_tree_node(const Graph& g) {
  for (int i = 0; i < g.size(); ++i)
    if (dynamic_cast<const SoftTree*>(&g.layer(i))) return i;
  return -1;
}

std::vector<int> Routing::path(int n, int depth) const {
  std::vector<int> nodes;
  for (int m = (1 << depth) - 1 + leaf.at(n); m > 0; m = (m - 1) / 2) nodes.push_back(m);
  nodes.push_back(0);
  std::reverse(nodes.begin(), nodes.end());
  return nodes;
}

Routing route(Graph& g, int tree_node, const Tensor& x, int batch) {
  const auto* tree = dynamic_cast<const SoftTree*>(&g.layer(tree_node));
  if (!tree) throw std::invalid_argument("layer " + g.layer(tree_node).name + " is not a soft tree");
  const int from = g.node(tree_node).inputs[0], N = x.batch(), I = tree->inner(), M = tree->nodes();
  Routing r;
  r.right = Tensor({N, I});
  r.reach = Tensor({N, M});
  r.leaf.resize(N);
  ForwardOptions fo;
  fo.until = from;
  Tensor right, reach;
  for (int b = 0; b < N; b += batch) {
    const int e = std::min(N, b + batch);
    const Tensor xb = x.slice(b, e);
    tree->routes(from < 0 ? xb : g.forward(xb, fo), right, reach);
    std::copy_n(right.data(), right.size(), r.right.data() + size_t(b) * I);
    std::copy_n(reach.data(), reach.size(), r.reach.data() + size_t(b) * M);
  }
  for (int n = 0; n < N; ++n) {
    const float* P = r.reach.data() + size_t(n) * M + I;
    r.leaf[n] = int(std::max_element(P, P + tree->leaf_count()) - P);
  }
  return r;
}

std::vector<int> max_path_predictions(const SoftTree& tree, const Routing& r) {
  const Tensor Q = tree.leaf_distributions();
  const int K = tree.classes;
  std::vector<int> out(r.leaf.size());
  for (size_t n = 0; n < r.leaf.size(); ++n) {
    const float* q = Q.data() + size_t(r.leaf[n]) * K;
    out[n] = argmax(q, K);
  }
  return out;
}

static std::string class_name(const std::vector<std::string>& classes, int k) {
  return k < int(classes.size()) ? classes[k] : std::to_string(k);
}

nlohmann::json tree_json(const SoftTree& tree, const std::vector<std::string>& classes, const Shape& filter_shape) {
  const Shape fs = display_shape(tree.features, filter_shape);
  const Tensor Q = tree.leaf_distributions();
  const int I = tree.inner(), K = tree.classes;
  nlohmann::json names = nlohmann::json::array();
  for (int k = 0; k < K; ++k) names.push_back(class_name(classes, k));
  nlohmann::json nodes = nlohmann::json::array();
  for (int m = 0; m < tree.nodes(); ++m) {
    int d = 0;
    for (int v = m + 1; v > 1; v >>= 1) ++d;
    nlohmann::json j = {{"id", m}, {"depth", d}};
    if (m < I) {
      const float* w = tree.weight.value.data() + size_t(m) * tree.features;
      j["kind"] = "inner";
      j["left"] = 2 * m + 1;
      j["right"] = 2 * m + 2;
      j["bias"] = tree.bias.value[m];
      j["filter_shape"] = fs.vec();
      j["filter"] = std::vector<float>(w, w + tree.features);
    } else {
      const float* q = Q.data() + size_t(m - I) * K;
      const int top = argmax(q, K);
      j["kind"] = "leaf";
      j["leaf"] = m - I;
      j["distribution"] = std::vector<float>(q, q + K);
      j["class"] = top;
      j["class_name"] = class_name(classes, top);
    }
    nodes.push_back(j);
  }
  return {{"kind", "soft decision tree (Frosst & Hinton 2017)"},
          {"depth", tree.depth},
          {"beta", tree.beta},
          {"features", tree.features},
          {"classes", names},
          {"turn", "right with probability sigmoid(beta * (filter . x + bias)), left otherwise"},
          {"output", "log sum_l P_l(x) Q_l (path-weighted); maximum-probability path: argmax_l P_l(x), then Q_l"},
          {"nodes", nodes}};
}

namespace {

std::string fixed(double v, int decimals) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

Tensor filter_of(const SoftTree& tree, int node, const Shape& fs) {
  Tensor w({tree.features});
  std::copy_n(tree.weight.value.data() + size_t(node) * tree.features, tree.features, w.data());
  return w.reshaped(fs);
}

// Cell sizes: filters enlarged to about 56 pixels wide (at least 2x), leaves' bars as wide.
struct Layout {
  int cell_w, cell_h, gap = 12, label_h = line_height() + 2, row_gap = line_height() + 8;
};

Layout layout_for(const Shape& fs) {
  Layout L;
  const int scale = std::max(1, 56 / std::max(1, fs[2]));
  L.cell_w = std::clamp(fs[2] * scale, 24, 96);
  L.cell_h = std::clamp(fs[1] * scale, 8, 96);
  return L;
}

}  // namespace

Image tree_figure(const SoftTree& tree, const Shape& filter_shape, const std::vector<std::string>& classes,
                  const Routing& r, int n, const Tensor& pixels_n, int levels) {
  const Shape fs = display_shape(tree.features, filter_shape);
  const Layout L = layout_for(fs);
  const int D = tree.depth, I = tree.inner(), K = tree.classes;
  const int shown = std::clamp(levels, 1, D);  // inner levels in the overview
  const bool with_leaves = shown == D;
  const int bottom = with_leaves ? 1 << D : 1 << (shown - 1);  // nodes on the overview's widest row
  // A leaf's slot holds its class's name when there are at most 8 leaves, about 6 characters beyond.
  int name_w = 0;
  for (const std::string& c : classes) name_w = std::max(name_w, text_width(c) + 12);
  const int slot = std::max(L.cell_w + L.gap, with_leaves ? std::clamp(name_w, 60, (1 << D) <= 8 ? 110 : 60) : 0);
  const std::vector<int> path = r.path(n, D);
  const Tensor Q = tree.leaf_distributions();
  const float* right = r.right.data() + size_t(n) * I;
  const int leaf = r.leaf.at(n);
  const float* q_leaf = Q.data() + size_t(leaf) * K;
  const int predicted = argmax(q_leaf, K);

  const int lh = line_height(), row_h = L.label_h + L.cell_h + L.row_gap, title_h = 2 * lh + 16;
  const int overview_w = bottom * slot + 2 * L.gap;
  const int strip_cells = D + 2;  // the input, D nodes, the leaf
  // The path strip's cells, wide enough that "p(R) 1.00" stays clear of its neighbour's.
  const int step = std::max(L.cell_w + 2 * L.gap, text_width("p(R) 0.00") + 12);
  const int strip_w = strip_cells * step + 2 * L.gap;
  const int rows = shown + (with_leaves ? 1 : 0);
  const int strip_y = title_h + rows * row_h + lh + 10;
  const int strip_top = lh + L.label_h + 4;  // the strip's title line and its cells' labels
  const std::string title = "soft decision tree: depth " + std::to_string(D) + ", beta " + fixed(tree.beta, 2) + ", " +
                            std::to_string(1 << D) + " leaves, filters w_i in blue (-) / red (+), each on its own scale";
  const std::string subtitle =
      "input #" + std::to_string(n) + "'s maximum-probability path in red; leaves: bars of Q per class (a full box = 1)";
  const std::string turn_note = "p(R): the probability of turning right, sigmoid(beta (w_i . x + b_i))";
  const int W = std::max({overview_w, strip_w, 640, text_width(title) + 2 * L.gap, text_width(subtitle) + 2 * L.gap,
                          text_width(turn_note) + 2 * L.gap});
  const int H = strip_y + strip_top + L.cell_h + 3 + 3 * lh + 14;
  Image im(W, H);

  text(im, L.gap, 6, title, kBlack, W - 2 * L.gap);
  text(im, L.gap, 6 + lh, subtitle, kRed, W - 2 * L.gap);

  // Overview: node (d, j) centred in its share of the width.
  const int ox = (W - overview_w) / 2;  // the overview centred (a shallow tree sat at the left)
  auto centre_x = [&](int d, int j) { return ox + L.gap + int((j + 0.5) * double(bottom * slot) / (1 << d)); };
  auto top_y = [&](int d) { return title_h + d * row_h + L.label_h; };
  auto on_path = [&](int node) { return std::find(path.begin(), path.end(), node) != path.end(); };
  for (int d = 0; d < rows; ++d) {
    const bool leaf_row = with_leaves && d == D;
    for (int j = 0; j < (1 << d); ++j) {
      const int node = (1 << d) - 1 + j, cx = centre_x(d, j), y = top_y(d);
      const int w = leaf_row ? std::min(L.cell_w, slot - 6) : L.cell_w, x = cx - w / 2;
      if (d > 0) {  // the edge from the parent
        const int parent = (node - 1) / 2, pd = d - 1, pj = parent - ((1 << pd) - 1);
        const bool red = on_path(node);
        line(im, centre_x(pd, pj), top_y(pd) + L.cell_h + 2, cx, leaf_row ? y - 2 : y - L.label_h - 1, red ? kRed : kLight,
             red ? 3 : 1);  // (leaves have no label above them)
      }
      if (leaf_row) {
        const int l = node - I;
        std::vector<float> q(Q.data() + size_t(l) * K, Q.data() + size_t(l + 1) * K);
        paste(im, distribution_bars(q, w, L.cell_h, on_path(node) ? kRed : kBlue), x, y);
        // The box a probability of 1 fills: near-uniform leaves' bars are a few pixels tall, under an
        // edge that seemed to end in empty space.
        if (!on_path(node)) frame(im, x, y, x + w, y + L.cell_h, kLight, 1);
        const int top = argmax(q.data(), int(q.size()));
        text_centred(im, cx, y + L.cell_h + 3, class_name(classes, top), kBlack, slot - 10);  // a gap between leaves
      } else {
        paste(im, signed_map(filter_of(tree, node, fs), w, L.cell_h), x, y);
        text_centred(im, cx, y - L.label_h + 2, "#" + std::to_string(node), kGray, slot);
      }
      if (on_path(node)) frame(im, x, y, x + w, y + L.cell_h, kRed, 2);
    }
  }
  if (!with_leaves)
    for (int j = 0; j < (1 << (shown - 1)); ++j)
      text_centred(im, centre_x(shown - 1, j), top_y(shown - 1) + L.cell_h + 4, "...", kGray);

  // The path strip.
  int y = strip_y;
  text(im, L.gap, y,
       "input #" + std::to_string(n) + ": leaf " + std::to_string(leaf) + " (path probability " +
           fixed(r.reach[size_t(n) * tree.nodes() + I + leaf], 3) + ") predicts " + class_name(classes, predicted),
       kBlack, W - 2 * L.gap);
  y += strip_top;
  int x = L.gap;
  text(im, x, y - L.label_h, "input", kBlack, step - 4);
  paste(im, pixels(pixels_n, L.cell_w, L.cell_h), x, y);
  for (int d = 0; d < D; ++d) {
    x += step;
    const int node = path[d];
    const bool went_right = path[d + 1] == 2 * node + 2;
    paste(im, signed_map(filter_of(tree, node, fs), L.cell_w, L.cell_h), x, y);
    frame(im, x, y, x + L.cell_w, y + L.cell_h, kRed, 1);
    text(im, x, y - L.label_h, "#" + std::to_string(node), kBlack, step - 4);
    text(im, x, y + L.cell_h + 3, "p(R) " + fixed(right[node], 2), kBlack, step - 2);
    text(im, x, y + L.cell_h + 3 + lh, went_right ? "-> right" : "-> left", kRed, step - 2);
  }
  x += step;
  paste(im, distribution_bars(std::vector<float>(q_leaf, q_leaf + K), L.cell_w, L.cell_h, kRed), x, y);
  frame(im, x, y, x + L.cell_w, y + L.cell_h, kLight, 1);
  text(im, x, y - L.label_h, "leaf " + std::to_string(leaf), kBlack, step - 4);
  text(im, x, y + L.cell_h + 3, class_name(classes, predicted), kBlack, W - x - 2);  // the last cell: room to its right
  text(im, x, y + L.cell_h + 3 + lh, "Q " + fixed(q_leaf[predicted], 2), kBlack, step - 2);
  text(im, L.gap, y + L.cell_h + 3 + 2 * lh + 4, turn_note, kGray, W - 2 * L.gap);
  // Each filter is drawn on its own scale (its channels summed, then divided by the largest |value|).
  return beside(im, {colorbar_image("bwr", -1, 1, std::clamp(H - 40, 140, 360), "w_i / max |w_i|")});
}

}  // namespace gb::explain::surrogates
