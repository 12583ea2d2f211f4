"""attack() equals `glassbox attack`'s adversarial.npy bit for bit and its summary.json numbers exactly."""
import json

import numpy as np
import pytest

from conftest import ARCH, glassbox, run_cli


@pytest.fixture(scope="module")
def pixels():
    # inside the pixel range [0, 1]: the model has no normalization, so pixels are its inputs
    return np.random.default_rng(5).uniform(0, 1, (4, 1, 16, 16)).astype(np.float32)


def cli_attack(tmp, x, method, eps=None, target=None, params=()):
    np.save(tmp / "x.npy", x)
    args = ["attack", "--model", ARCH, "--input", tmp / "x.npy", "--method", method, "--explain", "none",
            "--out", tmp / "out"]
    if eps is not None:
        args += ["--eps", eps]
    if target is not None:
        args += ["--target", target]
    for p in params:
        args += ["--param", p]
    code, out = run_cli(*args)
    assert code == 0, out
    return np.load(tmp / "out" / "adversarial.npy"), json.loads((tmp / "out" / "summary.json").read_text())


CASES = [
    ("fgsm", 0.05, None, {}),
    ("fgsm", 0.1, 3, {}),
    ("pgd", 0.05, None, {"step_num": 5, "step_size": 0.01}),
    ("pgd", 0.1, 2, {"step_num": 4, "step_size": 0.03, "random_start": "true"}),
    ("deepfool", None, None, {}),
    ("cw", None, None, {"max_iterations": 20, "binary_search_steps": 2}),
    ("jsma", None, 4, {}),
    ("explanation-topk", 0.03, None, {"steps": 3}),
]


@pytest.mark.parametrize("method,eps,target,params", CASES)
def test_attack_equals_cli(tmp_path, model, pixels, method, eps, target, params):
    want_adv, want = cli_attack(tmp_path, pixels, method, eps, target, [f"{k}={v}" for k, v in params.items()])
    r = glassbox.attack(model, pixels, method, eps=eps, target=target, **params)
    assert r["adversarial"].shape == pixels.shape and r["adversarial"].dtype == np.float32
    assert np.array_equal(r["adversarial"], want_adv), f"max |diff| {np.abs(r['adversarial'] - want_adv).max()}"
    for n, row in enumerate(want["inputs"]):
        assert r["before"][n] == row["before"] and r["after"][n] == row["after"]
        assert bool(r["success"][n]) == row["success"]
        assert r["target"][n] == row["target"]
        for key in ["l0", "l2", "linf"]:
            assert r[key][n] == row[key], key
        for key, v in r["values"].items():
            assert (row[key] is None and not np.isfinite(v[n])) or v[n] == row[key], key
    assert r["success_rate"] == want["totals"]["success_rate"]
    rate = want["totals"]["success_rate_initially_correct"]  # null when no input started correct
    assert (rate is None and np.isnan(r["success_rate_initially_correct"])) or r["success_rate_initially_correct"] == rate
    assert r["initially_correct"] == want["totals"]["initially_correct"]
    # the perturbation stays in the pixel range and, for attacks with an epsilon, inside its L-inf ball
    assert r["adversarial"].min() >= 0 and r["adversarial"].max() <= 1
    if eps is not None and method in ("fgsm", "pgd"):
        assert np.abs(r["adversarial"] - pixels).max() <= eps + 1e-6
        assert np.all(r["linf"] <= eps + 1e-6)


def test_fgsm_is_one_signed_gradient_step(model, pixels):
    """FGSM untargeted: x + eps sign(grad of the loss at the predicted class), clipped to [0, 1]."""
    eps = 0.02
    pred = model.forward(pixels).argmax(1)
    r = glassbox.attack(model, pixels, "fgsm", eps=eps)
    delta = r["adversarial"] - pixels
    moved = np.abs(delta) > 1e-7
    # every moved pixel moved by eps (or hit the range's edge)
    edge = (r["adversarial"] == 0) | (r["adversarial"] == 1)
    assert np.all(np.isclose(np.abs(delta[moved]), eps, atol=1e-6) | edge[moved])
    # the step raises the loss at the label: the true class's log-probability falls
    def logp(x):
        z = model.forward(x).astype(np.float64)
        return (z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True))[
            np.arange(len(x)), pred]
    assert np.all(logp(r["adversarial"]) <= logp(pixels) + 1e-6)
    assert list(r["label"]) == list(pred)


