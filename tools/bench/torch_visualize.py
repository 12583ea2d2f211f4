#!/usr/bin/python3
"""PyTorch reference rates for `glassbox bench`'s feature-visualization rows (Debian's python3-torch).

The same loops as glassbox's, in plain PyTorch the way Lucent / CS231n and Captum compute them
(Lucent and Captum are not packaged for Debian, so they are re-implemented here):
  lenet5/am-classes    class visualization of the 10 classes in one batch: 256 Adam steps (lr 0.05)
                       on the logits minus 0.01 |x|^2, each image rolled by its own random shift in
                       [-1, 1]^2 before the forward (autograd rolls the gradient back), a Gaussian blur
                       (sigma 0.5, radius 2) every 4 steps, clamping to [0, 1]; units/s
  camnet/am-conv1      the same loop on the mean of each of conv1's 32 channels (forward up to conv1); units/s
  camnet/top-patches   relu1's 32 channels over 10,000 images in batches of 256 (no_grad): each image's
                       maximum per channel, the top 9 images per channel, then the DeconvNet
                       projection of those 288 single activations (Captum's Deconvolution: ReLU's
                       backward is relu(grad)); images/s
With --check MODEL.safetensors it instead compares `glassbox visualize` with the same loops in
PyTorch, number for number (jitter off: the two draw different shifts):
  am      20 Adam steps (lr 0.05) on all classes' logits, L2 1e-3 and TV 1e-3 (glassbox's TV: squared
          differences to the right and lower neighbour, 0 past the edge), without clamping (clamped
          pixels form exactly equal patches, whose ReLU and max-pool ties float32 rounding breaks
          differently in the two programs: on camnet 2 of 7840 pixels part ways after 5 steps)
  fool    sgd-l2norm steps on the log-probability of class (label+1) mod 10 until p >= 0.99
  invert  40 SGD steps (lr 0.5) on |phi(x) - phi(x0)|^2 / |phi(x0)|^2 + 1e-7 |x|_6^6 at the first ReLU,
          from a constant image (with Adam the two agree to ~2e-3 only: from a flat start many pixels'
          gradients are rounding-sized, and Adam turns their signs into full steps; am checks Adam)
and prints max|glassbox - torch| / max|torch| per method, PASS below --tol (exit status 1 on a FAIL).
Untrained models and uniform noise inputs: the rates do not depend on the values. Each rate is the best
of five rounds of --seconds/5 (as glassbox bench measures), and the better of --threads and 1 thread:
on batches of 10-32 small images PyTorch's intra-op threads cost more than they save (on a 2-core
machine the am loops ran 2-5x faster on one thread), so the reference is the best PyTorch does with at
most --threads. Prints one JSON object per line: {"key", "model", "what", "per_second", "threads"}.
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def camnet():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def rate(fn, items, seconds, rounds=5):
    fn()  # warm-up
    best = 0.0
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / rounds:
            fn()
            n += 1
        best = max(best, n * items / (time.perf_counter() - t0))
    return best


def best_rate(fn, items, seconds, threads):
    """The better of `threads` and one thread, and the thread count that gave it."""
    best = (0.0, threads)
    for t in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(t)
        best = max(best, (rate(fn, items, seconds), t))
    torch.set_num_threads(threads)
    return best


def gaussian_kernel(sigma):
    radius = int(4 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * t * t / sigma ** 2)
    return k / k.sum(), radius


def blur(x, sigma=0.5):
    k, r = gaussian_kernel(sigma)
    c = x.shape[1]
    x = F.pad(x, (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def am(forward, score, rows, steps=256, lr=0.05, l2=0.01, jitter=1, blur_every=4):
    """One activation-maximization run of `rows` images: CS231n's priors with Lucent's Adam."""
    gen = torch.Generator().manual_seed(0)
    x = (0.5 + 0.1 * torch.randn(rows, 1, 28, 28, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for t in range(steps):
        shifts = torch.randint(-jitter, jitter + 1, (rows, 2), generator=gen).tolist()
        xj = torch.stack([torch.roll(x[r], (dy, dx), dims=(1, 2)) for r, (dy, dx) in enumerate(shifts)])
        loss = -score(forward(xj)).sum() + l2 * (x * x).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
            if (t + 1) % blur_every == 0:
                x.copy_(blur(x))
    return x


class DeconvReLU(torch.autograd.Function):
    """Captum's Deconvolution: ReLU forward, relu(grad) backward (the forward mask ignored)."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        return g.clamp(min=0)


