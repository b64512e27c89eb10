"""ONNX export of a pose network with its spec in the file; reading it back; ONNX Runtime sessions and parity.

    export_onnx(model, "net.onnx", (256, 192))     input "images" (B, 3, H, W) float32, B dynamic,
                                                    output "heatmaps" (B, K, H/s, W/s); weights inside the file
    onnx_spec("net.onnx")                          -> the Spec stored in its metadata ("posenas.spec")
    onnx_parity(model, "net.onnx", (256, 192))     -> max |ORT - eager| on a seeded random batch

The file is written in the "fast" form by default (`deploy.rewrites`: transposed convolutions as one Conv per
output phase then Col2Im, grouped convolutions with few channels per group as repeat + depthwise Conv + sum or
with groups merged to the CPU's channel block, squeeze-excite means as GlobalAveragePool; the same function in
ops ONNX Runtime runs faster); form="plain" keeps the model's own ops (for a runtime without Col2Im, opset 18, or
one whose grouped convolutions are fast). Export goes through the torch.export-based exporter
(`torch.onnx.export(dynamo=True)`); the legacy TorchScript exporter is not used. onnx / onnxruntime /
onnxscript are the `deploy` extra: a missing one is a ConfigError naming it. Metadata (`metadata_props`, all
strings): "posenas.format" (ONNX_FORMAT), "posenas.spec" (spec JSON), "posenas.input_hw" ("HxW", the size
exported at), "posenas.output_stride", "posenas.form" ("fast" or "plain"), and for the fast form
"posenas.nchwc_block" (the CPU channel block its grouped convs were regrouped for: `rewrites.nchwc_block`).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from posenas_core.errors import CheckpointError, ConfigError, SpecError
from posenas_core.genotype import Spec, spec_from_json
from posenas_core.spaces.supernet import SupernetSpec

__all__ = ["ONNX_FORMAT", "PARITY_ATOL", "FORMS", "export_onnx", "read_onnx_metadata", "onnx_spec",
           "ort_session", "onnx_parity", "parity_model", "check_exportable", "network_stride", "check_input_hw"]

ONNX_FORMAT = 1                 # "posenas.format" of the files written here
PARITY_ATOL = 1e-4              # max abs heatmap difference ORT vs eager fp32 that counts as parity
INPUT, OUTPUT = "images", "heatmaps"
RESERVED = ("posenas.format", "posenas.spec", "posenas.input_hw", "posenas.output_stride", "posenas.form",
            "posenas.nchwc_block")
FORMS = ("fast", "plain")       # "fast": deploy.rewrites.fast_form applied; "plain": the model's own ops
OPTIMIZATION = ("disable", "basic", "extended", "all")   # ORT graph optimization levels
OPSETS = range(18, 24)          # operator sets torch 2.13's exporter writes (18: its torchlib; 23: its maximum)


def _require(name: str):
    """Import `name` (onnx, onnxruntime, onnxscript); ConfigError saying how to install it when absent."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"{name} is not installed; ONNX export and ONNX Runtime need the deploy extra: "
                          f"pip install -e '.[deploy]' (onnx, onnxruntime, onnxscript)") from None


def check_exportable(spec: Spec | None) -> None:
    """ConfigError unless `spec` is a static network (a supernet runs as net(x, arch): extract one first)."""
    if isinstance(spec, SupernetSpec):
        raise ConfigError(f"a supernet (SupernetSpec of space {spec.space!r}) cannot be exported: it runs as "
                          f"net(x, arch); extract a sub-network first with `posenas supernet extract RUN --arch "
                          f"ARCH --out DIR`, then export DIR")
    if spec is not None and not isinstance(spec, Spec):
        raise ConfigError(f"expected a Spec, got {type(spec).__name__}")


def network_stride(spec: Spec | None, model: nn.Module | None = None) -> int:
    """Input pixels per pixel of the deepest feature map: input sizes must be multiples of it."""
    for owner, name in ((spec, "network_stride"), (spec, "backbone_stride"), (model, "stride")):
        value = getattr(owner, name, None) if owner is not None else None
        if isinstance(value, int):
            return value
    raise ConfigError(f"cannot tell the network stride of {type(model).__name__} (spec {type(spec).__name__})")


