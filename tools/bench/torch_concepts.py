#!/usr/bin/python3
"""PyTorch reference for `glassbox bench`'s concepts rows and a number-for-number check of `glassbox concepts`.

Captum's TCAV (captum.concept) is not packaged for Debian and scikit-learn is absent from Debian's
python3, so its computation is re-implemented here the way Captum runs it:
  - activations of every concept set at the layer (LayerActivation: a full forward with a hook), flattened;
  - per experimental set [concept, random_i] a DefaultClassifier: shuffle, hold out int(0.33 n), and
    sklearn's SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3) (hinge loss, "optimal" schedule,
    n_iter_no_change=5; re-implemented in NumPy float64 as sklearn's _plain_sgd runs it, one sample per
    step: a Python loop, slower than sklearn's Cython loop, so the CAV part of the reference is a
    lower bound on Captum's speed);
  - interpret(): the target logit's gradient at the layer for every input in one batch
    (LayerGradientXActivation(multiply_by_inputs=False)), then one batched matmul with the
    weight rows [-w, w] of every experimental set, sign_count = mean(S > 0).

--bench DIR     (glassbox bench writes DIR: model.safetensors, concepts.npy [C n, input...], pool.npy,
                inputs.npy, bench.json {layer, target, runs, random_size, concepts: C}) times that TCAV run: concepts
                vs random sets 1..R and random set 0 vs 1..R (random sets = consecutive blocks of the pool),
                and prints {"key", "per_second" (TCAV runs per second), "seconds", ...} per line: "tcav" (all of
                it) and "tcav-scores" (activations, gradients and scores without the CAV training).
                With "kind": "probe" in bench.json (train.npy, test.npy; labels i % classes) it times linear probes
                of every layer as plain PyTorch does them ("probe": probe runs per second): forward hooks on every
                module, per-feature standardization from a statistics pass, one nn.Linear per layer trained by
                torch.optim.Adam with a cosine schedule for one epoch of batches of 128, then accuracy on both
                splits. With "kind": "dissect" (images.npy, masks.npy [N, concepts, H, W], iou_<layer>.npy from
                glassbox) it times Network Dissection as NetDissect-Lite computes it, vectorized in PyTorch
                ("dissect": runs per second): activations by hooks, the per-unit (1 - quantile) quantile
                (numpy.percentile), F.interpolate(bilinear, align_corners=False), thresholded masks, and the
                intersections with every concept as one matrix product per unit block; max_iou_diff compares
                its IoUs with glassbox's.
                With "kind": "ace" (patches.npy [P, input...]) it times ACE's clustering step as ace.py runs it
                ("ace-cluster": runs per second): the patches' activations at the layer by a hook, channel means
                (ace.py's channel_mean), and sklearn's KMeans(n_clusters, n_init) re-implemented in PyTorch
                (scikit-learn is absent): greedy k-means++ (2 + ln k candidates drawn by D^2), Lloyd iterations
                to tol 1e-4 x mean variance, the least inertia of n_init restarts.
--check         compares `glassbox concepts` with PyTorch autograd number for number: given the model, the
                inputs (.npy pixels), glassbox's summary.json and its unit CAVs (cav_<concept>_<layer>.npy), it recomputes each run's
                sign count, magnitude and mean directional derivative and prints the largest differences
                (PASS below --tol). Run glassbox with --inputs npy:PIXELS.npy and give the same file here:
                the script applies the model's normalization as glassbox does.
"""
import argparse, json, os, sys, time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import build_model  # noqa: E402  (glassbox safetensors -> nn.Sequential)


def module_index(path, layer):
    """The index in build_model's Sequential of the module whose output is glassbox layer `layer`."""
    blob = open(path, "rb").read()
    n = int.from_bytes(blob[:8], "little")
    arch = json.loads(json.loads(blob[8:8 + n])["__metadata__"]["glassbox.architecture"])
    i = -1
    for L in arch["layers"]:
        i += {"gap": 2, "dropout": 0}.get(L["kind"], 1)
        if L["name"] == layer:
            return i
    sys.exit(f"{path}: no layer {layer}")


