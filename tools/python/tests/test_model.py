"""Models and arrays: round trips, properties that must hold, training, regions, families."""
import threading
import time

import numpy as np
import pytest

from conftest import ARCH, glassbox, run_cli


def test_load_forward_predict(model, inputs):
    logits = model.forward(inputs)
    assert logits.shape == (3, 5) and logits.dtype == np.float32
    assert np.array_equal(model(inputs), logits)
    cls, prob = model.predict(inputs, top=5)
    e = np.exp(logits - logits.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    assert np.array_equal(cls[:, 0], logits.argmax(1))
    np.testing.assert_allclose(prob, np.take_along_axis(p, cls, 1), rtol=1e-5)
    assert np.all(np.diff(prob, axis=1) <= 0)


def test_same_seed_same_model_other_seed_differs(inputs):
    a, b, c = glassbox.load(ARCH), glassbox.load(ARCH), glassbox.load(ARCH, seed=1)
    assert np.array_equal(a.forward(inputs), b.forward(inputs))
    assert not np.array_equal(a.forward(inputs), c.forward(inputs))


def test_layers_and_activations(model, inputs):
    names = [l["name"] for l in model.layers]
    assert names[0] == "conv1" and model.layers[-1]["kind"] == "dense"
    assert model.layers[0]["shape"] == (4, 16, 16) and model.layers[0]["inputs"] == ["input"]
    acts = model.activations(inputs, [names[1], names[-1]])
    assert acts[names[1]].shape == (3, 4, 16, 16)
    assert np.all(acts[names[1]] >= 0)  # a ReLU's output
    assert np.array_equal(acts[names[-1]], model.forward(inputs))
    # Any sequence of names, as a NumPy array of them (a list or tuple only was taken for a while).
    by_array = model.activations(inputs, np.array([names[1], names[-1]]))
    assert sorted(by_array) == sorted(acts) and np.array_equal(by_array[names[1]], acts[names[1]])


def test_save_load_round_trip(tmp_path, model, inputs):
    model.save(tmp_path / "m.safetensors")
    back = glassbox.load(str(tmp_path / "m.safetensors"))
    assert np.array_equal(back.forward(inputs), model.forward(inputs))
    assert back.info()["architecture"] == model.info()["architecture"]


def test_normalize_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.uniform(0, 1, (64, 1, 16, 16)).astype(np.float32)
    m = glassbox.load(ARCH)
    assert np.array_equal(m.normalize(pixels), pixels)  # no stored normalization: identity
    glassbox.train(m, (pixels, rng.integers(0, 5, 64)), epochs=1, val=0)
    norm = m.info()["normalization"]
    mean, std = pixels.mean(), pixels.std()
    np.testing.assert_allclose(norm["mean"], [mean], rtol=1e-4)
    np.testing.assert_allclose(norm["std"], [std], rtol=1e-3)
    x = m.normalize(pixels)
    np.testing.assert_allclose(x, (pixels - norm["mean"][0]) / norm["std"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.denormalize(x), pixels, atol=1e-6)
    m.save(tmp_path / "n.safetensors")
    assert glassbox.load(tmp_path / "n.safetensors").info()["normalization"] == norm


def test_float64_and_strided_inputs_are_converted(model, inputs):
    want = glassbox.explain(model, inputs, 1, "saliency")
    assert np.array_equal(glassbox.explain(model, inputs.astype(np.float64), 1, "saliency"), want)
    wide = np.zeros((3, 1, 16, 32), np.float32)
    wide[..., ::2] = inputs
    strided = wide[..., ::2]
    assert not strided.flags["C_CONTIGUOUS"]
    assert np.array_equal(glassbox.explain(model, strided, 1, "saliency"), want)
    assert not np.shares_memory(want, inputs)


def test_batch_equals_one_by_one_and_per_sample_targets(model, inputs):
    targets = [4, 0, 2]
    batch = glassbox.explain(model, inputs, targets, "integrated-gradients", n_steps=8)
    for n, t in enumerate(targets):
        one = glassbox.explain(model, inputs[n:n + 1], t, "integrated-gradients", n_steps=8)
        assert np.array_equal(one[0], batch[n])
    assert np.array_equal(glassbox.explain(model, inputs, np.array(targets), "integrated-gradients", n_steps=8), batch)


def test_pred_target_is_the_argmax(model, inputs):
    pred = model.forward(inputs).argmax(1)
    assert np.array_equal(glassbox.explain(model, inputs, "pred", "saliency"),
                          glassbox.explain(model, inputs, list(pred), "saliency"))


def test_saliency_is_the_gradient_of_the_logit(model, inputs):
    """Finite differences of the target logit along a random direction (float64 steps)."""
    g = glassbox.explain(model, inputs[:1], 3, "saliency")
    d = np.random.default_rng(2).standard_normal(inputs[:1].shape).astype(np.float32)
    h = 1e-2
    f = lambda x: float(model.forward(x.astype(np.float32))[0, 3])
    fd = (f(inputs[:1] + h * d) - f(inputs[:1] - h * d)) / (2 * h)
    assert abs(fd - float((g * d).sum())) < 2e-2 * max(1.0, abs(fd))


def test_integrated_gradients_completeness(model, inputs):
    a, d = glassbox.explain(model, inputs, 1, "integrated-gradients", n_steps=64, return_details=True)
    zero = model.forward(np.zeros_like(inputs))[:, 1]
    f = model.forward(inputs)[:, 1]
    np.testing.assert_allclose(a.reshape(3, -1).sum(1), f - zero, atol=5e-2 * np.abs(f - zero).max() + 1e-4)
    np.testing.assert_allclose(d["delta"], a.reshape(3, -1).sum(1) - (f - zero), atol=1e-4)


def test_threads_give_the_same_bits(model, inputs):
    before = glassbox.threads()
    try:
        glassbox.set_threads(1)
        one = glassbox.explain(model, inputs, 2, "lrp-epsilon")
        glassbox.set_threads(2)
        two = glassbox.explain(model, inputs, 2, "lrp-epsilon")
        assert glassbox.threads() == 2
    finally:
        glassbox.set_threads(before)
    assert np.array_equal(one, two)


def test_gil_is_released_during_explain(model):
    """Another Python thread keeps running while a long explanation runs."""
    x = np.random.default_rng(3).standard_normal((64, 1, 16, 16)).astype(np.float32)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t0 = time.perf_counter()
    t.start()
    glassbox.explain(model, x, 1, "integrated-gradients", n_steps=2000)
    t1 = time.perf_counter()
    done.set()
    t.join()
    during = [s for s in ticks if t0 < s < t1]
    assert t1 - t0 > 0.05 and len(during) >= 5, (t1 - t0, len(during))


def test_heatmap_colors():
    a = np.zeros((1, 4, 4), np.float32)
    a[0, 0, 0], a[0, 1, 1] = 1.0, -1.0
    rgb = glassbox.heatmap(a)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[3, 3]) == (255, 255, 255)  # zero is white on the signed scale
    assert rgb[0, 0, 0] > 200 and rgb[0, 0, 2] < 80  # +max is red
    assert rgb[1, 1, 2] > 200 and rgb[1, 1, 0] < 80  # -max is blue
    big = glassbox.heatmap(a, scale=4)
    assert big.shape == (16, 16, 3) and np.array_equal(big[::4, ::4], rgb)
    pair = glassbox.heatmap(a, image=np.full((1, 4, 4), 0.5, np.float32))
    assert pair.shape == (4, 10, 3) and tuple(pair[0, 0]) == (128, 128, 128)


def test_write_png(tmp_path):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 255
    glassbox.write_png(tmp_path / "r.png", rgb)
    data = (tmp_path / "r.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 7 and int.from_bytes(data[20:24], "big") == 5
    glassbox.write_png(tmp_path / "r.png", rgb[:2])  # a PNG is replaced
    assert int.from_bytes((tmp_path / "r.png").read_bytes()[20:24], "big") == 2
    # A file that is not a PNG is not (a text file became a PNG); a wrong dtype is a TypeError.
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FileExistsError, match="exists and is not a PNG file"):
        glassbox.write_png(tmp_path / "notes.txt", rgb)
    assert (tmp_path / "notes.txt").read_text() == "hello"
    for bad in (rgb.astype(np.int64), rgb.astype(bool)):
        with pytest.raises(TypeError, match="rgb: expected a uint8 array"):
            glassbox.write_png(tmp_path / "b.png", bad)
    glassbox.write_png(tmp_path / "m.png", memoryview(rgb))  # what numpy converts is taken (a PIL image too)
    assert (tmp_path / "m.png").read_bytes() == data
    # A legal name of 240 bytes: its temporary "<name>.glassbox-tmp<PID>" passed the 255-byte limit.
    long = tmp_path / ("b" * 236 + ".png")
    glassbox.write_png(long, rgb)
    assert long.read_bytes() == data and not [p for p in tmp_path.iterdir() if "glassbox-tmp" in p.name]


def planted(n, seed):
    """Class = which half of the image is bright: learnable in one epoch."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 0.3, (n, 1, 16, 16)).astype(np.float32)
    for i in range(n):
        if y[i]:
            x[i, :, :, 8:] += 0.6
        else:
            x[i, :, :, :8] += 0.6
    return x, y


def test_train_learns_a_planted_rule_with_progress():
    x, y = planted(600, 0)
    m = glassbox.load("input(1,16,16) conv(4,k=3,p=1) relu maxpool(2) flatten dense(2)")
    seen = []
    hist = glassbox.train(m, (x, y), epochs=3, lr=3e-3, progress=lambda s: seen.append(s["epoch"]))
    assert seen == [1, 2, 3] and len(hist) == 3
    xt, yt = planted(200, 1)
    acc = (m.predict(m.normalize(xt))[0][:, 0] == yt).mean()
    assert acc > 0.95, acc


def test_train_stops_when_progress_says_so_and_is_deterministic():
    x, y = planted(200, 0)
    runs = []
    for _ in range(2):
        m = glassbox.load(ARCH)
        hist = glassbox.train(m, (x, y), epochs=5, progress=lambda s: False)
        assert len(hist) == 1
        runs.append(m.forward(m.normalize(x[:4])))
    assert np.array_equal(runs[0], runs[1])


def test_regions_affine_map_gives_the_logits(model, inputs):
    rs = glassbox.regions(model, inputs[:2], polytope=True)
    assert len(rs) == 2
    for r, x in zip(rs, inputs[:2]):
        np.testing.assert_allclose(r["W"] @ x.ravel() + r["b"], model.forward(x[None])[0], rtol=1e-4, atol=1e-4)
        assert r["A"].shape[1] == x.size and np.all(r["A"] @ x.ravel() <= r["c"] + 1e-4)
        assert len(r["configuration"]) > 0 and r["constraints"] > 0


def test_methods_lists_every_family():
    m = glassbox.methods()
    assert "integrated-gradients" in m and m["integrated-gradients"]["params"]["n_steps"]["default"] == "50"
    for family, name in [("visualize", "am"), ("evaluate", "deletion"), ("influence", "knn")]:
        assert name in glassbox.methods(family)


def test_visualize_am_raises_the_unit(model):
    r = glassbox.visualize(model, "am", unit="class:1", steps=40, restarts=1)
    assert r["panels"]["image"].shape[1:] == (1, 16, 16)
    v = r["rows"][0]["values"]
    assert v["value"] > v["start"]


def test_evaluate_sparseness_is_a_gini_index(model, inputs):
    e = glassbox.evaluate(model, inputs, 1, "saliency", "sparseness")
    assert e["values"].shape == (3,) and np.all((e["values"] >= 0) & (e["values"] <= 1))
    a = np.abs(glassbox.explain(model, inputs, 1, "saliency")).reshape(3, -1)
    s = np.sort(a, 1)
    k = np.arange(1, s.shape[1] + 1)
    gini = ((2 * k - s.shape[1] - 1) * s).sum(1) / (s.shape[1] * s.sum(1))
    np.testing.assert_allclose(e["values"], gini, rtol=1e-4)


def test_influence_knn_finds_the_identical_point(model, inputs):
    rng = np.random.default_rng(5)
    train_x = rng.standard_normal((20, 1, 16, 16)).astype(np.float32)
    train_x[13] = inputs[0]
    r = glassbox.influence(model, (train_x, [0] * 20), (inputs[:1], [0]), "knn")
    assert r["scores"].shape == (1, 20) and r["scores"][0].argmax() == 13


def test_visualize_decoder_equals_cli(tmp_path, model):
    """The decoder method trains its decoders with the command's own loop (train/regress.h): the
    decoded images equal `glassbox visualize --method decoder`'s bit for bit."""
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 1, (100, 1, 16, 16)).astype(np.float32)
    np.save(tmp_path / "d.npy", d)
    np.save(tmp_path / "y.npy", rng.integers(0, 5, 100))
    np.save(tmp_path / "x.npy", d[:2])
    code, out = run_cli("visualize", "--model", ARCH, "--method", "decoder", "--input", tmp_path / "x.npy",
                        "--input-space", "model", "--data", f"npy:{tmp_path / 'd.npy'},{tmp_path / 'y.npy'}",
                        "--param", "epochs=2", "--param", "layers=gap1", "--out", tmp_path / "o")
    assert code == 0, out
    train = d[[i for i in range(100) if i % 5 != 4]]  # the npy dataset's train split
    inputs = np.concatenate([d[:2], d[4:5]])  # --input rows, then --index 0 of the test split
    r = glassbox.visualize(model, "decoder", inputs=inputs, data=train, epochs=2, layers="gap1")
    assert [row["name"] for row in r["rows"]] == ["input0_gap1", "input1_gap1", "input2_gap1"]
    for n in range(2):
        assert np.array_equal(r["panels"]["image"][n], np.load(tmp_path / "o" / f"x.npy_{n}_gap1.npy"))


