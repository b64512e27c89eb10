"""Weight transfer parent -> child (posenas_core.search.transfer): exact values against hand-computed slices."""

import numpy as np
import pytest
import torch
from torch import nn

from posenas_core.errors import CheckpointError, SpecError
from posenas_core.models.evopose import build_evopose
from posenas_core.search.transfer import TRANSFER_ACTIONS, source_key, transfer_report, transfer_state, transfer_weights
from posenas_core.spaces.evopose import EvoPoseSpec, mutate

# A mid-sized parent (fast to build): channel redraws can shrink or grow it, blocks can be added or removed.
PARENT = ((3, 1, 1, 1), (5, 2, 2, 2), (3, 2, 3, 2), (5, 2, 5, 2), (3, 2, 7, 1), (5, 2, 12, 2), (3, 2, 20, 1))
X_HW = (64, 64)


def _with(g, module, **genes):
    """Genotype `g` with the genes of 0-based `module` replaced (kernel / blocks / ch8 / stride)."""
    k, b, c, s = g[module]
    row = (genes.get("kernel", k), genes.get("blocks", b), genes.get("ch8", c), genes.get("stride", s))
    return g[:module] + (row,) + g[module + 1:]


def _net(genotype, seed):
    torch.manual_seed(seed)
    return build_evopose(EvoPoseSpec(genotype=genotype))