def activations(model, idx, x, batch=256):
    """Captum's LayerActivation: the module's output from a full forward, flattened."""
    out = []
    h = model[idx].register_forward_hook(lambda m, i, o: out.append(o.detach().flatten(1)))
    with torch.no_grad():
        for b in range(0, len(x), batch):
            model(x[b:b + batch])
    h.remove()
    return torch.cat(out)


def layer_gradients(model, idx, x, target):
    """LayerGradientXActivation(multiply_by_inputs=False): d logit_target / d layer output, [N, D]."""
    saved = []
    h = model[idx].register_forward_hook(lambda m, i, o: saved.append(o))
    out = model(x)
    h.remove()
    return torch.autograd.grad(out[:, target].sum(), saved[0])[0].flatten(1)


class SGDClassifier:
    """sklearn.linear_model.SGDClassifier(loss="hinge", alpha, max_iter, tol) for two classes, as _plain_sgd."""

    def __init__(self, alpha=0.01, max_iter=1000, tol=1e-3, n_iter_no_change=5, seed=0):
        self.alpha, self.max_iter, self.tol, self.n_iter_no_change = alpha, max_iter, tol, n_iter_no_change
        self.rng = np.random.RandomState(seed)

    def fit(self, X, y):  # y in {0, 1}; class 1 is the positive one (coef_ points to it)
        X = np.asarray(X, dtype=np.float64)
        yy = np.where(np.asarray(y) == 1, 1.0, -1.0)
        n, d = X.shape
        alpha = self.alpha
        typw = np.sqrt(1.0 / np.sqrt(alpha))
        eta0 = typw / max(1.0, 1.0)  # dloss(-typw, 1) = -1 for the hinge
        t0 = 1.0 / (eta0 * alpha)
        w, wscale, b, t = np.zeros(d), 1.0, 0.0, 1.0
        best, bad = np.inf, 0
        order = np.arange(n)
        for epoch in range(self.max_iter):
            self.rng.shuffle(order)
            sumloss = 0.0
            for i in order:
                x = X[i]
                p = wscale * w.dot(x) + b
                eta = 1.0 / (alpha * (t0 + t - 1))
                z = p * yy[i]
                sumloss += max(0.0, 1.0 - z)
                update = eta * yy[i] if z <= 1.0 else 0.0
                wscale *= max(0.0, 1.0 - eta * alpha)
                if wscale < 1e-9:
                    w *= wscale
                    wscale = 1.0
                if update != 0.0:
                    w += (update / wscale) * x
                    b += update
                t += 1
            bad = bad + 1 if sumloss > best - self.tol * n else 0
            best = min(best, sumloss)
            if bad >= self.n_iter_no_change:
                break
        self.coef_, self.intercept_, self.n_iter_ = w * wscale, b, epoch + 1
        return self

    def predict(self, X):
        return (np.asarray(X, np.float64) @ self.coef_ + self.intercept_ > 0).astype(int)


def default_classifier(xs, ys, seed):
    """Captum's DefaultClassifier.train_and_eval: shuffle, hold out int(0.33 n), fit, accuracy; weights [-w, w]."""
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(xs))
    n_test = int(0.33 * len(xs))
    test, train = order[:n_test], order[n_test:]
    lm = SGDClassifier(seed=seed).fit(xs[train], ys[train])
    acc = float((lm.predict(xs[test]) == ys[test]).mean())
    w = torch.from_numpy(lm.coef_).float()
    return torch.stack([-w, w]), acc


def tcav_run(model, idx, concepts, pool, inputs, target, runs, size, train_cavs=True, cavs_cache=None):
    """One TCAV run as Captum computes it; returns the sign counts [sets, 2] and the CAV weights."""
    randoms = [pool[i * size:(i + 1) * size] for i in range(runs + 1)]
    acts = [activations(model, idx, c) for c in concepts] + [activations(model, idx, r) for r in randoms]
    C = len(concepts)
    sets = [(c, C + r) for c in range(C) for r in range(1, runs + 1)] + [(C, C + r) for r in range(1, runs + 1)]
    if train_cavs:
        cavs = []
        for k, (a, b) in enumerate(sets):
            xs = torch.cat([acts[a], acts[b]]).numpy()
            ys = np.concatenate([np.ones(len(acts[a]), int), np.zeros(len(acts[b]), int)])  # concept id 1 > random id 0
            W, _ = default_classifier(xs, ys, k)
            cavs.append(W)
        cavs = torch.stack(cavs)  # [sets, 2, D]
    else:
        cavs = cavs_cache
    G = layer_gradients(model, idx, inputs, target)
    S = torch.matmul(G, cavs.transpose(1, 2))  # [sets, N, 2]
    return (S > 0).float().mean(1), cavs


