#!/usr/bin/python3
"""PyTorch reference for `glassbox bench`'s attack rows (Debian's python3-torch; Captum is not packaged).

FGSM and PGD exactly as Captum's captum.robust computes them (captum/robust/_core/fgsm.py, pgd.py),
re-implemented in plain PyTorch:
  FGSM.perturb(inputs, epsilon, target)   loss = loss_func(forward(x), target) per input; the gradient of
      their sum (compute_gradients over torch.unbind); x' = where(|g| > zero_thresh (1e-6),
      x + s * epsilon * sign(g), x); clamp(lower_bound, upper_bound); s = -1 when targeted
  PGD.perturb(inputs, radius, step_size, step_num, target, norm="Linf")   step_num times: an unbounded
      FGSM step of step_size, x0 + clamp(x - x0, -radius, radius) (L2: torch.renorm(x - x0, 2, 0, radius)),
      clamp(lower_bound, upper_bound); no early stop
with loss_func = the cross-entropy of the logits, per input (reduction="none"), and a forward_func that takes
pixels in [0, 1] and applies the model's normalization (lower_bound 0, upper_bound 1): glassbox's pixel space.

Rates (default): lenet5 (untrained; torch_baseline.lenet5), 256 uniform-noise images, labels (7i + 3) mod 10,
FGSM with epsilon 0.1 and PGD-40 (radius 0.1, step_size 0.01), each with the predictions before and after (what
glassbox's attack() also returns); images/s, the best of five rounds of
--seconds/5 (as glassbox bench measures) and the better of --threads and 1 thread. One JSON object per
line: {"key", "model", "what", "per_second", "threads"}.

--check MODEL.safetensors instead runs `glassbox attack` (fgsm, pgd Linf, pgd L2 with Captum's sign steps,
targeted pgd) on 16 inputs and compares its adversarial inputs with these functions, number for number:
prints max|glassbox - torch| (pixels) and the fraction of pixels that differ by more than 1e-5 (a sign
step flips where a gradient is within float rounding of zero_thresh or of zero), PASS when that fraction
is at most --tol (exit status 1 on a FAIL).
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


# ---- captum.robust, re-implemented -----------------------------------------------------------------

def fgsm(forward, x, epsilon, target, targeted=False, lower=float("-inf"), upper=float("inf"), zero_thresh=1e-6):
    """captum.robust.FGSM(forward, loss_func=CE(reduction='none'), lower, upper).perturb(x, epsilon, target, targeted)."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(forward(x), target, reduction="none")
    (g,) = torch.autograd.grad(torch.unbind(loss), x)
    s = -1 if targeted else 1
    out = torch.where(g.abs() > zero_thresh, x + s * epsilon * torch.sign(g), x)
    return torch.clamp(out, lower, upper).detach()


def pgd(forward, x0, radius, step_size, step_num, target, targeted=False, norm="Linf", lower=0.0, upper=1.0):
    """captum.robust.PGD(forward, loss_func, lower, upper).perturb(x0, radius, step_size, step_num, target,
    targeted=targeted, random_start=False, norm=norm)."""
    x = x0
    for _ in range(step_num):
        x = fgsm(forward, x, step_size, target, targeted)  # PGD's inner FGSM has no bounds
        d = x - x0
        x = x0 + (torch.clamp(d, -radius, radius) if norm == "Linf" else torch.renorm(d, 2, 0, radius))
        x = torch.clamp(x, lower, upper).detach()
    return x


# ---- rates -------------------------------------------------------------------------------------------

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
    best = (0.0, threads)
    for t in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(t)
        best = max(best, (rate(fn, items, seconds), t))
    torch.set_num_threads(threads)
    return best


