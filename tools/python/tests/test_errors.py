"""Bad inputs raise Python exceptions with the CLI's messages, never a crash."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ARCH, glassbox, run_cli


def run_python(script, cwd):
    """Runs a script in a fresh interpreter with the package: for scenarios (a deadlock, a signal)
    that the test's own process could not survive or observe."""
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)


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


def test_messages_name_python_arguments_not_command_flags(tmp_path, model, inputs):
    # The engine's messages name the command's flags (--param, --target, --unit); from Python the
    # same values are arguments.
    cases = [(lambda: glassbox.explain(model, inputs, 0, "lime", top=-1), r"^lime: parameter top=-1 is out of range"),
             (lambda: glassbox.explain(model, inputs, 7, "saliency"), r"^target=7 outside the model's classes"),
             (lambda: glassbox.visualize(model, "am", unit="zz"), r"^unit='zz': no layer 'zz'"),
             (lambda: glassbox.visualize(model, "filters", unit="conv1:0"), r"^filters takes parameter layer=NAME, not unit$"),
             (lambda: glassbox.visualize(model, "top-patches", unit="conv1:0"), r"needs a dataset to scan \(data\)$"),
             (lambda: glassbox.visualize(model, "am"), r"^am needs units \(unit=class:K, LAYER:C, ...\)$")]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            call()
        assert "--" not in str(e.value)
    np.save(tmp_path / "x.npy", inputs)
    code, out = run_cli("explain", "--model", ARCH, "--input", tmp_path / "x.npy", "--method", "saliency",
                        "--target", "7", "--out", tmp_path / "o")
    assert code != 0 and "--target 7 outside the model's classes" in out  # the command keeps its words


def test_allow_nonfinite_lets_nan_through_and_is_off_by_default(tmp_path, model, inputs):
    x = inputs.copy()
    x[1, 0, 5, 6] = np.nan
    data = np.random.default_rng(5).random((4, 1, 16, 16), dtype=np.float32)
    data[2, 0, 1, 1] = np.inf
    np.save(tmp_path / "x.npy", data)
    np.save(tmp_path / "y.npy", np.arange(4))
    spec = f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}"
    assert not glassbox.nonfinite_allowed()
    with pytest.raises(ValueError, match=r"glassbox\.allow_nonfinite\(True\) to study them"):
        model.forward(x)
    with pytest.raises(ValueError, match=r"\+Inf at sample 2.*glassbox\.allow_nonfinite\(True\) to study them"):
        glassbox.datasets.load(spec, "all")
    glassbox.allow_nonfinite(True)
    try:
        y = model.forward(x)
        assert np.isnan(y[1]).all()  # as in PyTorch: ReLU and max-pooling pass a NaN on
        assert np.array_equal(y[[0, 2]], model.forward(inputs[[0, 2]]))
        assert np.isinf(glassbox.datasets.load(spec, "all").x[2, 0, 1, 1])
    finally:
        glassbox.allow_nonfinite(False)
    assert not glassbox.nonfinite_allowed()


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
    with pytest.raises(ValueError, match=r"target=7 outside the model's classes \[0,5\)"):
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
    with pytest.raises(FileNotFoundError, match="/nonexistent/train-images-idx3-ubyte.* not found"):
        glassbox.datasets.load("mnist:/nonexistent")
    with pytest.raises(FileNotFoundError, match="not found"):
        glassbox.train(glassbox.load(ARCH), "mnist:/nonexistent")
    # A malformed spec says what is wrong with it (it was "not installed here").
    with pytest.raises(ValueError, match="unknown toy set"):
        glassbox.datasets.load("toy:nope")
    with pytest.raises(ValueError, match=r"expected npy:X.npy,Y.npy"):
        glassbox.datasets.load("npy:X.npy")
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


DEADLOCK_SCRIPT = """
import threading, numpy as np, glassbox
m = glassbox.load("input(1,16,16) conv(4,k=3,p=1) relu maxpool(2) conv(6,k=3,p=1) relu gap dense(5)")
rng = np.random.default_rng(3)
xs, ys = rng.random((256, 1, 16, 16), dtype=np.float32), [i % 5 for i in range(256)]
t = threading.Thread(target=lambda: glassbox.train(m, (xs, ys), 10, batch=16))
t.start()
calls = 0
while t.is_alive():
    glassbox.explain(m, xs[:2], 0, "saliency")
    glassbox.explain(m, xs[:2], "pred", "saliency")
    glassbox.evaluate(m, xs[:2], "pred", "saliency", "sparseness")
    glassbox.visualize(m, "mask", inputs=xs[:1], steps=2)  # unit class:pred, predicted first
    m.save("m.safetensors")
    calls += 1
t.join()
print("calls", calls)
"""


