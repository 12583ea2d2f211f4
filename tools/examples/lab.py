#!/usr/bin/env python3
"""The interpretability lab in Python, end to end, without matplotlib.

Trains a small CNN (LeNet-5) on Fashion-MNIST, then: saliency, a SmoothGrad sweep over the noise
level, Integrated Gradients from four baselines (with the completeness gap), LIME, occlusion (logit
and probability drop), first-layer filters, class visualizations, fooling images, and FGSM and PGD
adversarial examples with their saliency before and after (adversarial.png). It also prints TCAV
scores of three generated concepts for class Trouser (against random sets, with p-values) and a
depth-3 CART rule tree fitted to the model's predictions (its fidelity and first rules). Every
figure is a labelled PNG in OUT (default runs/lab-python/).

    PYTHONPATH=build/tools/python /usr/bin/python3 tools/examples/lab.py [--epochs 2] [--images 6]
        [--out DIR] [--model FILE]

Arrays given to glassbox are in the model's input space: model.normalize(pixels) converts raw
pixels in [0, 1] (the Fashion-MNIST mean/std stored in the model at training time).
"""
import argparse
import os
import time

import glassbox  # before numpy: it picks OpenBLAS's kernels before OpenBLAS is loaded
import numpy as np


def heat(a, **kw):
    """One attribution [C,H,W] as an RGB heatmap."""
    return glassbox.heatmap(a, **kw)


