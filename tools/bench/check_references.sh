#!/usr/bin/env bash
# tools/bench/check_references.sh GLASSBOX: the PyTorch reference checks, run as a test where
# python3-torch is installed (skipped otherwise, exit 77). The scripts read glassbox's outputs
# (file names, input spaces, summary.json), so a change there that breaks a script fails here
# instead of being found by the next person who runs it. Small: a lenet5 trained for one epoch on
# 400 random images, a few inputs per check, one thread.
set -euo pipefail
glassbox=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
if ! "$py" -c "import torch, numpy" 2>/dev/null; then
  echo "python3-torch (or numpy) is not installed: the reference checks are skipped"
  exit 77
fi
export OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
gb() { "$glassbox" --threads 1 "$@"; }

"$py" - <<'EOF'
import numpy as np
rng = np.random.default_rng(0)
np.save("X.npy", rng.random((400, 1, 28, 28), dtype=np.float32))
np.save("Y.npy", rng.integers(0, 10, 400).astype(np.int64))
EOF
gb train --model lenet5 --data npy:X.npy,Y.npy --epochs 1 --quiet --out m.safetensors >/dev/null

"$py" "$here/torch_reference.py" --glassbox "$glassbox" --model m.safetensors --n 4
"$py" "$here/torch_visualize.py" --threads 1 --check m.safetensors --glassbox "$glassbox"
"$py" "$here/torch_attacks.py" --check m.safetensors --glassbox "$glassbox"

gb influence --model m.safetensors --data npy:X.npy,Y.npy --split test --index 0:3 \
  --method influence,tracin --checkpoints m.safetensors --param lr=1 --out inf >/dev/null
"$py" "$here/torch_instances.py" --threads 1 --check --model m.safetensors --npy X.npy,Y.npy --tests 3 \
  --influence-scores inf/influence_scores.npy --tracin-scores inf/tracin_scores.npy | tee instances.json
# Agreement is 1e-6-ish; a max-pool near-tie can make one score 1e-4 off (METHODS.md). A broken
# pipeline (inputs normalised twice, a wrong file) is off by order 1.
"$py" -c "
import json, sys
d = json.load(open('instances.json'))['max_relative_difference']
bad = {k: v for k, v in d.items() if not v < 1e-3}
sys.exit(f'influence/tracin disagree with the reference: {bad}' if bad else 0)"
echo "reference checks passed"