def test_explain_while_another_thread_trains_the_model(tmp_path):
    # explain and evaluate once took the model's lock while holding the GIL, and train's epoch
    # callback takes the GIL while holding the lock: the two threads waited on each other forever.
    # A deadlocked process cannot fail its own assert (its threads hold the GIL), so it runs apart.
    r = run_python(DEADLOCK_SCRIPT, tmp_path)
    assert r.returncode == 0, r.stderr
    # The first call starts while the thread trains (train holds the model for its whole run, so
    # that call waits for it; the old code deadlocked there).
    assert int(r.stdout.split()[-1]) >= 1, r.stdout


INTERRUPT_SCRIPT = """
import os, signal, threading, time, numpy as np, glassbox
m = glassbox.load("input(1,16,16) conv(4,k=3,p=1) batchnorm relu gap dense(5)")
rng = np.random.default_rng(8)
xs, ys = rng.random((1024, 1, 16, 16), dtype=np.float32), [i % 5 for i in range(1024)]
before = m.forward(xs[:2])
threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
t0 = time.time()
try:
    glassbox.train(m, (xs, ys), 10000, batch=16)
    print("finished")
except KeyboardInterrupt:
    print("interrupted", time.time() - t0 < 20, not np.array_equal(m.forward(xs[:2]), before),
          "glassbox.normalize" in m.info()["metadata"])
"""


