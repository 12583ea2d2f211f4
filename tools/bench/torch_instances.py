#!/usr/bin/python3
"""Captum-style references for `glassbox bench --compare-torch` (instances family) and an agreement
check of `glassbox influence` (Debian's python3-torch and numpy; Captum is not needed).

Re-implements in plain PyTorch/NumPy what the reference libraries compute, the way they compute it:
  influence  Captum's NaiveInfluenceFunction on the last Linear layer: the Hessian of the summed loss
             by torch.autograd.functional.hessian over the flattened layer parameters, batch by batch;
             its eigendecomposition with hessian_reg added, every eigenvalue above the tolerance kept;
             per-sample Jacobians by the sample-wise-grads-per-batch rule (grad_output x input) as
             influence embeddings; score = train embedding . test embedding.
  lissa      Koh & Liang's get_inverse_hvp_lissa over all parameters with autograd Hessian-vector
             products (double backward) on batches of one, then the training gradients' dot products.
  tracin     Captum's TracInCP over 3 checkpoints, all Conv2d/Linear parameters: per-sample
             Jacobians by grad_output x input (Linear) and grad_output x unfold(input) (Conv2d), as
             Captum's sample_wise_grads_per_batch, dotted with the test Jacobian times the rate.
  mmd        BeenKim/MMD-critic's greedy_select_protos and select_criticism_regularized (logdet) on a
             dense RBF kernel matrix of one class (NumPy, as Kim's code with sklearn's rbf_kernel).
Timing (--bench): random inputs and models (throughput does not depend on the values); prints one
JSON object per line: {"what", "detail", "per_second"} (training points per second). The Captum
influence and TracIn runs cost the same per training point at any size (every point's Hessian share
or Jacobian is computed the same way), so they are timed on --influence-train and --tracin-train
points (the naive Hessian takes about 20 s per 1,000 points on 2 cores); LiSSA's recursion is a
fixed cost, so it runs on the whole --train set.

Check (--check): for a glassbox model file and a .npy dataset, prints the max relative difference
of glassbox's influence scores (last layer, exact) and TracIn scores (one checkpoint, lr 1) from
these references.

  tools/bench/torch_instances.py --bench --threads 2 --train 60000
  glassbox influence --model m.safetensors --data npy:X.npy,Y.npy --split test --index 0:3 \
      --method influence,tracin --checkpoints m.safetensors --param lr=1 --out out/
  tools/bench/torch_instances.py --check --model m.safetensors --npy X.npy,Y.npy --tests 3 \
      --influence-scores out/influence_scores.npy --tracin-scores out/tracin_scores.npy
"""
import argparse, json, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_baseline import lenet5  # noqa: E402


def emit(what, detail, per_second):
    print(json.dumps({"what": what, "detail": detail, "per_second": per_second}), flush=True)


# --- Captum NaiveInfluenceFunction, last layer -------------------------------------------------

def last_layer_hessian(body, last, x, y, batch):
    """Σ over batches of torch.autograd.functional.hessian of the summed loss in the flattened
    last-layer parameters (Captum's _compute_dataset_func with torch.autograd.functional.hessian)."""
    W, b = last.weight.detach(), last.bias.detach()
    flat = torch.cat([W.flatten(), b])
    H = None
    for i in range(0, len(x), batch):
        with torch.no_grad():
            feats = body(x[i:i + batch])
        yb = y[i:i + batch]

        def loss(p):
            out = F.linear(feats, p[:W.numel()].view_as(W), p[W.numel():])
            return F.cross_entropy(out, yb, reduction="sum")

        h = torch.autograd.functional.hessian(loss, flat)
        H = h if H is None else H + h
    return H


def influence_embeddings(body, last, x, y, batch):
    """Per-sample last-layer gradients (grad_output x input, with the bias), [N, P]."""
    rows = []
    for i in range(0, len(x), batch):
        with torch.no_grad():
            feats = body(x[i:i + batch])
            g = torch.softmax(last(feats), 1)
            g[torch.arange(len(g)), y[i:i + batch]] -= 1
            rows.append(torch.cat([(g[:, :, None] * feats[:, None, :]).flatten(1), g], 1))
    return torch.cat(rows)


def naive_influence(model, x, y, xt, yt, hessian_reg, tol=1e-5, batch=1024):
    body, last = model[:-1], model[-1]
    H = last_layer_hessian(body, last, x, y, batch)
    ls, vs = torch.linalg.eigh(H.double() + hessian_reg * torch.eye(len(H), dtype=torch.float64))
    keep = ls > tol
    R = vs[:, keep] * ls[keep] ** -0.5  # H^-1 ≈ R R^T
    train = influence_embeddings(body, last, x, y, batch).double() @ R
    test = influence_embeddings(body, last, xt, yt, batch).double() @ R
    return test @ train.T  # [tests, N]


