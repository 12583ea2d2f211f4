"""The concepts family from Python (tcav, probe, dissect) equals `glassbox concepts/probe/dissect`'s
files on the same inputs: arrays bit for bit, JSON numbers exactly (they are written round-trip)."""
import json

import numpy as np
import pytest

from conftest import ARCH, glassbox, run_cli

TCAV_PARAMS = {"runs": 3, "random_size": 8, "max_iter": 50, "seed": 5}


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(11)
    return {
        "blobs": rng.uniform(0, 1, (9, 1, 16, 16)).astype(np.float32),  # an array concept (pixels = inputs here)
        "random": rng.uniform(0, 1, (40, 1, 16, 16)).astype(np.float32),
        "inputs": rng.uniform(0, 1, (6, 1, 16, 16)).astype(np.float32),
    }


def cli_tcav(tmp, sets, layers, n):
    for k, v in sets.items():
        np.save(tmp / f"{k}.npy", v)
    args = ["concepts", "--model", ARCH, "--layer", ",".join(layers), "--class", "2", "--n", n,
            "--concept", "stripes=pattern:stripes-h", "--concept", f"blobs=npy:{tmp / 'blobs.npy'}",
            "--concept", "dots=pattern:dots,period=4:6", "--random", f"npy:{tmp / 'random.npy'}",
            "--inputs", f"npy:{tmp / 'inputs.npy'}", "--out", tmp / "out"]
    for k, v in TCAV_PARAMS.items():
        args += ["--param", f"{k}={v}"]
    code, out = run_cli(*args)
    assert code == 0, out
    return json.loads((tmp / "out" / "summary.json").read_text())


def test_tcav_equals_cli(tmp_path, model, sets):
    layers = ["relu1", "relu2"]
    want = cli_tcav(tmp_path, sets, layers, 7)
    got = glassbox.tcav(model, layers, concepts={"stripes": "pattern:stripes-h", "blobs": sets["blobs"],
                                                 "dots": "pattern:dots,period=4:6"},
                        target=2, inputs=sets["inputs"], random=sets["random"], n=7, **TCAV_PARAMS)
    assert got["runs"] == want["runs"] == 3 and got["comparisons"] == want["comparisons"] == 6
    assert got["concept_sizes"] == {"stripes": 7, "blobs": 7, "dots": 7}
    for gl, wl in zip(got["layers"], want["layers"], strict=True):
        assert gl["layer"] == wl["layer"] and gl["shape"] == wl["shape"]
        for gc, wc in zip(gl["concepts"] + [gl["random"]], wl["concepts"] + [wl["random"]], strict=True):
            assert gc["name"] == wc["name"]
            for key in ["tcav", "tcav_std", "magnitude", "magnitude_std", "mean_derivative", "cav_accuracy"]:
                assert gc[key] == wc[key], key
            for key in ["p_value", "magnitude_p_value", "significant", "significant_bonferroni"]:
                assert gc.get(key) == wc.get(key), key
            for key, v in wc["runs"].items():
                assert np.array_equal(gc["runs"][key], v), key
            assert gc["cavs"].shape == (3, *wl["shape"])
            # unit CAVs, one per run
            assert np.allclose(np.linalg.norm(gc["cavs"].reshape(3, -1), axis=1), 1, atol=1e-5)
            if gc["name"] != "random":
                cli_cavs = np.load(tmp_path / "out" / f"cav_{gc['name']}_{gl['layer']}.npy")
                assert np.array_equal(gc["cavs"], cli_cavs)


def test_tcav_is_deterministic_and_seeded(model, sets):
    kw = dict(concepts={"stripes": "pattern:stripes-v"}, target=1, inputs=sets["inputs"], random=sets["random"], n=6)
    a = glassbox.tcav(model, "relu2", **kw, **TCAV_PARAMS)
    b = glassbox.tcav(model, "relu2", **kw, **TCAV_PARAMS)
    c = glassbox.tcav(model, "relu2", **kw, **dict(TCAV_PARAMS, seed=6))
    ca, cb, cc = (r["layers"][0]["concepts"][0]["cavs"] for r in (a, b, c))
    assert np.array_equal(ca, cb) and not np.array_equal(ca, cc)


