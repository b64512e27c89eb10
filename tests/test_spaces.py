"""Search spaces: every registered space's min / max / samples build, run and stay within min..max costs;
mutation, membership, round trips; the registry; EvoPose2D's space and genotype rows (ModuleGene)."""

import functools
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from posenas_core.errors import ConfigError, SpecError
from posenas_core.eval.profiler import count_macs, count_params
from posenas_core.genotype import spec_from_json
from posenas_core.models.registry import PRESETS, build_model
from posenas_core.spaces import EvoPoseSpace, SearchSpace, get_space, list_spaces, register_space
from posenas_core.spaces.evopose import ANCESTOR, BOUNDS, GENOTYPE_S, EvoPoseSpec, GeneBounds, ModuleGene, mutate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INPUT_HW = (64, 64)                        # a multiple of every member's network stride (EvoPose2D: 16 or 32)
MEMBERS = ("min", "max", "sample0", "sample1", "sample2")


def _member(space, which: str):
    if which in ("min", "max"):
        return getattr(space, which)()
    return space.sample(np.random.default_rng(int(which[len("sample"):])))


@functools.lru_cache(maxsize=None)
def _costs(name: str, which: str) -> tuple[int, int, tuple]:
    """(params, MACs at INPUT_HW, output shape) of a member, built and run once per test session."""
    spec = _member(get_space(name), which)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, *INPUT_HW))
    assert torch.isfinite(y).all()
    return count_params(model)["params"], count_macs(model, INPUT_HW), tuple(y.shape)