def best_rate(fn, seconds, rounds=5):
    fn()  # warm-up
    best = 0.0
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            if time.perf_counter() - t0 >= seconds / rounds:
                break
        best = max(best, n / (time.perf_counter() - t0))
    return best


def module_indices(path):
    """Every glassbox layer's name -> the index of its output module in build_model's Sequential."""
    blob = open(path, "rb").read()
    n = int.from_bytes(blob[:8], "little")
    arch = json.loads(json.loads(blob[8:8 + n])["__metadata__"]["glassbox.architecture"])
    out, i = {}, -1
    for L in arch["layers"]:
        i += {"gap": 2, "dropout": 0}.get(L["kind"], 1)
        out[L["name"]] = i
    return out


def hooked_features(model, indices, x):
    """The input and every hooked module's output for a batch, flattened: one forward."""
    feats = [x.flatten(1)]
    hs = [model[i].register_forward_hook(lambda m, inp, o: feats.append(o.detach().flatten(1))) for i in indices]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return feats


def probe_run(model, indices, train, ytr, test, yte, classes, batch=128, lr=0.01, seed=0):
    """Linear probes of the input and every layer: statistics, one epoch of Adam steps, accuracies."""
    stats = None
    for b in range(0, len(train), 256):
        f = hooked_features(model, indices, train[b:b + 256])
        f = [(t.double().sum(0), (t.double() ** 2).sum(0)) for t in f]
        stats = f if stats is None else [(a + c, b2 + d) for (a, b2), (c, d) in zip(stats, f)]
    mean = [(s / len(train)).float() for s, _ in stats]
    std = [((q / len(train)) - (s / len(train)) ** 2).clamp(min=1e-12).sqrt().float() for s, q in stats]
    probes = [nn.Linear(m.numel(), classes) for m in mean]
    for p in probes:
        nn.init.zeros_(p.weight), nn.init.zeros_(p.bias)
    opts = [torch.optim.Adam(p.parameters(), lr=lr) for p in probes]
    steps = (len(train) + batch - 1) // batch
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=steps) for o in opts]
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=g)
    loss_fn = nn.CrossEntropyLoss()
    for b in range(0, len(train), batch):
        rows = order[b:b + batch]
        feats = hooked_features(model, indices, train[rows])
        for f, m, s, p, o, sc in zip(feats, mean, std, probes, opts, scheds):
            o.zero_grad()
            loss_fn(p((f - m) / s), ytr[rows]).backward()
            o.step()
            sc.step()
    acc = []
    for x, y in ((train, ytr), (test, yte)):
        right = [0] * len(probes)
        for b in range(0, len(x), 256):
            with torch.no_grad():
                for k, (f, m, s, p) in enumerate(zip(hooked_features(model, indices, x[b:b + 256]), mean, std, probes)):
                    right[k] += int((p((f - m) / s).argmax(1) == y[b:b + 256]).sum())
        acc.append([r / len(x) for r in right])
    return acc


def dissect_run(model, indices, images, masks, quantile):
    """Network Dissection as NetDissect-Lite: thresholds, upsampled masks, IoU with every concept."""
    N, K, H, W = masks.shape
    feats = [[] for _ in indices]
    hs = [model[i].register_forward_hook(lambda m, inp, o, k=k: feats[k].append(o.detach())) for k, i in enumerate(indices)]
    with torch.no_grad():
        for b in range(0, N, 256):
            model(images[b:b + 256])
    for h in hs:
        h.remove()
    labels = masks.reshape(N, K, H * W).float()
    label_area = labels.sum((0, 2))
    out = []
    for f in feats:
        a = torch.cat(f)  # [N, U, h, w]
        U = a.shape[1]
        T = np.percentile(a.transpose(0, 1).reshape(U, -1).numpy(), 100 * (1 - quantile), axis=1)
        T = torch.from_numpy(T).float().view(1, U, 1, 1)
        inter, area = torch.zeros(U, K, dtype=torch.float64), torch.zeros(U, dtype=torch.float64)
        for b in range(0, N, 256):
            up = nn.functional.interpolate(a[b:b + 256], size=(H, W), mode="bilinear", align_corners=False)
            m = (up > T).float().reshape(up.shape[0], U, H * W)
            area += m.sum((0, 2)).double()
            inter += torch.einsum("nup,nkp->uk", m, labels[b:b + 256]).double()
        out.append((inter / (area[:, None] + label_area[None, :].double() - inter).clamp(min=1e-10)).numpy())
    return out