# --- per-sample Jacobians of every Conv2d/Linear layer (Captum's sample_wise_grads_per_batch) ----

def per_sample_jacobians(model, x, y):
    """[N, P]: each sample's gradient of its own cross-entropy, for every Conv2d and Linear layer
    in parameter order, from grad_output x input (Linear) and grad_output x unfold(input) (Conv2d)."""
    inputs, outputs, layers = [], [], []
    h = x
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            inputs.append(h)
            h = m(h)
            h.retain_grad()
            outputs.append(h)
            layers.append(m)
        else:
            h = m(h)
    F.cross_entropy(h, y, reduction="sum").backward()
    parts = []
    for a, o, m in zip(inputs, outputs, layers):
        g = o.grad
        if isinstance(m, nn.Linear):
            parts += [torch.einsum("no,ni->noi", g, a).flatten(1), g]
        else:
            cols = F.unfold(a, m.kernel_size, padding=m.padding, stride=m.stride)
            parts += [torch.einsum("nol,nkl->nok", g.flatten(2), cols).flatten(1), g.sum((2, 3))]
    return torch.cat(parts, 1).detach()


def tracin(models_and_rates, x, y, xt, yt, batch=1024):
    scores = torch.zeros(len(xt), len(x))
    for model, lr in models_and_rates:
        test = per_sample_jacobians(model, xt, yt)
        for i in range(0, len(x), batch):
            scores[:, i:i + batch] += lr * (test @ per_sample_jacobians(model, x[i:i + batch], y[i:i + batch]).T)
    return scores


# --- Koh & Liang's LiSSA with autograd Hessian-vector products ---------------------------------

def lissa(model, x, y, xt, yt, depth, scale, damping, seed=0, batch=1024):
    params = [p for p in model.parameters()]
    test = per_sample_jacobians(model, xt, yt)[0]
    v = test.clone()
    h = v.clone()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    for j in range(depth):
        i = order[j % len(x)]
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1], reduction="sum")
        grads = torch.autograd.grad(loss, params, create_graph=True)
        flat_grad = torch.cat([q.flatten() for q in grads])
        hv = torch.autograd.grad(flat_grad @ h, params)
        hv = torch.cat([q.flatten() for q in hv])
        h = v + (1 - damping / scale) * h - hv / scale
    s = h / scale
    scores = torch.zeros(len(x))
    for i in range(0, len(x), batch):
        scores[i:i + batch] = per_sample_jacobians(model, x[i:i + batch], y[i:i + batch]) @ s / len(x)
    return scores


# --- Kim's MMD-critic --------------------------------------------------------------------------

def rbf_kernel(X, gamma):
    sq = (X * X).sum(1)
    return np.exp(-gamma * np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0))


def greedy_select_protos(K, m):
    n = K.shape[0]
    colsum = 2 * np.sum(K, axis=0) / n
    selected = np.array([], dtype=int)
    for _ in range(m):
        candidates = np.setdiff1d(range(n), selected)
        s1 = colsum[candidates]
        if len(selected) > 0:
            s2 = (np.sum(K[selected, :][:, candidates], axis=0) * 2 + np.diagonal(K)[candidates]) / (len(selected) + 1)
            s1 = s1 - s2
        else:
            s1 = s1 - np.abs(np.diagonal(K)[candidates])
        selected = np.append(selected, candidates[np.argmax(s1)])
    return selected


def select_criticism_regularized(K, protos, m):
    n = K.shape[0]
    selected = np.array([], dtype=int)
    candidates2 = np.setdiff1d(range(n), protos)
    inverse = None
    colsum = np.sum(K, axis=0) / n
    for _ in range(m):
        candidates = np.setdiff1d(candidates2, selected)
        s1 = np.abs(colsum[candidates] - np.sum(K[protos, :][:, candidates], axis=0) / len(protos))
        if inverse is not None:
            temp = K[selected, :][:, candidates]
            s1 = s1 + np.log(np.abs(np.diagonal(K)[candidates] - np.sum(np.dot(inverse, temp) * temp, axis=0)))
        else:
            s1 = s1 - np.log(np.abs(np.diagonal(K)[candidates]))
        selected = np.append(selected, candidates[np.argmax(s1)])
        inverse = np.linalg.inv(K[selected, :][:, selected])
    return selected


# --- modes ---------------------------------------------------------------------------------------

