#!/usr/bin/python3
"""PyTorch reference rates for `glassbox bench`'s surrogates rows (Debian's python3-torch).

The same computations as glassbox's rows, written the way PyTorch code computes them (there is no
reference library for these methods; the soft tree is written as the PyTorch soft-tree
implementations write it, level by level with the path probabilities as a [N, leaves] tensor):
  distill/softtree8     one distillation step (no optimizer step) of a depth-8 soft decision tree
                        over the flattened 28x28 input from a lenet5 teacher, batch 64: teacher
                        forward (no_grad), tree forward (sigmoid turns, path probabilities, log of the
                        path-weighted leaf softmax), loss alpha T^2 KL(teacher/T || student/T) + (1 -
                        alpha) CE with T 4, alpha 0.9, plus Frosst & Hinton's balancing penalty
                        (lambda 0.1, 2^-depth per node), backward; images/s
  distill/lenet5        the same with a lenet5 student
  prune/camnet          Abbasi-Asl & Yu's filter drops: camnet's accuracy on 1,000 images (batches
                        of 256, no_grad), then for each of conv1's 32 filters: zero it, evaluate,
                        restore; images/s
  importance/dimopoulos PaD on mlp: 1,000 samples in batches of 256, the input gradient of each of the
                        10 softmax outputs by autograd, sums of squares; samples/s
  importance/miv        MIV on mlp: 100 samples, each of the 784 features scaled by 1.1 and 0.9 in
                        turn (no_grad), the mean change of the softmax outputs; samples/s
Untrained models and uniform noise inputs: the rates do not depend on the values. Each rate is the
best of five rounds of --seconds/5 (as glassbox bench measures; one
timed call when a call alone takes longer than --seconds), and the better of --threads and 1
thread. Prints one JSON object per line: {"key", "per_second", "threads"}.
"""
import argparse, json, os, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_baseline import camnet, lenet5, mlp  # noqa: E402


def rate(fn, items, seconds, rounds=5):
    """Best of `rounds` rounds of seconds/rounds; one timed call when the warm-up alone exceeds the
    budget (as glassbox's items_per_second)."""
    t0 = time.perf_counter()
    fn()  # warm-up
    once = time.perf_counter() - t0
    if once > seconds:
        return items / once
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


class SoftTree(nn.Module):
    """Frosst & Hinton's soft decision tree: inner node i turns right with sigmoid(beta (w_i.x + b_i));
    the output is log sum_l P_l(x) softmax(phi_l)."""

    def __init__(self, features, depth, classes, beta=1.0):
        super().__init__()
        self.depth, self.beta = depth, beta
        self.inner = nn.Linear(features, 2 ** depth - 1)
        self.leaves = nn.Parameter(0.1 * torch.randn(2 ** depth, classes))

    def forward(self, x):
        x = x.flatten(1)
        right = torch.sigmoid(self.beta * self.inner(x))  # [N, inner], heap order
        mu = x.new_ones(x.shape[0], 1)
        self.reach, self.turns = [], []
        for d in range(self.depth):
            p = right[:, 2 ** d - 1:2 ** (d + 1) - 1]
            self.reach.append(mu)
            self.turns.append(p)
            mu = torch.stack((mu * (1 - p), mu * p), dim=2).flatten(1)
        return torch.log(mu @ torch.softmax(self.leaves, 1))

    def penalty(self, lam):
        c = 0.0
        for d, (mu, p) in enumerate(zip(self.reach, self.turns)):
            alpha = ((mu * p).sum(0) / mu.sum(0)).clamp(1e-12, 1 - 1e-12)
            c = c - lam * 2.0 ** (-d) * 0.5 * (torch.log(alpha) + torch.log(1 - alpha)).sum()
        return c


def distill_step(student, teacher, x, y, T=4.0, alpha=0.9, lam=None):
    student.zero_grad(set_to_none=True)
    with torch.no_grad():
        t = teacher(x)
    s = student(x)
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
    loss = alpha * soft + (1 - alpha) * F.cross_entropy(s, y)
    if lam is not None:
        loss = loss + student.penalty(lam)
    loss.backward()


def prune_drops(model, x, y, batch=256):
    def accuracy():
        correct = 0
        with torch.no_grad():
            for b in range(0, len(x), batch):
                correct += (model(x[b:b + batch]).argmax(1) == y[b:b + batch]).sum().item()
        return correct / len(x)

    conv = model[0]
    base = accuracy()
    drops = []
    for f in range(conv.out_channels):
        w, b = conv.weight.data[f].clone(), conv.bias.data[f].clone()
        conv.weight.data[f] = 0
        conv.bias.data[f] = 0
        drops.append(base - accuracy())
        conv.weight.data[f], conv.bias.data[f] = w, b
    return drops


def pad(model, x, batch=256):
    ssd = torch.zeros(10, 784)
    for b in range(0, len(x), batch):
        xb = x[b:b + batch].clone().requires_grad_(True)
        p = torch.softmax(model(xb), 1)
        for k in range(10):
            (g,) = torch.autograd.grad(p[:, k].sum(), xb, retain_graph=k < 9)
            ssd[k] += (g.flatten(1) ** 2).sum(0)
    return ssd / ssd.sum(1, keepdim=True)


def miv(model, x, delta=0.1):
    out = torch.zeros(10, 784)
    flat = x.flatten(1)
    with torch.no_grad():
        for j in range(784):
            up, down = flat.clone(), flat.clone()
            up[:, j] *= 1 + delta
            down[:, j] *= 1 - delta
            d = torch.softmax(model(up.view_as(x)), 1) - torch.softmax(model(down.view_as(x)), 1)
            out[:, j] = d.mean(0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)

    def emit(key, fn, items):
        per_second, threads = best_rate(fn, items, a.seconds, a.threads)
        print(json.dumps({"key": key, "per_second": per_second, "threads": threads}), flush=True)

    teacher = lenet5().eval()
    x = torch.rand(64, 1, 28, 28)
    y = torch.arange(64) * 7 % 10
    tree = SoftTree(784, 8, 10)
    emit("distill/softtree8", lambda: distill_step(tree, teacher, x, y, lam=0.1), 64)
    student = lenet5().train()
    emit("distill/lenet5", lambda: distill_step(student, teacher, x, y), 64)

    net = camnet().eval()
    xp, yp = torch.rand(1000, 1, 28, 28), torch.arange(1000) * 7 % 10
    emit("prune/camnet", lambda: prune_drops(net, xp, yp), 33 * 1000)

    m = mlp().eval()
    emit("importance/dimopoulos", lambda: pad(m, torch.rand(1000, 1, 28, 28)), 1000)
    xm = torch.rand(100, 1, 28, 28)
    emit("importance/miv", lambda: miv(m, xm), 100)


if __name__ == "__main__":
    main()