def test_patterns_are_the_tcav_concepts(model, sets):
    """patterns() gives the images a spec generates; as an array concept they give the same scores,
    given the seed the spec's concept would get (here the first concept of seed 0's)."""
    p = glassbox.patterns("stripes-h", model, n=5, seed=3)
    assert p.shape == (5, 1, 16, 16) and p.min() >= 0 and p.max() <= 1
    assert np.array_equal(p, glassbox.patterns("pattern:stripes-h", model, n=5, seed=3))
    assert not np.array_equal(p, glassbox.patterns("stripes-h", model, n=5, seed=4))
    # image i never depends on how many images the set has
    assert np.array_equal(glassbox.patterns("dots", model, n=3, seed=1), glassbox.patterns("dots", model, n=8, seed=1)[:3])


def test_probe_equals_cli(tmp_path, model):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 5, 40)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    params = {"epochs": 2, "batch": 8, "features": "gap"}
    args = ["probe", "--model", ARCH, "--data", f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}", "--checkpoints", "none",
            "--out", tmp_path / "out"] + sum((["--param", f"{k}={v}"] for k, v in params.items()), [])
    code, out = run_cli(*args)
    assert code == 0, out
    want = json.loads((tmp_path / "out" / "summary.json").read_text())
    test = np.arange(40) % 5 == 4  # the npy dataset's split
    got = glassbox.probe(model, (x[~test], y[~test]), (x[test], y[test]), **params)
    assert got["classes"] == want["classes"] and got["epochs"] == want["epochs"] == 2
    wl = want["models"][0]["layers"]
    assert [l["layer"] for l in got["layers"]] == [l["layer"] for l in wl]
    for g, w in zip(got["layers"], wl):
        for key in ["features", "train_accuracy", "test_accuracy", "train_loss", "test_loss"]:
            assert g[key] == w[key], (g["layer"], key)
        assert g["weight"].shape == (5, g["features"])


def test_dissect_equals_cli(tmp_path, model):
    seg = glassbox.segmentation_set(model, n=24, seed=3)
    assert seg["masks"].dtype == np.uint8 and seg["masks"].shape[:2] == (24, len(seg["concepts"]))
    code, out = run_cli("dissect", "--model", ARCH, "--concepts", "generated:n=24,seed=3", "--param", "top=3",
                        "--out", tmp_path / "out")
    assert code == 0, out
    want = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [c["name"] for c in want["concepts"]] == seg["concepts"]
    assert [c["category"] for c in want["concepts"]] == seg["categories"]
    got = glassbox.dissect(model, model.normalize(seg["images"]), seg["masks"], seg["concepts"],
                           categories=seg["categories"], top=3)
    assert got["quantile"] == want["quantile"]
    for g, w in zip(got["layers"], want["layers"], strict=True):
        assert g["layer"] == w["layer"] and g["unique_concepts"] == w["unique_concepts"]
        assert g["detectors_by_category"] == w["detectors_by_category"]
        assert np.array_equal(g["iou"], np.load(tmp_path / "out" / f"iou_{g['layer']}.npy"))
        for gu, wu in zip(g["units"], w["units"], strict=True):
            for key in ["unit", "threshold", "concept", "category", "iou", "detector", "top_images"]:
                assert gu[key] == wu[key], key