def test_ctrl_c_stops_training_at_the_epoch_and_keeps_it(tmp_path):
    # The epochs run without the GIL, so Python only notes a Ctrl-C; it was handled only after all
    # 10,000 epochs (190 s here). It now stops at the end of the running epoch (milliseconds),
    # keeps the epochs done (with the normalization recorded) and raises KeyboardInterrupt, as a
    # PyTorch loop would.
    r = run_python(INTERRUPT_SCRIPT, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["interrupted", "True", "True", "True"], r.stdout


EXPLAIN_INTERRUPT_SCRIPT = """
import os, signal, threading, time, numpy as np, glassbox
m = glassbox.load("input(1,16,16) conv(4,k=3,p=1) relu maxpool(2) conv(6,k=3,p=1) relu gap dense(5)")
x = np.random.default_rng(0).random((16384, 1, 16, 16), dtype=np.float32)
before = glassbox.explain(m, x[:2], 0, "integrated-gradients")
threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
t0 = time.time()
try:
    glassbox.explain(m, x, 0, "integrated-gradients", n_steps=2000)  # about 12 minutes here
    print("finished")
except KeyboardInterrupt:
    print("interrupted", time.time() - t0 < 3,  # the lock released, the model usable:
          np.array_equal(glassbox.explain(m, x[:2], 0, "integrated-gradients"), before))
"""


def test_ctrl_c_stops_a_long_explanation_and_the_model_still_works(tmp_path):
    # Calls other than train() answered Ctrl-C only when they returned; they now stop at the next
    # forward pass (engine/interrupt.h) and raise KeyboardInterrupt, the model unchanged.
    r = run_python(EXPLAIN_INTERRUPT_SCRIPT, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["interrupted", "True", "True"], r.stdout


def test_a_progress_callback_that_uses_the_model_being_trained_raises():
    m = glassbox.load(ARCH)
    xs = np.random.default_rng(6).random((8, 1, 16, 16), dtype=np.float32)
    before = m.forward(xs)
    with pytest.raises(RuntimeError, match="a train\\(\\) progress callback, or a signal handler, cannot use the model that call is using"):
        glassbox.train(m, (xs, [i % 5 for i in range(8)]), 2, progress=lambda s: m.forward(xs))
    assert np.array_equal(m.forward(xs), before)  # and the failed call left it as it was


def test_a_failed_train_leaves_the_model_as_it_was(tmp_path):
    # BatchNorm's running statistics are parameters too (and change in every training step).
    m = glassbox.load("input(1,16,16) conv(4,k=3,p=1) batchnorm relu maxpool(2) conv(5,k=3,p=1) relu gap dense(5)")
    rng = np.random.default_rng(4)
    xs, ys = rng.random((20, 1, 16, 16), dtype=np.float32), [i % 5 for i in range(20)]
    x = xs[:3]
    before = m.forward(x)
    info = m.info()

    def fail(_):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        glassbox.train(m, (xs, ys), 2, progress=fail)
    assert np.array_equal(m.forward(x), before)
    assert m.info() == info  # no normalization or classes recorded
    # Settings the command line refuses are refused here too, before any step.
    for kw, msg in [(dict(optimizer="sgd", momentum=5.0), r"momentum 5\.0+: must be in \[0, 1\]"),
                    (dict(optimizer="adamw", weight_decay=-1e6), "weight decay -1000000.0+: must be finite and >= 0"),
                    (dict(weight_decay=float("inf")), "weight decay inf: must be"),
                    (dict(lr=1e39), r"train\(lr=...\): expected a rate > 0")]:  # inf as float32
        with pytest.raises(ValueError, match=msg):
            glassbox.train(m, (xs, ys), 1, **kw)
        assert np.array_equal(m.forward(x), before)
    with pytest.raises(ValueError, match="momentum applies to optimizer='sgd' only"):
        glassbox.train(m, (xs, ys), 1, momentum=0.5)
    # A label past the model's classes is named before anything is built for it.
    with pytest.raises(ValueError, match=r"label 2000000000 outside the model's classes \[0,5\)"):
        glassbox.train(m, (xs[:2], [0, 2_000_000_000]), 1)


def test_load_refuses_nan_weights_and_folders_are_neither_loaded_nor_replaced(tmp_path):
    m = glassbox.load(ARCH)
    path = tmp_path / "good.safetensors"
    m.save(path)
    good = path.read_bytes()
    bad = tmp_path / "nan.safetensors"
    bad.write_bytes(good)
    # Plant a NaN in the first weight of the saved copy (safetensors: 8-byte length, header, data).
    n = int.from_bytes(good[:8], "little")
    raw = bytearray(good)
    raw[8 + n:8 + n + 4] = np.float32(np.nan).tobytes()
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="NaN"):
        glassbox.load(bad)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        glassbox.load(tmp_path)
    with pytest.raises(ValueError, match="bad.safetensors: truncated"):
        (tmp_path / "bad.safetensors").write_bytes(b"\x01\x02")
        glassbox.load(tmp_path / "bad.safetensors")
    with pytest.raises(OSError):
        m.save(tmp_path)  # a folder is never replaced
    assert path.read_bytes() == good


def test_numpy_integers_are_targets(model, inputs):
    a = glassbox.explain(model, inputs, 2, "saliency")
    assert np.array_equal(glassbox.explain(model, inputs, np.int64(2), "saliency"), a)
    assert np.array_equal(glassbox.explain(model, inputs, np.array([2, 2, 2]), "saliency"), a)
    with pytest.raises(ValueError, match="outside the model's classes"):
        glassbox.explain(model, inputs, 2**63, "saliency")
    with pytest.raises(TypeError, match=r"activations\(layers=...\): a list of names"):
        model.activations(inputs, 5)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_images_without_pixels_and_bad_heatmap_settings(tmp_path):
    with pytest.raises(ValueError, match="grid cell \\[0\\]\\[0\\]: 0x0 pixels"):
        glassbox.grid([[np.zeros((0, 0, 3), np.uint8)]])
    with pytest.raises(ValueError, match="4x0 pixels"):
        glassbox.grid([[np.zeros((4, 0, 3), np.uint8)]])
    with pytest.raises(ValueError, match="rgb: 0x5 pixels"):
        glassbox.write_png(tmp_path / "o.png", np.zeros((0, 5), np.uint8))
    # A folder where a file belongs is IsADirectoryError, as for models and PNGs (it was ValueError).
    with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
        glassbox.datasets.load(f"npy:{tmp_path},{tmp_path / 'y.npy'}")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="file is not a directory"):
        glassbox.datasets.load(f"images:{tmp_path / 'file'}")
    with pytest.raises(FileNotFoundError, match="nowhere not found"):  # was NotADirectoryError
        glassbox.datasets.load(f"images:{tmp_path / 'nowhere'}")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(IsADirectoryError, match="folder.png: is not a regular file"):  # as save() says it
        glassbox.write_png(tmp_path / "folder.png", np.zeros((4, 5, 3), np.uint8))
    a = np.ones((1, 4, 4), np.float32)
    for p in [200, -5, float("nan"), 0]:
        with pytest.raises(ValueError, match="percentile"):
            glassbox.heatmap(a, percentile=p)
    with pytest.raises(ValueError, match="overlay"):
        glassbox.heatmap(a, image=np.zeros((1, 4, 4), np.float32), overlay=float("nan"))
    with pytest.raises(ValueError, match="beyond float32's range"):
        glassbox.heatmap(np.full((1, 4, 4), 1e39))


def test_nan_in_a_dataset_file_is_named(tmp_path):
    x = np.random.default_rng(5).random((20, 1, 16, 16), dtype=np.float32)
    x[:, 0, 1, 1] = np.nan  # every sample, so each split holds one
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(20) % 5)
    spec = f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}"
    with pytest.raises(ValueError, match=r"\(all split\): NaN at sample 0, element 17"):
        glassbox.datasets.load(spec, "all")
    m = glassbox.load(ARCH)
    with pytest.raises(ValueError, match=r"\(train split\): NaN at sample 0"):
        glassbox.train(m, spec, 1)