def check_input_hw(input_hw, stride: int) -> tuple[int, int]:
    """(H, W) as ints; ConfigError unless both are positive multiples of `stride` (ops.check_input_size's rule)."""
    try:
        h, w = (int(v) for v in input_hw)
    except (TypeError, ValueError):
        raise ConfigError(f"input size must be (H, W), two positive integers; got {input_hw!r}") from None
    if h <= 0 or w <= 0 or h % stride or w % stride:
        up = lambda v: max(stride, -(-v // stride) * stride)  # noqa: E731
        raise ConfigError(f"input size {h}x{w} must be a multiple of the network stride {stride} in height and "
                          f"width (e.g. {up(h)}x{up(w)})")
    return h, w


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's progress prints, its torchvision-missing log lines and deprecation warnings."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning, UserWarning))
            yield
    finally:
        log.setLevel(level)


def export_onnx(model: nn.Module, path: str | Path, input_hw, *, spec: Spec | None = None, opset: int | None = None,
                metadata: dict | None = None, form: str = "fast") -> Path:
    """Write `model` (eval mode, fp32) as an ONNX file at `path`, atomically; returns the path.

    Batch dynamic; input "images" (B, 3, H, W), output "heatmaps" (B, K, H/s, W/s); weights in the file.
    `spec` defaults to `model.spec`. `metadata` (str -> str) adds metadata_props beside the posenas.* ones.
    `form` (one of FORMS): "fast" exports an eval-mode copy rewritten by `deploy.rewrites.fast_form` (the model
    itself is not changed); "plain" exports the model's own ops.
    ConfigError before exporting: a supernet, an input size not a multiple of the network stride, a
    metadata key that would replace a posenas.* entry, an unknown form, the deploy extra missing."""
    from posenas_core.runs.io import atomic_write_bytes

    spec = spec if spec is not None else getattr(model, "spec", None)
    check_exportable(spec)
    if spec is None:
        raise ConfigError(f"{type(model).__name__} has no spec (model.spec); pass spec= to export it")
    h, w = check_input_hw(input_hw, network_stride(spec, model))
    extra = {str(k): str(v) for k, v in (metadata or {}).items()}
    clash = sorted(set(extra) & set(RESERVED))
    if clash:
        raise ConfigError(f"metadata keys {clash} are written by the export itself; reserved: {list(RESERVED)}")
    if opset is not None and opset not in OPSETS:
        raise ConfigError(f"opset {opset!r} is not supported; allowed: {OPSETS.start}..{OPSETS.stop - 1} (the "
                          f"torch.export-based exporter writes no older operator set)")
    if form not in FORMS:
        raise ConfigError(f"export form {form!r} is unknown; allowed: {list(FORMS)}")
    for name in ("onnx", "onnxscript"):
        _require(name)
    fast = {}
    if form == "fast":
        from posenas_core.deploy.rewrites import fast_form, global_pools, nchwc_block

        model, block = copy.deepcopy(model).eval(), nchwc_block()
        fast_form(model, block)
        fast = {"posenas.nchwc_block": str(block)}
    was_training = model.training
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    x = torch.zeros(2, 3, h, w, device=device)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                model, (x,), None, dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},), opset_version=opset,
                external_data=False, verbose=False, optimize=True)
    finally:
        model.train(was_training)
    proto = program.model_proto
    if form == "fast":
        global_pools(proto)
    props = {"posenas.format": str(ONNX_FORMAT), "posenas.spec": spec.to_json(), "posenas.input_hw": f"{h}x{w}",
             "posenas.output_stride": str(spec.output_stride), "posenas.form": form, **fast, **extra}
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return atomic_write_bytes(Path(path), proto.SerializeToString())


def read_onnx_metadata(path: str | Path) -> dict:
    """The metadata_props of an ONNX file as a dict of strings; CheckpointError naming the file when it is
    missing or not an ONNX file."""
    onnx = _require("onnx")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:   # protobuf's DecodeError and onnx's own errors: the file is not an ONNX model
        raise CheckpointError(f"{path} is not an ONNX file ({type(err).__name__})") from None
    if proto.ir_version <= 0 or not proto.graph.node:
        raise CheckpointError(f"{path} is not an ONNX file (no IR version or no graph)")
    return {p.key: p.value for p in proto.metadata_props}