@pytest.mark.parametrize("which", MEMBERS)
@pytest.mark.parametrize("name", list_spaces())
def test_member_builds_runs_and_costs_lie_between_min_and_max(name, which):
    space = get_space(name)
    spec = _member(space, which)
    assert isinstance(spec, space.spec_class) and space.contains(spec) and space.validate(spec) is spec
    params, macs, shape = _costs(name, which)
    h, w = INPUT_HW
    assert shape == (2, spec.num_joints, h // spec.output_stride, w // spec.output_stride)
    lo, hi = _costs(name, "min"), _costs(name, "max")
    assert lo[0] <= params <= hi[0] and lo[1] <= macs <= hi[1]
    assert lo[0] < hi[0] and lo[1] < hi[1]
    back = spec_from_json(spec.to_json())
    assert back == spec and type(back) is type(spec) and back.to_json() == spec.to_json()
    assert space.from_short(spec.to_short()) == spec


@pytest.mark.parametrize("name", list_spaces())
def test_mutate_is_seeded_new_and_inside_the_space(name):
    space = get_space(name)
    for parent in (space.min(), space.max(), space.sample(np.random.default_rng(4))):
        child = space.mutate(parent, np.random.default_rng(1))
        assert child != parent and space.contains(child) and type(child) is type(parent)
        assert space.mutate(parent, np.random.default_rng(1)) == child
        other = space.mutate(parent, np.random.default_rng(1), seen={child})
        assert other not in (child, parent) and space.contains(other)
    assert not space.contains(object()) and space.sample(np.random.default_rng(0)) != space.min()
    with pytest.raises(SpecError):
        space.validate(object())


def test_registry_lists_finds_and_suggests():
    assert list_spaces() == sorted(list_spaces()) and "evopose2d" in list_spaces()
    space = get_space("evopose2d")
    assert isinstance(space, SearchSpace) and isinstance(space, EvoPoseSpace) and space.spec_class is EvoPoseSpec
    known = re.escape(str(list_spaces()))
    with pytest.raises(ConfigError, match=r"unknown search space 'evopos2d' \(did you mean 'evopose2d'\?\); "
                                          r"known spaces: " + known):
        get_space("evopos2d")
    with pytest.raises(ConfigError, match=r"unknown search space 'mobilenet'; known spaces: " + known):
        get_space("mobilenet")
    with pytest.raises(TypeError, match="SearchSpace instance"):
        register_space(EvoPoseSpace)
    custom = EvoPoseSpace(num_joints=14)
    custom.name = "evopose2d-14-test"
    try:
        assert register_space(custom) is custom and get_space("evopose2d-14-test").max().num_joints == 14
    finally:
        from posenas_core.spaces import registry
        registry._SPACES.pop("evopose2d-14-test", None)


def test_import_of_spaces_does_not_import_torch():
    code = "import sys, posenas_core.spaces as s; s.get_space('evopose2d'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- EvoPose2D ---------------------------------------------------------------------------------------------
def test_evopose_bounds_min_max_and_fixed_fields():
    space = get_space("evopose2d")
    assert space.bounds == BOUNDS and len(BOUNDS) == 7 and space.max_network_stride == 32
    assert BOUNDS[0] == GeneBounds(kernel=(3, 5), blocks=(1, 4), ch8=(1, 2), stride=(1,))
    assert BOUNDS[3] == GeneBounds((3, 5), (1, 4), (1, 10), (2,)) and BOUNDS[6].stride == (1, 2)
    assert space.min().to_short() == "k3b1c1s1-k3b1c1s2-k3b1c1s2-k3b1c1s2-k3b1c1s2-k3b1c1s1-k3b1c1s1"
    assert space.max().to_short() == "k5b4c2s1-k5b4c3s2-k5b4c5s2-k5b4c10s2-k5b4c14s1-k5b4c24s1-k5b4c40s1"
    assert (space.min().network_stride, space.max().network_stride) == (32, 16)
    assert space.min().replace(genotype=ANCESTOR) == EvoPoseSpec(genotype=ANCESTOR)    # defaults fixed
    assert space.contains(PRESETS["evopose2d-s"].spec) and not space.contains(PRESETS["evopose2d-m"].spec)
    with pytest.raises(SpecError, match=r"spec\.depth_mult = 1\.697.* the space fixes it to 1\.0"):
        space.validate(PRESETS["evopose2d-m"].spec)
    with pytest.raises(SpecError, match=r"holds EvoPoseSpecs, got BaselineSpec"):
        space.mutate(PRESETS["baseline-resnet"].spec, np.random.default_rng(0))
    keras = EvoPoseSpace(bn="keras", num_joints=14)
    s = keras.sample(np.random.default_rng(0))
    assert (s.bn, s.num_joints) == ("keras", 14) and not space.contains(s) and keras.contains(s)
    assert s.genotype == space.sample(np.random.default_rng(0)).genotype               # same draws
    with pytest.raises(SpecError, match=r"unknown fixed field\(s\) \['genotype'\]"):
        EvoPoseSpace(genotype=ANCESTOR)
    with pytest.raises(SpecError, match="head_blocks = 5 upsamples x32"):
        EvoPoseSpace(head_blocks=5)                                    # invalid at max() (network stride 16)
    with pytest.raises(SpecError, match="other multipliers"):
        space.from_short(PRESETS["evopose2d-m"].spec.to_short())


def test_evopose_space_mutate_matches_the_module_function_and_takes_specs_or_genotypes_as_seen():
    space = get_space("evopose2d")
    parent = EvoPoseSpec(genotype=GENOTYPE_S)
    child = space.mutate(parent, np.random.default_rng(3))
    assert child.genotype == mutate(GENOTYPE_S, np.random.default_rng(3))
    assert space.mutate(parent, np.random.default_rng(3), seen=[child.genotype]) == \
        space.mutate(parent, np.random.default_rng(3), seen=[child])


def test_genotype_rows_are_module_genes_equal_to_plain_tuples():
    spec = EvoPoseSpec(genotype=[list(r) for r in GENOTYPE_S])
    row = spec.genotype[5]
    assert isinstance(row, ModuleGene) and (row.kernel, row.blocks, row.ch8, row.stride) == (5, 4, 16, 1)
    plain = tuple(tuple(r) for r in GENOTYPE_S)
    assert spec.genotype == plain and hash(spec.genotype) == hash(plain)
    assert spec == EvoPoseSpec(genotype=plain) and hash(spec) == hash(EvoPoseSpec(genotype=plain))
    assert json.loads(spec.to_json())["genotype"][5] == [5, 4, 16, 1]
    assert all(isinstance(r, ModuleGene) for r in spec_from_json(spec.to_json()).genotype)
    assert spec.to_json() == ('{"bn": "torch", "depth_mult": 1.0, "drop_connect": 0.2, "genotype": [[3, 1, 2, 1], '
                              '[3, 3, 3, 2], [5, 2, 5, 2], [3, 4, 10, 2], [5, 2, 14, 1], [5, 4, 16, 1], [3, 2, 10, 1]], '
                              '"head_blocks": 3, "head_channels": 128, "head_skips": false, "kind": "evopose2d", '
                              '"num_joints": 17, "stem_channels": 32, "width_mult": 1.0}')