def test_labels_below_zero(model, inputs):
    # -1 means "unknown" for an attack's labels; anything lower was taken as unknown too.
    with pytest.raises(ValueError, match=r"labels: label -5; classes are 0 or more \(-1: unknown\)"):
        glassbox.attack(model, inputs, "fgsm", labels=[0, -5, 1])
    with pytest.raises(ValueError, match=r"probe\(classes=-3\)"):
        glassbox.probe(model, (inputs, [0, 1, 2]), (inputs, [0, 1, 2]), classes=-3)
    with pytest.raises(ValueError, match=r"probe\(train=...\)\[1\]: label -2; classes are 0 or more$"):
        glassbox.probe(model, (inputs, [0, -2, 2]), (inputs, [0, 1, 2]))


def test_save_refuses_nonfinite_weights_and_keeps_the_file(tmp_path):
    good = tmp_path / "m.safetensors"
    glassbox.load(ARCH).save(str(good))
    raw = bytearray(good.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    at = 8 + n + header[name]["data_offsets"][0]
    raw[at:at + 4] = np.float32(np.nan).tobytes()
    bad = tmp_path / "nan.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"nan\.safetensors.*{name}.*NaN"):
        glassbox.load(str(bad))
    glassbox.allow_nonfinite(True)
    try:
        nan_model = glassbox.load(str(bad))  # allowed: to study it
    finally:
        glassbox.allow_nonfinite(False)
    before = good.read_bytes()
    with pytest.raises(ValueError, match=rf"save\('.*m\.safetensors'\): parameter '{name}'.*NaN"):
        nan_model.save(str(good))  # a file load() would refuse
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "nan.safetensors"]  # no temporaries left


def test_metrics_refuse_a_layer_attribution(model, inputs):
    # Read as the input's, a layer's attribution was read out of bounds (garbage values or a crash).
    with pytest.raises(ValueError, match=r"saliency gives attributions \[2,6\], not shaped like the inputs \[2,1,16,16\]"):
        glassbox.evaluate(model, inputs[:2], 0, "saliency", "completeness", method_params={"layer": "gap1"})


def test_tracin_copies_each_checkpoint_also_the_explained_model(model, inputs):
    # The explained model as one of its own checkpoints: its weights were shared, so loading the
    # other checkpoint into it made both checkpoints that one.
    other = glassbox.load(ARCH, seed=5)
    train, tests = (inputs, [0, 1, 2]), (inputs[:2], [0, 1])
    both = glassbox.influence(model, train, tests, "tracin", checkpoints=[other, model], lr=0.1)["scores"]
    s_other = glassbox.influence(model, train, tests, "tracin", checkpoints=[other], lr=0.1)["scores"]
    s_self = glassbox.influence(model, train, tests, "tracin", checkpoints=[model], lr=0.1)["scores"]
    assert not np.allclose(s_other, s_self)
    np.testing.assert_allclose(both, s_other + s_self, rtol=1e-5, atol=1e-7)
    reversed_ = glassbox.influence(model, train, tests, "tracin", checkpoints=[model, other], lr=0.1)["scores"]
    np.testing.assert_allclose(reversed_, both, rtol=1e-5, atol=1e-7)


def test_arrays_only_where_a_method_takes_one(model, inputs):
    ones = np.ones((1, 1, 16, 16), np.float32)
    with pytest.raises(ValueError, match=r"unknown parameter 'baselin'"):  # a typo was dropped without a word
        glassbox.explain(model, inputs, 0, "integrated-gradients", baselin=ones, n_steps=4)
    with pytest.raises(ValueError, match=r"occlusion: parameter baseline takes a number or a word here, not an array"):
        glassbox.explain(model, inputs, 0, "occlusion", baseline=ones)
    with pytest.raises(ValueError, match=r"parameter n_steps takes a number or a word here, not an array"):
        glassbox.explain(model, inputs, 0, "integrated-gradients", n_steps=np.ones(3, np.float32))
    a = glassbox.explain(model, inputs, 0, "integrated-gradients", baseline=ones, n_steps=4)
    assert not np.array_equal(a, glassbox.explain(model, inputs, 0, "integrated-gradients", n_steps=4))
    # NumPy scalars are the numbers and bools they hold.
    np.testing.assert_array_equal(glassbox.explain(model, inputs, 0, "integrated-gradients", n_steps=np.int64(4)),
                                  glassbox.explain(model, inputs, 0, "integrated-gradients", n_steps=4))
    np.testing.assert_array_equal(glassbox.explain(model, inputs, 0, "smoothgrad", stdev=np.float32(0.5), n=2),
                                  glassbox.explain(model, inputs, 0, "smoothgrad", stdev=float(np.float32(0.5)), n=2))
    # Occlusion windows that leave pixels uncovered gave NaN there.
    with pytest.raises(ValueError, match=r"stride=4 is larger than the window \(3\)"):
        glassbox.explain(model, inputs, 0, "occlusion", window=3, stride=4)


