"""Bad inputs raise Python exceptions with the CLI's messages, never a crash."""
import numpy as np
import pytest

from conftest import ARCH, glassbox, run_cli


def test_wrong_dtype_names_the_argument(model):
    with pytest.raises(TypeError, match=r"x: dtype int64.*model.normalize"):
        model.forward(np.zeros((1, 1, 16, 16), np.int64))
    with pytest.raises(TypeError, match="x: expected a NumPy array"):
        model.forward([[0.0]])


def test_wrong_shape_names_both_shapes(model):
    with pytest.raises(ValueError, match=r"x: shape \[1,1,28,28\], the model takes \[N,1,16,16\]"):
        glassbox.explain(model, np.zeros((1, 1, 28, 28), np.float32), 0, "saliency")
    with pytest.raises(ValueError, match=r"one sample: x\[None\]"):
        model.forward(np.zeros((1, 16, 16), np.float32))


def test_not_finite(model):
    x = np.zeros((2, 1, 16, 16), np.float32)
    x[1, 0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="x: not finite at flat element 308"):
        model.forward(x)


def test_unknown_method_and_parameter_messages_match_cli(tmp_path, model, inputs):
    with pytest.raises(ValueError) as py_err:
        glassbox.explain(model, inputs, 0, "salience")
    np.save(tmp_path / "x.npy", inputs)
    code, out = run_cli("explain", "--model", ARCH, "--input", tmp_path / "x.npy", "--method", "salience",
                        "--out", tmp_path / "o")
    assert code != 0 and str(py_err.value) in out
    with pytest.raises(ValueError, match="n_stepz: no selected method accepts it"):
        glassbox.explain(model, inputs, 0, "integrated-gradients", n_stepz=3)
    with pytest.raises(ValueError, match="n_steps"):
        glassbox.explain(model, inputs, 0, "integrated-gradients", n_steps=-1)
    with pytest.raises(TypeError, match="n_steps"):
        glassbox.explain(model, inputs, 0, "integrated-gradients", n_steps=[1, 2])


def test_targets(model, inputs):
    with pytest.raises(ValueError, match=r"target 7 outside the model's classes \[0,5\)"):
        glassbox.explain(model, inputs, 7, "saliency")
    with pytest.raises(ValueError, match="target: 2 classes for 3 inputs"):
        glassbox.explain(model, inputs, [1, 2], "saliency")
    with pytest.raises(ValueError, match="no layer named 'conv9'"):
        glassbox.explain(model, inputs, "conv9:1", "saliency")
    with pytest.raises(ValueError, match="pass the labels"):
        glassbox.explain(model, inputs, "label", "saliency")
    with pytest.raises(TypeError):
        glassbox.explain(model, inputs, 1.5, "saliency")


def test_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        glassbox.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises((ValueError, RuntimeError), match="bad.safetensors"):
        glassbox.load(bad)
    with pytest.raises(FileNotFoundError, match="not installed"):
        glassbox.datasets.load("mnist:/nonexistent")
    with pytest.raises(ValueError, match="split"):
        glassbox.datasets.load("fashion-mnist", "val")


def test_bad_arguments_elsewhere(model, inputs):
    with pytest.raises(ValueError, match="top=9"):
        model.predict(inputs, top=9)
    with pytest.raises(ValueError, match="no layer named"):
        model.activations(inputs, ["nope"])
    with pytest.raises(ValueError, match="heatmap"):
        glassbox.heatmap(np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        glassbox.train(model, (np.zeros((4, 1, 16, 16), np.float32), [0, 1, 0, 1]), epoch=2)
    with pytest.raises(ValueError, match="baseline: shape"):
        glassbox.explain(model, inputs, 0, "integrated-gradients", baseline=np.zeros((2, 1, 16, 16), np.float32))
    with pytest.raises(ValueError, match="methods\\('nope'\\)"):
        glassbox.methods("nope")


def test_a_failed_save_keeps_the_old_file(tmp_path, model):
    path = tmp_path / "m.safetensors"
    model.save(path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        model.save(tmp_path / "missing-dir" / "sub" / "m.safetensors")
    assert path.read_bytes() == before


def test_params_dict_for_colliding_names(model, inputs):
    a = glassbox.explain(model, inputs, 1, "integrated-gradients", params={"method": "riemann_left"}, n_steps=8)
    b = glassbox.explain(model, inputs, 1, "integrated-gradients", n_steps=8)
    assert not np.array_equal(a, b)  # the parameter reached IG
    with pytest.raises(ValueError, match="n_steps given twice"):
        glassbox.explain(model, inputs, 1, "integrated-gradients", params={"n_steps": 4}, n_steps=8)
    with pytest.raises(ValueError, match="riemann_sideways"):
        glassbox.explain(model, inputs, 1, "integrated-gradients", params={"method": "riemann_sideways"})


def test_lime_top_is_checked(inputs):
    m = glassbox.load("input(1,16,16) conv(4,k=3,p=1) relu gap dense(3)")
    with pytest.raises(ValueError, match=r"top.*-1.*(must be >= 0|out of range)"):
        glassbox.explain(m, inputs[:1], 0, "lime", top=-1, n=50)
    with pytest.raises(ValueError, match=r"top=500 exceeds the \d+ superpixels of input 0"):
        glassbox.explain(m, inputs[:1], 0, "lime", top=500, n=50)
    kw = dict(n=200, segments=10, output="logit")
    # the class whose LIME weights have the most positive entries
    t = max(range(3), key=lambda c: (glassbox.explain(m, inputs[:1], c, "lime", return_details=True, **kw)[1]
                                    ["details"][0]["weights"] > 0).sum())
    mask = glassbox.explain(m, inputs[:1], t, "lime", top=2, **kw)
    _, d = glassbox.explain(m, inputs[:1], t, "lime", return_details=True, **kw)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    seg = d["details"][0]["segments"].reshape(16, 16)
    on = set(np.unique(seg[mask[0, 0] == 1]).astype(int))
    w = d["details"][0]["weights"]
    want = {int(s) for s in np.argsort(-w)[:2] if w[s] > 0}  # the largest positive weights
    assert want and on == want
