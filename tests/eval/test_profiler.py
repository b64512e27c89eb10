"""Profiler: params / BN stats / MACs against hand counts, thread restore, latency."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from posenas_core.errors import ConfigError
from posenas_core.eval import MACS_CONVENTION, count_macs, count_params, measure_latency, profile_model

H, W = 16, 12


def hand_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 16x12
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),  # depthwise, 8x6
        nn.BatchNorm2d(8, affine=False),  # stats only
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, bias=False),  # 16x12
        nn.Conv2d(4, 6, 1, groups=2),  # grouped 1x1, 16x12
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 10),
    )


# hand counts (MACs per image; bias adds are not multiply-adds and are not counted)
CONV1 = dict(params=3 * 8 * 3 * 3 + 8, macs=H * W * 3 * 3 * 3 * 8)
BN1 = dict(params=2 * 8, stats=2 * 8)
DW = dict(params=8 * 1 * 3 * 3, macs=(H // 2) * (W // 2) * 3 * 3 * 8 * 8 // 8)
BN2 = dict(params=0, stats=2 * 8)
# transposed conv: H_in * W_in * k * k * Cin * Cout / groups (every input pixel scatters a k x k patch)
DECONV = dict(params=8 * 4 * 4 * 4, macs=(H // 2) * (W // 2) * 4 * 4 * 8 * 4)
GCONV = dict(params=6 * (4 // 2) * 1 * 1 + 6, macs=H * W * 1 * 1 * 4 * 6 // 2)
FC = dict(params=6 * 10 + 10, macs=6 * 10)
PARTS = (CONV1, BN1, DW, BN2, DECONV, GCONV, FC)


def test_params_and_bn_stats_by_hand():
    m = hand_model()
    c = count_params(m)
    params = sum(p["params"] for p in PARTS)
    assert c["params"] == params == 224 + 16 + 72 + 512 + 18 + 70
    assert c["params_with_bn_stats"] == params + 32  # running mean + var, no num_batches_tracked
    # frozen parameters still count; shared parameters count once
    m[0].weight.requires_grad_(False)
    assert count_params(m)["params"] == params
    shared = nn.Sequential(m[10], m[10])
    assert count_params(shared)["params"] == FC["params"]


def test_macs_by_hand_including_transposed_and_grouped_convs():
    m = hand_model()
    macs = sum(p.get("macs", 0) for p in PARTS)
    assert count_macs(m, (H, W)) == macs
    assert count_macs(m, (H, W), batch=3) == macs
    # the transposed conv alone follows H_in*W_in*k*k*Cin*Cout/groups, also with groups
    t = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, groups=2, bias=False)
    assert count_macs(t, (5, 7), in_channels=8) == 5 * 7 * 3 * 3 * 8 * 6 // 2
    # no BN / activation cost
    assert count_macs(nn.Sequential(nn.BatchNorm2d(3), nn.ReLU()), (H, W)) == 0


def test_modes_and_threads_are_restored():
    m = hand_model()
    m.train()
    m[1].eval()  # a mixed state must come back exactly
    before = [x.training for x in m.modules()]
    stats_before = m[1].running_mean.clone()
    prev = torch.get_num_threads()
    target = 2 if prev == 1 else 1
    torch.set_num_threads(target)
    try:
        count_macs(m, (H, W))
        lat = measure_latency(m, (H, W), threads=1, min_run_time=0.05, warmup=1)
        assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(prev)
    assert [x.training for x in m.modules()] == before
    assert torch.equal(m[1].running_mean, stats_before)  # eval mode: BN stats untouched
    assert lat["latency_ms"] > 0 and lat["iqr_ms"] >= 0 and lat["runs"] >= 1


def test_profile_model_keys_and_errors():
    m = hand_model()
    p = profile_model(m, (H, W), threads=1, latency=True, min_run_time=0.05)
    assert p["params"] == count_params(m)["params"]
    assert p["macs"] == count_macs(m, (H, W)) and p["gmacs"] == pytest.approx(p["macs"] / 1e9)
    assert p["latency_ms"] > 0
    assert p["input"] == f"{H}x{W}" and p["input_hw"] == [H, W] and p["threads"] == 1
    assert p["macs_convention"] == MACS_CONVENTION and "/ 2" in MACS_CONVENTION
    q = profile_model(m, (H, W), latency=False)
    assert q["latency_ms"] is None and q["macs"] == p["macs"]
    with pytest.raises(ConfigError, match="input_size_hw"):
        count_macs(m, (0, 12))
    with pytest.raises(ConfigError, match="threads"):
        measure_latency(m, (H, W), threads=0)
