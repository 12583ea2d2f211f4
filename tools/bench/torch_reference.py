#!/usr/bin/python3
"""Independent PyTorch reference for `glassbox explain` (Debian's python3-torch; Captum and Zennit not needed).

Re-implements the attribution methods with autograd and custom autograd Functions after Captum's and Zennit's
formulas (as Captum and Zennit compute them), runs `glassbox explain` on the same weights and inputs and prints per method:
the max over inputs of max|glassbox - reference| / max|reference| (reference in float64), the same measure between
the reference in float32 and in float64 ("f32 floor"), the reference's completeness delta (IG, DeepLIFT:
sum - (f(x) - f(x')); LRP: sum R - f_c(x)) beside glassbox's, and PASS/FAIL at --tol; exit status 1 on a FAIL.
An input above --tol passes as PASS* (with a note) only when float32 rounding explains it:
  f32  within 10x the reference's own float32-vs-float64 difference on that input (ill-conditioned: an
       epsilon-LRP unit with z ~ 10 eps, a DeepLIFT multiplier dy/dx with a tiny dx, ...);
  tie  a ReLU pre-activation or max-pool runner-up within 1e-6 (relative) of a tie, so float32 may take the other
       branch: gradient methods on the input itself; IG per path point, with glassbox's own gradients there (its
       saliency at the same float32 points) put in where they differ; DeepLIFT when the baseline's max-pool
       windows tie (a constant baseline gives constant feature maps; the *-image rows use a tie-free baseline).

  tools/bench/torch_reference.py --model lenet5,camnet        # presets: trained 2 epochs on a tiny npy set
  tools/bench/torch_reference.py --model my.safetensors --n 16 --methods saliency,lrp-epsilon --keep /tmp/ref
"""
import argparse, copy, json, os, re, struct, subprocess, sys, tempfile, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LINEAR, TIE = (nn.Conv2d, nn.Linear), 1e-6


def build_model(path):
    """safetensors: u64 LE header size, JSON header {name: {dtype, shape, data_offsets}}, LE data. The torch model is
    rebuilt from the file's architecture (a plain chain) in glassbox's layer order; for the presets this is exactly
    torch_baseline.lenet5() / camnet() (checked in run_model); glassbox gap = AdaptiveAvgPool2d(1) + Flatten."""
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    w = {k: torch.from_numpy(np.frombuffer(blob[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                                           {"F32": "<f4", "F64": "<f8"}[v["dtype"]]).reshape(v["shape"]).copy()).float()
         for k, v in header.items()}
    arch, mods, prev = json.loads(meta["glassbox.architecture"]), [], "input"
    for L in arch["layers"]:
        name, kind, bias = L["name"], L["kind"], L.get("bias", True)
        if L.get("inputs", [prev]) != [prev]:
            sys.exit(f"{path}: layer {name} is not in a plain chain; only sequential models are supported")
        prev = name
        if kind in ("conv", "dense"):
            W = w[name + ".weight"]
            m = (nn.Conv2d(W.shape[1], W.shape[0], W.shape[2], L.get("s", 1), L.get("p", 0), bias=bias)
                 if kind == "conv" else nn.Linear(W.shape[1], W.shape[0], bias=bias))
            m.weight.data = W
            if bias:
                m.bias.data = w[name + ".bias"]
            mods.append(m)
        elif kind in ("relu", "flatten", "gap", "maxpool"):
            mods += {"relu": [nn.ReLU()], "flatten": [nn.Flatten()], "gap": [nn.AdaptiveAvgPool2d(1), nn.Flatten()],
                     "maxpool": [nn.MaxPool2d(L.get("k", 2), L.get("s", L.get("k", 2)), L.get("p", 0))]}[kind]
        elif kind != "dropout":  # dropout: the identity in eval
            sys.exit(f"{path}: layer {name} of kind {kind} is not supported by this reference")
    norm = meta.get("glassbox.normalize", "none")
    return nn.Sequential(*mods).eval(), tuple(arch["input"]), None if norm == "none" else json.loads(norm)


def run(model, h, sub=lambda i, m, h: None):  # forward; sub(i, module, h) may replace a module's output
    for i, m in enumerate(model):
        y = sub(i, m, h)
        h = m(h) if y is None else y
    return h


def relu_with(backward):  # ReLU forward with a custom backward(x, y, grad_out) -> (grad_in,)
    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x, x.clamp(min=0))
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            return backward(*ctx.saved_tensors, g)
    return Fn.apply


