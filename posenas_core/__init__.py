"""PoseNAS Lab core library: search spaces, models, data, training, evaluation.

Public API: the subpackages and modules in `__all__` (each names its own exports in `__all__`) and the
error classes of `errors`. Nothing is imported until first used, so `posenas --help` stays fast.
Nothing in this package imports widgets, plotting or IPython (tests/test_imports.py keeps it so).
"""

from posenas_core._lazy import lazy_exports

__version__ = "0.1.0"

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "errors": ("PoseNASError", "ConfigError", "DataError", "SpecError", "CheckpointError"),
}, submodules=("data", "eval", "models", "ops", "runs", "search", "spaces", "train",
               "errors", "genotype", "machine", "pipeline"))
