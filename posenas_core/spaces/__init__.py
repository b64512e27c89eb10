"""posenas_core.spaces: search spaces (genotypes, bounds, sample / mutate / min / max) and their registry.

Importing it registers the built-in spaces: "evopose2d" (`evopose.EvoPoseSpace`), "vipnas-res50"
(`vipnas_res50.ViPNASRes50Space`) and "vipnas-mbv3" (`vipnas_mbv3.ViPNASMbv3Space`). No torch.
A space's own tables (EvoPose2D's KERNELS, BOUNDS, ...) are in its module (`spaces.evopose`).
"""

from posenas_core._lazy import lazy_exports
from posenas_core.spaces.evopose import EvoPoseSpace
from posenas_core.spaces.registry import register_space
from posenas_core.spaces.vipnas_mbv3 import ViPNASMbv3Space
from posenas_core.spaces.vipnas_res50 import ViPNASRes50Space

register_space(EvoPoseSpace())
register_space(ViPNASRes50Space())
register_space(ViPNASMbv3Space())

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "registry": ("SearchSpace", "MembershipByValidate", "MutateByNeighbours", "get_space", "list_spaces", "register_space"),
    "evopose": ("EvoPoseSpace", "EvoPoseSpec"),
    "vipnas": ("ViPNASResSpec", "ViPNASMbv3Spec"),
    "vipnas_res50": ("ViPNASRes50Space",),
    "vipnas_mbv3": ("ViPNASMbv3Space",),
}, submodules=("evopose", "vipnas_res50", "vipnas_mbv3"))