def logit(model, x, t):
    return model(x).gather(1, t[:, None])[:, 0]


def gradient(model, x, t, sub=lambda i, m, h: None):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(run(model, x, sub).gather(1, t[:, None]).sum(), x)[0]


def baseline(p, x):  # glassbox's baseline param: a number or a .npy file [1 or N, ...], in the model's input space
    b = p["baseline"]
    return (torch.from_numpy(np.load(b)) if b.endswith(".npy") else torch.tensor(float(b))).to(x).expand_as(x)


# ------------------------------------------------------------------ Captum: gradient family, DeepLift
def saliency(model, x, t, p):  # Captum Saliency: grad, or |grad| with abs=True (Captum's default)
    return (gradient(model, x, t).abs() if p["abs"] == "true" else gradient(model, x, t)), None


def input_x_gradient(model, x, t, p):  # Captum InputXGradient: x * grad
    return x * gradient(model, x, t), None


def ig_nodes(n):  # captum approximation_methods, gausslegendre: alphas (1 + xi)/2, step sizes w/2 (numpy leggauss)
    xi, wi = np.polynomial.legendre.leggauss(n)
    return 0.5 * (1 + xi), 0.5 * wi


def integrated_gradients(model, x, t, p, grads=None):
    """Captum IntegratedGradients: (x - x') * sum_k w_k grad f_c(x' + a_k (x - x')); delta = sum - (f(x) - f(x')).
    grads: the path gradients [k] when given (the tie check puts glassbox's in)."""
    base, (alphas, w) = baseline(p, x), ig_nodes(int(p["n_steps"]))
    grads = grads or [gradient(model, base + a * (x - base), t) for a in alphas]
    attr = (x - base) * sum(s * g for s, g in zip(w, grads))
    return attr, attr.flatten(1).sum(1) - (logit(model, x, t) - logit(model, base, t))


def relu_override(fn):  # Captum GuidedBackprop / Deconvolution override ReLU modules only (max-pool: its gradient)
    return lambda model, x, t, p: (gradient(model, x, t, lambda i, m, h: fn(h) if isinstance(m, nn.ReLU) else None), None)


GUIDED = relu_with(lambda x, y, g: (F.relu(g * (x > 0)),))  # Captum GuidedBackprop: relu(grad_out * 1[x > 0])
DECONV = relu_with(lambda x, y, g: (F.relu(g),))  # Captum Deconvolution: relu(grad_out), the forward mask ignored


