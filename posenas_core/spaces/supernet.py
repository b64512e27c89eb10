"""A weight-sharing super-network as a spec: which registered space, and the max arch its weights are sized by.

    SupernetSpec(space="vipnas-res50")       max_arch defaults to that space's max().to_short()

Checkpoints of a supernet hold this spec beside the weights (like any other model), so resuming or loading
one for another space, or for a space whose max arch has changed since, is refused naming the difference.
`models.registry.build_model(SupernetSpec(...))` builds the supernet (`models.vipnas_supernet`). No torch here.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from posenas_core.errors import PoseNASError, SpecError
from posenas_core.genotype import Spec

__all__ = ["SupernetSpec", "SUPERNET_SPACES"]

SUPERNET_SPACES = ("vipnas-res50", "vipnas-mbv3")      # the spaces that have a weight-sharing supernet


@dataclasses.dataclass(frozen=True)
class SupernetSpec(Spec):
    """The supernet of the registered space `space`, sized by its max arch (`max_arch`, a short string)."""

    KIND: ClassVar[str] = "supernet"

    space: str = "vipnas-res50"
    max_arch: str = ""

    def __post_init__(self):
        if self.max_arch == "" and self.space in SUPERNET_SPACES:
            object.__setattr__(self, "max_arch", self.search_space.max().to_short())
        super().__post_init__()

    @property
    def search_space(self):
        """The registered space object (`spaces.get_space(self.space)`)."""
        from posenas_core.spaces.registry import get_space

        import posenas_core.spaces  # noqa: F401  (registers the built-in spaces)

        return get_space(self.space)

    @property
    def max_spec(self) -> Spec:
        """The max arch as a spec of the space's family."""
        return self.search_space.spec_class.from_short(self.max_arch)

    @property
    def network_stride(self) -> int:
        return self.max_spec.network_stride

    @property
    def output_stride(self) -> int:
        return self.max_spec.output_stride

    def validate(self) -> None:
        if self.space not in SUPERNET_SPACES:
            raise SpecError(f"SupernetSpec.space {self.space!r} has no supernet; allowed: {list(SUPERNET_SPACES)}")
        space = self.search_space
        try:
            given = space.spec_class.from_short(self.max_arch)
        except PoseNASError as e:
            raise SpecError(f"SupernetSpec.max_arch {self.max_arch!r} is not a {space.spec_class.__name__}: {e}") from None
        want = space.max()
        if given != want:
            raise SpecError(f"SupernetSpec.max_arch {self.max_arch!r} is not the max arch of space {self.space!r} "
                            f"({want.to_short()!r}): these weights were sized for another max arch")
