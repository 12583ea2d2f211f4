"""glassbox: a small neural-net engine whose models explain themselves.

NumPy arrays in and out, batch first, in the model's input space (model.normalize(pixels) converts
raw pixels in [0, 1]). See README.md, section "Python", and help(glassbox.explain).
"""
import os as _os
import subprocess as _subprocess
import sys as _sys
import warnings as _warnings


def _choose_blas_kernels():
    """OpenBLAS falls back to slow generic kernels on CPUs it cannot place; the glassbox command
    then restarts itself with OPENBLAS_CORETYPE set to the right ones (engine/threads.h). A Python
    process cannot restart, so the choice is made before OpenBLAS is loaded: a child process loads
    it and says which kernels to use. This also keeps results equal to the command's bit for bit."""
    if _os.environ.get("OPENBLAS_CORETYPE") or _os.environ.get("GLASSBOX_BLAS_PROBE"):
        return
    if "numpy" in _sys.modules:
        return  # OpenBLAS is loaded already; _core warns below when its kernels are generic
    env = dict(_os.environ, GLASSBOX_BLAS_PROBE="1")
    parent = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    env["PYTHONPATH"] = parent + _os.pathsep + env.get("PYTHONPATH", "")
    try:
        r = _subprocess.run([_sys.executable, "-c", "import glassbox._core as c; print(c.better_blas_core())"],
                            env=env, capture_output=True, text=True, timeout=60)
        core = r.stdout.strip()
    except (OSError, _subprocess.SubprocessError):
        core = ""
    if core:
        _os.environ["OPENBLAS_CORETYPE"] = core


_choose_blas_kernels()

from . import _core  # noqa: E402
from ._core import *  # noqa: E402,F401,F403
from ._core import datasets  # noqa: E402,F401

_sys.modules[__name__ + ".datasets"] = datasets

if not _os.environ.get("GLASSBOX_BLAS_PROBE") and _core.better_blas_core():
    _warnings.warn(f"OpenBLAS uses its generic {_core.blas_core()} kernels here, slower than the glassbox command's "
                   f"and not bit-identical to it: import glassbox before numpy, or set "
                   f"OPENBLAS_CORETYPE={_core.better_blas_core()}", RuntimeWarning, stacklevel=2)