def test_paths_streams_and_unsigned_targets(tmp_path, model, inputs):
    with pytest.raises(ValueError, match="embedded null character"):
        model.save(str(tmp_path / "m.safetensors") + "\x00junk")
    assert not (tmp_path / "m.safetensors").exists()
    with pytest.raises(ValueError, match="/dev/zero: is not a safetensors file"):  # was read until memory ran out
        glassbox.load("/dev/zero")
    with pytest.raises(ValueError, match=r"target 18446744073709551615 outside the model's classes \[0,5\)"):
        glassbox.explain(model, inputs, np.full(3, 2**64 - 1, np.uint64), "saliency")


def test_train_messages_use_its_argument_names(model):
    xs, ys = np.random.default_rng(1).random((8, 1, 16, 16), dtype=np.float32), [i % 5 for i in range(8)]
    with pytest.raises(ValueError, match=r"optimizer='bogus': unknown optimizer"):
        glassbox.train(model, (xs, ys), 1, optimizer="bogus")
    with pytest.raises(ValueError, match=r"schedule='nope': unknown schedule"):
        glassbox.train(model, (xs, ys), 1, schedule="nope")


def test_evaluate_takes_bool_and_integer_masks(model, inputs):
    inside = np.zeros((3, 1, 16, 16), bool)
    inside[:, :, 4:10, 4:10] = True
    want = glassbox.evaluate(model, inputs, 0, "saliency", "relevance-mass-accuracy", masks=inside.astype(np.float32))
    # [N, H, W] too, as the command takes it
    for masks in (inside, inside.astype(np.uint8), inside.astype(np.int64), inside[:, 0]):
        got = glassbox.evaluate(model, inputs, 0, "saliency", "relevance-mass-accuracy", masks=masks)
        np.testing.assert_array_equal(got["values"], want["values"])


def test_argument_forms_that_were_misread(model, inputs):
    with pytest.raises(TypeError, match=r"attack\(target=...\): a class number or one per input, not a bool"):
        glassbox.attack(model, inputs, "fgsm", target=True)  # was class 1
    with pytest.raises(TypeError, match=r"labels: expected a list or 1-D array of class numbers"):
        glassbox.attack(model, inputs, "fgsm", labels=[0, 1, 2**40])  # was pybind11's "Unable to cast"
    with pytest.raises(TypeError, match=r"checkpoints: a list of models or model files"):
        glassbox.influence(model, (inputs, [0, 1, 2]), (inputs[:1], [0]), "tracin", checkpoints="ab", lr=0.1)
    with pytest.raises(ValueError, match="grid: no cells"):
        glassbox.grid([])  # was a blank image
    cell = glassbox.image(np.full((1, 8, 8), 0.5, np.float32))
    with pytest.raises(ValueError, match="grid: 2 column labels and 0 captions for 1 rows of 1 cells"):
        glassbox.grid([[cell]], columns=["a", "b"])  # the extra label was dropped


def test_train_settings_of_the_wrong_type_are_named(model):
    xs, ys = np.random.default_rng(2).random((4, 1, 16, 16), dtype=np.float32), [0, 1, 2, 3]
    for kw, error, msg in [(dict(seed=-1), ValueError, r"train\(seed=...\): -1 is outside \[0, 2\*\*64\)"),
                           (dict(batch=2**31), ValueError, r"train\(batch=...\): 2147483648 is past 32 bits"),
                           (dict(lr="0.1"), TypeError, r"train\(lr=...\): a number, not <class 'str'>"),
                           (dict(optimizer=1), TypeError, r"train\(optimizer=...\): a string, not 1")]:
        with pytest.raises(error, match=msg):
            glassbox.train(model, (xs, ys), 1, **kw)


def test_train_records_the_run_only_with_the_files_it_wrote(tmp_path):
    m = glassbox.load(ARCH)
    xs, ys = np.random.default_rng(3).random((8, 1, 16, 16), dtype=np.float32), [i % 5 for i in range(8)]
    out = tmp_path / "m.safetensors"
    glassbox.train(m, (xs, ys), 1, out=str(out))
    run = m.info()["metadata"].get("train.run")
    assert run and glassbox.load(str(out)).info()["metadata"]["train.run"] == run  # save() writes what out= did
    glassbox.train(m, (xs, ys), 1)  # in memory: no longer that run's weights
    assert "train.run" not in m.info()["metadata"]