def save(path, rows, columns, captions):
    glassbox.write_png(path, glassbox.grid(rows, columns=columns, captions=captions, cell=112))
    print("wrote", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--out", default="runs/lab-python")
    ap.add_argument("--model", help="a trained model file instead of training one")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()

    # 1. Data and a model.
    test = glassbox.datasets.load("fashion-mnist", "test")
    names = test.class_names
    if args.model:
        model = glassbox.load(args.model)
    else:
        train = glassbox.datasets.load("fashion-mnist", "train")
        model = glassbox.load("lenet5")
        report = lambda s: print(f"epoch {s['epoch']}: loss {s['train_loss']:.3f}, "
                                 f"validation accuracy {100 * s['val_acc']:.1f}% ({s['seconds']:.1f} s)")
        glassbox.train(model, train, epochs=args.epochs, progress=report)
        model.save(os.path.join(args.out, "lenet5.safetensors"))
    x_all = model.normalize(test.x)
    pred_all = model.predict(x_all)[0][:, 0]
    print(f"test accuracy {100 * (pred_all == test.y).mean():.2f}% on {len(test.y)} images")

    n = args.images
    pixels, labels = test.x[:n], test.y[:n]
    x = x_all[:n]
    cls, prob = model.predict(x)
    captions = [f"{i}: {names[labels[i]]} -> {names[cls[i, 0]]} p={prob[i, 0]:.2f}" for i in range(n)]
    inputs = [glassbox.image(p) for p in pixels]

    # 2. Saliency: |gradient| of the true class's logit (Simonyan et al.), and the signed gradient.
    sal = glassbox.explain(model, x, labels, "saliency", abs=True)
    signed = glassbox.explain(model, x, labels, "saliency")
    save(f"{args.out}/saliency.png",
         [[inputs[i], heat(sal[i], signed=False), heat(signed[i])] for i in range(n)],
         ["input", "|gradient|", "gradient"], captions)

    # 3. A SmoothGrad sweep: the noise level sigma / (x_max - x_min) from 0 (plain saliency) up.
    levels = [0.0, 0.1, 0.2, 0.3]
    sweep = [glassbox.explain(model, x, labels, "smoothgrad", level=lv, n=50, abs=True) for lv in levels]
    save(f"{args.out}/smoothgrad_sweep.png",
         [[inputs[i]] + [heat(s[i], signed=False) for s in sweep] for i in range(n)],
         ["input"] + [f"level={lv}" for lv in levels], captions)

    # 4. Integrated Gradients from four baselines; the completeness gap shows the quadrature error.
    rng = np.random.default_rng(0)
    baselines = {
        "black": "black",
        "white": "white",
        "mean": model.normalize(test.x.mean(0, keepdims=True)),
        "uniform": model.normalize(rng.uniform(0, 1, (1,) + pixels.shape[1:]).astype(np.float32)),
    }
    ig = {}
    for name, b in baselines.items():
        ig[name], info = glassbox.explain(model, x, labels, "integrated-gradients", baseline=b, n_steps=64,
                                          return_details=True)
        print(f"IG from {name:7s}: max |completeness gap| {np.abs(info['delta']).max():.2e}")
    save(f"{args.out}/ig_baselines.png",
         [[inputs[i]] + [heat(ig[k][i]) for k in baselines] for i in range(n)],
         ["input"] + [f"IG from {k}" for k in baselines], captions)

    # 5. LIME on SLIC superpixels (weights per superpixel; positive red, negative blue), and
    # 6. occlusion (Zeiler & Fergus): the drop in the logit and in the class's probability.
    lime, info = glassbox.explain(model, x, labels, "lime", n=1000, segments=40, return_details=True)
    occ_logit = glassbox.explain(model, x, labels, "occlusion")
    occ_prob = glassbox.explain(model, x, labels, "occlusion", output="prob")
    for i in range(n):
        w = info["details"][i]["weights"]
        print(f"LIME image {i}: {len(w)} superpixels, fit R^2 {info['details'][i]['score'][0]:.2f}, "
              f"{(w > 0).sum()} for / {(w < 0).sum()} against {names[labels[i]]}")
    save(f"{args.out}/lime_occlusion.png",
         [[inputs[i], heat(lime[i]), heat(lime[i], image=pixels[i], overlay=0.5), heat(occ_logit[i]),
           heat(occ_prob[i])] for i in range(n)],
         ["input", "LIME", "LIME overlay", "occlusion logit", "occlusion prob"], captions)

    # 7. Feature visualization: the first layer's filters and each class's maximizing image.
    filters = glassbox.visualize(model, "filters")
    save(f"{args.out}/filters.png", [[heat(w) for w in filters["panels"]["filter"]]],
         [r["caption"] for r in filters["rows"]], ["conv1 weights (blue < 0 < red, each filter on its own scale)"])
    am = glassbox.visualize(model, "am", unit="class:all", steps=200)
    img = am["panels"]["image"]
    save(f"{args.out}/class_visualization.png",
         [[glassbox.image(model.denormalize(img[k:k + 1])[0].clip(0, 1)) for k in range(len(img))]],
         [names[k] for k in range(len(img))], ["activation maximization of each class's logit"])

    # 8. Fooling images: push each input to the next class until the model is 99% sure.
    # (fool runs every input towards every class given: one call per input and its one class.)
    wrong = [(int(c) + 1) % len(names) for c in labels]
    rows, caps = [], []
    for i in range(n):
        fool = glassbox.visualize(model, "fool", unit=[wrong[i]], inputs=x[i:i + 1])
        fooled = fool["panels"]["image"]
        p = model.predict(fooled)[1][0, 0]
        rows.append([inputs[i], glassbox.image(model.denormalize(fooled)[0].clip(0, 1)),
                     heat(fool["panels"]["change"][0])])
        caps.append(f"{names[labels[i]]} -> {names[wrong[i]]} p={p:.2f}, "
                    f"L2 change {fool['rows'][0]['values']['l2_change_pixels']:.2f}")
    save(f"{args.out}/fooling.png", rows, ["input", "fooling image", "change (pixels)"], caps)

    # 9. TCAV (Kim et al.): does the model use stripes, dots or solid bright patches for "Trouser"?
    # Built-in generated patterns as concepts, random sets from the training images, 10 runs and a
    # t-test against random-vs-random CAVs.
    k = names.index("Trouser") if "Trouser" in names else 1
    pool = x_all[np.arange(len(x_all)) % 2 == 0][:1100]
    trousers = x_all[(test.y == k) & (np.arange(len(x_all)) % 2 == 1)][:200]
    tc = glassbox.tcav(model, ["relu2", "relu3"], target=k, inputs=trousers, random=pool, runs=10,
                       concepts={"stripes-v": "pattern:stripes-v", "dots": "pattern:dots", "solid": "pattern:solid"})
    for layer in tc["layers"]:
        for c in layer["concepts"] + [layer["random"]]:
            p = f", p={c['p_value']:.2g}{' *' if c['significant'] else ''}" if "p_value" in c else ""
            print(f"TCAV {layer['layer']:6s} {c['name']:9s} {c['tcav']:.2f} +- {c['tcav_std']:.2f}{p}")

    # 10. Adversarial examples: FGSM and PGD (epsilon in pixels) and how saliency changes.
    adv_rows, adv_caps = [], []
    for method, kw in [("fgsm", {}), ("pgd", {"step_num": 20})]:
        r = glassbox.attack(model, x, method, labels=labels, eps=0.05, **kw)
        print(f"{method}: success {100 * r['success_rate']:.0f}%, mean L-inf {r['linf'].mean():.3f} pixels")
        sal_adv = glassbox.explain(model, r["adversarial"], labels, "saliency", abs=True)
        for i in range(min(n, 3)):
            adv_rows.append([inputs[i], glassbox.image(model.denormalize(r["adversarial"][i:i + 1])[0].clip(0, 1)),
                             heat(sal[i], signed=False), heat(sal_adv[i], signed=False)])
            adv_caps.append(f"{method} eps=0.05: {names[r['before'][i]]} -> {names[r['after'][i]]}")
    save(f"{args.out}/adversarial.png", adv_rows, ["input", "adversarial", "saliency", "saliency (adv.)"],
         adv_caps)

    # 11. A global surrogate: a depth-3 CART tree over 4x4-pooled pixels fitted to the model's
    # predictions, its fidelity and its rules (data units: pixels).
    tree = glassbox.rules(model, "tree", data=x_all[:2000], test=x_all[2000:3000], max_depth=3, features="pool:4")[0]
    d = tree["details"]
    print("rule tree: " + ", ".join(f"{k} {v:.3f}" for k, v in d.items() if "fidelity" in k and isinstance(v, float)))
    for rule in tree["rules"][:4]:
        print("  " + rule)
    print(f"lab done in {time.perf_counter() - t_start:.1f} s; figures in {args.out}")


if __name__ == "__main__":
    main()