def top_patches(model, data, k=9, batch=256):
    conv1 = model[0]
    with torch.no_grad():
        values, where = [], []
        for b in range(0, data.shape[0], batch):
            a = torch.relu(conv1(data[b:b + batch])).flatten(2)  # [B, 32, 784]
            v, i = a.max(2)
            values.append(v)
            where.append(i)
        values, where = torch.cat(values), torch.cat(where)  # [N, 32]
        top = values.topk(k, dim=0).indices  # [k, 32]
    C = values.shape[1]
    samples = top.t().reshape(-1)  # channel-major, k per channel
    pos = where[samples, torch.arange(C).repeat_interleave(k)]
    x = data[samples].clone().requires_grad_(True)
    a = DeconvReLU.apply(conv1(x))
    seed = torch.zeros_like(a).flatten(1)
    seed[torch.arange(C * k), torch.arange(C).repeat_interleave(k) * 784 + pos] = 1
    (proj,) = torch.autograd.grad(a, x, seed.view_as(a))
    return proj


# ---- --check: glassbox against the same loops in PyTorch ------------------------------------------

def write_npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype="<f4"))


def run_glassbox(exe, *args):
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"glassbox {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")


def tv(x):  # glassbox's TV, beta 2: squared differences to the right and lower neighbours (0 past the edge)
    return ((x[..., :, 1:] - x[..., :, :-1]) ** 2).sum() + ((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum()


def check(a):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_reference import build_model  # the safetensors reader of the attribution reference
    model, shape, norm = build_model(a.check)
    for p in model.parameters():
        p.requires_grad_(False)
    mean = torch.tensor(norm["mean"] if norm else [0.0]).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"] if norm else [1.0]).view(1, -1, 1, 1)
    lo, hi = (0 - mean) / std, (1 - mean) / std
    rng = np.random.default_rng(0)
    x0 = ((torch.from_numpy(rng.uniform(0, 1, (10,) + shape).astype(np.float32)) - mean) / std)
    work = tempfile.mkdtemp(prefix="torch_visualize_")
    write_npy(f"{work}/x0.npy", x0.numpy())
    failed = False

    def report(name, ours, ref):
        nonlocal failed
        err = float((ours - ref).abs().max() / ref.abs().max())
        ok = err <= a.tol
        failed |= not ok
        print(f"{name:8s} max|glassbox - torch| / max|torch| = {err:.2e}  {'PASS' if ok else 'FAIL'}", flush=True)

    def read(out, names):
        return torch.stack([torch.from_numpy(np.load(f"{out}/{n}.npy")) for n in names])

    # am: start=data with one input per class, Adam, L2 + TV, clamping, no jitter or blur.
    out = f"{work}/am"
    run_glassbox(a.glassbox, "visualize", "--input-space", "model", "--model", a.check, "--method", "am", "--unit", "class:all", "--input",
                 f"{work}/x0.npy", "--scan", "none", "--out", out, "--param", "start=data", "--param", "steps=20",
                 "--param", "jitter=0", "--param", "blur_every=0", "--param", "l2=0.001", "--param", "tv=0.001",
                 "--param", "clip=false")
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)
    for _ in range(20):
        loss = -model(x)[torch.arange(10), torch.arange(10)].sum() + 1e-3 * (x * x).sum() + 1e-3 * tv(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    report("am", read(out, [f"class{k}" for k in range(10)]), x.detach())

    # fool: from each input to class (argmax + 1) mod 10, sgd-l2norm on log p, stop at p >= 0.99.
    with torch.no_grad():
        target = (model(x0).argmax(1) + 1) % 10
    xs, names = [], []
    for n in range(4):
        k = int(target[n])
        out = f"{work}/fool{n}"
        write_npy(f"{work}/x{n}.npy", x0[n:n + 1].numpy())
        run_glassbox(a.glassbox, "visualize", "--input-space", "model", "--model", a.check, "--method", "fool", "--unit", f"class:{k}",
                     "--input", f"{work}/x{n}.npy", "--out", out)
        names.append(f"{out}/x{n}.npy_0_to_class{k}")
        x = x0[n:n + 1].clone().requires_grad_(True)
        for _ in range(1000):
            logp = torch.log_softmax(model(x), 1)[0, k]
            if logp.exp() >= 0.99:
                break
            (g,) = torch.autograd.grad(logp, x)
            with torch.no_grad():
                x += 0.25 * g / g.norm()
                x.copy_(torch.max(torch.min(x, hi), lo))
        xs.append(x.detach()[0])
    report("fool", torch.stack([torch.from_numpy(np.load(f"{n}.npy")) for n in names]), torch.stack(xs))

    # invert: the first ReLU's representation of two inputs, from glassbox's own start (a constant image).
    relu = next(i for i, m in enumerate(model) if isinstance(m, nn.ReLU))
    name = json.loads(json.loads(open(a.check, "rb").read(8 + int.from_bytes(open(a.check, "rb").read(8), "little"))[8:])
                      ["__metadata__"]["glassbox.architecture"])["layers"][relu]["name"]
    out = f"{work}/invert"
    write_npy(f"{work}/x01.npy", x0[:2].numpy())
    run_glassbox(a.glassbox, "visualize", "--input-space", "model", "--model", a.check, "--method", "invert", "--input", f"{work}/x01.npy",
                 "--out", out, "--param", f"layers={name}", "--param", "steps=40", "--param", "tv=0",
                 "--param", "start=constant", "--param", "optimizer=sgd", "--param", "lr=0.5")
    phi = lambda v: model[:relu + 1](v)
    ref = phi(x0[:2]).detach()
    x = ((torch.full((2,) + shape, 0.5) - mean) / std).requires_grad_(True)
    opt = torch.optim.SGD([x], lr=0.5)
    for _ in range(40):
        loss = (((phi(x) - ref) ** 2).flatten(1).sum(1) / (ref ** 2).flatten(1).sum(1)).sum() + 1e-7 * (x.abs() ** 6).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.copy_(torch.max(torch.min(x, hi), lo))
    report("invert", read(out, [f"x01.npy_{n}_{name}" for n in range(2)]), x.detach())
    sys.exit(1 if failed else 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--check", help="a glassbox model file: compare glassbox visualize with PyTorch instead of timing")
    ap.add_argument("--glassbox", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/tools/glassbox"))
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check:
        return check(a)
    torch.manual_seed(0)

    def report(key, model, what, fn, items):
        r, t = best_rate(fn, items, a.seconds, a.threads)
        print(json.dumps({"key": key, "model": model, "what": what, "per_second": r, "threads": t}), flush=True)

    lenet = lenet5().eval()
    for p in lenet.parameters():
        p.requires_grad_(False)
    classes = torch.arange(10)
    report("lenet5/am-classes", "lenet5", "visualize am", lambda: am(lenet, lambda z: z[torch.arange(10), classes], 10), 10)

    cam = camnet().eval()
    for p in cam.parameters():
        p.requires_grad_(False)
    conv1 = cam[0]
    report("camnet/am-conv1", "camnet", "visualize am",
           lambda: am(conv1, lambda z: z[torch.arange(32), torch.arange(32)].mean((1, 2)), 32), 32)

    data = torch.rand(10000, 1, 28, 28)
    report("camnet/top-patches", "camnet", "visualize top-patches", lambda: top_patches(cam, data), 10000)


if __name__ == "__main__":
    main()