def onnx_spec(path: str | Path) -> Spec:
    """The spec a PoseNAS export stored in `path`; CheckpointError naming the file when it is not an ONNX file,
    is an ONNX file from another model (no posenas.spec), or was written by a newer format."""
    meta = read_onnx_metadata(path)
    if "posenas.spec" not in meta:
        raise CheckpointError(f"{path} is an ONNX file from another model: it has no posenas.spec metadata "
                              f"(files written by `posenas export` have it); pass the model's preset, spec, "
                              f"checkpoint or run instead")
    fmt = meta.get("posenas.format", "")
    if not fmt.isdigit() or int(fmt) > ONNX_FORMAT:
        raise CheckpointError(f"{path}: posenas.format {fmt!r} is not one this version reads (1..{ONNX_FORMAT})")
    try:
        return spec_from_json(meta["posenas.spec"])
    except SpecError as err:
        raise CheckpointError(f"{path}: its posenas.spec metadata is not a valid spec: {err}") from None


def ort_session(path: str | Path, threads: int = 1, optimization: str = "all"):
    """An onnxruntime.InferenceSession on the CPU: `threads` intra-op threads, 1 inter-op, graph
    optimization level `optimization` (one of OPTIMIZATION). CheckpointError when the file does not load."""
    ort = _require("onnxruntime")
    if optimization not in OPTIMIZATION:
        raise ConfigError(f"ONNX Runtime optimization {optimization!r} is unknown; allowed: {list(OPTIMIZATION)}")
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer; got {threads!r}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file not found: {path}")
    level = ort.GraphOptimizationLevel
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = {"disable": level.ORT_DISABLE_ALL, "basic": level.ORT_ENABLE_BASIC,
                                     "extended": level.ORT_ENABLE_EXTENDED, "all": level.ORT_ENABLE_ALL}[optimization]
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as err:   # onnxruntime's InvalidProtobuf / Fail: one line naming the file
        raise CheckpointError(f"ONNX Runtime cannot load {path}: {str(err).splitlines()[0][:200]}") from None


@torch.no_grad()
def parity_model(model: nn.Module, seed: int = 0, input_hw=(128, 96), images: int = 16) -> nn.Module:
    """`model` (changed in place, eval mode) with random BN affines, BN statistics measured on a random batch
    through those affines, and its last conv drawn at random and scaled to a heatmap peak of 1 on that batch (a
    trained network's scale, where an absolute tolerance means what it does on real heatmaps), all from a
    generator seeded with `seed`: far from constant, so that a parity check between runtimes on it means something (a
    freshly initialised net's near-constant output proves nothing). Statistics drawn at random instead grow
    the activations layer after layer: evopose2d-l's heatmaps reached 1e5, where float rounding alone exceeds
    any absolute tolerance. `input_hw`: the size of the `images` random images (a multiple of the network stride)."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None]
    momenta = [m.momentum for m in bns]
    with torch.no_grad():
        for m in bns:
            n = m.num_features
            if m.affine:
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            m.reset_running_stats()
            m.momentum = None                 # one train-mode pass: running stats = that batch's statistics
        model.train()
        x = torch.randn(images, 3, *input_hw, generator=g)
        model(x)
        for m, mom in zip(bns, momenta):
            m.momentum = mom
            # a channel (near) constant on this batch (a dead ReLU) would divide by ~sqrt(eps) and amplify any
            # difference 300x on other inputs: floor each variance at a tenth of its layer's mean
            m.running_var.clamp_(min=0.1 * float(m.running_var.mean()) + 1e-3)
        final = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
        final.weight.copy_(torch.randn(final.weight.shape, generator=g) / final.weight[0].numel() ** 0.5)
        model.eval()
        peak = float(model(x).abs().max())
        if peak > 0:                          # the heatmaps' peak |value| 1, as a trained network's
            final.weight.div_(peak)
            if final.bias is not None:
                final.bias.div_(peak)
    return model


def onnx_parity(model: nn.Module, path: str | Path, input_hw, *, batch: int = 2, seed: int = 0) -> float:
    """Max abs difference between ONNX Runtime on `path` (CPU) and `model` in eval mode (fp32, on its device) on
    one random batch (torch.Generator seeded `seed`). CheckpointError when the output shapes differ."""
    h, w = (int(v) for v in input_hw)
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))
    session = ort_session(path)
    got = session.run([OUTPUT], {INPUT: x.numpy()})[0]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(iter(model.parameters()), torch.empty(0)).device
            want = model(x.to(device)).float().cpu().numpy()
    finally:
        model.train(was_training)
    if got.shape != want.shape:
        raise CheckpointError(f"{path} outputs {tuple(got.shape)} but the model outputs {tuple(want.shape)} for "
                              f"input {batch}x3x{h}x{w}: the file comes from another model or input size")
    return float(abs(got - want).max()) if got.size else 0.0