def bench_probe(args, cfg, model, path):
    indices = sorted(module_indices(path).values())
    train = torch.from_numpy(np.load(os.path.join(args.bench, "train.npy")))
    test = torch.from_numpy(np.load(os.path.join(args.bench, "test.npy")))
    K = cfg["classes"]
    ytr, yte = torch.arange(len(train)) % K, torch.arange(len(test)) % K
    rate = best_rate(lambda: probe_run(model, indices, train, ytr, test, yte, K), args.seconds)
    print(json.dumps({"key": "probe", "per_second": rate, "seconds": 1 / rate, "threads": args.threads}), flush=True)


def bench_dissect(args, cfg, model, path):
    names = module_indices(path)
    indices = [names[l] for l in cfg["layers"]]
    images = torch.from_numpy(np.load(os.path.join(args.bench, "images.npy")))
    masks = torch.from_numpy(np.load(os.path.join(args.bench, "masks.npy")))
    ious = dissect_run(model, indices, images, masks, cfg["quantile"])
    diff = max(float(np.abs(np.load(os.path.join(args.bench, f"iou_{l}.npy")) - r).max()) for l, r in zip(cfg["layers"], ious))
    rate = best_rate(lambda: dissect_run(model, indices, images, masks, cfg["quantile"]), args.seconds)
    print(json.dumps({"key": "dissect", "per_second": rate, "seconds": 1 / rate, "threads": args.threads,
                      "max_iou_diff": diff}), flush=True)


def kmeans(X, k, n_init, max_iter=300, tol=1e-4, seed=0):
    """sklearn.cluster.KMeans(k, n_init) as its Lloyd loop runs, in float64 PyTorch: labels, centres, inertia."""
    X = X.double()
    g = torch.Generator().manual_seed(seed)
    tol = tol * X.var(0, unbiased=False).mean().item()
    trials = 2 + int(np.log(k))
    best = None
    for _ in range(n_init):
        centers = X[torch.randint(len(X), (1,), generator=g)]
        closest = torch.cdist(X, centers).squeeze(1) ** 2
        for _c in range(1, k):
            cand = torch.searchsorted(closest.cumsum(0), torch.rand(trials, generator=g, dtype=torch.float64) * closest.sum())
            cand = cand.clamp(max=len(X) - 1)
            d = torch.minimum(closest[None], torch.cdist(X[cand], X) ** 2)
            j = int(d.sum(1).argmin())
            closest, centers = d[j], torch.cat([centers, X[cand[j]][None]])
        labels = None
        for _it in range(max_iter):
            new = torch.cdist(X, centers).argmin(1)
            sums = torch.zeros_like(centers).index_add_(0, new, X)
            counts = torch.bincount(new, minlength=k).clamp(min=1)[:, None].double()
            moved = sums / counts
            shift = ((moved - centers) ** 2).sum().item()
            centers = moved
            if labels is not None and torch.equal(labels, new) or shift <= tol:
                break
            labels = new
        d = torch.cdist(X, centers).min(1).values
        inertia = float((d ** 2).sum())
        if best is None or inertia < best[2]:
            best = (torch.cdist(X, centers).argmin(1), centers, inertia)
    return best


def bench_ace(args, cfg, model, path):
    idx = module_index(path, cfg["layer"])
    patches = torch.from_numpy(np.load(os.path.join(args.bench, "patches.npy")))

    def run():
        out = []
        h = model[idx].register_forward_hook(lambda m, i, o: out.append(o.detach()))
        with torch.no_grad():
            for b in range(0, len(patches), 100):  # ace.py's _patch_activations, bs=100
                model(patches[b:b + 100])
        h.remove()
        a = torch.cat(out)
        feats = a.mean((2, 3)) if a.dim() == 4 else a.flatten(1)
        return kmeans(feats, cfg["n_clusters"], cfg["n_init"])

    rate = best_rate(run, args.seconds)
    print(json.dumps({"key": "ace-cluster", "per_second": rate, "seconds": 1 / rate, "threads": args.threads}), flush=True)


