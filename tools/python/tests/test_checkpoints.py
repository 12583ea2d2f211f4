"""What needs a second model: TracIn's checkpoints in influence() and data-randomisation's model
trained on shuffled labels in evaluate(), each equal to the command given the same files."""
import json

import numpy as np
import pytest

from conftest import ARCH, glassbox, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 5, 20)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    for seed in (1, 2, 3):
        glassbox.load(ARCH, seed=seed).save(d / f"m{seed}.safetensors")
    test = np.arange(20) % 5 == 4
    return d, x, y, test


def test_tracin_checkpoints_equal_cli(files):
    d, x, y, test = files
    code, out = run_cli("influence", "--model", d / "m3.safetensors", "--data", f"npy:{d / 'x.npy'},{d / 'y.npy'}",
                        "--index", "0:2", "--split", "test", "--method", "tracin", "--param", "lr=0.1",
                        "--checkpoints", d / "m1.safetensors", "--checkpoints", d / "m2.safetensors", "--out", d / "out")
    assert code == 0, out
    want = np.load(d / "out" / "tracin_scores.npy")
    m = glassbox.load(d / "m3.safetensors")
    # checkpoints as files and as models
    for cks in ([d / "m1.safetensors", d / "m2.safetensors"],
                [glassbox.load(d / "m1.safetensors"), glassbox.load(d / "m2.safetensors")]):
        r = glassbox.influence(m, (x[~test], y[~test]), (x[test][:2], y[test][:2]), "tracin", checkpoints=cks, lr=0.1)
        assert np.array_equal(r["scores"], want)
    # TracIn is linear in the checkpoints: two copies of one checkpoint give twice its scores
    one = glassbox.influence(m, (x[~test], y[~test]), (x[test][:2], y[test][:2]), "tracin",
                             checkpoints=[d / "m1.safetensors"], lr=0.1)["scores"]
    two = glassbox.influence(m, (x[~test], y[~test]), (x[test][:2], y[test][:2]), "tracin",
                             checkpoints=[d / "m1.safetensors"] * 2, lr=0.1)["scores"]
    assert np.allclose(two, 2 * one, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="checkpoints"):
        glassbox.influence(m, (x[~test], y[~test]), (x[test][:2], y[test][:2]), "tracin", lr=0.1)
    with pytest.raises(ValueError, match=r"checkpoints\[0\].*architecture differs"):
        glassbox.influence(m, (x[~test], y[~test]), (x[test][:2], y[test][:2]), "tracin",
                           checkpoints=[glassbox.load("input(1,16,16) conv(2,k=3) relu gap dense(5)")], lr=0.1)
    with pytest.raises(FileNotFoundError):
        glassbox.influence(m, (x[~test], y[~test]), (x[test][:2], y[test][:2]), "tracin",
                           checkpoints=[d / "none.safetensors"], lr=0.1)


def test_data_randomisation_equals_cli(files):
    d, x, y, test = files
    np.save(d / "in.npy", x[:3])
    code, out = run_cli("evaluate", "--model", d / "m3.safetensors", "--input", d / "in.npy", "--method", "saliency",
                        "--metric", "data-randomisation", "--target", "1", "--label-random-model",
                        d / "m1.safetensors", "--out", d / "ev")
    assert code == 0, out
    want = json.loads((d / "ev" / "metrics.json").read_text())["metrics"]["data-randomisation"]["methods"]["saliency"]
    m, shuffled = glassbox.load(d / "m3.safetensors"), glassbox.load(d / "m1.safetensors")
    r = glassbox.evaluate(m, x[:3], 1, "saliency", "data-randomisation", label_random_model=shuffled)
    assert list(r["values"]) == want["values"]
    with pytest.raises(ValueError, match="label_random_model"):
        glassbox.evaluate(m, x[:3], 1, "saliency", "data-randomisation", label_random_model=m)
    # Another metric does not use it: refused, as the command refuses --label-random-model (it was ignored).
    with pytest.raises(ValueError, match="only metric 'data-randomisation' uses it, not 'sparseness'"):
        glassbox.evaluate(m, x[:3], 1, "saliency", "sparseness", label_random_model=shuffled)
    # The same file loaded twice: another object, the same weights (it scored a meaningless 1).
    with pytest.raises(ValueError, match="same weights as the model"):
        glassbox.evaluate(m, x[:3], 1, "saliency", "data-randomisation",
                          label_random_model=glassbox.load(d / "m3.safetensors"))
