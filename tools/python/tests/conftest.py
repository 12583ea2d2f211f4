"""Shared fixtures: the built glassbox command (GLASSBOX, set by the Meson test) and small models."""
import os
import pathlib
import subprocess

import pytest

# Before numpy, as a user should: the package picks OpenBLAS's kernels before it is loaded.
glassbox = pytest.importorskip("glassbox")
import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]

# A small CNN with every layer kind the attribution methods treat differently (conv, relu,
# max-pool, global average pooling for CAM, dense), so the whole registry runs in seconds.
ARCH = "input(1,16,16) conv(4,k=3,p=1) relu maxpool(2) conv(6,k=3,p=1) relu gap dense(5)"


def glassbox_exe():
    exe = os.environ.get("GLASSBOX") or str(ROOT / "build" / "tools" / "glassbox")
    if not os.path.exists(exe):
        pytest.skip("the glassbox command is not built (set GLASSBOX)")
    return exe


def run_cli(*args, cwd=None):
    """Runs the glassbox command; returns (exit code, stdout + stderr)."""
    r = subprocess.run([glassbox_exe(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="session")
def model():
    return glassbox.load(ARCH)


@pytest.fixture(scope="session")
def inputs():
    rng = np.random.default_rng(7)
    return rng.standard_normal((3, 1, 16, 16)).astype(np.float32)
