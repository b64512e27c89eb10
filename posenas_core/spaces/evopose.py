"""The EvoPose2D search space: a 7-module inverted-residual backbone as a frozen, validated spec.

Genotype: 7 rows, one per module, each a `ModuleGene(kernel, blocks, ch8, stride)` (a NamedTuple: equal to,
hashed and JSON-written as the plain tuple `(kernel, blocks, channels/8, stride)`).

    This is the column order of the public code (`nets/evopose2d.py`, every yaml GENOTYPE).
    The paper's appendix writes the columns as (blocks, kernel, channels/8, stride); we follow
    the code so that published genotypes can be pasted in unchanged.

Bounds come from the common ancestor (EfficientNet-B0's blocks, paper Table 4):

    module  k  blocks  out ch  stride  expansion     # resolution at 256x192 (stem is /2)
    1       3  1       16      1       1             # 128x96
    2       3  2       24      2       6             # 64x48
    3       5  2       40      2       6             # 32x24
    4       3  3       80      2       6             # 16x12
    5       5  3       112     1       6             # 16x12
    6       5  4       192     2       6             # 8x6
    7       3  1       320     1       6             # 8x6

  kernel in {3, 5}; blocks in [1, 4]; channels/8 in [1, ancestor's channels/8];
  strides of modules 1-4 are fixed (1, 2, 2, 2); modules 5-7 take 1 or 2, and the network stride
  (stem 2 x module strides) is capped at 32, i.e. at most one of modules 5-7 has stride 2.
  As data: `BOUNDS`, one `GeneBounds` row per module, and `MAX_NETWORK_STRIDE`.

Short string: modules joined by '-', each 'k{kernel}b{blocks}c{channels/8}s{stride}', e.g. the
ancestor is `k3b1c2s1-k3b2c3s2-k5b2c5s2-k3b3c10s2-k5b3c14s1-k5b4c24s2-k3b1c40s1`.

`EvoPoseSpec` adds compound scaling (depth / width multipliers, see `compound_scaling`) and the
fixed parts of the network (stem, head, drop-connect, BN settings); `posenas_core.models.evopose`
builds it. `mutate` is the published mutation (one gene per child), `sample` a random genotype.
`EvoPoseSpace` is the same space as one object of specs (registered as "evopose2d", `spaces.get_space`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import ClassVar, Iterable, NamedTuple, Sequence

import numpy as np

from posenas_core.errors import SpecError
from posenas_core.genotype import Spec, check_choice, check_float, check_int, make_divisible
from posenas_core.spaces.registry import MembershipByValidate

__all__ = [
    "ANCESTOR", "GENOTYPE_S", "GENOTYPE_XS", "COLUMNS", "KERNELS", "MAX_BLOCKS", "MAX_CH8", "FIXED_STRIDES",
    "MAX_NETWORK_STRIDE", "EXPANSION", "BOUNDS", "MIN_GENOTYPE", "MAX_GENOTYPE", "ModuleGene", "GeneBounds",
    "Genotype", "EvoPoseSpec", "EvoPoseSpace", "validate_genotype", "genotype_to_str", "genotype_from_str",
    "network_stride", "compound_scaling", "round_filters", "round_repeats", "mutate", "sample", "scaled_spec",
]


class ModuleGene(NamedTuple):
    """One module's genes, in the public code's column order."""

    kernel: int
    blocks: int
    ch8: int                      # output channels / 8 (before width scaling)
    stride: int


Genotype = tuple  # tuple of 7 ModuleGene rows

COLUMNS = ModuleGene._fields


def _as_genotype(g) -> Genotype:
    """Lists / tuples of 4-value rows -> a tuple of ModuleGene (other rows kept, for validate to name)."""
    if isinstance(g, (list, tuple)):
        return tuple(ModuleGene(*r) if isinstance(r, (list, tuple)) and len(r) == 4
                     else tuple(r) if isinstance(r, (list, tuple)) else r for r in g)
    return g


ANCESTOR: Genotype = _as_genotype(((3, 1, 2, 1), (3, 2, 3, 2), (5, 2, 5, 2), (3, 3, 10, 2), (5, 3, 14, 1),
                                   (5, 4, 24, 2), (3, 1, 40, 1)))
# The published EvoPose2D-S/M/L genotype (best of experiment E3); XS is S with module 6 at stride 2.
GENOTYPE_S: Genotype = _as_genotype(((3, 1, 2, 1), (3, 3, 3, 2), (5, 2, 5, 2), (3, 4, 10, 2), (5, 2, 14, 1),
                                     (5, 4, 16, 1), (3, 2, 10, 1)))
GENOTYPE_XS: Genotype = GENOTYPE_S[:5] + (GENOTYPE_S[5]._replace(stride=2),) + GENOTYPE_S[6:]

NUM_MODULES = 7
KERNELS = (3, 5)
MAX_BLOCKS = 4                                           # max of the ancestor's block counts
MAX_CH8 = tuple(row.ch8 for row in ANCESTOR)             # channels/8 upper bound per module
FIXED_STRIDES = (1, 2, 2, 2)                             # modules 1-4 (0-based 0..3) never change stride
MUTABLE_STRIDE_MODULES = (4, 5, 6)                       # 0-based modules whose stride may mutate
STEM_STRIDE = 2
MAX_NETWORK_STRIDE = 32
EXPANSION = (1, 6, 6, 6, 6, 6, 6)                        # module 1 has no expansion conv (as EfficientNet-B0)
BN_STYLES = ("torch", "keras")                           # keras: momentum 0.99 (torch 0.01), eps 1e-3


class GeneBounds(NamedTuple):
    """One module's allowed genes: `kernel` and `stride` are choices, `blocks` and `ch8` inclusive [lo, hi]."""

    kernel: tuple[int, ...]
    blocks: tuple[int, int]
    ch8: tuple[int, int]
    stride: tuple[int, ...]


