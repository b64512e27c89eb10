"""Architecture specs: frozen, hashable dataclasses that round-trip through JSON.

Every spec class subclasses `Spec`, declares a unique `KIND` string, and implements
`validate()` raising `SpecError` that names the field and the allowed range. Fields hold
only JSON-compatible values: ints, floats, strings, bools and (nested) tuples of them, so a
spec is hashable and can key a cache.

    spec.to_json()              -> '{"kind": "baseline", ...}'
    spec_from_json(text)        -> the right Spec subclass, validated
    spec_from_dict(d)           -> same, from a dict (e.g. a checkpoint's "spec" entry)

Field checks for `validate()`: `check_int`, `check_float`, `check_choice`. `make_divisible` is the width
rounding every family shares (no torch here, so spaces and models can both import it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar

from posenas_core.errors import SpecError

__all__ = [
    "Spec", "registered_kinds", "spec_from_dict", "spec_from_json", "check_int", "check_float", "check_choice",
    "make_divisible",
]

_REGISTRY: dict[str, type["Spec"]] = {}


def _to_tuple(value: Any) -> Any:
    """Lists (from JSON) become tuples, recursively, so specs stay hashable."""
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


def _to_list(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_list(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Spec:
    """Base class of all architecture specs. Subclasses are `@dataclass(frozen=True)`."""

    KIND: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("KIND", "")
        if kind:
            if kind in _REGISTRY and _REGISTRY[kind].__qualname__ != cls.__qualname__:
                raise TypeError(f"spec kind {kind!r} registered twice")
            _REGISTRY[kind] = cls

    def __post_init__(self):
        # Normalise lists to tuples (frozen: go through object.__setattr__), then validate.
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, _to_tuple(v))
        self.validate()

    def validate(self) -> None:  # pragma: no cover - subclasses override
        """Raise SpecError naming the field and the allowed range when out of bounds."""

    def to_dict(self) -> dict:
        d = {"kind": self.KIND}
        for f in dataclasses.fields(self):
            d[f.name] = _to_list(getattr(self, f.name))
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Spec":
        if not isinstance(d, dict):
            raise SpecError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
        d = dict(d)
        kind = d.pop("kind", cls.KIND)
        if kind != cls.KIND:
            raise SpecError(f"{cls.__name__}: 'kind' is {kind!r}, expected {cls.KIND!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SpecError(f"{cls.__name__}: unknown field(s) {unknown}; allowed: {sorted(names)}")
        return cls(**{k: _to_tuple(v) for k, v in d.items()})

    def replace(self, **changes) -> "Spec":
        return dataclasses.replace(self, **changes)


def registered_kinds() -> dict[str, type[Spec]]:
    return dict(_REGISTRY)


def spec_from_dict(d: dict) -> Spec:
    """Rebuild any registered spec from its dict form (dispatch on 'kind')."""
    if not isinstance(d, dict) or "kind" not in d:
        raise SpecError(f"a spec must be a JSON object with a 'kind' field; kinds: {sorted(_REGISTRY)}")
    kind = d["kind"]
    if kind not in _REGISTRY:
        raise SpecError(f"unknown spec kind {kind!r}; known kinds: {sorted(_REGISTRY)}")
    return _REGISTRY[kind].from_dict(d)


def spec_from_json(text: str) -> Spec:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"spec is not valid JSON: {e}") from None
    return spec_from_dict(d)


def check_int(owner: str, name: str, value: Any, lo: int, hi: int) -> None:
    """SpecError unless `value` is an int in [lo, hi]. Message names owner.field and the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{owner}.{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(f"{owner}.{name} = {value} is out of range; allowed [{lo}, {hi}]")


def check_float(owner: str, name: str, value: Any, lo: float, hi: float) -> None:
    """SpecError unless `value` is a finite real number (int or float, not bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{owner}.{name} must be a number in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(f"{owner}.{name} = {value} is out of range; allowed [{lo}, {hi}]")


def check_choice(owner: str, name: str, value: Any, allowed) -> None:
    """SpecError unless `value` is one of `allowed`. Message names owner.field and the choices."""
    if value not in tuple(allowed):
        raise SpecError(f"{owner}.{name} = {value!r} is not allowed; choose one of {list(allowed)}")


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """`v` rounded to the nearest multiple of `divisor` (at least `min_value`, default `divisor`), then one
    `divisor` more if that fell over 10% below `v` (timm / TF `make_divisible`, EfficientNet `round_filters`)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v
