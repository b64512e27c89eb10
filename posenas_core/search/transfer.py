"""Shape-aware weight transfer from an EvoPose2D parent to a mutated child (EvoPose2D paper, Sec. IV-B).

    stats = transfer_weights(parent, child)                       # in place, both EvoPoseNet
    state, stats = transfer_state(parent_spec, parent_state, child_spec, child_state)   # pure, state dicts

Matching is by structural name, i.e. the state-dict key (`stem.*`, `blocks.{m}.{b}.{layer}.*`,
`head.{i}.*`, `final.*`; see `posenas_core.models.evopose`), as the public code matches Keras layer names
(`nets/evopose2d.py:transfer_params`, `utils.py:partial_weight_transfer`). For every child tensor:

- same name and shape in the parent: copied ("copied");
- same name, other shape ("partial"):
  * 4-D kernels (conv (out, in/groups, kh, kw) and transposed conv (in, out, kh, kw) alike): the leading
    `min` channels of dims 0 and 1 are taken; extra child channels keep the child's fresh init (public
    code). A smaller child kernel takes the centre crop `[p:p + kc]`, p = (kp - kc) // 2 (5 -> 3); a larger
    one gets the parent kernel in its centre, p = (kc - kp) // 2 (3 -> 5), and a ZERO border on the
    transferred channels. Zeros, not the public code's random values: with the symmetric k // 2 padding a
    zero-bordered 5x5 kernel computes exactly the 3x3 function (same centre at stride 1 and 2), so the
    child starts from the parent's function; the border still learns (its gradient does not depend on its
    value). The child's random init there would add noise of the size of a fresh layer.
  * 1-D vectors (BN weight / bias / running_mean / running_var, SE and final biases): `[:n]`, or padded
    with the MEAN of the parent vector (the public code and the paper).
  * 0-D (`num_batches_tracked`): copied.
- a block the parent's module lacks (the child has more blocks in module m, b >= parent's blocks):
  taken from the parent's LAST BLOCK OF THE SAME MODULE, `blocks.{m}.{B_p - 1}`, copied or sliced / padded
  as above ("from_last_block"). This is the issue's rule (the paper says "the parent's last block"). The
  public code instead takes the name-sorted last parent layer with the same suffix, i.e. the network's
  last block (`block7a_*` for the ancestor), whatever the module (reference/evopose2d.md, Sec. 4): its
  kernel size, channels and position in the network are unrelated to the new block's. A new block b >= 1
  has in == out channels; so has the parent's last block unless the parent's module has one block, whose
  block 0 maps the previous module's channels to this module's: its input dims are sliced / padded then.
- nothing to take from: left at the child's init ("random").

`new_blocks="identity"` (an option; default "copy" as above) goes one step further for such new blocks:
after the copy, the weight and bias of its projection BN are zeroed, so its residual branch outputs 0 and
the block starts as the identity (a new block b >= 1 always has a skip: stride 1, in == out). A
blocks+1 mutation then preserves the parent's function exactly, as a width change nearly does, instead
of starting from a disturbed one (measured: a copied block put a child's val loss above the all-zeros
prediction; benchmarks/evopose_transfer_ablation.py). The branch still learns: the BN weight's gradient
does not vanish (the zero-init-residual trick of ResNet training).

Channel changes ripple: a module's output width is the next module's block-0 input (and expanded width,
6 x input) and, for module 7, the head's input; all of these are just differently shaped tensors of the
same name and are sliced / padded by the rules above. Module 1 has no expand conv (expansion 1) in both
nets, so its keys never mismatch. Stem and head keep their widths (fixed by the spec) and are copied.

`kernel_transfer=False` reproduces the public code's gap: a kernel whose channels match but whose size
differs (the depthwise kernels after a kernel-only mutation) is left at the child's random init, and a
kernel padded together with a channel change gets the child's random border. `kernel_transfer=True`
(default) centre-crops / zero-pads those kernels too.

Stats count state-dict tensors (buffers included): {"copied", "partial", "from_last_block", "random"}.

    report = transfer_report(parent_spec, child_spec)            # what the transfer does, per layer (shapes only)

`transfer_report` says, for every layer of the child (a conv, transposed conv or BN: the state-dict keys
up to their last dot), what the rules above do to it, from the two specs alone (shapes on the "meta"
device, no weights): "copied" (same shape), "cropped" (the child takes a slice / centre crop of the
parent's tensor), "padded" (the parent's tensor fills the leading channels / the centre of a larger
kernel), "cropped+padded" (both, in different dims: e.g. fewer channels and a larger kernel), "new" (a
block the parent's module lacks: taken from its last block), "init" (left at the child's fresh init);
and the parent layers the child drops ("dropped": the blocks of a blocks-1 mutation).
"""

