#!/usr/bin/python3
"""PyTorch baseline for `glassbox bench --compare-torch` (Debian's python3-torch).

Times the same models glassbox times, on the same thread count and batch sizes, with random
inputs (throughput does not depend on the values):
  train:   SGD steps (forward, cross-entropy, backward, update), images/s
  infer:   forward passes under torch.no_grad(), images/s
  grad:    torch.autograd.grad of the target logits w.r.t. the input, images/s
Prints one JSON object per line: {"model", "what", "batch", "images_per_s"}.
"""
import argparse, json, sys, time

import torch
import torch.nn as nn


def lenet5(act=nn.ReLU):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), act(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, 10))


def camnet():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


MODELS = {"lenet5": lenet5, "camnet": camnet, "mlp": mlp}


def rate(fn, batch, seconds, rounds=5):
    """Best of `rounds` rounds of seconds/rounds each (as glassbox bench does): on a shared
    machine the best round is the one least disturbed by other processes."""
    fn()  # warm-up
    fn()
    best = 0.0
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / rounds:
            fn()
            n += 1
        best = max(best, n * batch / (time.perf_counter() - t0))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="lenet5,camnet")
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--explain-batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for name in a.models.split(","):
        model = MODELS[name]()
        x = torch.rand(a.train_batch, 1, 28, 28)
        y = torch.randint(0, 10, (a.train_batch,))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

        model.train()
        r = rate(step, a.train_batch, a.seconds)
        print(json.dumps({"model": name, "what": "train", "batch": a.train_batch, "images_per_s": r}), flush=True)
        model.eval()
        xi = torch.rand(a.infer_batch, 1, 28, 28)

        def infer():
            with torch.no_grad():
                model(xi)

        r = rate(infer, a.infer_batch, a.seconds)
        print(json.dumps({"model": name, "what": "infer", "batch": a.infer_batch, "images_per_s": r}), flush=True)
        for p in model.parameters():
            p.requires_grad_(False)
        xe = torch.rand(a.explain_batch, 1, 28, 28)
        t = torch.randint(0, 10, (a.explain_batch,))

        def grad():
            xg = xe.clone().requires_grad_(True)
            out = model(xg).gather(1, t[:, None]).sum()
            torch.autograd.grad(out, xg)

        r = rate(grad, a.explain_batch, a.seconds)
        print(json.dumps({"model": name, "what": "grad", "batch": a.explain_batch, "images_per_s": r}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