BOUNDS: tuple[GeneBounds, ...] = tuple(
    GeneBounds(KERNELS, (1, MAX_BLOCKS), (1, MAX_CH8[i]), (FIXED_STRIDES[i],) if i < len(FIXED_STRIDES) else (1, 2))
    for i in range(NUM_MODULES))            # plus the cap: network stride <= MAX_NETWORK_STRIDE


# ---------------------------------------------------------------------------------------------
# Genotype checks and strings


def validate_genotype(g, owner: str = "genotype") -> Genotype:
    """Return `g` as a tuple of ModuleGene, or raise SpecError naming the module, gene and allowed range."""
    g = _as_genotype(g)
    if not isinstance(g, tuple) or len(g) != NUM_MODULES:
        n = len(g) if isinstance(g, tuple) else type(g).__name__
        raise SpecError(f"{owner} must have {NUM_MODULES} modules (rows of {list(COLUMNS)}), got {n}")
    for i, row in enumerate(g):
        where = f"{owner} module {i + 1}"
        if not isinstance(row, tuple) or len(row) != 4:
            raise SpecError(f"{where} must be 4 genes {list(COLUMNS)}, got {row!r}")
        bound = BOUNDS[i]
        check_choice(where, "kernel", row.kernel, bound.kernel)
        check_int(where, "blocks", row.blocks, *bound.blocks)
        check_int(where, "ch8", row.ch8, *bound.ch8)
        if len(bound.stride) == 1:
            if row.stride != bound.stride[0] or isinstance(row.stride, bool):
                raise SpecError(f"{where}.stride = {row.stride!r} is not allowed; modules 1-4 have the fixed strides "
                                f"{list(FIXED_STRIDES)} (only modules 5-7 may change stride)")
        else:
            check_choice(where, "stride", row.stride, bound.stride)
    stride = network_stride(g)
    if stride > MAX_NETWORK_STRIDE:
        twos = [i + 1 for i in MUTABLE_STRIDE_MODULES if g[i].stride == 2]
        raise SpecError(f"{owner}: network stride {stride} is over the cap {MAX_NETWORK_STRIDE} (modules {twos} "
                        f"have stride 2; at most one of modules 5-7 may)")
    return g