def test_batch_equals_one_by_one(model, pixels):
    r = glassbox.attack(model, pixels, "pgd", eps=0.05, step_num=3, step_size=0.02)
    for n in range(len(pixels)):
        one = glassbox.attack(model, pixels[n:n + 1], "pgd", eps=0.05, step_num=3, step_size=0.02)
        assert np.array_equal(one["adversarial"][0], r["adversarial"][n])


def test_attacks_are_listed():
    m = glassbox.methods("attacks")
    assert {"fgsm", "pgd", "cw", "deepfool", "jsma"} <= set(m)
    assert "epsilon" in m["fgsm"]["params"]


def test_bad_inputs_raise(tmp_path, model, pixels):
    with pytest.raises(ValueError) as e:
        glassbox.attack(model, pixels, "fgsn")
    np.save(tmp_path / "x.npy", pixels)
    code, out = run_cli("attack", "--model", ARCH, "--input", tmp_path / "x.npy", "--method", "fgsn",
                        "--out", tmp_path / "o")
    assert code != 0 and str(e.value) in out
    with pytest.raises(ValueError, match="has no epsilon"):
        glassbox.attack(model, pixels, "cw", eps=0.1)
    with pytest.raises(ValueError, match="both given"):
        glassbox.attack(model, pixels, "fgsm", eps=0.1, epsilon=0.2)
    with pytest.raises(ValueError, match="eps"):
        glassbox.attack(model, pixels, "fgsm", eps=float("nan"))
    with pytest.raises(ValueError, match="epsilonn"):
        glassbox.attack(model, pixels, "fgsm", epsilonn=0.1)
    with pytest.raises(ValueError, match="substitute"):
        glassbox.attack(model, pixels, "substitute")
    with pytest.raises(ValueError, match="labels: 2 labels for 4 inputs"):
        glassbox.attack(model, pixels, "fgsm", labels=[0, 1])
    with pytest.raises(ValueError, match=r"attack\(target=9\): outside the model's classes"):
        glassbox.attack(model, pixels, "fgsm", target=9)
    with pytest.raises(ValueError, match=r"attack\(target=-1\): .*target=None is untargeted"):  # was let through
        glassbox.attack(model, pixels, "fgsm", target=-1)
    with pytest.raises(ValueError, match="input 0"):
        glassbox.attack(model, pixels + 2, "fgsm")  # outside the pixel range


def test_detection_with_a_reference_set_equals_cli(tmp_path, model):
    """detect-explanation's clean reference maps come from data=(x, y), as from --ref-data/--ref-index."""
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (30, 1, 16, 16)).astype(np.float32)
    y = model.forward(x).argmax(1)  # the classes the reference maps are grouped by
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    spec = f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}"
    code, out = run_cli("attack", "--model", ARCH, "--data", spec, "--index", "0:4", "--split", "test",
                        "--method", "detect-explanation", "--param", "attack=fgsm", "--ref-data", spec,
                        "--ref-index", "0:12", "--ref-split", "train", "--explain", "none", "--out", tmp_path / "out")
    assert code == 0, out
    want = json.loads((tmp_path / "out" / "summary.json").read_text())
    test, train = np.arange(30) % 5 == 4, np.arange(30) % 5 != 4
    r = glassbox.attack(model, x[test][:4], "detect-explanation", labels=y[test][:4], attack="fgsm",
                        data=(x[train][:12], y[train][:12]))
    assert np.array_equal(r["adversarial"], np.load(tmp_path / "out" / "adversarial.npy"))
    assert r["totals"].get("roc_auc", None) == want["totals"].get("roc_auc", None) or (
        want["totals"]["roc_auc"] is None and not np.isfinite(r["totals"]["roc_auc"]))
    for n, row in enumerate(want["inputs"]):
        for key, v in r["values"].items():
            assert (row[key] is None and not np.isfinite(v[n])) or v[n] == row[key], key