def halves(v):  # captum deep_lift._compute_diffs on the [x; x'] batch: cat(2 * [v - v'])
    return torch.cat(2 * [v[:len(v) // 2] - v[len(v) // 2:]])


# captum deep_lift.nonlinear (Rescale): where(|dx| < 1e-10, grad_input, grad_output * dy / dx)
DL_RELU = relu_with(lambda x, y, g: (torch.where(halves(x).abs() < 1e-10, g * (x > 0), g * halves(y) / halves(x)),))


class DLMaxPool(torch.autograd.Function):
    """captum deep_lift.maxpool: dy = [max(y, y') - y', y - max(y, y')] unpooled through each half's own argmax
    (torch: the first maximum of a window), the halves summed, / dx; where |dx| < 1e-10 the max-pool gradient (all of
    grad_input: Captum's grad_input[0] there is the batch-indexing bug captum#1276, fixed by captum PR #1847)."""
    @staticmethod
    def forward(ctx, x, m):
        y, idx = F.max_pool2d(x, m.kernel_size, m.stride, m.padding, return_indices=True)
        ctx.save_for_backward(x, y, idx)
        ctx.m = m
        return y

    @staticmethod
    def backward(ctx, g):
        (x, y, idx), m, n = ctx.saved_tensors, ctx.m, len(g) // 2
        unpool = lambda v: F.max_unpool2d(v, idx, m.kernel_size, m.stride, m.padding, output_size=x.shape[-2:])
        ymax = torch.max(y[:n], y[n:])
        u = unpool(g * torch.cat([ymax - y[n:], y[:n] - ymax]))
        return torch.where(halves(x).abs() < 1e-10, unpool(g), torch.cat(2 * [u[:n] + u[n:]]) / halves(x)), None


def deeplift(model, x, t, p):  # Captum DeepLift: one pass over [x; x'], the target on both halves, (x - x') * dL/dx
    base, xg = baseline(p, x), x.clone().requires_grad_(True)
    h = run(model, torch.cat([xg, base]), lambda i, m, h: DL_RELU(h) if isinstance(m, nn.ReLU) else
            DLMaxPool.apply(h, m) if isinstance(m, nn.MaxPool2d) else None)
    attr = (x - base) * torch.autograd.grad(h.gather(1, torch.cat([t, t])[:, None]).sum(), xg)[0]
    return attr, attr.flatten(1).sum(1) - (logit(model, x, t) - logit(model, base, t))


# ------------------------------------------------------------------ Zennit: LRP rules and composites
def stabilize(z, eps=1e-6):  # zennit.core.stabilize: z + eps * sign(z) with sign(0) = +1
    return z + eps * ((z == 0).to(z) + z.sign())


ident, pos, neg, zero = (lambda v: v), (lambda v: v.clamp(min=0)), (lambda v: v.clamp(max=0)), torch.zeros_like


def call(m, a, wmod=ident, bmod=ident):  # the module's forward with modified parameters (zennit ParamMod)
    if not isinstance(m, LINEAR):
        return m(a)
    b = None if m.bias is None else bmod(m.bias)
    return F.conv2d(a, wmod(m.weight), b, m.stride, m.padding) if isinstance(m, nn.Conv2d) else F.linear(a, wmod(m.weight), b)


# A rule: ([(input modifier, weight modifier, bias modifier)...], gradient_mapper(R, outputs), reducer(inputs, grads)),
# the arguments zennit/rules.py gives zennit.core.BasicHook; `zero` bias where Zennit passes zero_bias().
def epsilon_rule(eps):  # zennit Epsilon (and Norm with 1e-6): R_in = a * W^T (R / stabilize(z, eps)), z with bias
    return [(ident, ident, ident)], lambda R, o: [R / stabilize(o[0], eps)], lambda a, g: a[0] * g[0]


def alpha_beta_rule(al, be):  # zennit AlphaBeta: z+ = a+w+ + b+ + a-w-, z- = a+w- + b- + a-w+; ZPlus = (1, 0)
    mods = [(pos, pos, pos), (neg, neg, zero)] + ([(pos, neg, neg), (neg, pos, zero)] if be else [])
    return (mods, lambda R, o: [R / stabilize(o[0] + o[1])] * 2 + ([R / stabilize(o[2] + o[3])] * 2 if be else []),
            lambda a, g: al * (a[0] * g[0] + a[1] * g[1]) - (be * (a[2] * g[2] + a[3] * g[3]) if be else 0))


def gamma_rule(gm):
    """zennit (>= 0.5) Gamma, sign-aware: outputs with z > 0 share by a+(w + gm w+) + (b + gm b+) + a-(w + gm w-),
    outputs with z < 0 by a+(w + gm w-) + (b + gm b-) + a-(w + gm w+); z the unmodified output."""
    gp, gn = (lambda v: v + gm * v.clamp(min=0)), (lambda v: v + gm * v.clamp(max=0))
    return ([(pos, gp, gp), (neg, gn, zero), (pos, gn, gn), (neg, gp, zero), (ident, ident, ident)],
            lambda R, o: ([(o[4] > 0) * R / stabilize(o[0] + o[1])] * 2 + [(o[4] < 0) * R / stabilize(o[2] + o[3])] * 2
                          + [torch.zeros_like(R)]), lambda a, g: a[0] * g[0] + a[1] * g[1] + a[2] * g[2] + a[3] * g[3])


def zbox_rule(lo, hi):  # zennit ZBox: z = (a w + b) - (l w+ + b+) - (h w- + b-), the bias cancels
    return ([(ident, ident, ident), (lambda a: torch.full_like(a, lo), pos, pos), (lambda a: torch.full_like(a, hi), neg, neg)],
            lambda R, o: [R / stabilize(o[0] - o[1] - o[2])] * 3, lambda a, g: a[0] * g[0] - a[1] * g[1] - a[2] * g[2])


def flat_rule():  # zennit Flat: ones input, ones weights, no bias; R_in = W1^T (R / stabilize(z1))
    return [(torch.ones_like, torch.ones_like, zero)], lambda R, o: [R / stabilize(o[0])], lambda a, g: g[0]


class Rule(torch.autograd.Function):
    """zennit.core.BasicHook.backward: outputs_k = module(in_mod_k(a)) with param_mod_k,
    R_in = reducer(inputs, autograd.grad(outputs, inputs, gradient_mapper(R, outputs)))."""
    @staticmethod
    def forward(ctx, a, m, rule):
        ctx.save_for_backward(a)
        ctx.m, ctx.rule = m, rule
        return call(m, a)

    @staticmethod
    def backward(ctx, R):
        mods, mapper, reducer = ctx.rule
        with torch.enable_grad():
            ins = [im(ctx.saved_tensors[0]).detach().requires_grad_(True) for im, _, _ in mods]
            outs = [call(ctx.m, i, wm, bm) for i, (_, wm, bm) in zip(ins, mods)]
            return reducer(ins, torch.autograd.grad(outs, ins, mapper(R, outs))), None, None


PASS = relu_with(lambda x, y, R: (R,))  # zennit Pass on activations: relevance unchanged


def lrp(conv, dense, first=None):
    """Zennit (Special-First)LayerMapComposite: `first` on the first conv/dense in module order, `conv` on Conv2d,
    `dense` on Linear; LAYER_MAP_BASE: Activation -> Pass, AvgPool (AdaptiveAvgPool2d = GAP) -> Norm. Max-pool and
    Flatten have no rule, i.e. the gradient (winner-take-all): Zennit's default and glassbox's documented choice.
    Seed: the target logit (Zennit attr_output = one-hot * f(x); glassbox seed=logit); delta = sum R - f_c(x)."""
    def method(model, x, t, p):
        rules = {k: mk(p) for k, mk in (("conv", conv), ("dense", dense), ("first", first)) if mk}
        i0 = next(i for i, m in enumerate(model) if isinstance(m, LINEAR))

        def sub(i, m, h):
            if isinstance(m, LINEAR):
                return Rule.apply(h, m, rules["first" if i == i0 and first else "conv" if isinstance(m, nn.Conv2d) else "dense"])
            if isinstance(m, nn.AdaptiveAvgPool2d):
                return Rule.apply(h, m, epsilon_rule(1e-6))
            return PASS(h) if isinstance(m, nn.ReLU) else None
        xg = x.clone().requires_grad_(True)
        h = run(model, xg, sub)
        R = torch.autograd.grad(h, xg, torch.zeros_like(h).scatter_(1, t[:, None], h.gather(1, t[:, None]).detach()))[0]
        return R, R.flatten(1).sum(1) - logit(model, x, t)
    return method


EPS, GAMMA = (lambda p: epsilon_rule(float(p["epsilon"]))), (lambda p: gamma_rule(float(p["gamma"])))
AB, ZPLUS = (lambda p: alpha_beta_rule(float(p["alpha"]), float(p["beta"]))), (lambda p: alpha_beta_rule(1, 0))
LRP, IG = {"epsilon": "1e-6", "seed": "logit"}, {"n_steps": "50", "method": "gausslegendre"}  # Zennit's epsilon
# name: (glassbox method, its params (all given explicitly), reference, kind); {lo}/{hi}: the zB box in model space,
# {image}: a noise+blob baseline file (no max-pool ties, unlike the constant baseline 0)
METHODS = {
    "saliency": ("saliency", {"abs": "false", "reduce": "none"}, saliency, "grad"),
    "saliency-abs": ("saliency", {"abs": "true", "reduce": "none"}, saliency, "grad"),  # Captum's default abs=True
    "input-x-gradient": ("input-x-gradient", {}, input_x_gradient, "grad"),
    "integrated-gradients": ("integrated-gradients", dict(IG, baseline="0"), integrated_gradients, "ig"),
    "integrated-gradients-image": ("integrated-gradients", dict(IG, baseline="{image}"), integrated_gradients, "ig"),
    "deconvnet": ("deconvnet", {}, relu_override(DECONV), "grad"),
    "guided-backprop": ("guided-backprop", {}, relu_override(GUIDED), "grad"),
    "deeplift": ("deeplift", {"baseline": "0"}, deeplift, "dl"),
    "deeplift-image": ("deeplift", {"baseline": "{image}"}, deeplift, "dl"),
    "lrp-epsilon": ("lrp-epsilon", LRP, lrp(EPS, EPS), ""),
    "lrp-zplus": ("lrp-zplus", {"seed": "logit"}, lrp(ZPLUS, ZPLUS), ""),
    "lrp-gamma": ("lrp-gamma", {"gamma": "0.25", "seed": "logit"}, lrp(GAMMA, GAMMA), ""),
    "lrp-alpha-beta": ("lrp-alpha-beta", {"alpha": "2", "beta": "1", "seed": "logit"}, lrp(AB, AB), ""),
    # Zennit EpsilonPlusFlat: Flat on the first Linear/Conv, ZPlus on convs, Epsilon on dense
    "lrp-epsilon-plus-flat": ("lrp-epsilon-plus-flat", LRP, lrp(ZPLUS, EPS, lambda p: flat_rule()), ""),
    # Zennit EpsilonGammaBox: ZBox on the first conv (Zennit's first_map has Convolution only; glassbox would also
    # take a first dense layer), Gamma on convs, Epsilon on dense
    "lrp-epsilon-gamma-box": ("lrp-epsilon-gamma-box", dict(LRP, gamma="0.25", low="{lo}", high="{hi}"),
                              lrp(GAMMA, EPS, lambda p: zbox_rule(float(p["low"]), float(p["high"]))), ""),
    # Zennit EpsilonAlpha2Beta1: AlphaBeta(2, 1) on every conv (the first included), Epsilon on dense
    "lrp-epsilon-alpha2-beta1": ("lrp-epsilon-alpha2-beta1", dict(LRP, alpha="2", beta="1"), lrp(AB, EPS), ""),
}


def tie_margin(model, x):
    """Per row (float64): the smallest ReLU |z| / max|z| and max-pool gap between two positive leaders / max|in|."""
    out = torch.full((len(x),), np.inf, dtype=x.dtype)

    def sub(i, m, h):
        scale = h.flatten(1).abs().max(1)[0].clamp(min=1e-300)
        if isinstance(m, nn.ReLU):
            out.copy_(torch.minimum(out, h.flatten(1).abs().min(1)[0] / scale))
        elif isinstance(m, nn.MaxPool2d):
            u = F.unfold(h, m.kernel_size, padding=m.padding, stride=m.stride)
            u = u.reshape(len(h), h.shape[1], -1, u.shape[-1]).topk(2, dim=2)[0]
            gap = torch.where(u[:, :, 1] > 0, u[:, :, 0] - u[:, :, 1], torch.full_like(u[:, :, 0], np.inf))
            out.copy_(torch.minimum(out, gap.flatten(1).min(1)[0] / scale))
    with torch.no_grad():
        run(model, x, sub)
    return out


# ------------------------------------------------------------------ glassbox side
def glassbox(exe, *args):  # waits and retries while the binary is missing or being relinked
    for _ in range(40):
        try:
            r = subprocess.run([exe, *args], capture_output=True, text=True)
            if r.returncode >= 0:  # < 0: killed by a signal (a half-written binary)
                break
        except OSError:
            pass
        time.sleep(3)
    else:
        sys.exit(f"{exe}: could not run it")
    if r.returncode != 0:
        sys.exit(f"glassbox {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def explain(args, path, xfile, method, target, params, out):
    """glassbox explain; returns its attributions [N, ...] (OUT/STEM_METHOD.npy, STEM = cmd_explain.cpp's safe_name
    of the input's name) and the summary's per-image entries."""
    glassbox(args.glassbox, "explain", "--model", path, "--input", xfile, "--input-space", "model", "--method", method,
             "--target", str(target), "--out", out, *[a for k, v in params.items() for a in ("--param", f"{k}={v}")])
    images = json.load(open(f"{out}/summary.json"))["images"]
    # output_stem: "x.npy[3]" -> "x[3]", then safe_name
    stem = lambda s: re.sub(r"_+$", "", re.sub(r"[^A-Za-z0-9.\-]+", "_", s.replace(".npy[", "[", 1)).lstrip("_")) or "input"
    return np.stack([np.load(f"{out}/{stem(im['name'])}_{method}.npy") for im in images]), images


def make_inputs(n, shape, seed, norm):
    """Uniform noise plus a Gaussian blob in pixel space [0, 1], put through the model's normalization; returns them
    and the zB bounds (pixels 0 and 1 in model space)."""
    g, (C, H, W) = np.random.default_rng(seed), shape
    yy, xx = np.mgrid[0:H, 0:W]
    X = 0.4 * g.random((n, C, H, W))
    for i in range(n):
        cy, cx, s = g.uniform(0.25, 0.75) * H, g.uniform(0.25, 0.75) * W, g.uniform(2, 6)
        X[i] += 0.6 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    X, lo, hi = np.clip(X, 0, 1), 0.0, 1.0
    if norm:
        m, sd = np.array(norm["mean"])[:, None, None], np.array(norm["std"])[:, None, None]
        X, lo, hi = (X - m) / sd, float(np.min(-m / sd)), float(np.max((1 - m) / sd))
    return X.astype(np.float32), lo, hi


def prepare_model(spec, args, work):  # a file as it is; a preset trained by glassbox 2 epochs on 256 noise+blob images
    if os.path.isfile(spec):
        return spec
    if not re.fullmatch(r"[\w-]+", spec):
        sys.exit(f"--model {spec}: neither a file nor a preset name")
    shape = tuple(map(int, re.search(r"input\((\d+),(\d+),(\d+)\)", glassbox(args.glassbox, "info", spec, "--arch")).groups()))
    np.save(f"{work}/{spec}_X.npy", make_inputs(256, shape, args.seed + 1, None)[0])
    np.save(f"{work}/{spec}_Y.npy", np.random.default_rng(args.seed).permutation(np.arange(256) % 10))
    glassbox(args.glassbox, "train", "--model", spec, "--data", f"npy:{work}/{spec}_X.npy,{work}/{spec}_Y.npy",
             "--epochs", "2", "--seed", str(args.seed), "--quiet", "--out", f"{work}/{spec}.safetensors")
    return f"{work}/{spec}.safetensors"


def rel(a, r):  # per input: max|a - r| / max|r|
    a, r = np.asarray(a).reshape(len(a), -1), np.asarray(r).reshape(len(r), -1)
    return np.abs(a - r).max(1) / np.maximum(np.abs(r).max(1), 1e-300)


def ig_ties(args, path, work, X, t, p, A, m64):
    """glassbox's gradients at IG's float32 path points (explain saliency, one call per target class) against the
    reference's: every point where they differ must be a near-tie; then the reference IG with glassbox's gradients
    at those points must match. Returns (rel per input, note) or None."""
    alphas, b = ig_nodes(int(p["n_steps"]))[0], np.float32(p["baseline"]) if not p["baseline"].endswith(".npy") else np.load(p["baseline"])
    P = np.stack([b + np.float32(a) * (X - b) for a in alphas])  # [k][n], in float as glassbox forms them
    G = np.zeros_like(P)
    for c in sorted(set(t.tolist())):
        sel = np.nonzero(t.numpy() == c)[0]
        np.save(f"{work}/ig_path.npy", P[:, sel].reshape(-1, *X.shape[1:]))
        G[:, sel] = explain(args, path, f"{work}/ig_path.npy", "saliency", c, {"abs": "false"}, f"{work}/ig_path")[0] \
            .reshape(len(alphas), len(sel), *X.shape[1:])
    P64 = torch.from_numpy(P).double()
    g64 = [gradient(m64, P64[k], t) for k in range(len(alphas))]
    off = np.stack([rel(G[k], g64[k]) > args.tol for k in range(len(alphas))])
    if (off & np.stack([tie_margin(m64, P64[k]).numpy() >= TIE for k in range(len(alphas))])).any():
        return None
    mixed = [torch.where(torch.from_numpy(off[k])[:, None, None, None], torch.from_numpy(G[k]).double(), g64[k])
             for k in range(len(alphas))]
    r = rel(A, integrated_gradients(m64, torch.from_numpy(X).double(), t, p, mixed)[0].numpy())
    return r, f"tie: {off.sum()} of {off.size} path points cross a near-tie in glassbox; with its gradients there: {r.max():.1e}"


def run_model(spec, args, work):
    path = prepare_model(spec, args, work)
    m32, shape, norm = build_model(path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import torch_baseline
    if spec in torch_baseline.MODELS and str(m32) != str(torch_baseline.MODELS[spec]()):
        sys.exit(f"{spec}: the model read from {path} differs from torch_baseline.{spec}():\n{m32}")
    m32.requires_grad_(False)
    m64, tag = copy.deepcopy(m32).double(), os.path.splitext(os.path.basename(path))[0]
    X, lo, hi = make_inputs(args.n, shape, args.seed, norm)
    fill = dict(lo=repr(lo), hi=repr(hi), image=f"{work}/{tag}_baseline.npy", xfile=f"{work}/{tag}_inputs.npy")
    np.save(fill["xfile"], X)
    np.save(fill["image"], make_inputs(1, shape, args.seed + 2, norm)[0])
    x32, x64, rows = torch.from_numpy(X), torch.from_numpy(X).double(), []
    for target in args.targets:
        for name in args.methods:
            method, p, ref, kind = METHODS[name]
            p = {k: v.format(**fill) for k, v in p.items()}
            A, images = explain(args, path, fill["xfile"], method, target, p, f"{work}/{tag}/{name}_{target}")
            t = torch.tensor([im["target"] for im in images])
            if name == args.methods[0]:  # the forward pass: glassbox's target logits
                r = np.abs(np.array([im["logit"] for im in images]) - logit(m64, x64, t).numpy()).max() / logit(m64, x64, t).abs().max().item()
                rows.append(("forward (target logit)", target, r, None, None, None, "PASS" if r <= args.tol else "FAIL", ""))
            ra, rd = ref(m64, x64, t, p)
            r, floor = rel(A, ra.detach().numpy()), rel(ref(m32, x32, t, p)[0].detach().numpy(), ra.detach().numpy())
            bad, notes, f32 = r > args.tol, [], (r > args.tol) & (r <= 10 * floor)
            if f32.any():
                notes.append(f"f32: inputs {list(np.nonzero(f32)[0])} within 10x their floor (worst {r[f32].max():.1e})")
            bad &= ~f32
            rows_t = x64 if kind == "grad" else baseline(p, x64) if kind == "dl" else None  # DeepLIFT: the baseline
            if bad.any() and rows_t is not None and (tie_margin(m64, rows_t).numpy()[bad] < TIE).all():
                notes.append(f"tie: inputs {list(np.nonzero(bad)[0])}: " + ("a near-tie in the forward pass" if kind == "grad"
                             else "the baseline's max-pool windows tie; their argmax routes the reference's share"))
                bad[:] = False
            if bad.any() and kind == "ig" and (found := ig_ties(args, path, work, X, t, p, A, m64)) and (found[0] <= args.tol).all():
                bad[:] = False
                notes.append(found[1])
            gd = [im["methods"][method].get("delta") for im in images]
            rows.append((name, target, r.max(), floor.max(), None if rd is None else rd.abs().max().item(),
                         None if gd[0] is None else max(map(abs, gd)), "FAIL" if bad.any() else "PASS*" if notes else "PASS",
                         "; ".join(notes)))
    fmt = lambda v: f"{v:11.2e}" if v is not None else f"{'-':>11}"
    print(f"{'model':8} {'method':28} {'target':6} {'max rel diff':>12} {'f32 floor':>11} {'ref |delta|':>11} {'gb |delta|':>11}  result")
    for name, target, r, floor, rd, gd, res, note in rows:
        print(f"{tag:8} {name:28} {target:6} {r:12.2e} {fmt(floor)} {fmt(rd)} {fmt(gd)}  {res}" + (f"\n{'':10}{note}" if note else ""))
    return all(row[6] != "FAIL" for row in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--glassbox", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tools", "glassbox"))
    ap.add_argument("--model", default="lenet5", help="glassbox .safetensors file(s) or preset name(s), comma-separated")
    ap.add_argument("--n", type=int, default=8, help="number of random inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from: " + ", ".join(METHODS))
    ap.add_argument("--targets", default="3,pred", help="glassbox --target values, comma-separated")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--keep", help="keep the models, inputs and glassbox outputs in this folder")
    args = ap.parse_args()
    args.methods, args.targets = args.methods.split(","), args.targets.split(",")
    if set(args.methods) - set(METHODS):
        ap.error(f"unknown method(s) {sorted(set(args.methods) - set(METHODS))}; known: {', '.join(METHODS)}")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ok = [run_model(spec, args, args.keep or tmp) for spec in args.model.split(",")]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
