"""posenas_core.models: builders spec -> nn.Module, the presets, the deconvolution head.

Names are imported from their module on first use.
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "registry": ("Preset", "PRESETS", "register_builder", "build_model", "get_preset", "load_spec"),
    "baselines": ("BaselineSpec", "BaselineNet", "build_baseline"),
    "evopose": ("EvoPoseNet", "build_evopose"),
    "vipnas": ("ViPNASNet", "build_vipnas"),
    "vipnas_supernet": ("ViPNASSupernet", "build_supernet"),
    "heads": ("DeconvHead",),
})