def bench(a):
    torch.manual_seed(0)
    model = lenet5().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    n = 256
    x = torch.from_numpy(np.random.default_rng(7).uniform(0, 1, (n, 1, 28, 28)).astype(np.float32))
    y = torch.tensor([(7 * i + 3) % 10 for i in range(n)])
    def with_predictions(attack):  # what glassbox's attack() returns: the predictions before and after too
        def run():
            with torch.no_grad():
                before = model(x).argmax(1)
            adv = attack()
            with torch.no_grad():
                after = model(adv).argmax(1)
            return adv, before, after
        return run

    rows = [("lenet5/fgsm", "attack fgsm", with_predictions(lambda: fgsm(model, x, 0.1, y, lower=0.0, upper=1.0))),
            ("lenet5/pgd-40", "attack pgd-40", with_predictions(lambda: pgd(model, x, 0.1, 0.01, 40, y)))]
    for key, what, fn in rows:
        r, t = best_rate(fn, n, a.seconds, a.threads)
        print(json.dumps({"key": key, "model": "lenet5", "what": what, "per_second": r, "threads": t}), flush=True)


# ---- --check: glassbox against the same functions ------------------------------------------------------

def check(a):
    from torch_reference import build_model  # the safetensors reader of the attribution reference
    model, shape, norm = build_model(a.check)
    for p in model.parameters():
        p.requires_grad_(False)
    mean = torch.tensor(norm["mean"] if norm else [0.0]).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"] if norm else [1.0]).view(1, -1, 1, 1)
    forward = lambda p: model((p - mean) / std)  # pixels in, as glassbox attacks them
    rng = np.random.default_rng(1)
    n = 16
    # Inputs: blurred noise images in [0, 1] (the model's prediction is then not saturated).
    p0 = torch.from_numpy(rng.uniform(0, 1, (n,) + shape).astype(np.float32))
    p0 = F.avg_pool2d(p0, 3, 1, 1, count_include_pad=False).clamp(0, 1)
    with torch.no_grad():
        pred = forward(p0).argmax(1)
    work = tempfile.mkdtemp(prefix="attacks-torch-check-")
    np.save(f"{work}/x.npy", np.ascontiguousarray(((p0 - mean) / std).numpy(), dtype="<f4"))
    failed = False

    def glassbox(*args):
        out = f"{work}/out"
        r = subprocess.run([a.glassbox, "attack", "--model", a.check, "--input", f"{work}/x.npy", "--explain", "none", "--input-space", "model",
                            "--out", out, *args], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"glassbox attack {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return torch.from_numpy(np.load(f"{out}/adversarial.npy")) * std + mean  # back to pixels

    def report(name, ours, ref):
        nonlocal failed
        d = (ours - ref).abs()
        frac = float((d > 1e-5).float().mean())
        ok = frac <= a.tol
        failed |= not ok
        print(f"{name:22s} max|glassbox - torch| = {float(d.max()):.2e} pixels, {100 * frac:.3f}% of pixels "
              f"differ > 1e-5  {'PASS' if ok else 'FAIL'}", flush=True)

    report("fgsm eps 0.05", glassbox("--method", "fgsm", "--eps", "0.05"), fgsm(forward, p0, 0.05, pred, lower=0.0, upper=1.0))
    report("pgd Linf 0.05 x 10", glassbox("--method", "pgd", "--eps", "0.05", "--param", "step_size=0.01", "--param", "step_num=10"),
           pgd(forward, p0, 0.05, 0.01, 10, pred))
    report("pgd L2 1.0 sign x 10", glassbox("--method", "pgd", "--eps", "1", "--param", "step_size=0.01", "--param",
                                            "step_num=10", "--param", "norm=L2", "--param", "l2_step=sign"),
           pgd(forward, p0, 1.0, 0.01, 10, pred, norm="L2"))
    target = (pred + 1) % 10
    report("pgd targeted (next)", glassbox("--method", "pgd", "--eps", "0.05", "--target", "next", "--param",
                                           "step_size=0.01", "--param", "step_num=10"),
           pgd(forward, p0, 0.05, 0.01, 10, target, targeted=True))
    sys.exit(1 if failed else 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--check", help="a glassbox model file: compare glassbox attack with these functions instead of timing")
    ap.add_argument("--glassbox", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/tools/glassbox"))
    ap.add_argument("--tol", type=float, default=1e-3, help="--check: the largest fraction of pixels allowed to differ")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check:
        check(a)
    else:
        bench(a)


if __name__ == "__main__":
    main()
