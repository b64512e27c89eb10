"""Supernet training: the sandwich rule's draws and gradients, BN recalibration against an oracle, exact resume
of a killed supernet run on the core trainer, and refusals (another space, another num_random, bad input)."""

import copy

import numpy as np
import pytest
import torch

from posenas_core.errors import CheckpointError, ConfigError, SpecError
from posenas_core.models.registry import build_model
from posenas_core.spaces import get_space
from posenas_core.spaces.supernet import SupernetSpec
from posenas_core.train.steps import StepContext, heatmap_mse
from posenas_core.train.supernet import (
    SandwichStep,
    calibrate_bn,
    calibrate_subnet,
    calibration_batches,
    make_supernet_val_fn,
    train_supernet,
)
from posenas_core.train.trainer import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HW, HM, K = (64, 32), (16, 8), 17
RES = get_space("vipnas-res50")


class KilledError(RuntimeError):
    pass


class TinyPoseSet:
    """n fixed random images with Gaussian-blob targets (trainer item keys); `kill_at=(epoch, n)` raises after
    n items of that epoch, as a kill -9 would stop the run."""

    def __init__(self, n=8, seed=0, kill_at=None):
        rng = np.random.default_rng(seed)
        self.images = rng.normal(0, 1, (n, 3, *HW)).astype(np.float32)
        ys, xs = np.mgrid[0:HM[0], 0:HM[1]]
        joints = rng.uniform(1, HM[1] - 2, (n, K, 2))
        self.targets = np.exp(-((xs - joints[..., 0, None, None]) ** 2 + (ys - joints[..., 1, None, None]) ** 2)
                              / 2).astype(np.float32)
        self.weights = np.ones((n, K), np.float32)
        self.weights[::2, 5] = 0
        self.epoch, self.kill_at, self.fetched = 0, kill_at, 0

    def set_epoch(self, epoch):
        self.epoch, self.fetched = epoch, 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if self.kill_at is not None and self.kill_at[0] == self.epoch and self.fetched >= self.kill_at[1]:
            raise KilledError("simulated kill")
        self.fetched += 1
        return {"image": self.images[i], "target": self.targets[i], "target_weight": self.weights[i]}


def cfg(**kw):
    base = dict(epochs=2, batch_size=4, base_lr=1e-3, warmup_epochs=0.5, log_every=1, progress=False,
                ckpt_every_steps=1, channels_last=False)
    return TrainConfig(**(base | kw))


def test_sandwich_draws_max_min_and_seeded_randoms():
    step = SandwichStep(RES, seed=3, num_random=2)
    a = step.archs(7)
    assert len(a) == 4 and a[0] == RES.max() and a[1] == RES.min() and all(RES.contains(x) for x in a)
    assert a == SandwichStep(RES, seed=3, num_random=2).archs(7)          # a resumed run / another rank
    assert a[2:] != step.archs(8)[2:] and a[2:] != SandwichStep(RES, seed=4).archs(7)[2:]
    assert len(SandwichStep(RES, seed=0, num_random=0).archs(0)) == 2
    with pytest.raises(ConfigError, match=r"num_random = -1 is invalid; allowed: an integer >= 0"):
        SandwichStep(RES, seed=0, num_random=-1)


def test_sandwich_gradients_are_the_sum_of_gt_and_distillation_terms():
    net = build_model(SupernetSpec(space="vipnas-res50"), generator=torch.Generator().manual_seed(0)).train()
    ds = TinyPoseSet(n=2)
    batch = {k: torch.from_numpy(np.stack([ds[i][k] for i in range(2)])) for k in ("image", "target", "target_weight")}
    step = SandwichStep(RES, seed=0, num_random=1)
    ctx = StepContext(net, 5, lambda: torch.autocast("cpu", enabled=False), lambda loss: loss.backward())
    losses = step(ctx, batch["image"], batch)
    got = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    oracle = copy.deepcopy(net)
    oracle.zero_grad(set_to_none=True)
    archs = step.archs(5)
    soft = oracle(batch["image"], archs[0])
    total = heatmap_mse(soft, batch["target"], batch["target_weight"])
    soft = soft.detach()
    assert float(losses["loss"]) == pytest.approx(float(total.detach()), rel=1e-6)
    for arch in archs[1:]:
        pred = oracle(batch["image"], arch)
        total = total + heatmap_mse(pred, batch["target"], batch["target_weight"]) \
            + heatmap_mse(pred, soft, torch.ones_like(batch["target_weight"]))
    total.backward()
    want = {n: p.grad for n, p in oracle.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys() and len(got) > 50
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-9, msg=n)
    assert set(losses) == {"loss", "loss_min", "loss_random"}


