#!/usr/bin/python3
"""Quantus-style reference for the metrics rows of `glassbox bench --compare-torch` (Debian's python3-torch
and numpy; Quantus itself is used when it can be imported, which it cannot here: it is not packaged).

Re-implements, in plain PyTorch/NumPy, the way Quantus evaluates these metrics -- its per-step loop over a batch
of `batch_size` inputs, with its NumPy perturbation functions (a copy of the batch and every baseline statistic of
utils.get_baseline_dict per call), its no-change check of every perturbed input (np.allclose), and its
ModelInterface.predict (NumPy -> torch.Tensor, no_grad forward, softmax, back to NumPy):
  deletion+insertion  RISE's deletion (black: the sample's min) and insertion (from a Gaussian blur, sigma 5 px)
                      curves of 784 one-pixel steps, computed with that loop; AUC by trapezoid over [0, 1]
  pixel-flipping      Quantus PixelFlipping (features_in_step 1, black, softmax, return_auc_per_sample)
  max-sensitivity     Quantus MaxSensitivity (200 samples of U(-0.2, 0.2), Frobenius norms) of the gradient
  mprt                Quantus MPRT (cascading top-down, reset_parameters, Spearman of |a| per sample)
on the model, inputs, labels and saliency attributions that glassbox wrote to --dir (lenet5.safetensors, x.npy,
y.npy, a.npy). Prints one JSON object per line: {"row", "images", "seconds", "per_second", "values"}, where
"values" names a JSON file in --dir holding the row's per-sample values (lists by name), with which glassbox
reports how far its numbers are from these.
Ties in attribution order are broken by feature index (np.argsort kind="stable"), as glassbox does.
"""
import argparse, copy, json, math, os, sys, time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import build_model  # noqa: E402  (the safetensors reader of the attribution reference)


def predict(model, x, softmax=True):  # quantus PyTorchModel.predict
    with torch.no_grad():
        out = model(torch.Tensor(x))
        if softmax:
            out = torch.softmax(out, dim=-1)
    return out.numpy()


def baseline_values(arr, kind):  # quantus utils.get_baseline_dict: every statistic is computed on each call
    fills = {"mean": arr.mean(axis=1), "uniform": np.random.uniform(0.0, 1.0, size=arr.shape[0]),
             "black": arr.min(axis=1), "white": arr.max(axis=1)}
    return fills[kind]


def replace_by_indices(arr, idx, kind):  # quantus batch_baseline_replacement_by_indices
    out = copy.copy(arr)
    out[np.arange(arr.shape[0])[:, None], idx] = baseline_values(arr, kind)[:, None]
    return out


def insert_by_indices(arr, src, idx):  # the same step for insertion: features taken from x
    out = copy.copy(arr)
    rows = np.arange(arr.shape[0])[:, None]
    out[rows, idx] = src[rows, idx]
    return out


def warn_no_change(xb, xp):  # quantus warn.warn_perturbation_caused_no_change, called per input and step
    for e, pe in zip(xb, xp):
        np.allclose(e, pe, equal_nan=True)


def normalise_by_max(a):  # quantus normalise_by_max over the whole batch
    return a / np.abs(a).max() if np.any(a != 0) else a


