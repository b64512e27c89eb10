"""Fixtures shared by the runtime and int8 tests: an isolated runtime environment and one tiny network."""

import pytest
import torch

from posenas_core.deploy import runtimes
from posenas_core.deploy.onnx_export import parity_model
from posenas_core.models.registry import build_model
from posenas_core.spaces.evopose import EvoPoseSpec, genotype_from_str

TINY_HW = (64, 64)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One thread, the ONNX cache in a temp dir, the process caches empty; restored after the module."""
    mp = pytest.MonkeyPatch()
    mp.setenv("POSENAS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    for cache in (runtimes._RUNNERS, runtimes._CHOICES, runtimes._BF16):
        cache.clear()
    yield
    torch.set_num_threads(n)
    mp.undo()


@pytest.fixture(scope="module")
def net(env):
    """A tiny EvoPose2D network at 64x64 with non-trivial BN (`parity_model`)."""
    g = genotype_from_str("k3b1c1s1-k3b1c1s2-k3b1c1s2-k3b1c1s2-k3b1c1s1-k3b1c1s2-k3b1c1s1")
    spec = EvoPoseSpec(genotype=g, head_channels=16)      # deconvs 16 -> 16: the case torch's folding gets wrong
    return parity_model(build_model(spec, generator=torch.Generator().manual_seed(0)), 0, TINY_HW)