def network_stride(g: Genotype) -> int:
    """Stem stride x product of the module strides (16 for EvoPose2D-S, 32 for XS and the ancestor)."""
    return STEM_STRIDE * math.prod(int(r.stride) for r in _as_genotype(g))


def genotype_to_str(g: Genotype) -> str:
    return "-".join(f"k{r.kernel}b{r.blocks}c{r.ch8}s{r.stride}" for r in _as_genotype(g))


_MODULE_RE = re.compile(r"^k(\d+)b(\d+)c(\d+)s(\d+)$")


def genotype_from_str(text: str) -> Genotype:
    """Parse `genotype_to_str`'s format (validated). SpecError naming the bad module otherwise."""
    if not isinstance(text, str):
        raise SpecError(f"a genotype string must be a str, got {type(text).__name__}")
    parts = text.strip().split("-")
    if len(parts) != NUM_MODULES:
        raise SpecError(f"genotype string {text!r} has {len(parts)} modules; expected {NUM_MODULES} "
                        f"'k<kernel>b<blocks>c<ch/8>s<stride>' parts joined by '-'")
    rows = []
    for i, p in enumerate(parts):
        m = _MODULE_RE.match(p)
        if not m:
            raise SpecError(f"genotype string module {i + 1} is {p!r}; expected 'k<kernel>b<blocks>c<ch/8>s<stride>'"
                            f" (e.g. 'k3b2c3s2')")
        rows.append(tuple(int(v) for v in m.groups()))
    return validate_genotype(tuple(rows))


# ---------------------------------------------------------------------------------------------
# Compound scaling (EfficientNet rules as in the EvoPose2D code)

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15       # depth, width, resolution coefficients
BASE_RESOLUTION = 224                     # r = (H + W) / 2 = 224 gives phi = 0 (256x192)


def compound_scaling(input_hw: Sequence[int]) -> dict:
    """phi, depth / width multipliers and drop-connect rate for an input size (H, W).

    r = (H + W) / 2, phi = ln(r / 224) / ln(1.15), depth = 1.2**phi, width = 1.1**phi (256x192 -> 1, 1;
    384x288 -> 1.697, 1.319; 512x384 -> 2.470, 1.604). Drop-connect as the public code: 0.2 if r <= 240,
    0.3 if r <= 300, 0.4 if r <= 456, else 0.5."""
    h, w = (int(v) for v in input_hw)
    if h <= 0 or w <= 0:
        raise SpecError(f"compound_scaling: input size must be positive, got {h}x{w}")
    r = (h + w) / 2
    phi = (math.log(r) - math.log(BASE_RESOLUTION)) / math.log(GAMMA)
    dc = 0.2 if r <= 240 else 0.3 if r <= 300 else 0.4 if r <= 456 else 0.5
    return {"phi": phi, "depth_mult": ALPHA ** phi, "width_mult": BETA ** phi, "drop_connect": dc}


def round_filters(channels: int, width_mult: float, divisor: int = 8) -> int:
    """EfficientNet's width rounding: `make_divisible(channels x width_mult, divisor)`; unscaled widths as they are."""
    if width_mult == 1.0:
        return int(channels)
    return int(make_divisible(channels * width_mult, divisor))


def round_repeats(blocks: int, depth_mult: float) -> int:
    """Depth rounding as the public code: ceil (the paper says 'nearest'; ceil reproduces 7.34M / 14.7M)."""
    return int(math.ceil(depth_mult * blocks))


# ---------------------------------------------------------------------------------------------
# The spec