def test_dissect_finds_a_planted_detector(model):
    """A mask equal to where a unit's upsampled map is in its top quantile has IoU 1 with that unit."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1, 16, 16)).astype(np.float32)
    acts = model.activations(x, ["relu1"])["relu1"]  # [N, 4, 16, 16]: full resolution, no upsampling
    k = int(np.argmax((acts > 0).mean(axis=(0, 2, 3))))  # the unit most often active
    a = acts[:, k]
    t = np.percentile(a, 100 * (1 - 0.05))
    masks = (a > t)[:, None].astype(np.uint8)
    assert masks.sum() > 0
    r = glassbox.dissect(model, x, masks, ["planted"], layers="relu1", quantile=0.05)
    u = r["layers"][0]["units"][k]
    assert u["concept"] == "planted" and u["iou"] == pytest.approx(1.0) and u["detector"]
    assert u["threshold"] == pytest.approx(t, rel=1e-5)


def test_bad_inputs_raise(model, sets):
    kw = dict(target=1, inputs=sets["inputs"], random=sets["random"])
    with pytest.raises(ValueError, match="no such layer"):
        glassbox.tcav(model, "relu9", concepts={"a": "pattern:dots"}, **kw)
    with pytest.raises(ValueError, match="pattern:KIND"):
        glassbox.tcav(model, "relu1", concepts={"a": "images:/tmp"}, **kw)
    with pytest.raises(ValueError, match="runz"):
        glassbox.tcav(model, "relu1", concepts={"a": "pattern:dots"}, runz=3, **kw)
    with pytest.raises(ValueError, match="runs"):
        glassbox.tcav(model, "relu1", concepts={"a": "pattern:dots"}, runs=1, **kw)
    with pytest.raises(ValueError, match="stripes-x"):
        glassbox.tcav(model, "relu1", concepts={"a": "pattern:stripes-x"}, **kw)
    with pytest.raises(ValueError, match=r"target=5"):
        glassbox.tcav(model, "relu1", concepts={"a": "pattern:dots"}, **dict(kw, target=5))
    with pytest.raises(ValueError, match="logits"):
        glassbox.tcav(model, "dense1", concepts={"a": "pattern:dots"}, **kw)
    with pytest.raises(ValueError, match=r"concepts\['a'\]: shape"):
        glassbox.tcav(model, "relu1", concepts={"a": np.zeros((3, 1, 8, 8), np.float32)}, **kw)
    x = np.zeros((2, 1, 16, 16), np.float32)
    with pytest.raises(TypeError, match="masks: expected an integer or bool"):
        glassbox.dissect(model, x, np.zeros((2, 1, 16, 16), np.float32), ["c"])
    with pytest.raises(ValueError, match="masks: value 2"):
        glassbox.dissect(model, x, np.full((2, 1, 16, 16), 2, np.uint8), ["c"])
    with pytest.raises(ValueError, match="masks: expected shape"):
        glassbox.dissect(model, x, np.zeros((2, 2, 16, 16), np.uint8), ["c"])
    with pytest.raises(ValueError, match="probe.*labels for"):
        glassbox.probe(model, (x, [0]), (x, [0, 1]))


def test_cav_finds_a_planted_direction():
    """Two sets apart along one direction u and noisy across it: the CAV is close to u, points to the
    concept, and separates held-out rows; the same seed gives the same CAV."""
    rng = np.random.default_rng(1)
    u = np.zeros(20, np.float32)
    u[[3, 7]] = [0.6, 0.8]
    pos = (rng.standard_normal((60, 20)) * 0.3 + 2 * u).astype(np.float32)
    neg = (rng.standard_normal((60, 20)) * 0.3 - 2 * u).astype(np.float32)
    c = glassbox.cav(pos, neg, seed=4)
    assert c["direction"].shape == (20,) and np.linalg.norm(c["direction"]) == pytest.approx(1, abs=1e-5)
    assert c["direction"] @ u > 0.9 and c["accuracy"] == 1.0
    assert c["n_test"] == 2 * round(0.33 * 60) and c["n_train"] + c["n_test"] == 120
    assert np.array_equal(glassbox.cav(pos, neg, seed=4)["direction"], c["direction"])
    # the direction is the normalized weight vector
    assert np.allclose(c["direction"], c["weights"] / np.linalg.norm(c["weights"]), atol=1e-6)
    flipped = glassbox.cav(neg, pos, seed=4, classifier="logistic")
    assert flipped["direction"] @ u < -0.9
    with pytest.raises(ValueError, match="features per row"):
        glassbox.cav(pos, neg[:, :5])
    with pytest.raises(ValueError, match="classifier"):
        glassbox.cav(pos, neg, classifier="tree")


def test_concept_methods_are_listed():
    m = glassbox.methods("concepts")
    assert {"tcav", "probe", "netdissect"} <= set(m)
    assert m["tcav"]["params"]["runs"]["default"] == "10"
    with pytest.raises(ValueError, match="concepts, attacks, importance, rules"):
        glassbox.methods("nope")