def test_calibrate_bn_is_the_cumulative_average_over_the_batches():
    arch = RES.min()
    net = build_model(arch, generator=torch.Generator().manual_seed(1))
    batches = [torch.randn(3, 3, *HW, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    calibrate_bn(net, batches)
    assert not net.training
    conv = net.stem.conv                                              # the stem BN's input
    means = [conv(b).mean((0, 2, 3)) for b in batches]
    vars_ = [conv(b).transpose(0, 1).flatten(1).var(1, unbiased=True) for b in batches]
    torch.testing.assert_close(net.stem.bn.running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(net.stem.bn.running_var, torch.stack(vars_).mean(0), rtol=1e-5, atol=1e-7)
    assert net.stem.bn.momentum == 0.1                                # restored
    with pytest.raises(ConfigError, match="no batches given"):
        calibrate_bn(net, [])


def test_calibrated_subnet_is_extracted_and_independent_of_the_supernet():
    net = build_model(SupernetSpec(space="vipnas-res50"), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = calibration_batches(TinyPoseSet(n=6), num_batches=2, batch_size=4, seed=0)
    assert [b.shape[0] for b in batches] == [4, 2]
    assert all(torch.equal(x, y) for x, y in zip(batches, calibration_batches(TinyPoseSet(n=6), num_batches=2,
                                                                               batch_size=4, seed=0)))
    sub = calibrate_subnet(net, RES.released(), batches)
    assert type(sub).__name__ == "ViPNASNet" and not sub.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # the supernet is untouched
    assert float(sub.stem.bn.running_var.mean()) != pytest.approx(1.0)


def test_supernet_val_fn_scores_max_and_min_after_calibration():
    net = build_model(SupernetSpec(space="vipnas-res50"), generator=torch.Generator().manual_seed(0))
    seen = []

    def evaluate(model):
        seen.append((model.spec.to_short(), float(model.stem.bn.running_mean.abs().sum())))
        return {"AP": float(len(seen))}

    val = make_supernet_val_fn(evaluate, calibration_batches(TinyPoseSet(n=4), num_batches=1, batch_size=4))(net)
    assert val == {"AP": 1.0, "max/AP": 1.0, "min/AP": 2.0}
    assert [s for s, _ in seen] == [RES.max().to_short(), RES.min().to_short()] and seen[0][1] > 0


def test_killed_supernet_run_resumes_bit_identically(tmp_path):
    c = cfg(epochs=2)
    ref = train_supernet("vipnas-res50", TinyPoseSet(), tmp_path / "ref", c, num_random=1)
    with pytest.raises(KilledError):
        train_supernet("vipnas-res50", TinyPoseSet(kill_at=(1, 4)), tmp_path / "run", c, num_random=1)
    part = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert (part["epoch"], part["step_in_epoch"], part["spec"]["kind"]) == (1, 1, "supernet")
    res = train_supernet("vipnas-res50", TinyPoseSet(), tmp_path / "run", c, num_random=1)
    assert res.completed and res.step == ref.step == 4
    a, b = ref.model.state_dict(), res.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [r for r in map(__import__("json").loads, (tmp_path / "run/metrics.jsonl").read_text().splitlines())]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all({"loss", "loss_min", "loss_random"} <= set(r) for r in rows)
    # refusals: another num_random, another space
    with pytest.raises(ConfigError, match=r"cannot resume .*num_random"):
        train_supernet("vipnas-res50", TinyPoseSet(), tmp_path / "run", c, num_random=2)
    (tmp_path / "run/supernet.json").unlink()
    with pytest.raises(CheckpointError, match=r"different spec .*'max_arch'|different spec .*'space'"):
        train_supernet("vipnas-mbv3", TinyPoseSet(), tmp_path / "run", c, num_random=1)


def test_supernet_spec_refuses_other_spaces_and_max_archs():
    with pytest.raises(SpecError, match=r"'evopose2d' has no supernet; allowed: \['vipnas-res50', 'vipnas-mbv3'\]"):
        SupernetSpec(space="evopose2d")
    with pytest.raises(SpecError, match="not the max arch of space 'vipnas-res50'"):
        SupernetSpec(space="vipnas-res50", max_arch=RES.min().to_short())
    spec = SupernetSpec(space="vipnas-mbv3")
    assert spec.max_arch == get_space("vipnas-mbv3").max().to_short() and spec.output_stride == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; this torch sees none")
def test_supernet_trains_on_cuda_with_autocast_and_resumes_on_the_cpu(tmp_path):
    res = train_supernet("vipnas-res50", TinyPoseSet(), tmp_path / "gpu", cfg(epochs=1, device="cuda", bf16=True),
                         num_random=1)
    assert res.completed and next(res.model.parameters()).device.type == "cuda"
    assert all(torch.isfinite(v).all() for v in res.model.state_dict().values() if v.is_floating_point())
    ckpt = torch.load(tmp_path / "gpu/checkpoints/last.pt", weights_only=True, map_location="cpu")
    net = build_model(SupernetSpec(space="vipnas-res50"))
    net.load_state_dict(ckpt["model"])
    sub = calibrate_subnet(net, RES.min(), calibration_batches(TinyPoseSet(n=4), num_batches=1, batch_size=4))
    assert torch.isfinite(sub(torch.zeros(1, 3, *HW))).all()