@dataclasses.dataclass(frozen=True)
class EvoPoseSpec(Spec):
    """An EvoPose2D network: the genotype plus compound scaling and the fixed stem / head.

    Defaults give EvoPose2D-S's fixed parts at 256x192 (no scaling): stem 32, head 3 x 128, final 1x1.
    The output stride is network_stride / 2**head_blocks (2 for S, 4 for XS and the ancestor)."""

    KIND: ClassVar[str] = "evopose2d"

    genotype: tuple = ANCESTOR             # 7 x ModuleGene(kernel, blocks, ch8, stride), code column order
    depth_mult: float = 1.0                # compound scaling: blocks -> ceil(blocks * depth_mult)
    width_mult: float = 1.0                # compound scaling: channels -> round_filters (stem, modules, head)
    stem_channels: int = 32                # EfficientNet stem width before scaling
    head_channels: int = 128               # transposed-conv width before scaling
    head_blocks: int = 3                   # 3 x (ConvTranspose 3x3/2 -> BN -> swish)
    num_joints: int = 17                   # K heatmaps
    drop_connect: float = 0.2              # max drop-connect rate (0.2 for S/XS, 0.4 for M/L in the code)
    bn: str = "torch"                      # "torch" (momentum 0.1, eps 1e-5) | "keras" (0.01, 1e-3)
    head_skips: bool = False               # not in the paper: U-Net skips into the head (learns fast on a CPU)

    def __post_init__(self):
        for name in ("depth_mult", "width_mult", "drop_connect"):
            v = getattr(self, name)
            if isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, name, float(v))
        object.__setattr__(self, "genotype", _as_genotype(self.genotype))
        super().__post_init__()

    def validate(self) -> None:
        o = type(self).__name__
        validate_genotype(self.genotype, f"{o}.genotype")
        check_float(o, "depth_mult", self.depth_mult, 1.0, 4.0)
        check_float(o, "width_mult", self.width_mult, 1.0, 4.0)
        check_int(o, "stem_channels", self.stem_channels, 8, 256)
        check_int(o, "head_channels", self.head_channels, 8, 1024)
        check_int(o, "head_blocks", self.head_blocks, 1, 5)
        check_int(o, "num_joints", self.num_joints, 1, 256)
        check_float(o, "drop_connect", self.drop_connect, 0.0, 0.9)
        check_choice(o, "bn", self.bn, BN_STYLES)
        if not isinstance(self.head_skips, bool):
            raise SpecError(f"{o}.head_skips must be true or false, got {self.head_skips!r}")
        if self.output_stride < 1 or self.network_stride % 2 ** self.head_blocks:
            raise SpecError(f"{o}.head_blocks = {self.head_blocks} upsamples x{2 ** self.head_blocks}, more than the "
                            f"network stride {self.network_stride}; allowed head_blocks <= "
                            f"{int(math.log2(self.network_stride))}")

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def network_stride(self) -> int:
        return network_stride(self.genotype)

    @property
    def output_stride(self) -> int:
        """Input pixels per heatmap pixel."""
        return self.network_stride // 2 ** self.head_blocks

    def channels(self, base: int) -> int:
        return round_filters(base, self.width_mult)

    def module_plan(self) -> list[dict]:
        """Per module after scaling: kernel, blocks, in/out channels, stride, expansion (what the builder makes)."""
        plan, cin = [], self.channels(self.stem_channels)
        for i, row in enumerate(self.genotype):
            cout = self.channels(8 * row.ch8)
            plan.append({"module": i + 1, "kernel": row.kernel, "blocks": round_repeats(row.blocks, self.depth_mult),
                         "in": cin, "out": cout, "stride": row.stride, "expansion": EXPANSION[i]})
            cin = cout
        return plan

    def to_short(self) -> str:
        """The genotype string; scaled specs append '@<H>x<W>'-free multipliers as '@d<depth>w<width>'."""
        s = genotype_to_str(self.genotype)
        return s if (self.depth_mult, self.width_mult) == (1.0, 1.0) else f"{s}@d{self.depth_mult:.4f}w{self.width_mult:.4f}"


def scaled_spec(genotype: Genotype, input_hw: Sequence[int], **fields) -> EvoPoseSpec:
    """The genotype compound-scaled for `input_hw` (stem, modules and head widths; depths; drop-connect)."""
    sc = compound_scaling(input_hw)
    kw = {"depth_mult": round(sc["depth_mult"], 6), "width_mult": round(sc["width_mult"], 6),
          "drop_connect": sc["drop_connect"]}
    kw.update(fields)
    return EvoPoseSpec(genotype=validate_genotype(genotype), **kw)


