#!/usr/bin/python3
"""PyTorch baseline for `glassbox bench --compare-torch` (Debian's python3-torch).

Times the same models glassbox times, built from the same architecture texts (`glassbox info
MODEL --arch` prints them; the bench passes them with --arch NAME=TEXT), on the same thread count
and batch sizes, with random inputs of the model's input shape (throughput does not depend on the
values):
  train:   SGD steps (forward, cross-entropy, backward, update), images/s
  infer:   forward passes in eval mode under torch.no_grad(), images/s
  grad:    torch.autograd.grad of the target logits w.r.t. the input, images/s
Prints one JSON object per line: {"model", "what", "batch", "images_per_s"}.

`glassbox bench --compare-torch` runs it with glibc's malloc keeping freed memory in the process
(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296):
with the defaults, PyTorch faults each step's tensors in afresh, which on a virtual machine can
cost it a quarter of its time (tools/bench_common.cpp). Run by hand, set the same variable.
"""
import argparse, json, re, sys, time, warnings

import torch
import torch.nn as nn

# Positional parameters of each layer kind, in the order the architecture text gives them
# (engine/architecture.cpp).
POSITIONAL = {"conv": ["out", "k"], "dense": ["out"], "maxpool": ["k", "s"], "avgpool": ["k", "s"],
              "leakyrelu": ["slope"], "softplus": ["beta"], "dropout": ["p"], "batchnorm": ["eps", "momentum"]}


def parse(text):
    """'input(3,32,32) conv(16,k=3,name=a) relu add(a) ...' -> input shape, [(kind, {key: value})]."""
    layers, shape = [], None
    for kind, args in re.findall(r"(\w+)(?:\(([^)]*)\))?", text):
        h, pos = {}, 0
        for a in filter(None, (s.strip() for s in args.split(","))) if args else []:
            if "=" in a:
                k, v = a.split("=", 1)
            else:
                names = POSITIONAL.get(kind, [])
                k, v = names[pos] if pos < len(names) else "#%d" % pos, a
                pos += 1
            h[k] = v
        if kind == "input":
            shape = [int(v) for v in args.split(",")]
        else:
            layers.append((kind, h))
    return shape, layers


def module(kind, h):
    i = lambda k, d: int(h.get(k, d))
    f = lambda k, d: float(h.get(k, d))
    if kind == "conv":
        return nn.LazyConv2d(i("out", 0), i("k", 0), stride=i("s", 1), padding=i("p", 0),
                             bias=h.get("bias", "true") == "true")
    if kind == "dense":
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(i("out", 0), bias=h.get("bias", "true") == "true"))
    if kind == "batchnorm":
        return nn.LazyBatchNorm2d(eps=f("eps", 1e-5), momentum=f("momentum", 0.1))
    if kind in ("maxpool", "avgpool"):
        cls = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
        return cls(i("k", 2), stride=i("s", i("k", 2)), padding=i("p", 0))
    simple = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "flatten": nn.Flatten}
    if kind in simple:
        return simple[kind]()
    if kind == "leakyrelu":
        return nn.LeakyReLU(f("slope", 0.01))
    if kind == "softplus":
        return nn.Softplus(beta=f("beta", 1), threshold=f("threshold", 20))
    if kind == "dropout":
        return nn.Dropout(f("p", 0.5))
    if kind == "gap":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if kind == "add":
        return nn.Identity()
    raise ValueError("torch_baseline.py: layer kind '%s' is not supported" % kind)


class Net(nn.Module):
    """A layer chain with named outputs: `from=` reads a named output, `add(NAME)` adds one."""

    def __init__(self, layers):
        super().__init__()
        self.body = nn.ModuleList(module(k, h) for k, h in layers)
        self.wiring = [(h.get("from"), h.get("#0") if k == "add" else None, h.get("name")) for k, h in layers]

    def forward(self, x):
        named = {}
        for m, (src, add, name) in zip(self.body, self.wiring):
            x = m(named[src] if src else x)
            if add:
                x = x + named[add]
            if name:
                named[name] = x
        return x


def build(text):
    shape, layers = parse(text)
    model = Net(layers)
    model(torch.zeros(2, *shape))  # materializes the lazy layers' parameters
    return model, shape


# The same presets as nn.Sequential, whose parameter names the reference scripts load weights by
# (torch_reference.py checks each against the model file it reads).
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
    ap.add_argument("--arch", action="append", required=True, metavar="NAME=TEXT",
                    help="a model to time: its name and architecture text (repeatable)")
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--explain-batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", message="Lazy modules")
    torch.manual_seed(0)
    for spec in a.arch:
        name, text = spec.split("=", 1)
        try:
            model, shape = build(text)
        except ValueError as e:  # a layer PyTorch has no module for here (nam's groupdense): skip the model
            print("skipping %s: %s" % (name, e), file=sys.stderr, flush=True)
            continue
        classes = model(torch.zeros(1, *shape)).shape[1]
        x = torch.rand(a.train_batch, *shape)
        y = torch.randint(0, classes, (a.train_batch,))
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
        xi = torch.rand(a.infer_batch, *shape)

        def infer():
            with torch.no_grad():
                model(xi)

        r = rate(infer, a.infer_batch, a.seconds)
        print(json.dumps({"model": name, "what": "infer", "batch": a.infer_batch, "images_per_s": r}), flush=True)
        for p in model.parameters():
            p.requires_grad_(False)
        xe = torch.rand(a.explain_batch, *shape)
        t = torch.randint(0, classes, (a.explain_batch,))

        def grad():
            xg = xe.clone().requires_grad_(True)
            out = model(xg).gather(1, t[:, None]).sum()
            torch.autograd.grad(out, xg)

        r = rate(grad, a.explain_batch, a.seconds)
        print(json.dumps({"model": name, "what": "grad", "batch": a.explain_batch, "images_per_s": r}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