def test_labels_and_layers_name_the_argument(model, inputs):
    """Labels that are not 1-D ints, and layer lists that are not names, are refused naming the
    argument (they were pybind11's "Unable to cast"); a column of labels [N, 1] is read as labels."""
    rng = np.random.default_rng(5)
    train_x = rng.standard_normal((10, 1, 16, 16)).astype(np.float32)
    test = (inputs[:1], [0])
    for labels, err, text in [(np.full(10, 1.5), TypeError, r"train\[1\]: labels must be an integer array"),
                              ([2**40] * 10, TypeError, r"train\[1\]"),
                              (np.zeros((10, 2), np.int64), ValueError, r"train\[1\]: labels must be 1-D")]:
        with pytest.raises(err, match=text):
            glassbox.influence(model, (train_x, labels), test, "knn")
    # A column of labels is read as the command reads a label file [N, 1].
    column = glassbox.influence(model, (train_x, np.arange(10)[:, None] % 3), test, "influence")
    flat = glassbox.influence(model, (train_x, np.arange(10) % 3), test, "influence")
    other = glassbox.influence(model, (train_x, np.arange(10) % 2), test, "influence")
    assert not np.array_equal(other["scores"], flat["scores"])  # the labels matter
    assert np.array_equal(column["scores"], flat["scores"])
    with pytest.raises(TypeError, match=r"probe\(layers=...\): names are str, not 3"):
        glassbox.probe(model, (train_x, [0] * 10), (train_x, [0] * 10), layers=[3])
    masks = np.zeros((2, 2, 16, 16), np.uint8)
    for names in [["a", "a"], ["", "b"]]:
        with pytest.raises(ValueError, match="given twice|without a name"):
            glassbox.dissect(model, train_x[:2], masks, names, layers="relu1")


