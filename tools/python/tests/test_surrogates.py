"""importance() and rules() equal `glassbox importance` / `glassbox rules` on the same data: arrays bit
for bit, rules word for word and JSON numbers exactly."""
import json

import numpy as np
import pytest

from conftest import glassbox, run_cli

MLP = "input(4) dense(6) relu dense(5) tanh dense(3)"


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """A trained perceptron on 4 features (class = which of three sums is largest), saved with its
    normalization, and the npy dataset the commands read (split: sample i is test when i % 5 == 4)."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (150, 4)).astype(np.float32)
    y = np.argmax(np.stack([x[:, 0] + x[:, 1], -x[:, 0], x[:, 2] * 2]), axis=0)
    m = glassbox.load(MLP, seed=3)
    glassbox.train(m, (x, y), epochs=5, seed=1, lr=0.01)
    d = tmp_path_factory.mktemp("mlp")
    m.save(d / "m.safetensors")
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    test = np.arange(len(x)) % 5 == 4
    return {"path": d / "m.safetensors", "model": glassbox.load(d / "m.safetensors"), "x": x, "y": y, "test": test,
            "spec": f"npy:{d / 'x.npy'},{d / 'y.npy'}"}


@pytest.mark.parametrize("method,params", [("garson", {}), ("garson-signed", {}), ("olden", {}),
                                           ("dimopoulos", {"output": "logit"}), ("miv", {"delta": 0.2})])
def test_importance_equals_cli(tmp_path, mlp, method, params):
    args = ["importance", "--model", mlp["path"], "--data", mlp["spec"], "--split", "test", "--method", method,
            "--out", tmp_path] + sum((["--param", f"{k}={v}"] for k, v in params.items()), [])
    code, out = run_cli(*args)
    assert code == 0, out
    m = mlp["model"]
    r = glassbox.importance(m, m.normalize(mlp["x"][mlp["test"]]), method, **params)
    assert r["per_class"].shape == (3, 4) and r["feature_shape"] == [4]
    assert np.array_equal(r["per_class"], np.load(tmp_path / f"{method}.npy"))
    assert np.array_equal(r["overall"], np.load(tmp_path / f"{method}_overall.npy"))
    for k, v in r["extra"].items():
        assert np.array_equal(v, np.load(tmp_path / f"{method}_{k}.npy")), k
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert r["meaning"] == summary[method]["meaning"]
    if method == "garson":  # shares: each class's importances sum to 1
        assert np.allclose(r["per_class"].sum(1), 1, atol=1e-5)


def with_weights(src, dst, weights):
    """Copies a safetensors model file with some float32 tensors replaced (same shapes)."""
    raw = src.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = bytearray(raw[8 + n:])
    for name, value in weights.items():
        lo, hi = header[name]["data_offsets"]
        assert header[name]["shape"] == list(value.shape), (name, header[name]["shape"])
        data[lo:hi] = np.ascontiguousarray(value, np.float32).tobytes()
    dst.write_bytes(raw[:8 + n] + bytes(data))


def test_garson_by_hand(tmp_path):
    """Garson on a 2-2-1 perceptron with known weights (Goh's form): feature j's importance is
    sum_h |w_hj| / sum_j' |w_hj'| * |v_h|, as shares summing to 1."""
    m = glassbox.load("input(2) dense(2) relu dense(1)")
    m.save(tmp_path / "a.safetensors")
    w1 = np.array([[1.0, -3.0], [2.0, 1.0]], np.float32)  # [out, in]
    v = np.array([[0.5, -1.5]], np.float32)
    with_weights(tmp_path / "a.safetensors", tmp_path / "b.safetensors",
                 {"dense1.weight": w1, "dense2.weight": v})
    r = glassbox.importance(glassbox.load(tmp_path / "b.safetensors"), np.zeros((1, 2), np.float32), "garson")
    share = np.abs(w1) / np.abs(w1).sum(1, keepdims=True)  # per hidden unit h: its inputs' shares
    want = (share * np.abs(v[0])[:, None]).sum(0)
    assert np.allclose(r["per_class"][0], want / want.sum(), atol=1e-6)


def test_tree_rules_equal_cli(tmp_path, mlp):
    code, out = run_cli("rules", "--model", mlp["path"], "--data", mlp["spec"], "--method", "tree", "--param",
                        "max_depth=3", "--out", tmp_path)
    assert code == 0, out
    want = json.loads((tmp_path / "tree_tree.json").read_text())
    m, x, test = mlp["model"], mlp["x"], mlp["test"]
    got = glassbox.rules(m, "tree", data=m.normalize(x[~test]), test=m.normalize(x[test]), max_depth=3)
    assert len(got) == 1 and got[0]["name"] == "tree"
    assert got[0]["rules"] == want["rules"]
    d = dict(got[0]["details"], rules=got[0]["rules"])
    assert d == want
    # fidelity is the share of inputs where the tree agrees with the model
    fid = [v for k, v in got[0]["details"].items() if "fidelity" in k]
    assert fid and all(0 <= f <= 1 for f in fid if isinstance(f, float))


def test_anchors_equal_cli(tmp_path, mlp):
    code, out = run_cli("rules", "--model", mlp["path"], "--data", mlp["spec"], "--method", "anchors", "--index", "0:2",
                        "--param", "max_samples=5000", "--param", "coverage_samples=500", "--out", tmp_path)
    assert code == 0, out
    summary = json.loads((tmp_path / "summary.json").read_text())
    m, x, test = mlp["model"], mlp["x"], mlp["test"]
    got = glassbox.rules(m, "anchors", inputs=m.normalize(x[test][:2]), data=m.normalize(x[~test]),
                         max_samples=5000, coverage_samples=500)
    want = summary["anchors"]["results"]
    assert [g["rules"] for g in got] == [w["rules"] for w in want]
    for g, w in zip(got, want):
        cli = json.loads((tmp_path / f"{w['name']}_anchors.json").read_text())
        assert {k: v for k, v in g["details"].items()} == {k: v for k, v in cli.items() if k != "rules"}


def test_bad_inputs_raise(tmp_path, mlp):
    m = mlp["model"]
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError) as e:
        glassbox.importance(m, x, "garsen")
    code, out = run_cli("importance", "--model", mlp["path"], "--data", mlp["spec"], "--method", "garsen",
                        "--out", tmp_path)
    assert code != 0 and str(e.value) in out
    with pytest.raises(ValueError, match="retrains"):
        glassbox.importance(m, x, "olden", rounds=5)
    with pytest.raises(ValueError, match="outputt"):
        glassbox.importance(m, x, "miv", outputt="prob")
    with pytest.raises(ValueError, match=r"x: shape \[3,5\]"):
        glassbox.importance(m, np.zeros((3, 5), np.float32), "garson")
    with pytest.raises(ValueError, match="treee"):
        glassbox.rules(m, "treee", data=x)
    with pytest.raises(ValueError, match="max_depth"):
        glassbox.rules(m, "tree", data=x, max_depth=99)
    with pytest.raises(ValueError, match="one name per input"):
        glassbox.rules(m, "anchors", inputs=x, data=x, input_names=["a"])
    assert {"garson", "olden", "miv"} <= set(glassbox.methods("importance"))
    assert {"anchors", "tree"} <= set(glassbox.methods("rules"))


def test_soft_tree_equals_distill_and_routes_consistently(tmp_path):
    """A soft-tree student made by `glassbox distill`: soft_tree() gives its .tree.json, and its routing
    is a probability flow: the root is reached with 1, each inner node's reach splits into its
    children by p(right), and the leaves' reaches mix the leaf distributions into the model's output."""
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, (60, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).astype(np.int64) + 2 * (x[:, 0, :, :4].mean((1, 2)) > 0.5)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    teacher = glassbox.load("input(1,8,8) conv(4,k=3,p=1) relu gap dense(4)")
    teacher.save(tmp_path / "t.safetensors")
    code, out = run_cli("distill", "--teacher", tmp_path / "t.safetensors", "--student", "soft-tree:2",
                        "--data", f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}", "--epochs", "1", "--quiet",
                        "--out", tmp_path / "s.safetensors")
    assert code == 0, out
    want = json.loads((tmp_path / "s.tree.json").read_text())
    s = glassbox.load(tmp_path / "s.safetensors")
    xs = s.normalize(x[:10])
    r = glassbox.soft_tree(s, xs, index=0)
    assert r["tree"] == want
    assert r["figure"] is not None and r["figure"].ndim == 3
    right, reach = r["right"].astype(np.float64), r["reach"].astype(np.float64)
    assert right.shape == (10, 3) and reach.shape == (10, 7)
    assert np.allclose(reach[:, 0], 1)
    for i in range(3):  # heap order: children 2i+1 (left) and 2i+2 (right)
        assert np.allclose(reach[:, 2 * i + 2], reach[:, i] * right[:, i], atol=1e-6)
        assert np.allclose(reach[:, 2 * i + 1], reach[:, i] * (1 - right[:, i]), atol=1e-6)
    leaves = reach[:, 3:]
    assert np.allclose(leaves.sum(1), 1, atol=1e-6)
    assert list(r["leaf"]) == list(leaves.argmax(1))
    with pytest.raises(ValueError, match="no softtree layer"):
        glassbox.soft_tree(glassbox.load("input(1,8,8) flatten dense(4)"), xs)
    with pytest.raises(ValueError, match="index=10"):
        glassbox.soft_tree(s, xs, index=10)


def test_importance_chart_of_many_features_stays_legible(tmp_path):
    """With many flat features the bar chart shows the 40 most important (its width grew with
    features x classes: 1000 features and 20 classes made a 400,000-pixel-wide PNG)."""
    m = glassbox.load("input(300) dense(4) relu dense(12)", seed=1)
    m.save(tmp_path / "w.safetensors")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.uniform(0, 1, (20, 300)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(20) % 12)
    code, out = run_cli("importance", "--model", tmp_path / "w.safetensors", "--data",
                        f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}", "--method", "garson", "--out", tmp_path / "o")
    assert code == 0, out
    png = (tmp_path / "o" / "garson.png").read_bytes()
    width = int.from_bytes(png[16:20], "big")
    assert 640 <= width <= 8000
    assert np.load(tmp_path / "o" / "garson.npy").shape == (12, 300)  # the arrays keep every feature


def test_soft_tree_figure_of_flat_features_equals_distill(tmp_path):
    """On flat features the figure shows the sample with each feature's own normalization undone, as
    `glassbox distill` draws it (feature 0's mean and std were used for every feature)."""
    code, out = run_cli("train", "--model", "toy2d", "--data", "toy:moons", "--epochs", "1", "--quiet", "--normalize", "std",
                        "--out", tmp_path / "t.safetensors")
    assert code == 0, out
    test = np.asarray(glassbox.datasets.load("toy:moons", "test").x)
    for index in range(3):
        code, out = run_cli("distill", "--teacher", tmp_path / "t.safetensors", "--student", "soft-tree:3", "--data",
                            "toy:moons", "--epochs", "1", "--quiet", "--index", str(index), "--out",
                            tmp_path / "s.safetensors")
        assert code == 0, out
        s = glassbox.load(tmp_path / "s.safetensors")
        r = glassbox.soft_tree(s, s.normalize(test[:5]), index=index)
        glassbox.write_png(tmp_path / "py.png", r["figure"])
        assert (tmp_path / "py.png").read_bytes() == (tmp_path / "s.tree.png").read_bytes(), index


def test_soft_tree_index_and_rules_names_are_checked():
    """index and input_names name themselves when wrong (pybind11's "Unable to cast" named nothing;
    index=True was taken as 1)."""
    s = glassbox.load("input(2) softtree(2,2)")
    x = np.zeros((3, 2), np.float32)
    for bad, err in [(True, TypeError), (np.True_, TypeError), (1.5, TypeError), (2**40, ValueError)]:
        with pytest.raises(err, match=r"soft_tree\(index=...\)"):
            glassbox.soft_tree(s, x, index=bad)
    assert glassbox.soft_tree(s, x, index=np.int64(1))["figure"] is not None
    m = glassbox.load("input(2) dense(4) relu dense(2)")
    with pytest.raises(TypeError, match=r"rules\(input_names=...\): a list of names, one per input"):
        glassbox.rules(m, "tree", data=x, input_names="ab")


def test_weights_only_importance_reads_no_data(tmp_path):
    """Garson reads the weights alone: a model saved from Python names no dataset, and the command
    no longer fails looking for the default one; a method that averages over data still asks."""
    glassbox.load("input(3) dense(4) relu dense(2)", seed=2).save(tmp_path / "m.safetensors")
    code, out = run_cli("importance", "--model", tmp_path / "m.safetensors", "--method", "garson,olden",
                        "--out", tmp_path / "o")
    assert code == 0, out
    assert np.load(tmp_path / "o" / "garson.npy").shape == (2, 3)
    code, out = run_cli("importance", "--model", tmp_path / "m.safetensors", "--method", "miv", "--out", tmp_path / "p")
    assert code != 0
    # Retraining flags without Olden's rounds were accepted and did nothing.
    code, out = run_cli("importance", "--model", tmp_path / "m.safetensors", "--method", "garson", "--epochs", "3",
                        "--out", tmp_path / "q")
    assert code != 0 and "--epochs: sets Olden's retraining" in out