from __future__ import annotations

import re
from typing import Mapping

import torch
from torch import nn

from posenas_core.errors import CheckpointError, SpecError
from posenas_core.spaces.evopose import EvoPoseSpec

__all__ = ["transfer_weights", "transfer_state", "source_key", "transfer_report", "TRANSFER_ACTIONS"]

_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")


def _check_specs(parent_spec, child_spec) -> None:
    for what, s in (("parent", parent_spec), ("child", child_spec)):
        if not isinstance(s, EvoPoseSpec):
            raise SpecError(f"weight transfer: the {what} must be an EvoPose2D network (EvoPoseSpec / EvoPoseNet), "
                            f"got {type(s).__name__}")
    for name, get in (("num_joints", lambda s: s.num_joints), ("head_blocks", lambda s: s.head_blocks),
                      ("head channels", lambda s: s.channels(s.head_channels)), ("head_skips", lambda s: s.head_skips)):
        if get(parent_spec) != get(child_spec):
            raise SpecError(f"weight transfer: parent and child differ in {name} ({get(parent_spec)} vs "
                            f"{get(child_spec)}); only the backbone genotype may differ")


def _blocks_per_module(spec: EvoPoseSpec) -> list[int]:
    return [p["blocks"] for p in spec.module_plan()]


def source_key(key: str, parent_blocks: list[int]) -> tuple[str, bool]:
    """(parent key to take child `key` from, whether it comes from the module's last block).

    `parent_blocks[m]` is the number of blocks of the parent's module m (0-based)."""
    m = _BLOCK_RE.match(key)
    if m is None:
        return key, False
    mod, blk, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    if mod >= len(parent_blocks) or parent_blocks[mod] < 1:
        return key, False
    if blk < parent_blocks[mod]:
        return key, False
    return f"blocks.{mod}.{parent_blocks[mod] - 1}.{rest}", True


def _fit(src: torch.Tensor, init: torch.Tensor, kernel_transfer: bool) -> tuple[torch.Tensor, str]:
    """`src` (parent) fitted to the shape of `init` (child's fresh tensor); kind 'copied' | 'partial' | 'random'."""
    src = src.detach().to(device=init.device)
    if tuple(src.shape) == tuple(init.shape):
        return src.to(init.dtype).clone(), "copied"
    if src.ndim != init.ndim:
        return init.clone(), "random"
    if src.ndim == 1:                                           # BN vectors, biases: slice or pad with the mean
        n, np_ = init.shape[0], src.shape[0]
        if n <= np_:
            return src[:n].to(init.dtype).clone(), "partial"
        fill = src.double().mean().to(init.dtype) if np_ else torch.zeros((), dtype=init.dtype)
        pad = fill.expand(n - np_).to(init.device)
        return torch.cat([src.to(init.dtype), pad]), "partial"
    if src.ndim == 4:
        same_channels = src.shape[:2] == init.shape[:2]
        if same_channels and not kernel_transfer:               # the public code's gap: left random
            return init.clone(), "random"
        out = init.clone()
        c0, c1 = min(src.shape[0], init.shape[0]), min(src.shape[1], init.shape[1])
        s_idx, d_idx = [slice(0, c0), slice(0, c1)], [slice(0, c0), slice(0, c1)]
        for d in (2, 3):                                        # spatial: centre crop / centre pad
            kp, kc = src.shape[d], init.shape[d]
            if kc <= kp:
                p = (kp - kc) // 2
                s_idx.append(slice(p, p + kc))
                d_idx.append(slice(0, kc))
            else:
                p = (kc - kp) // 2
                s_idx.append(slice(0, kp))
                d_idx.append(slice(p, p + kp))
        if kernel_transfer and any(init.shape[d] > src.shape[d] for d in (2, 3)):
            out[:c0, :c1] = 0                                   # zero border on the transferred channels
        out[tuple(d_idx)] = src[tuple(s_idx)].to(init.dtype)
        return out, "partial"
    # any other rank (not in EvoPose): leading slice of every dim, the rest keeps the init
    out = init.clone()
    idx = tuple(slice(0, min(a, b)) for a, b in zip(src.shape, init.shape))
    out[idx] = src[idx].to(init.dtype)
    return out, "partial"