def bench(args):
    torch.set_num_threads(args.threads)
    cfg = json.load(open(os.path.join(args.bench, "bench.json")))
    if cfg.get("kind") in ("probe", "dissect", "ace"):
        path = os.path.join(args.bench, "model.safetensors")
        model, _, _ = build_model(path)
        model.eval()
        return {"probe": bench_probe, "dissect": bench_dissect, "ace": bench_ace}[cfg["kind"]](args, cfg, model, path)
    path = os.path.join(args.bench, "model.safetensors")
    model, _, _ = build_model(path)
    idx = module_index(path, cfg["layer"])
    concepts = torch.from_numpy(np.load(os.path.join(args.bench, "concepts.npy"))).chunk(cfg["concepts"])
    pool = torch.from_numpy(np.load(os.path.join(args.bench, "pool.npy")))
    inputs = torch.from_numpy(np.load(os.path.join(args.bench, "inputs.npy")))
    runs, size, target = cfg["runs"], cfg["random_size"], cfg["target"]
    t0 = time.perf_counter()
    _, cavs = tcav_run(model, idx, list(concepts), pool, inputs, target, runs, size)
    once = time.perf_counter() - t0
    # The whole run takes seconds in Python: one timed run when it alone exceeds the budget.
    full = 1 / once if once > args.seconds else best_rate(
        lambda: tcav_run(model, idx, list(concepts), pool, inputs, target, runs, size), args.seconds)
    scores = best_rate(lambda: tcav_run(model, idx, list(concepts), pool, inputs, target, runs, size, False, cavs),
                       args.seconds)
    for key, rate in (("tcav", full), ("tcav-scores", scores)):
        print(json.dumps({"key": key, "per_second": rate, "seconds": 1 / rate, "threads": args.threads}), flush=True)


def check(args):
    model, shape, norm = build_model(args.model)
    x = np.load(args.inputs)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    x = torch.from_numpy(x.reshape((len(x),) + tuple(shape)))
    if norm:
        m = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
        s = torch.tensor(norm["std"]).view(1, -1, 1, 1)
        x = (x - m) / s
    summary = json.load(open(args.summary))
    folder = os.path.dirname(os.path.abspath(args.summary))
    target, worst, count = summary["class"], {}, 0
    for layer in summary["layers"]:
        G = layer_gradients(model, module_index(args.model, layer["layer"]), x, target).double()
        for c in layer["concepts"]:
            V = torch.from_numpy(np.load(os.path.join(folder, f"cav_{c['name']}_{layer['layer']}.npy"))).double()
            S = G @ V.flatten(1).T  # [N, R]
            ref = {"sign_count": (S > 0).double().mean(0),
                   "magnitude": S.clamp(min=0).sum(0) / S.abs().sum(0),
                   "mean_derivative": S.mean(0)}
            for key, r in ref.items():
                got = torch.tensor(c["runs"][key], dtype=torch.float64)
                scale = max(1e-12, float(r.abs().max()))
                worst[key] = max(worst.get(key, 0.0), float((got - r).abs().max()) / scale)
            count += 1
    ok = True
    for key, d in worst.items():
        passed = d <= args.tol
        ok &= passed
        print(f"{key:16s} max |glassbox - torch| / max |torch| = {d:.2e} over {count} concept-layers  "
              f"{'PASS' if passed else 'FAIL'}")
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", metavar="DIR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--model")
    ap.add_argument("--inputs", help="the pixels given to glassbox concepts --inputs npy:FILE")
    ap.add_argument("--summary", help="glassbox concepts' summary.json (the CAVs beside it)")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    if args.bench:
        bench(args)
    elif args.check:
        if not (args.model and args.inputs and args.summary):
            ap.error("--check compares a glassbox concepts run: give --model M.safetensors, --inputs FILE.npy "
                     "(its --inputs npy:FILE) and --summary OUT/summary.json")
        check(args)
    else:
        ap.error("give --bench DIR or --check")


if __name__ == "__main__":
    main()
