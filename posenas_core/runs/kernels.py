"""The Jupyter side of a notebook run: a private Jupyter environment and a kernel of this interpreter.

`ensure_hermetic_jupyter_env` keeps user configuration out of a run; `kernel_for_current_interpreter`
names a kernel that runs `sys.executable`; `kernel_python` and `kernel_encryption` say which interpreter
a kernel runs and how its channels are encrypted.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from posenas_core.runs.io import atomic_write_json, atomic_write_text

__all__ = ["ensure_hermetic_jupyter_env", "kernel_for_current_interpreter", "kernel_python", "kernel_encryption"]


def _hermetic_root() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"posenas-jupyter-{uid}"


def ensure_hermetic_jupyter_env() -> dict[str, str]:
    """Point JUPYTER_CONFIG_DIR / JUPYTER_RUNTIME_DIR / IPYTHONDIR at private directories when they
    are not set (so no user config changes a run and nothing is written to a read-only home).
    Returns the variables it set. Idempotent; call it before starting worker threads."""
    root = _hermetic_root()
    set_now = {}
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        if not os.environ.get(var):
            d = root / sub
            d.mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(d)
            set_now[var] = str(d)
    if "IPYTHONDIR" in set_now:
        # Our own IPython dir: keep command history in memory, so concurrent kernels of a batch do
        # not contend for one sqlite file.
        cfg = Path(set_now["IPYTHONDIR"]) / "profile_default" / "ipython_kernel_config.py"
        if not cfg.exists():
            atomic_write_text(cfg, "c.HistoryManager.hist_file = ':memory:'\n")
    return set_now


_PYTHON_NAMES = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}


def _runs_this_interpreter(argv0: str) -> bool:
    """True when a kernelspec's argv[0] starts this interpreter. jupyter_client replaces a bare
    ``python``/``python3``/``python3.X`` by sys.executable; a path must be in our bin directory
    (symlinks are not resolved: a venv's python links to the base interpreter but is not it)."""
    if argv0 in _PYTHON_NAMES:
        return True
    here = os.path.abspath(sys.executable)
    there = os.path.abspath(argv0)
    return there == here or os.path.dirname(there) == os.path.dirname(here)


def kernel_for_current_interpreter(kernel_name: str = "python3") -> str:
    """Return a kernel name that runs sys.executable.

    If `kernel_name` is ``python3`` and its kernelspec starts another interpreter (a user-wide
    kernelspec shadowing the venv's), write a kernelspec ``posenas-py-<hash>`` pointing at
    sys.executable into a private data directory (added to JUPYTER_PATH) and return its name.
    Other kernel names are used as given (the caller chose them).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    if kernel_name != "python3":
        return kernel_name
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
        argv0 = spec.argv[0] if spec.argv else ""
    except NoSuchKernel:
        argv0 = ""
    if argv0 and _runs_this_interpreter(argv0):
        return kernel_name
    name = "posenas-py-" + hashlib.sha1(os.path.abspath(sys.executable).encode()).hexdigest()[:10]
    data_dir = _hermetic_root() / "data"
    kernel_json = data_dir / "kernels" / name / "kernel.json"
    spec_dict = {
        "argv": [os.path.abspath(sys.executable), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info[0]}.{sys.version_info[1]} (posenas)",
        "language": "python",
    }
    if not kernel_json.exists() or json.loads(kernel_json.read_text()) != spec_dict:
        atomic_write_json(kernel_json, spec_dict)
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if str(data_dir) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(data_dir)] + paths)
    return name


def kernel_python(kernel_name: str) -> str:
    """The interpreter a kernel runs (its kernelspec's argv[0], a bare python name resolved); "" if unknown."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec(kernel_name).argv[0]
    except (NoSuchKernel, IndexError):
        return ""
    return os.path.abspath(sys.executable) if argv0 in _PYTHON_NAMES else argv0


def kernel_encryption(kernel_name: str) -> str | None:
    """jupyter_client's `KernelManager.transport_encryption` policy for a run of `kernel_name`: "required"
    when the kernel runs this interpreter and its ipykernel declares CurveZMQ support, else "auto"; None
    (leave it alone) when pyzmq has no Curve or jupyter_client predates the option."""
    # The kernel listens on TCP on 127.0.0.1 and ipykernel warns at every start that the channel is plain
    # text unless the manager provisions Curve keys; our private kernelspec does not declare Curve itself.
    import zmq
    from jupyter_client import KernelManager

    if not zmq.has("curve") or "transport_encryption" not in KernelManager.class_trait_names():
        return None
    try:
        from ipykernel.kernelspec import get_kernel_dict

        ours = "curve" in get_kernel_dict().get("metadata", {}).get("supported_encryption", [])
    except Exception:  # no ipykernel here, or another version of it
        ours = False
    return "required" if ours and kernel_python(kernel_name) == os.path.abspath(sys.executable) else "auto"
