"""posenas_core.deploy: ONNX export of any model with its spec in the file (by default in a "fast" form whose
ops ONNX Runtime runs faster: `rewrites`), the sources it exports from (preset, spec, checkpoint, run, model
directory), ONNX Runtime sessions and parity, and the runtimes a trained network runs on (eager, ort, compiled,
int8; "auto" = the fastest fp32 one that matches eager on this machine), and int8 quantization judged by AP.

Names are imported from their module on first use (onnx and onnxruntime only when a function needs them).
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "sources": ("load_source",),
    "onnx_export": ("ONNX_FORMAT", "PARITY_ATOL", "FORMS", "export_onnx", "read_onnx_metadata", "onnx_spec",
                    "ort_session", "onnx_parity", "parity_model", "check_exportable", "network_stride",
                    "check_input_hw"),
    "rewrites": ("fast_form", "subpixel_deconvs", "expand_grouped_convs", "regroup_grouped_convs", "nchwc_block"),
    "runtimes": ("RUNTIMES", "FP32_RUNTIMES", "RUNTIME_CHOICES", "BF16_RTOL", "runtime_available", "make_runner",
                 "choose_runtime", "runner_for", "onnx_cache_dir"),
    "quantize": ("INT8_AP_DROP", "quantize_onnx", "calibration_crops", "int8_check", "int8_verdict",
                 "cpu_has_vnni"),
})
