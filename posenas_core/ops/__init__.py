"""posenas_core.ops: layers shared by the model builders (static blocks in `layers`; elastic ops in `elastic`).

Names are imported from their module on first use.
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "layers": ("ACTIVATIONS", "GATES", "MmcvHSigmoid", "ConvBN", "DropConnect", "DropGeneratorMixin", "SqueezeExcite",
               "conv_bn", "init_scope", "make_activation", "set_drop_generator", "check_input_size"),
    "elastic": ("ElasticBatchNorm2d", "ElasticConv2d", "ElasticConvTranspose2d", "ElasticConvBN",
                "ElasticSqueezeExcite"),
})