def test_training_inputs_that_were_taken_silently(tmp_path):
    """Float or bool labels were truncated (1.9 -> 1); save() replaced any file; a model whose stored
    normalization overflows loaded and predicted NaN."""
    x = np.random.default_rng(0).random((40, 2), dtype=np.float32)
    # Lists too: [np.float32(2.9)] became 2 and [True] 1 through pybind11's own conversion.
    for labels in (np.full(40, 1.9, np.float32), np.zeros(40, bool), [np.float32(1.9)] * 40, [True, False] * 20):
        with pytest.raises(TypeError, match=r"train\(data=...\) labels: labels must be an integer array"):
            glassbox.train(glassbox.load("toy2d"), (x, labels), 1)
    victim = tmp_path / "notes.txt"
    victim.write_text("hello")
    with pytest.raises(FileExistsError, match="exists and is not a model file"):
        glassbox.load("toy2d").save(victim)
    with pytest.raises(ValueError, match="an empty path"):
        glassbox.load("toy2d").save("")
    assert victim.read_text() == "hello"
    m = glassbox.load("toy2d")
    m.save(tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    for bad in ('{"mean":[1e39,0],"std":[1,1]}', '{"mean":[0,0],"std":[1e-45,1]}'):
        header["__metadata__"]["glassbox.normalize"] = bad
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        (tmp_path / "bad.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
        with pytest.raises(ValueError, match="glassbox.normalize"):
            glassbox.load(tmp_path / "bad.safetensors")


def test_arguments_of_the_wrong_type_are_named(model, inputs, tmp_path):
    """pybind11's casts said "Unable to cast Python instance" without the argument, took eps=True as
    1.0, and a missing "input_....safetensors" was parsed as an architecture."""
    with pytest.raises(TypeError, match=r"activations\(layers=...\): a list of names, not <class 'int'>"):
        model.activations(inputs, 3)
    assert list(model.activations(inputs, ("conv1",))) == ["conv1"]
    x = np.random.default_rng(1).random((1, 1, 16, 16), dtype=np.float32)  # pixels in [0, 1]
    for eps, text in [("0.1", "a number, not <class 'str'>"), (np.array([0.1, 0.2]), "a number, not"),
                      (True, "a number, not a bool")]:
        with pytest.raises(TypeError, match=r"attack\(eps=...\): " + text):
            glassbox.attack(model, x, "fgsm", eps=eps)
    a = glassbox.attack(model, x, "fgsm", eps=np.float32(0.1))
    b = glassbox.attack(model, x, "fgsm", eps=0.1)
    assert np.array_equal(a["adversarial"], b["adversarial"])
    masks = np.zeros((2, 1, 16, 16), np.uint8)
    with pytest.raises(TypeError, match=r"dissect\(categories=...\): a list of names, not the str 'abc'"):
        glassbox.dissect(model, inputs[:2], masks, ["a"], categories="abc")
    with pytest.raises(TypeError, match=r"train\(progress=...\): the callback returns None, True or False"):
        glassbox.train(glassbox.load("toy2d"), "toy:moons", 1, progress=lambda st: np.array([1, 2]))
    with pytest.raises(FileNotFoundError, match="no such file"):
        glassbox.load(tmp_path / "input_model.safetensors")


def test_class_names_a_model_could_not_store_are_refused_before_training(tmp_path):
    """train() wrote repeated names, then load() refused the saved file."""
    import types
    d = types.SimpleNamespace(x=np.random.default_rng(0).random((40, 2), dtype=np.float32), y=np.arange(40) % 2,
                              class_names=["a", "a"])
    m = glassbox.load("toy2d")
    with pytest.raises(ValueError, match=r"train\(data=...\): class_names repeats the name \"a\""):
        glassbox.train(m, d, 1)
    d.class_names = ["left", "right"]
    glassbox.train(m, d, 1)
    m.save(tmp_path / "m.safetensors")
    assert glassbox.load(tmp_path / "m.safetensors").info()["metadata"]["glassbox.classes"] == '["left","right"]'


def test_family_arguments_as_the_command_reads_them(model, inputs):
    """importance's rounds=0.0 is 0 (it was refused as retraining), influence needs two training
    points as the command does, grid's wrong dtype is a TypeError as write_png's, and activations
    takes a comma-separated string as tcav and probe do, refusing a repeat."""
    mlp = glassbox.load("mlp")
    x = np.random.default_rng(2).random((4, 1, 28, 28), dtype=np.float32)
    assert np.array_equal(glassbox.importance(mlp, x, "olden", rounds=0.0)["overall"],
                          glassbox.importance(mlp, x, "olden")["overall"])
    with pytest.raises(ValueError, match="rounds"):
        glassbox.importance(mlp, x, "olden", rounds=-1)
    with pytest.raises(ValueError, match="the training set holds 1 point"):
        glassbox.influence(model, (inputs[:1], [0]), (inputs[:2], [0, 1]), "knn")
    with pytest.raises(TypeError, match="expected a uint8 array"):
        glassbox.grid([[np.zeros((8, 8, 3), np.float32)]])
    a = model.activations(inputs, "conv1,relu1")
    assert list(a) == ["conv1", "relu1"]
    with pytest.raises(ValueError, match="'relu1' given twice"):
        model.activations(inputs, ["relu1", "relu1"])


def test_pairs_and_checkpoints_of_the_wrong_type_are_named(model, inputs):
    with pytest.raises(TypeError, match=r"train: expected \(x, y\), not <class 'int'>"):
        glassbox.influence(model, 5, (inputs[:2], [0, 1]), "knn")
    with pytest.raises(TypeError, match=r"checkpoints\[0\]: a Model or a model file, expected a path"):
        glassbox.influence(model, (inputs, [0, 1, 2]), (inputs[:2], [0, 1]), "tracin", checkpoints=[3], lr=0.1)
    with pytest.raises(TypeError, match=r"train\(data=...\): a dataset spec"):
        glassbox.train(glassbox.load("toy2d"), 5, 1)


def test_bools_are_not_counts_classes_or_seeds(model, inputs):
    """True was read as 1 by plain int arguments; int_arg/seed_arg refuse it, as visualize(unit=) did."""
    calls = [lambda: model.predict(inputs, top=True),
             lambda: glassbox.grid([[np.zeros((8, 8, 3), np.uint8)]], cell=True),
             lambda: glassbox.patterns("pattern:dots", model, n=True),
             lambda: glassbox.segmentation_set(model, n=2, seed=True),
             lambda: glassbox.load("toy2d", seed=True),
             lambda: glassbox.cav(np.ones((4, 3), np.float32), np.zeros((4, 3), np.float32), seed=True),
             lambda: glassbox.probe(model, (inputs, [0, 1, 2]), (inputs, [0, 1, 2]), classes=True)]
    for call in calls:
        with pytest.raises(TypeError, match="an integer, not a bool"):
            call()
    assert model.predict(inputs, top=np.int64(2))[0].shape == (3, 2)
    assert model.predict(inputs, top=np.array(2))[0].shape == (3, 2)  # a 0-d array, as read from an .npz
    assert glassbox.load("toy2d", seed=np.array(3)).info()["parameters"] > 0
    with pytest.raises(ValueError, match=r"load\(seed=...\): -1 is outside"):
        glassbox.load("toy2d", seed=-1)


def test_training_a_preset_twice_into_a_file_named_like_it(tmp_path, monkeypatch):
    """A preset has no input file: the second train(out=) into the same name was refused as its input."""
    monkeypatch.chdir(tmp_path)
    m = glassbox.load("toy2d")
    glassbox.train(m, "toy:moons", 1, out="toy2d")
    glassbox.train(m, "toy:moons", 1, out="toy2d")
    f = glassbox.load("./toy2d")
    with pytest.raises(ValueError, match="is the input model"):  # a model read from that file is
        glassbox.train(f, "toy:moons", 1, out="toy2d")


def test_a_model_whose_output_is_not_logits_is_refused_not_read_past():
    # forward() copied the whole [N,2,8,8] output into [N,2] logits: a corrupted heap, a segfault
    # or an abort; with N=1 "probabilities" of 2 of its 128 values.
    m = glassbox.load("input(1,8,8) conv(2,k=3,p=1) relu")
    x = np.random.default_rng(0).random((300, 1, 8, 8), dtype=np.float32)
    for call in (lambda: m.forward(x), lambda: m.predict(x), lambda: glassbox.explain(m, x[:2]),
                 lambda: glassbox.regions(m, x[:1])):
        with pytest.raises(ValueError, match=r"output \[1,2,8,8\] is not \[N, classes\] logits"):
            call()


def test_a_feature_extractor_has_no_classes_but_its_units_are_explained():
    m = glassbox.load("input(1,8,8) conv(4,k=3,p=1) relu")
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    assert m.classes is None and m.info()["classes"] is None and m.info()["class_names"] == []
    assert "output [1,4,8,8]" in repr(m)
    assert glassbox.explain(m, x, "conv1:0", "saliency").shape == x.shape
    with pytest.raises(ValueError, match=r"is not \[N, classes\] logits"):
        glassbox.explain(m, x, 0, "saliency")
    r = glassbox.probe(m, (x, np.array([0, 1])), (x, np.array([0, 1])))
    assert r  # a probe needs the data's labels only


def test_class_names_may_be_an_array():
    class Data:  # as scikit-learn's Bunch: target_names is an ndarray of str
        x = np.random.default_rng(1).random((20, 2), dtype=np.float32)
        y = (x[:, 0] > 0.5).astype(np.int64)
        class_names = np.array(["low", "high"])
    m = glassbox.load("input(2) dense(3) relu dense(2)")
    glassbox.train(m, Data(), 1)
    assert m.info()["class_names"] == ["low", "high"]


def test_bools_and_wrong_types_are_not_numbers(model, inputs):
    x = np.clip(inputs, 0, 1)
    with pytest.raises(TypeError, match=r"visualize\(unit=...\) item: an integer, not a bool"):
        glassbox.visualize(model, "am", unit=[True])
    with pytest.raises(TypeError, match=r"cav\(alpha=...\): a number, not a bool"):
        glassbox.cav(np.ones((4, 3), np.float32), np.zeros((4, 3), np.float32), alpha=True)
    with pytest.raises(TypeError, match=r"heatmap\(signed=...\): True or False, not None"):
        glassbox.heatmap(np.ones((1, 4, 4), np.float32), signed=None)
    with pytest.raises(TypeError, match=r"heatmap\(percentile=...\): a number, not a bool"):
        glassbox.heatmap(np.ones((1, 4, 4), np.float32), percentile=True)
    with pytest.raises(TypeError, match=r"image\(scale=...\): an integer, not a bool"):
        glassbox.image(np.ones((1, 4, 4), np.float32), scale=True)
    with pytest.raises(TypeError, match=r"regions\(polytope=...\): True or False, not 2"):
        glassbox.regions(glassbox.load("input(2) dense(3) relu dense(2)"), np.zeros((1, 2), np.float32), polytope=2)
    with pytest.raises(TypeError, match=r"allow_nonfinite\(allow\): True or False, not None"):
        glassbox.allow_nonfinite(None)
    assert not glassbox.nonfinite_allowed()
    with pytest.raises(TypeError, match=r"explain\(return_details=...\): True or False, not 2"):
        glassbox.explain(model, x, 0, "saliency", return_details=2)
    with pytest.raises(TypeError, match=r"explain\(params=...\): a dict of method parameters, not 'ab'"):
        glassbox.explain(model, x, 0, "integrated-gradients", params="ab")


def test_train_checks_its_arguments_before_the_first_epoch(model):
    data = (np.zeros((8, 1, 16, 16), np.float32), np.arange(8) % 5)
    m = glassbox.load(ARCH)
    with pytest.raises(TypeError, match=r"train\(epochs=...\): an integer, not a bool"):
        glassbox.train(m, data, True)
    with pytest.raises(TypeError, match=r"train\(batch=...\): an integer, not a bool"):
        glassbox.train(m, data, 1, batch=True)
    with pytest.raises(TypeError, match=r"train\(verbose=...\): True or False, not 2"):
        glassbox.train(m, data, 1, verbose=2)
    with pytest.raises(TypeError, match=r"train\(progress=...\): a function"):
        glassbox.train(m, data, 1, progress=5)

    class Data:
        x, y, class_names = data[0], data[1], "abcde"
    with pytest.raises(TypeError, match=r"train\(data=...\).class_names: a list of names"):
        glassbox.train(m, Data(), 1)


def test_train_out_takes_a_path(tmp_path):
    m = glassbox.load("input(2) dense(3) relu dense(2)")
    x = np.random.default_rng(1).random((40, 2), dtype=np.float32)
    glassbox.train(m, (x, (x[:, 0] > 0.5).astype(np.int64)), 1, out=tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").exists()


def test_arguments_a_call_does_not_read_are_refused(model, inputs):
    x = np.clip(inputs, 0, 1)
    with pytest.raises(ValueError, match=r"evaluate\(masks=...\): only the localisation metrics use masks, not 'sparseness'"):
        glassbox.evaluate(model, x, 0, "saliency", "sparseness", masks=np.ones((3, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"attack\(data=...\): only substitute.*not 'fgsm'"):
        glassbox.attack(model, x, "fgsm", eps=0.1, data=(x, np.zeros(3, np.int64)))
    with pytest.raises(ValueError, match=r"needs clean reference inputs \(data=\)"):
        glassbox.attack(model, x, "detect-explanation")


def test_threads_are_bounded():
    before = glassbox.threads()
    with pytest.raises(ValueError, match="threads: 100000 is more than 1024"):
        glassbox.set_threads(100000)
    assert glassbox.threads() == before
    for bad in [True, False, 1.5, "2"]:  # True was 1 thread and False all cores
        with pytest.raises(TypeError, match=r"set_threads\(n\)"):
            glassbox.set_threads(bad)
        assert glassbox.threads() == before
    glassbox.set_threads(np.int64(before))  # NumPy integers are whole numbers
    assert glassbox.threads() == before


def test_write_png_on_a_full_disk_is_oserror_and_leaves_no_file(tmp_path):
    """A write the file system refuses (here a file-size limit, as a full disk would) raises OSError
    naming the file, and neither a partial PNG nor the temporary is left behind."""
    script = f"""
import resource, signal, numpy as np, glassbox
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
rng = np.random.default_rng(0)
try:
    glassbox.write_png({str(tmp_path / 'big.png')!r}, rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
except OSError as e:
    print("OSError", e)
"""
    r = run_python(script, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OSError") and "big.png" in r.stdout, r.stdout
    assert list(tmp_path.iterdir()) == []
