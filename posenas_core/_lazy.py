"""Lazy re-exports for the package `__init__`s (PEP 562): a name is imported from its module on first use.

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {"io": ("read_jsonl", ...)}, submodules=("io",))

so `import posenas_core.runs` imports nothing heavy, and `posenas_core.runs.read_jsonl` imports
`posenas_core.runs.io` once. An exported name must not also be a submodule's name (the import system
would set the module over it); tests/test_imports.py checks this and that every name resolves.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: dict[str, tuple[str, ...]],
                 submodules: tuple[str, ...] = ()) -> tuple[list[str], Callable, Callable]:
    """`(__all__, __getattr__, __dir__)` for `package`: `table` maps a submodule to the names it exports;
    `submodules` are exported as modules. `__all__` lists the submodules first, then the names in table order."""
    where = {name: module for module, names in table.items() for name in names}
    exported = [*submodules, *(name for names in table.values() for name in names)]

    def __getattr__(name: str):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)   # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exported))

    return exported, __getattr__, __dir__