def _trained_like(genotype, seed=0):
    """A parent whose 1-D tensors are not at their init (1 / 0) so that slices and means are distinguishable."""
    net = _net(genotype, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return net.eval()


def _init_state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def _centred_corr(a, b):
    """Correlation of the input-dependent part of two output batches (each centred over the batch)."""
    a = a - a.mean(0, keepdim=True)
    b = b - b.mean(0, keepdim=True)
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


@pytest.fixture(scope="module")
def parent():
    torch.set_num_threads(1)
    return _trained_like(PARENT)


@pytest.fixture(scope="module")
def x():
    return torch.randn(4, 3, *X_HW, generator=torch.Generator().manual_seed(5))


def test_identity_transfer_reproduces_outputs(parent, x):
    child = _net(PARENT, seed=123)
    stats = transfer_weights(parent, child)
    n = len(child.state_dict())
    assert stats == {"copied": n, "partial": 0, "from_last_block": 0, "random": 0}
    child.eval()
    with torch.no_grad():
        assert torch.equal(child(x), parent(x))
    for k, v in parent.state_dict().items():
        assert torch.equal(child.state_dict()[k], v), k


def test_channel_shrink_slices_leading_channels_everywhere(parent):
    g = _with(PARENT, 3, ch8=3)                      # module 4: 40 -> 24 channels (ripples into module 5)
    child = _net(g, seed=1)
    stats = transfer_weights(parent, child)
    ps, cs = parent.state_dict(), child.state_dict()
    assert stats["partial"] > 0 and stats["random"] == 0 and stats["from_last_block"] == 0
    for k, v in cs.items():                           # every tensor is the leading slice of the parent's
        src = ps[k]
        assert torch.equal(v, src[tuple(slice(0, s) for s in v.shape)]), k
    # spot checks of the ripple: module 4 output, module 5 block-0 input and expanded width (6 x 24 = 144)
    assert cs["blocks.3.1.project.conv.weight"].shape == (24, 144, 1, 1)
    assert cs["blocks.4.0.expand.conv.weight"].shape == (144, 24, 1, 1)                # parent (240, 40)
    assert torch.equal(cs["blocks.4.0.expand.conv.weight"], ps["blocks.4.0.expand.conv.weight"][:144, :24])
    assert torch.equal(cs["blocks.4.0.se.reduce.weight"], ps["blocks.4.0.se.reduce.weight"][:6, :144])
    assert torch.equal(cs["blocks.3.0.project.bn.running_var"], ps["blocks.3.0.project.bn.running_var"][:24])


def test_channel_growth_pads_kernels_with_init_and_vectors_with_parent_mean(parent):
    g = _with(PARENT, 6, ch8=26)                      # module 7: 160 -> 208 channels (ripples into the head)
    child = _net(g, seed=2)
    init = _init_state(child)
    transfer_weights(parent, child)
    ps, cs = parent.state_dict(), child.state_dict()
    w, wp = cs["blocks.6.0.project.conv.weight"], ps["blocks.6.0.project.conv.weight"]   # (208, 576), (160, 576)
    assert torch.equal(w[:160], wp) and torch.equal(w[160:], init["blocks.6.0.project.conv.weight"][160:])
    for name in ("weight", "bias", "running_mean", "running_var"):
        v, vp = cs[f"blocks.6.0.project.bn.{name}"], ps[f"blocks.6.0.project.bn.{name}"]
        assert torch.equal(v[:160], vp)
        assert torch.allclose(v[160:], vp.mean().expand(48), atol=1e-7), name
        assert not torch.allclose(v[160:], init[f"blocks.6.0.project.bn.{name}"][160:])
    assert int(cs["blocks.6.0.project.bn.num_batches_tracked"]) == 7
    # block 1 (in = out = 208, expanded 1248) and the SE biases are padded the same way
    b, bp = cs["blocks.6.1.se.expand.bias"], ps["blocks.6.1.se.expand.bias"]                # 1248 vs 960
    assert torch.equal(b[:960], bp) and torch.allclose(b[960:], bp.mean().expand(288), atol=1e-7)
    # the head's input grows: transposed-conv weight (in, out, 3, 3)
    h, hp = cs["head.0.deconv.weight"], ps["head.0.deconv.weight"]
    assert h.shape == (208, 128, 3, 3) and torch.equal(h[:160], hp)
    assert torch.equal(h[160:], init["head.0.deconv.weight"][160:])
    for k in ("stem.conv.weight", "head.1.deconv.weight", "final.weight", "final.bias"):
        assert torch.equal(cs[k], ps[k]), k


def test_kernel_crop_and_pad_and_the_public_gap(parent):
    # 5 -> 3 in module 4 (0-based 3): centre crop of every depthwise kernel
    g = _with(PARENT, 3, kernel=3)
    child = _net(g, seed=3)
    init = _init_state(child)
    stats = transfer_weights(parent, child)
    assert stats["partial"] == 2 and stats["random"] == 0
    for b in range(2):
        k = f"blocks.3.{b}.dw.conv.weight"
        assert torch.equal(child.state_dict()[k], parent.state_dict()[k][:, :, 1:4, 1:4])
    # kernel_transfer=False: the public code's gap, the depthwise kernels stay at the child's init
    child = _net(g, seed=3)
    stats = transfer_weights(parent, child, kernel_transfer=False)
    assert stats["random"] == 2 and stats["partial"] == 0
    for b in range(2):
        k = f"blocks.3.{b}.dw.conv.weight"
        assert torch.equal(child.state_dict()[k], init[k])
        assert torch.equal(child.state_dict()[f"blocks.3.{b}.dw.bn.weight"], parent.state_dict()[f"blocks.3.{b}.dw.bn.weight"])

    # 3 -> 5 in module 5 (0-based 4): parent kernel in the centre, zero border -> same function
    g = _with(PARENT, 4, kernel=5)
    child = _net(g, seed=4)
    transfer_weights(parent, child)
    for b in range(2):
        k = f"blocks.4.{b}.dw.conv.weight"
        w = child.state_dict()[k]
        assert w.shape[-2:] == (5, 5)
        assert torch.equal(w[:, :, 1:4, 1:4], parent.state_dict()[k])
        border = w.clone()
        border[:, :, 1:4, 1:4] = 0
        assert torch.count_nonzero(border) == 0
    child.eval()
    xx = torch.randn(2, 3, *X_HW, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert torch.allclose(child(xx), parent(xx), atol=1e-5, rtol=1e-4)


def test_kernel_and_channel_change_together_border_rule(parent):
    """Two genes at once (not a single mutation): 3 -> 5 and 56 -> 80 channels in module 5 (0-based 4)."""
    g = _with(PARENT, 4, kernel=5, ch8=10)
    cspec = EvoPoseSpec(genotype=g)
    torch.manual_seed(6)
    init = _init_state(build_evopose(cspec))
    k = "blocks.4.1.dw.conv.weight"                                                         # (480,1,5,5) vs (336,1,3,3)
    for kt in (True, False):
        state, _ = transfer_state(parent.spec, parent.state_dict(), cspec, init, kernel_transfer=kt)
        w, wp = state[k], parent.state_dict()[k]
        assert torch.equal(w[:336, :, 1:4, 1:4], wp)
        assert torch.equal(w[336:], init[k][336:])                                          # new channels: init
        ring = torch.ones(5, 5, dtype=torch.bool)
        ring[1:4, 1:4] = False
        expected = torch.zeros_like(w[:336][..., ring]) if kt else init[k][:336][..., ring]  # public: random border
        assert torch.equal(w[:336][..., ring], expected)


def test_new_block_from_last_block_of_same_module(parent):
    g = _with(PARENT, 2, blocks=3)                   # module 3 (0-based 2): 2 -> 3 blocks, block 2 is new
    child = _net(g, seed=7)
    stats = transfer_weights(parent, child)
    ps, cs = parent.state_dict(), child.state_dict()
    new = [k for k in cs if k.startswith("blocks.2.2.")]
    assert stats["from_last_block"] == len(new) == 22 and stats["partial"] == 0 and stats["random"] == 0
    for k in new:
        assert torch.equal(cs[k], ps[k.replace("blocks.2.2.", "blocks.2.1.")]), k
    # not the network's last block (the public code's rule): shapes differ there anyway
    assert cs["blocks.2.2.expand.conv.weight"].shape != ps["blocks.6.1.expand.conv.weight"].shape


def test_new_block_when_parent_module_has_one_block_slices_block0(parent):
    # module 1 (0-based 0) has 1 block in the parent: stem 32 -> 8 channels, expansion 1
    g = _with(PARENT, 0, blocks=2)
    child = _net(g, seed=8)
    init = _init_state(child)
    transfer_weights(parent, child)
    ps, cs = parent.state_dict(), child.state_dict()
    # parent block 0: dw (32,1,3,3), se.reduce (8,32), project (8,32); child block 1: in = out = 8
    assert torch.equal(cs["blocks.0.1.dw.conv.weight"], ps["blocks.0.0.dw.conv.weight"][:8])
    assert torch.equal(cs["blocks.0.1.se.reduce.weight"], ps["blocks.0.0.se.reduce.weight"][:2, :8])
    assert torch.equal(cs["blocks.0.1.project.conv.weight"], ps["blocks.0.0.project.conv.weight"][:, :8])
    assert torch.equal(cs["blocks.0.1.dw.bn.running_mean"], ps["blocks.0.0.dw.bn.running_mean"][:8])
    assert "blocks.0.1.expand.conv.weight" not in cs                     # module 1 has no expand conv

    # a module with 1 block and expansion 6: parent module 4 reduced to 1 block, child with 2
    p1 = _trained_like(_with(PARENT, 3, blocks=1), seed=11)
    child = _net(_with(PARENT, 3, blocks=2), seed=12)
    init = _init_state(child)
    stats = transfer_weights(p1, child)
    ps, cs = p1.state_dict(), child.state_dict()
    assert stats["from_last_block"] == 22
    # parent block 0: in 24, expanded 144, out 40; child block 1: in 40, expanded 240, out 40
    e, ep = cs["blocks.3.1.expand.conv.weight"], ps["blocks.3.0.expand.conv.weight"]          # (240,40) vs (144,24)
    assert torch.equal(e[:144, :24], ep) and torch.equal(e[144:], init["blocks.3.1.expand.conv.weight"][144:])
    assert torch.equal(e[:144, 24:], init["blocks.3.1.expand.conv.weight"][:144, 24:])
    v, vp = cs["blocks.3.1.expand.bn.weight"], ps["blocks.3.0.expand.bn.weight"]
    assert torch.equal(v[:144], vp) and torch.allclose(v[144:], vp.mean().expand(96), atol=1e-7)
    assert torch.equal(cs["blocks.3.1.project.conv.weight"][:, :144], ps["blocks.3.0.project.conv.weight"])
    assert torch.equal(cs["blocks.3.1.se.reduce.weight"][:6, :144], ps["blocks.3.0.se.reduce.weight"])


def test_fifty_random_mutations_stay_close_to_parent(parent, x):
    rng = np.random.default_rng(2024)
    with torch.no_grad():
        yp = parent(x)
    seen, close, kernel_pairs = {PARENT}, [], []
    for i in range(50):
        g = mutate(PARENT, rng, seen)
        seen.add(g)
        child = _net(g, seed=1000 + i).eval()
        with torch.no_grad():
            y_fresh = child(x)
        init = _init_state(child)
        stats = transfer_weights(parent, child)
        assert sum(stats.values()) == len(init) and stats["random"] == 0
        with torch.no_grad():
            y = child(x)
        assert torch.isfinite(y).all()
        if y.shape != yp.shape:
            # a stride mutation changes the output grid: every tensor keeps its shape and is copied
            assert stats["copied"] == len(init)
            continue
        c, c0 = _centred_corr(yp, y), _centred_corr(yp, y_fresh)
        # a fresh child's |corr| is < 0.03 here; a transferred one is far above it, except after a drastic
        # channel cut (e.g. 96 -> 8 channels in module 6 keeps ~0.04): every child beats the fresh one
        assert c > abs(c0), (g, c, c0)
        close.append(c)
        diff = [m for m in range(7) if g[m][0] != PARENT[m][0]]
        if diff:                                    # kernel-only mutation: compare with the public code's gap
            child.load_state_dict(init)
            transfer_weights(parent, child, kernel_transfer=False)
            with torch.no_grad():
                kernel_pairs.append((c, _centred_corr(yp, child(x))))
    assert len(close) >= 40 and float(np.median(close)) > 0.6
    assert np.mean(np.asarray(close) > 0.2) >= 0.9
    assert kernel_pairs and all(a > b for a, b in kernel_pairs)


def test_source_key_mapping():
    blocks = [1, 2, 2, 2, 2, 2, 2]
    assert source_key("blocks.1.1.dw.conv.weight", blocks) == ("blocks.1.1.dw.conv.weight", False)
    assert source_key("blocks.1.3.dw.conv.weight", blocks) == ("blocks.1.1.dw.conv.weight", True)
    assert source_key("blocks.0.1.se.reduce.bias", blocks) == ("blocks.0.0.se.reduce.bias", True)
    assert source_key("head.0.bn.weight", blocks) == ("head.0.bn.weight", False)


def test_bad_inputs_raise_clear_errors(parent):
    with pytest.raises(SpecError, match="child must be an EvoPoseNet"):
        transfer_weights(parent, nn.Conv2d(3, 3, 1))
    with pytest.raises(SpecError, match="num_joints"):
        torch.manual_seed(0)
        transfer_weights(parent, build_evopose(EvoPoseSpec(genotype=PARENT, num_joints=14)))
    with pytest.raises(SpecError, match="head channels"):
        transfer_weights(parent, build_evopose(EvoPoseSpec(genotype=PARENT, head_channels=64)))
    other = EvoPoseSpec(genotype=_with(PARENT, 1, ch8=3))
    with pytest.raises(CheckpointError, match="parent state has 'blocks.1.0.project.conv.weight' of shape"):
        transfer_state(other, parent.state_dict(), parent.spec, parent.state_dict())
    state = dict(parent.state_dict())
    del state["final.bias"]
    with pytest.raises(CheckpointError, match="child state lacks 'final.bias'"):
        transfer_state(parent.spec, parent.state_dict(), parent.spec, state)


def test_identity_new_blocks_preserve_the_parents_function(parent, x):
    """blocks+1 with new_blocks='identity': copied from the module's last block, projection BN zeroed, so the
    child computes exactly the parent's function in eval mode; with 'copy' it does not."""
    g = _with(PARENT, 2, blocks=3)                              # module 3: 2 -> 3 blocks
    with torch.no_grad():
        yp = parent(x)
    child = _net(g, seed=7)
    init = _init_state(child)
    stats = transfer_weights(parent, child, new_blocks="identity")
    assert stats["from_last_block"] > 0
    sd = child.state_dict()
    assert torch.count_nonzero(sd["blocks.2.2.project.bn.weight"]) == 0
    assert torch.count_nonzero(sd["blocks.2.2.project.bn.bias"]) == 0
    assert torch.equal(sd["blocks.2.2.dw.conv.weight"], parent.state_dict()["blocks.2.1.dw.conv.weight"])
    parent.eval(), child.eval()
    with torch.no_grad():
        assert torch.allclose(child(x), yp, atol=1e-6)
        h = parent.blocks[1](parent.blocks[0](parent.stem(x)))         # the input of module 3 (same in both)
        f_parent = parent.blocks[2](h)
        assert torch.allclose(child.blocks[2](h), f_parent, atol=1e-5)
        child.load_state_dict(init)
        transfer_weights(parent, child, new_blocks="copy")         # negative control: the copied block acts
        rel = float((child.blocks[2](h) - f_parent).norm() / f_parent.norm())
        assert rel > 0.05, rel
    with pytest.raises(SpecError, match=r"new_blocks = 'zero' is not allowed; choose one of \['copy', 'identity'\]"):
        transfer_weights(parent, child, new_blocks="zero")


# ---------------------------------------------------------------------------------------------
# transfer_report: what the transfer does, per layer, from the specs alone


def _report(child_genotype, **kw):
    rows = transfer_report(EvoPoseSpec(genotype=PARENT), EvoPoseSpec(genotype=child_genotype), **kw)
    return rows, {r["layer"]: r for r in rows}


def _changed(rows):
    return {r["layer"]: r["action"] for r in rows if r["action"] != "copied"}


def test_report_kernel_3_to_5_pads_and_5_to_3_crops_the_depthwise_kernels():
    rows, by = _report(_with(PARENT, 0, kernel=5))                  # module 1: k3 -> k5, one block
    assert _changed(rows) == {"blocks.0.0.dw.conv": "padded"}
    r = by["blocks.0.0.dw.conv"]
    assert (r["source"], r["parent_shape"], r["child_shape"]) == ("blocks.0.0.dw.conv", (32, 1, 3, 3), (32, 1, 5, 5))
    assert r["tensors"] == {"copied": 0, "partial": 1, "from_last_block": 0, "random": 0}
    rows, by = _report(_with(PARENT, 1, kernel=3))                  # module 2: k5 -> k3, two blocks
    assert _changed(rows) == {"blocks.1.0.dw.conv": "cropped", "blocks.1.1.dw.conv": "cropped"}
    assert by["blocks.1.1.dw.conv"]["parent_shape"] == (96, 1, 5, 5)
    assert by["blocks.1.1.dw.conv"]["child_shape"] == (96, 1, 3, 3)
    # the public code's gap: the same mutation leaves the depthwise kernels at the child's init
    rows, _ = _report(_with(PARENT, 1, kernel=3), kernel_transfer=False)
    assert _changed(rows) == {"blocks.1.0.dw.conv": "init", "blocks.1.1.dw.conv": "init"}


def test_report_blocks_plus_one_is_new_and_minus_one_dropped():
    rows, by = _report(_with(PARENT, 4, blocks=3))                  # module 5: 2 -> 3 blocks
    layers = ["expand.conv", "expand.bn", "dw.conv", "dw.bn", "se.reduce", "se.expand", "project.conv", "project.bn"]
    assert _changed(rows) == {f"blocks.4.2.{n}": "new" for n in layers}
    assert all(by[f"blocks.4.2.{n}"]["source"] == f"blocks.4.1.{n}" for n in layers)
    assert by["blocks.4.2.project.conv"]["child_shape"] == by["blocks.4.2.project.conv"]["parent_shape"] == (56, 336, 1, 1)
    rows, by = _report(_with(PARENT, 4, blocks=1))                  # 2 -> 1: block 1's layers are dropped
    assert _changed(rows) == {f"blocks.4.1.{n}": "dropped" for n in layers}
    assert by["blocks.4.1.dw.conv"]["child_shape"] is None and by["blocks.4.1.dw.conv"]["parent_shape"] == (336, 1, 3, 3)
    assert [r["action"] for r in rows][-8:] == ["dropped"] * 8      # after the child's layers


def test_report_channel_change_crops_or_pads_the_module_and_the_next_input():
    for ch8, action in ((3, "cropped"), (8, "padded")):             # module 4: 40 -> 24 / 64 channels
        rows, by = _report(_with(PARENT, 3, ch8=ch8))
        changed = _changed(rows)
        assert set(changed.values()) == {action}
        assert {"blocks.3.0.project.conv", "blocks.3.0.project.bn", "blocks.3.1.expand.conv",
                "blocks.3.1.dw.conv", "blocks.4.0.expand.conv", "blocks.4.0.project.conv"} <= set(changed)
        assert "blocks.3.0.expand.conv" not in changed and "blocks.4.1.expand.conv" not in changed
        assert by["blocks.3.0.project.conv"]["child_shape"] == (8 * ch8, 144, 1, 1)
    # fewer channels and a larger kernel at once
    rows, by = _report(_with(PARENT, 4, kernel=5, ch8=5))
    assert by["blocks.4.1.dw.conv"]["action"] == "cropped+padded"
    assert set(_changed(rows).values()) <= set(TRANSFER_ACTIONS)


def test_report_counts_agree_with_transfer_state(parent):
    """The report's per-layer tensor kinds add up to transfer_state's stats, for 20 random mutations and both
    kernel_transfer settings."""
    rng = np.random.default_rng(7)
    seen = {PARENT}
    pstate = parent.state_dict()
    for i in range(20):
        g = mutate(PARENT, rng, seen)
        seen.add(g)
        cspec = EvoPoseSpec(genotype=g)
        with torch.device("meta"):
            cinit = build_evopose(cspec).state_dict()
        cinit = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in cinit.items()}
        for kt in (True, False):
            _, stats = transfer_state(parent.spec, pstate, cspec, cinit, kernel_transfer=kt)
            rows = transfer_report(parent.spec, cspec, kernel_transfer=kt)
            total = {k: sum(r["tensors"][k] for r in rows) for k in stats}
            assert total == stats, (g, kt)
            assert {r["action"] for r in rows} <= set(TRANSFER_ACTIONS)
            assert all((r["action"] == "new") == (r["tensors"]["from_last_block"] > 0) for r in rows)


def test_report_rejects_bad_specs():
    with pytest.raises(SpecError, match="num_joints"):
        transfer_report(EvoPoseSpec(genotype=PARENT), EvoPoseSpec(genotype=PARENT, num_joints=14))
    with pytest.raises(SpecError, match="new_blocks"):
        transfer_report(EvoPoseSpec(genotype=PARENT), EvoPoseSpec(genotype=PARENT), new_blocks="zero")