def _reference_shapes(spec: EvoPoseSpec) -> dict:
    from posenas_core.models.evopose import build_evopose

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in build_evopose(spec).state_dict().items()}


def _check_state(spec: EvoPoseSpec, state: Mapping[str, torch.Tensor], what: str) -> None:
    if not isinstance(state, Mapping):
        raise CheckpointError(f"weight transfer: the {what} state must be a state dict (name -> tensor), "
                              f"got {type(state).__name__}")
    ref = _reference_shapes(spec)
    for k, shape in ref.items():
        if k not in state:
            raise CheckpointError(f"weight transfer: the {what} state lacks {k!r} of the network of its spec "
                                  f"{spec.to_short()}")
        if not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != shape:
            got = tuple(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__
            raise CheckpointError(f"weight transfer: the {what} state has {k!r} of shape {got}, but its spec "
                                  f"{spec.to_short()} builds {shape}")
    extra = [k for k in state if k not in ref]
    if extra:
        raise CheckpointError(f"weight transfer: the {what} state has {len(extra)} entries its spec "
                              f"{spec.to_short()} does not build, first {extra[0]!r}")


NEW_BLOCKS = ("copy", "identity")


def transfer_state(parent_spec: EvoPoseSpec, parent_state: Mapping[str, torch.Tensor], child_spec: EvoPoseSpec,
                   child_state: Mapping[str, torch.Tensor], *, kernel_transfer: bool = True,
                   new_blocks: str = "copy") -> tuple[dict, dict]:
    """The child's state dict with the parent's weights transferred (see the module doc), and the stats.

    `child_state` is the child's freshly initialised state: it gives the shapes and the values of whatever
    is not transferred. Neither input is modified. SpecError if the specs are not EvoPoseSpecs or differ in
    num_joints / head; CheckpointError if a state does not fit its spec."""
    if new_blocks not in NEW_BLOCKS:
        raise SpecError(f"weight transfer: new_blocks = {new_blocks!r} is not allowed; choose one of {list(NEW_BLOCKS)}")
    _check_specs(parent_spec, child_spec)
    _check_state(parent_spec, parent_state, "parent")
    _check_state(child_spec, child_state, "child")
    parent_blocks = _blocks_per_module(parent_spec)
    stats = {"copied": 0, "partial": 0, "from_last_block": 0, "random": 0}
    out = {}
    with torch.no_grad():
        for key, init in child_state.items():
            src_key, from_last = source_key(key, parent_blocks)
            if src_key not in parent_state:
                out[key] = init.clone()
                stats["random"] += 1
                continue
            value, kind = _fit(parent_state[src_key], init, kernel_transfer)
            if from_last and new_blocks == "identity" and key.endswith((".project.bn.weight", ".project.bn.bias")):
                value = torch.zeros_like(value)                  # the new block's branch starts at 0
            out[key] = value
            stats["from_last_block" if from_last and kind != "random" else kind] += 1
    return out, stats


def transfer_weights(parent: nn.Module, child: nn.Module, *, kernel_transfer: bool = True,
                     new_blocks: str = "copy") -> dict:
    """Copy `parent`'s weights into `child` in place (both EvoPoseNet, matched via `.spec`); returns the
    stats {"copied", "partial", "from_last_block", "random"} (numbers of state-dict tensors)."""
    from posenas_core.models.evopose import EvoPoseNet

    for what, net in (("parent", parent), ("child", child)):
        if not isinstance(net, EvoPoseNet):
            raise SpecError(f"transfer_weights: the {what} must be an EvoPoseNet (build_evopose), "
                            f"got {type(net).__name__}")
    state, stats = transfer_state(parent.spec, parent.state_dict(), child.spec, child.state_dict(),
                                  kernel_transfer=kernel_transfer, new_blocks=new_blocks)
    child.load_state_dict(state)
    return stats


# ---------------------------------------------------------------------------------------------
# What a transfer does, per layer (for teaching figures; the transfer itself does not use this)

TRANSFER_ACTIONS = ("copied", "cropped", "padded", "cropped+padded", "new", "init", "dropped")


def _fit_kind(parent_shape: tuple, child_shape: tuple, kernel_transfer: bool) -> str:
    """`_fit`'s outcome from the shapes alone: 'copied' | 'cropped' | 'padded' | 'cropped+padded' | 'init'."""
    if tuple(parent_shape) == tuple(child_shape):
        return "copied"
    if len(parent_shape) != len(child_shape):
        return "init"
    if len(child_shape) == 4 and tuple(parent_shape[:2]) == tuple(child_shape[:2]) and not kernel_transfer:
        return "init"                                           # the public code's gap (see `_fit`)
    smaller = any(c < p for p, c in zip(parent_shape, child_shape))
    larger = any(c > p for p, c in zip(parent_shape, child_shape))
    return "cropped+padded" if smaller and larger else "cropped" if smaller else "padded"


def _layer_of(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else key


def transfer_report(parent_spec: EvoPoseSpec, child_spec: EvoPoseSpec, *, kernel_transfer: bool = True,
                    new_blocks: str = "copy") -> list[dict]:
    """What `transfer_state` does to each layer of the child, from the specs alone (see the module doc).

    One dict per layer, the child's layers in state-dict order, then the parent's dropped layers:
    {"layer": "blocks.2.0.dw.conv", "source": the parent layer it is taken from (None for "init" /
    "dropped"), "parent_shape": the source's weight shape (a tuple; None when there is no source),
    "child_shape": the child's weight shape (None for "dropped"), "action": one of `TRANSFER_ACTIONS`,
    "tensors": {"copied", "partial", "from_last_block", "random"}: the layer's state-dict tensors by the
    kind `transfer_state` counts them as (their sum over layers is its stats)}. The shape shown is that of
    the layer's "weight" tensor (a BN's weight, bias and running statistics share it). A "new" layer is
    one of a block the parent's module lacks, whatever its fit (with new_blocks="identity" its projection
    BN is then zeroed)."""
    if new_blocks not in NEW_BLOCKS:
        raise SpecError(f"weight transfer: new_blocks = {new_blocks!r} is not allowed; choose one of {list(NEW_BLOCKS)}")
    _check_specs(parent_spec, child_spec)
    pshapes, cshapes = _reference_shapes(parent_spec), _reference_shapes(child_spec)
    parent_blocks = _blocks_per_module(parent_spec)
    layers: dict[str, dict] = {}
    used_sources: set[str] = set()
    for key, cshape in cshapes.items():
        src_key, from_last = source_key(key, parent_blocks)
        if src_key in pshapes:
            kind = _fit_kind(pshapes[src_key], cshape, kernel_transfer)
            counted = "random" if kind == "init" else "from_last_block" if from_last else \
                "copied" if kind == "copied" else "partial"
            used_sources.add(_layer_of(src_key))
        else:
            kind, counted = "init", "random"
        name = _layer_of(key)
        row = layers.setdefault(name, {"layer": name, "source": None, "parent_shape": None, "child_shape": None,
                                       "action": None, "tensors": {"copied": 0, "partial": 0, "from_last_block": 0,
                                                                   "random": 0},
                                       "_kinds": {}, "_new": False})
        row["tensors"][counted] += 1
        row["_kinds"][key.rsplit(".", 1)[-1]] = (kind, src_key if src_key in pshapes else None, cshape)
        row["_new"] = row["_new"] or (from_last and kind != "init")
    out = []
    for name, row in layers.items():
        kinds = row.pop("_kinds")
        new = row.pop("_new")
        kind, src, cshape = kinds.get("weight", next(iter(kinds.values())))
        row["child_shape"] = tuple(cshape)
        if src is not None and kind != "init":
            row["source"] = _layer_of(src)
            row["parent_shape"] = tuple(pshapes[src])
        elif src is not None:
            row["parent_shape"] = tuple(pshapes[src])
        row["action"] = "new" if new else kind
        out.append(row)
    for name in dict.fromkeys(_layer_of(k) for k in pshapes):     # parent layers the child has no use for
        if name in layers or name in used_sources:
            continue
        shape = pshapes.get(f"{name}.weight", next(v for k, v in pshapes.items() if _layer_of(k) == name))
        out.append({"layer": name, "source": None, "parent_shape": tuple(shape), "child_shape": None,
                    "action": "dropped", "tensors": {"copied": 0, "partial": 0, "from_last_block": 0, "random": 0}})
    return out
