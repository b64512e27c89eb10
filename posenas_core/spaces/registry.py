"""Search spaces by name: the `SearchSpace` contract and the registry.

    get_space("evopose2d").sample(np.random.default_rng(0))     -> an EvoPoseSpec
    list_spaces()                                                -> ["evopose2d"]
    register_space(MySpace())                                    # a new space, under MySpace.name

`import posenas_core.spaces` registers the built-in spaces (EvoPose2D). No torch here.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Protocol, runtime_checkable

import numpy as np

from posenas_core.errors import ConfigError, SpecError
from posenas_core.genotype import Spec

__all__ = ["SearchSpace", "MembershipByValidate", "MutateByNeighbours", "register_space", "get_space", "list_spaces"]


@runtime_checkable
class SearchSpace(Protocol):
    """A family of architectures as one object. Every random draw takes an explicit numpy Generator.

    name          registry name
    spec_class    the Spec subclass of its members
    bounds        its limits as plain data (EvoPose2D: one GeneBounds row per module)
    sample(rng)   a random member
    mutate(spec, rng, seen=None)   a member near `spec`, different from it and from every spec in `seen`
    min(), max()  the members with the fewest / most params and MACs: every member's params and MACs
                  (at one input size) lie between theirs, inclusive
    contains(spec)   whether `spec` is a member; validate(spec) returns it or raises SpecError naming why not
    from_short(text) the member whose `spec.to_short()` is `text`
    """

    name: str
    spec_class: type[Spec]
    bounds: Any

    def sample(self, rng: np.random.Generator) -> Spec: ...

    def mutate(self, spec: Spec, rng: np.random.Generator, seen: Iterable | None = None) -> Spec: ...

    def min(self) -> Spec: ...

    def max(self) -> Spec: ...

    def contains(self, spec: Any) -> bool: ...

    def validate(self, spec: Any) -> Spec: ...

    def from_short(self, text: str) -> Spec: ...


class MembershipByValidate:
    """`contains(spec)` for a space whose `validate(spec)` raises SpecError for a non-member."""

    def contains(self, spec: Any) -> bool:
        try:
            self.validate(spec)
        except SpecError:
            return False
        return True


class MutateByNeighbours:
    """`mutate(spec, rng, seen)` for a space with `neighbours(spec)` (every member one field away): one of them,
    uniform over those not in `seen`; SpecError when every one is in `seen`."""

    def mutate(self, spec: Spec, rng: np.random.Generator, seen: Iterable | None = None) -> Spec:
        seen = set(seen or ())
        options = [s for s in self.neighbours(spec) if s not in seen]
        if not options:
            raise SpecError(f"search space {self.name!r}: every one-field change of {spec.to_short()!r} is in seen")
        return options[int(rng.integers(len(options)))]


_SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    """Make `space` reachable as `get_space(space.name)` (a later space of the same name replaces it)."""
    if not isinstance(space, SearchSpace) or isinstance(space, type):
        raise TypeError(f"register_space needs a SearchSpace instance (name, spec_class, bounds, sample, mutate, "
                        f"min, max, contains, validate, from_short), got {space!r}")
    if not isinstance(space.name, str) or not space.name:
        raise TypeError(f"register_space: a space's name must be a non-empty string, got {space.name!r}")
    _SPACES[space.name] = space
    return space


def get_space(name: str) -> SearchSpace:
    """The space registered as `name`; ConfigError naming the known spaces (and the closest ones) otherwise."""
    try:
        return _SPACES[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_SPACES), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(f"unknown search space {name!r}{hint}; known spaces: {list_spaces()}") from None


def list_spaces() -> list[str]:
    """The registered space names, sorted."""
    return sorted(_SPACES)