# ---------------------------------------------------------------------------------------------
# Mutation and sampling


def _mutate_once(g: Genotype, rng: np.random.Generator) -> Genotype | None:
    """One draw of the published mutation; None when the drawn gene cannot change (the caller redraws)."""
    i = int(rng.integers(NUM_MODULES))
    gene = int(rng.integers(4))
    old = g[i]
    if gene == 0:                                    # kernel: redraw from {3, 5}; same value -> retry
        new = int(rng.choice(KERNELS))
        if new == old.kernel:
            return None
        row = old._replace(kernel=new)
    elif gene == 1:                                  # blocks: 1 -> 2, 4 -> 3, else +-1 with p = 0.5
        if old.blocks == 1:
            nb = 2
        elif old.blocks == MAX_BLOCKS:
            nb = MAX_BLOCKS - 1
        else:
            nb = old.blocks + (1 if rng.random() < 0.5 else -1)
        row = old._replace(blocks=nb)
    elif gene == 2:                                  # channels/8: uniform over [1, ancestor's]
        nc = int(rng.integers(1, MAX_CH8[i] + 1))
        if nc == old.ch8:
            return None
        row = old._replace(ch8=nc)
    else:                                            # stride: modules 5-7 only, network stride <= 32
        if i not in MUTABLE_STRIDE_MODULES:
            return None
        extra = sum(int(r.stride) - 1 for r in g)    # number of stride-2 modules
        cap = int(math.log2(MAX_NETWORK_STRIDE // STEM_STRIDE))
        if old.stride == 2 and extra == cap:
            row = old._replace(stride=1)
        elif old.stride == 1 and extra < cap:
            row = old._replace(stride=2)
        else:
            return None
    return g[:i] + (row,) + g[i + 1:]


def mutate(g: Genotype, rng: np.random.Generator, seen: Iterable[Genotype] = (), max_tries: int = 10_000) -> Genotype:
    """A child of `g` differing in exactly one gene, drawn as the published algorithm.

    Redraws while the child equals the parent or is in `seen` (every genotype already sampled in the
    run). SpecError if no new genotype turns up in `max_tries` draws."""
    g = validate_genotype(g)
    seen = set(seen) if not isinstance(seen, (set, frozenset)) else seen
    for _ in range(max_tries):
        child = _mutate_once(g, rng)
        if child is not None and child != g and child not in seen:
            return child
    raise SpecError(f"mutate: no unseen single-gene mutation of {genotype_to_str(g)} found in {max_tries} draws "
                    f"({len(seen)} genotypes already seen)")


def sample(rng: np.random.Generator) -> Genotype:
    """A uniformly random valid genotype (each gene uniform in its range; stride pattern uniform among valid ones)."""
    rows = []
    for i in range(NUM_MODULES):
        rows.append(ModuleGene(kernel=int(rng.choice(KERNELS)), blocks=int(rng.integers(1, MAX_BLOCKS + 1)),
                               ch8=int(rng.integers(1, MAX_CH8[i] + 1)),
                               stride=FIXED_STRIDES[i] if i < len(FIXED_STRIDES) else 1))
    two = int(rng.integers(-1, len(MUTABLE_STRIDE_MODULES)))   # -1: all stride 1 (network stride 16)
    if two >= 0:
        j = MUTABLE_STRIDE_MODULES[two]
        rows[j] = rows[j]._replace(stride=2)
    return validate_genotype(tuple(rows))


# ---------------------------------------------------------------------------------------------
# The space as one object (registered as "evopose2d" by `posenas_core.spaces`)

# Every gene at its low / high end; strides: the first mutable module at 2 (min) / all mutable ones at 1 (max).
MIN_GENOTYPE: Genotype = tuple(ModuleGene(min(b.kernel), b.blocks[0], b.ch8[0],
                                          2 if i == MUTABLE_STRIDE_MODULES[0] else b.stride[0])
                               for i, b in enumerate(BOUNDS))
MAX_GENOTYPE: Genotype = tuple(ModuleGene(max(b.kernel), b.blocks[1], b.ch8[1], b.stride[0]) for b in BOUNDS)


class EvoPoseSpace(MembershipByValidate):
    """The EvoPose2D space as a `SearchSpace` of EvoPoseSpecs.

    Members: EvoPoseSpecs whose non-genotype fields equal `fixed` (EvoPoseSpec's defaults unless given:
    unscaled, 17 joints); any valid genotype. `sample` / `mutate` draw as the module functions.
    min(): every gene at its smallest value (kernel 3, 1 block, 8 channels) and module 5 at stride 2
    (network stride 32); max(): kernel 5, 4 blocks, the ancestor's channels, modules 5-7 at stride 1 (16).
    Params grow with kernel, blocks and channels and ignore strides; with module 5 at stride 2 every later
    layer (head included) runs at the lowest resolution a member allows, with none at stride 2 at the
    highest; so every member's params and MACs lie between min's and max's."""

    name = "evopose2d"
    spec_class = EvoPoseSpec
    bounds = BOUNDS                                  # one GeneBounds per module; plus max_network_stride
    max_network_stride = MAX_NETWORK_STRIDE

    def __init__(self, **fixed):
        names = sorted(f.name for f in dataclasses.fields(EvoPoseSpec) if f.name != "genotype")
        unknown = sorted(set(fixed) - set(names))
        if unknown:
            raise SpecError(f"EvoPoseSpace: unknown fixed field(s) {unknown}; allowed: {names}")
        self.fixed = dict(fixed)
        self._min = EvoPoseSpec(genotype=MIN_GENOTYPE, **fixed)     # validates `fixed` at both extremes
        self._max = EvoPoseSpec(genotype=MAX_GENOTYPE, **fixed)

    def __repr__(self) -> str:
        return f"EvoPoseSpace({', '.join(f'{k}={v!r}' for k, v in self.fixed.items())})"

    def _member(self, genotype) -> EvoPoseSpec:
        return self._min.replace(genotype=genotype)

    def min(self) -> EvoPoseSpec:
        return self._min

    def max(self) -> EvoPoseSpec:
        return self._max

    def sample(self, rng: np.random.Generator) -> EvoPoseSpec:
        return self._member(sample(rng))

    def mutate(self, spec: EvoPoseSpec, rng: np.random.Generator, seen: Iterable | None = None) -> EvoPoseSpec:
        """`spec` with one gene changed (the published mutation), unlike every spec or genotype in `seen`."""
        self.validate(spec)
        seen_g = {s.genotype if isinstance(s, EvoPoseSpec) else _as_genotype(s) for s in (seen or ())}
        return spec.replace(genotype=mutate(spec.genotype, rng, seen_g))

    def validate(self, spec) -> EvoPoseSpec:
        """`spec` if it is a member; SpecError naming the first field that differs from the space otherwise."""
        if not isinstance(spec, EvoPoseSpec):
            raise SpecError(f"search space {self.name!r} holds EvoPoseSpecs, got {type(spec).__name__}")
        for f in dataclasses.fields(EvoPoseSpec):
            want = getattr(self._min, f.name)
            if f.name != "genotype" and getattr(spec, f.name) != want:
                raise SpecError(f"search space {self.name!r}: spec.{f.name} = {getattr(spec, f.name)!r} is not "
                                f"allowed; the space fixes it to {want!r}")
        return spec

    def from_short(self, text: str) -> EvoPoseSpec:
        """The member with this genotype string; a '@d..w..' suffix must match the space's multipliers."""
        spec = self._member(genotype_from_str(str(text).split("@")[0]))
        if "@" in str(text) and spec.to_short() != str(text).strip():
            raise SpecError(f"search space {self.name!r}: {text!r} has other multipliers than the space's "
                            f"({spec.to_short()!r})")
        return spec