def blur(img, sigma=5.0):  # glassbox's blur baseline: separable Gaussian, truncated at 3 sigma, renormalised at borders
    r = max(1, math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    out = np.empty_like(img, dtype=np.float64)
    for n in range(img.shape[0]):
        for c in range(img.shape[1]):
            p = img[n, c].astype(np.float64)
            H, W = p.shape
            tmp = np.empty_like(p)
            for x in range(W):
                lo, hi = max(0, x - r), min(W, x + r + 1)
                w = k[lo - x + r:hi - x + r]
                tmp[:, x] = p[:, lo:hi] @ w / w.sum()
            for y in range(H):
                lo, hi = max(0, y - r), min(H, y + r + 1)
                w = k[lo - y + r:hi - y + r]
                out[n, c, y] = w @ tmp[lo:hi] / w.sum()
    return out.astype(np.float32)


def pixel_flipping(model, x, y, a, batch=64, step=1):
    aucs = []
    for b0 in range(0, len(x), batch):
        xb, yb, ab = x[b0:b0 + batch], y[b0:b0 + batch], normalise_by_max(a[b0:b0 + batch])
        B, D = len(xb), xb[0].size
        order = np.argsort(-ab.reshape(B, -1), axis=1, kind="stable")
        xp, preds = xb.reshape(B, -1).copy(), []
        for k in range(math.ceil(D / step)):
            xp = replace_by_indices(xp, order[:, k * step:(k + 1) * step], "black")
            warn_no_change(xb, xp.reshape(xb.shape))
            preds.append(predict(model, xp.reshape(xb.shape))[np.arange(B), yb])
        aucs += np.trapz(np.stack(preds, axis=1), dx=1, axis=1).tolist()
    return aucs


def deletion_insertion(model, x, y, a, batch=64):
    dele, ins = [], []
    for b0 in range(0, len(x), batch):
        xb, yb, ab = x[b0:b0 + batch], y[b0:b0 + batch], normalise_by_max(a[b0:b0 + batch])
        B, D = len(xb), xb[0].size
        order = np.argsort(-ab.reshape(B, -1), axis=1, kind="stable")
        flat = xb.reshape(B, -1)
        for start, out in ((flat.copy(), dele), (blur(xb).reshape(B, -1), ins)):
            xp = start.copy()
            preds = [predict(model, xp.reshape(xb.shape))[np.arange(B), yb]]
            for k in range(D):
                idx = order[:, k:k + 1]
                xp = replace_by_indices(xp, idx, "black") if out is dele else insert_by_indices(xp, flat, idx)
                warn_no_change(xb, xp.reshape(xb.shape))
                preds.append(predict(model, xp.reshape(xb.shape))[np.arange(B), yb])
            curve = np.stack(preds, axis=1)
            out += np.trapz(curve, dx=1.0 / D, axis=1).tolist()
    return dele, ins


def saliency(model, x, y):  # captum Saliency(abs=False) as an explain_func
    xt = torch.tensor(x, requires_grad=True)
    out = model(xt).gather(1, torch.as_tensor(y)[:, None]).sum()
    return torch.autograd.grad(out, xt)[0].numpy()


def max_sensitivity(model, x, y, a, batch=64, samples=200, bound=0.2):
    values = []
    for b0 in range(0, len(x), batch):
        xb, yb, ab = x[b0:b0 + batch], y[b0:b0 + batch], a[b0:b0 + batch]
        B = len(xb)
        ab = ab.reshape(B, -1)
        sims = np.full((B, samples), np.nan)
        for s in range(samples):
            flat = xb.reshape(B, -1)
            xp = flat + np.random.uniform(-bound, bound, size=flat.shape)  # quantus batch_uniform_noise
            xp = xp.reshape(xb.shape).astype(np.float32)
            warn_no_change(xb, xp)
            ap = saliency(model, xp, yb).reshape(B, -1)
            sims[:, s] = np.linalg.norm(ab - ap, axis=-1) / np.linalg.norm(ab, axis=-1)
        values += np.nanmax(sims, axis=1).tolist()
    return values


def ranks(v):  # scipy.stats.rankdata(method="average") per row
    out = np.empty(v.shape, dtype=np.float64)
    for i, row in enumerate(v):
        order = np.argsort(row, kind="stable")
        sorted_row = row[order]
        r = np.empty(len(row))
        start = 0
        while start < len(row):
            end = start + 1
            while end < len(row) and sorted_row[end] == sorted_row[start]:
                end += 1
            r[order[start:end]] = 0.5 * (start + end + 1)
            start = end
        out[i] = r
    return out


def spearman_rows(a, b):
    ra, rb = ranks(a), ranks(b)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    return (ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))


def mprt(model, x, y, batch=64, seed=42):
    def explain(m):  # quantus MPRT explain_batch with abs=True, normalise=True (per batch)
        out = []
        for b0 in range(0, len(x), batch):
            out.append(np.abs(normalise_by_max(saliency(m, x[b0:b0 + batch], y[b0:b0 + batch]))))
        return np.concatenate(out).reshape(len(x), -1)
    original = explain(model)
    scores = {"original": spearman_rows(original, explain(model)).tolist()}
    random_model = copy.deepcopy(model)
    layers = [m for m in random_model.modules() if hasattr(m, "reset_parameters")][::-1]
    for i, layer in enumerate(layers):  # cascading, top down
        torch.manual_seed(seed + 1)
        layer.reset_parameters()
        scores[str(i)] = spearman_rows(original, explain(random_model)).tolist()
    return np.mean([scores[k] for k in scores if k != "original"], axis=0).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="folder with lenet5.safetensors, x.npy, y.npy, a.npy from glassbox")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default="pixel-flipping,deletion+insertion,max-sensitivity,mprt")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    torch.manual_seed(0)
    try:
        import quantus  # noqa: F401
        print("torch_metrics.py: quantus is importable, but these rows use the re-implementation so that both sides "
              "see the same inputs and attributions", file=sys.stderr)
    except ImportError:
        pass
    model, _, _ = build_model(os.path.join(args.dir, "lenet5.safetensors"))
    for p in model.parameters():
        p.requires_grad_(False)
    x = np.load(os.path.join(args.dir, "x.npy")).astype(np.float32)
    y = np.load(os.path.join(args.dir, "y.npy")).astype(np.int64)
    a = np.load(os.path.join(args.dir, "a.npy")).astype(np.float32)
    for row in args.rows.split(","):
        t0 = time.perf_counter()
        extra = {}
        if row == "deletion+insertion":
            n = len(x)
            dele, ins = deletion_insertion(model, x, y, a)
            extra = {"deletion": dele, "insertion": ins}
        elif row == "pixel-flipping":
            n = 64
            extra = {"values": pixel_flipping(model, x[:n], y[:n], a[:n])}
        elif row == "max-sensitivity":
            n = 64
            extra = {"values": max_sensitivity(model, x[:n], y[:n], a[:n])}
        elif row == "mprt":
            n = 64
            extra = {"values": mprt(model, x[:n], y[:n])}
        else:
            sys.exit(f"torch_metrics.py: unknown row {row}")
        secs = time.perf_counter() - t0
        values = os.path.join(args.dir, row.replace("+", "_") + ".json")
        with open(values, "w") as f:
            json.dump(extra, f)
        print(json.dumps({"row": row, "images": n, "seconds": secs, "per_second": n / secs, "values": values}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
