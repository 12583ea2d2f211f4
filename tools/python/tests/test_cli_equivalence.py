"""Every attribution method through Python equals `glassbox explain`'s .npy output bit for bit."""
import json

import numpy as np
import pytest

from conftest import ARCH, glassbox, run_cli


def cli_maps(tmp, model_spec, x, method, target, params=()):
    """The CLI's attribution of every row of x, stacked [N, ...] (names x_<n>_ or x.npy_<n>_). Python
    takes arrays in the model's input space, the CLI pixels unless told so."""
    np.save(tmp / "x.npy", x)
    args = ["explain", "--model", model_spec, "--input", tmp / "x.npy", "--input-space", "model", "--method", method,
            "--target", target, "--out", tmp / "out"]
    for p in params:
        args += ["--param", p]
    code, out = run_cli(*args)
    assert code == 0, out
    rows = []
    for n in range(len(x)):
        for stem in (f"x_{n}_{method}.npy", f"x.npy_{n}_{method}.npy"):
            if (tmp / "out" / stem).exists():
                rows.append(np.load(tmp / "out" / stem))
                break
        else:
            raise AssertionError(f"no output for row {n} of {method}: {sorted(p.name for p in (tmp / 'out').iterdir())}")
    return np.stack(rows)


def kwargs_of(params):
    return dict(p.split("=", 1) for p in params)


METHODS = sorted(glassbox.methods())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_equals_cli(tmp_path, model, inputs, method):
    want = cli_maps(tmp_path, ARCH, inputs, method, "2")
    got = glassbox.explain(model, inputs, 2, method)
    assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
    assert got.shape == want.shape
    assert np.array_equal(got, want), f"{method}: max |diff| {np.abs(got - want).max()}"


# Non-default parameters, targets "pred" and units of a layer.
CASES = [
    ("integrated-gradients", "pred", ["n_steps=16", "baseline=white"]),
    ("integrated-gradients", "1", ["baseline=0.25", "method=riemann_trapezoid"]),
    ("smoothgrad", "0", ["stdev=0.3", "n=5", "seed=3"]),
    ("occlusion", "pred", ["window=4", "stride=2"]),
    ("lrp", "3", ["rule=conv=gamma:0.25,dense=epsilon:0.01"]),
    ("guided-backprop", "conv2:1", []),
    ("saliency", "relu1:2,3,4", ["abs=true"]),
    ("deeplift", "pred", ["baseline=white"]),
]


@pytest.mark.parametrize("method,target,params", CASES)
def test_parameters_and_targets_equal_cli(tmp_path, model, inputs, method, target, params):
    want = cli_maps(tmp_path, ARCH, inputs, method, target, params)
    t = int(target) if target.isdigit() else target
    kw = kwargs_of(params)
    # IG's `method` parameter collides with explain()'s own argument: it goes in params=.
    extra = {"method": kw.pop("method")} if "method" in kw else None
    got = glassbox.explain(model, inputs, t, method, params=extra, **kw)
    assert np.array_equal(got, want)


def test_numbers_as_python_numbers_equal_cli(tmp_path, model, inputs):
    want = cli_maps(tmp_path, ARCH, inputs, "smoothgrad", "1", ["stdev=0.1", "n=4"])
    got = glassbox.explain(model, inputs, 1, "smoothgrad", stdev=0.1, n=4)
    assert np.array_equal(got, want)


def test_array_baseline_equals_npy_baseline(tmp_path, model, inputs):
    base = np.full((1, 1, 16, 16), 0.5, np.float32)
    np.save(tmp_path / "b.npy", base)
    want = cli_maps(tmp_path, ARCH, inputs, "integrated-gradients", "2", [f"baseline={tmp_path / 'b.npy'}"])
    got = glassbox.explain(model, inputs, 2, "integrated-gradients", baseline=base)
    assert np.array_equal(got, want)
    # and the same through the file name
    assert np.array_equal(glassbox.explain(model, inputs, 2, "integrated-gradients", baseline=str(tmp_path / "b.npy")), want)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model file trained with a stored normalization (mean/std), so black baselines and zB boxes
    go through it as in the CLI."""
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0.2, 0.9, (200, 1, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 5, 200)
    m = glassbox.load(ARCH)
    glassbox.train(m, (pixels, labels), epochs=1, seed=1)
    path = tmp_path_factory.mktemp("trained") / "m.safetensors"
    m.save(path)
    return path, m, m.normalize(pixels[:3])


@pytest.mark.parametrize("method", ["integrated-gradients", "deeplift", "lrp-epsilon-gamma-box", "occlusion"])
def test_normalized_model_defaults_equal_cli(tmp_path, trained, method):
    path, m, x = trained
    assert m.info()["normalization"] is not None
    params = []  # occlusion's default too: black through the normalization (it was the training mean)
    want = cli_maps(tmp_path, path, x, method, "pred", params)
    got = glassbox.explain(glassbox.load(path), x, "pred", method, **kwargs_of(params))
    assert np.array_equal(got, want)


def test_details_match_summary(tmp_path, model, inputs):
    cli_maps(tmp_path, ARCH, inputs, "integrated-gradients", "2")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    _, d = glassbox.explain(model, inputs, 2, "integrated-gradients", return_details=True)
    want = [img["methods"]["integrated-gradients"]["delta"] for img in summary["images"]]
    assert np.allclose(d["delta"], want, rtol=1e-12, atol=0)
    assert d["signed"] is True


@pytest.mark.parametrize("method", ["integrated-gradients", "deeplift"])
def test_summary_has_f_x_and_f_baseline(tmp_path, model, inputs, method):
    cli_maps(tmp_path, ARCH, inputs, method, "3", ["baseline=white"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    logits = model.forward(inputs)[:, 3]
    white = model.forward(np.ones_like(inputs))[:, 3]
    for n, img in enumerate(summary["images"]):
        e = img["methods"][method]
        assert e["f_x"] == pytest.approx(float(logits[n]), rel=1e-6, abs=1e-6)
        assert e["f_baseline"] == pytest.approx(float(white[n]), rel=1e-6, abs=1e-6)
        # delta = sum - (f(x) - f(baseline))
        assert e["delta"] == pytest.approx(e["sum"] - (e["f_x"] - e["f_baseline"]), abs=1e-5)


def test_train_of_a_toy_preset_equals_cli(tmp_path):
    """train() takes glassbox train's toy defaults (10x the rate for toy2d): it trained at 1e-3."""
    code, out = run_cli("--threads", "1", "train", "--model", "toy2d", "--data", "toy:moons", "--epochs", "2",
                        "--quiet", "--out", tmp_path / "cli.safetensors")
    assert code == 0, out
    before = glassbox.threads()
    try:
        glassbox.set_threads(1)
        m = glassbox.load("toy2d")
        glassbox.train(m, "toy:moons", 2)
    finally:
        glassbox.set_threads(before)
    x = np.asarray(glassbox.datasets.load("toy:moons", "test").x)
    assert np.array_equal(m.forward(x), glassbox.load(tmp_path / "cli.safetensors").forward(x))