def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(a):
    torch.manual_seed(0)
    N = a.train
    x, y = torch.rand(N, 1, 28, 28), torch.randint(0, 10, (N,))
    xt, yt = torch.rand(1, 1, 28, 28), torch.tensor([3])
    model = lenet5().eval()
    for p in model.parameters():
        p.requires_grad_(True)
    whats = a.what.split(",")
    if "influence" in whats:
        n = min(N, a.influence_train)
        t = timed(lambda: naive_influence(model, x[:n], y[:n], xt, yt, hessian_reg=n * 0.01))
        emit("influence", "last layer", n / t)
    if "lissa" in whats:
        t = timed(lambda: lissa(model, x, y, xt, yt, a.lissa_depth, a.lissa_scale, 0.01))
        emit("influence", "all parameters, lissa", N / t)
    if "tracin" in whats:
        ckpts = []
        for seed in (1, 2, 3):
            torch.manual_seed(seed)
            ckpts.append((lenet5().eval(), 0.01))
        n = min(N, a.tracin_train)
        t = timed(lambda: tracin(ckpts, x[:n], y[:n], xt, yt))
        emit("tracin", "3 checkpoints", n / t)
    if "mmd" in whats:
        X = np.random.default_rng(0).random((a.mmd_points, 784))

        def run():
            K = rbf_kernel(X, 1.0 / 784)
            protos = greedy_select_protos(K, 10)
            select_criticism_regularized(K, protos, 5)

        emit("mmd-critic", "one class", a.mmd_points / timed(run))


def check(a):
    """glassbox influence --data npy:X.npy,Y.npy trains on the samples i % 5 != 4 and takes its test
    inputs (--split test --index 0:T) from the others, both normalized as the model was trained."""
    from torch_reference import build_model
    model, _, norm = build_model(a.model)
    for p in model.parameters():
        p.requires_grad_(True)
    xs, ys = a.npy.split(",")
    X, Y = np.load(xs), torch.from_numpy(np.load(ys)).long()
    X = torch.from_numpy(X).float() / (255.0 if X.dtype == np.uint8 else 1.0)  # as glassbox's npy: reader
    if X.dim() == 3:
        X = X[:, None]
    if norm:
        X = (X - torch.tensor(norm["mean"])[None, :, None, None]) / torch.tensor(norm["std"])[None, :, None, None]
    idx = torch.arange(len(X))
    x, y = X[idx % 5 != 4], Y[idx % 5 != 4]
    xt, yt = X[idx % 5 == 4][:a.tests], Y[idx % 5 == 4][:a.tests]
    out = {}
    if a.influence_scores:  # (H_sum + n λ)⁻¹ = (1/n)(H_mean + λ)⁻¹: glassbox's score needs no other factor
        ref = naive_influence(model, x, y, xt, yt, hessian_reg=len(x) * a.damping, tol=-1.0)
        got = torch.from_numpy(np.load(a.influence_scores)).double()
        out["influence"] = float((got - ref).abs().max() / ref.abs().max())
    if a.tracin_scores:
        ref = tracin([(model, 1.0)], x, y, xt, yt).double()
        got = torch.from_numpy(np.load(a.tracin_scores)).double()
        out["tracin"] = float((got - ref).abs().max() / ref.abs().max())
    print(json.dumps({"max_relative_difference": out}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", type=int, default=60000)
    ap.add_argument("--influence-train", type=int, default=4000)
    ap.add_argument("--tracin-train", type=int, default=12000)
    ap.add_argument("--what", default="influence,lissa,tracin,mmd")
    ap.add_argument("--lissa-depth", type=int, default=5000)
    ap.add_argument("--lissa-scale", type=float, default=25.0)
    ap.add_argument("--mmd-points", type=int, default=6000)
    ap.add_argument("--model")
    ap.add_argument("--npy", help="X.npy,Y.npy as given to glassbox influence --data npy:X.npy,Y.npy")
    ap.add_argument("--tests", type=int, default=3, help="test inputs: --split test --index 0:TESTS")
    ap.add_argument("--influence-scores")
    ap.add_argument("--tracin-scores")
    ap.add_argument("--damping", type=float, default=0.01)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check:
        if not (a.model and a.npy and (a.influence_scores or a.tracin_scores)):
            ap.error("--check compares a glassbox influence run: give --model, --npy X.npy,Y.npy and "
                     "--influence-scores and/or --tracin-scores (see this file's docstring)")
        check(a)
    elif a.bench:
        bench(a)
    else:
        ap.error("give --bench (time the references) or --check (compare with glassbox's scores)")


if __name__ == "__main__":
    sys.exit(main())