def test_visualize_unit_forms(model, inputs):
    """unit= takes a class number, a list of them or a --unit spec, and class:pred (the default of
    mask) as the command does; other types name unit= (pybind11's "Unable to cast" named nothing)."""
    one = glassbox.visualize(model, "am", unit=0, steps=2)
    listed = glassbox.visualize(model, "am", unit=[0], steps=2)
    assert np.array_equal(one["panels"]["image"], listed["panels"]["image"])
    with pytest.raises(TypeError, match=r"visualize\(unit=...\)"):
        glassbox.visualize(model, "am", unit=["class:0"], steps=2)
    pred = int(np.argmax(model.forward(inputs[:1])[0]))
    default = glassbox.visualize(model, "mask", inputs=inputs[:1], steps=2)
    given = glassbox.visualize(model, "mask", unit=pred, inputs=inputs[:1], steps=2)
    named = glassbox.visualize(model, "mask", unit="class:pred", inputs=inputs[:1], steps=2)
    for r in (given, named):
        for k in default["panels"]:
            assert np.array_equal(default["panels"][k], r["panels"][k]), k


def _documented_keys(doc):
    """The names inside the first {...} of a docstring, at its top level ('values [N]' -> 'values')."""
    body = doc[doc.index("{") + 1:]
    names, depth, word = [], 0, ""
    for ch in body:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            names.append(word.split()[0])
            word = ""
            continue
        if depth == 0 and ch not in ")]}":
            word += ch
    names.append(word.split()[0])
    return set(names)


def test_docstrings_name_the_keys_results_have(model, inputs):
    """The README's signatures hold (load's argument is `model`) and each result dict has exactly the
    keys its docstring lists (evaluate's metric and stage_attributions, attack's and importance's notes
    were missing)."""
    assert glassbox.load(model="toy2d").classes == 2
    r = glassbox.evaluate(model, inputs, 0, "saliency", "faithfulness-correlation", nr_runs=3, subset_size=8)
    assert set(r) == _documented_keys(glassbox.evaluate.__doc__.split("\n", 1)[1])
    r = glassbox.attack(model, np.clip(inputs, 0, 1), "fgsm", eps=0.05)
    assert set(r) == _documented_keys(glassbox.attack.__doc__.split("\n", 1)[1])
    mlp = glassbox.load("input(2) dense(4) relu dense(2)")
    r = glassbox.importance(mlp, np.zeros((4, 2), np.float32), "garson")
    assert set(r) == _documented_keys(glassbox.importance.__doc__.split("\n", 1)[1])
