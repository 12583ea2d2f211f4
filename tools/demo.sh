#!/usr/bin/env bash
# The main job (tools/dev demo): train LeNet-5 on Fashion-MNIST, report its test accuracy, and
# explain the first test images with several methods into one labeled grid.
#   EPOCHS (default 10), OUT (default runs/demo) and extra `glassbox train` flags as arguments.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gb="$root/build/tools/glassbox"
out=${OUT:-$root/runs/demo}
mkdir -p "$out"
"$gb" train --model lenet5 --data fashion-mnist --epochs "${EPOCHS:-10}" --out "$out/lenet5.safetensors" "$@"
"$gb" eval --model "$out/lenet5.safetensors" --data fashion-mnist
"$gb" explain --model "$out/lenet5.safetensors" --data fashion-mnist --index 0:6 \
  --method saliency,smoothgrad,integrated-gradients,guided-backprop,deeplift,lrp-epsilon-plus-flat,grad-cam,occlusion \
  --out "$out/explain"
"$gb" regions --model "$out/lenet5.safetensors" --data fashion-mnist --index 0 --out "$out/regions"
echo "demo: model $out/lenet5.safetensors, explanations $out/explain/grid.png, OpenBox region $out/regions/region.json"
