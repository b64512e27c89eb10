"""Trainer: loss, schedule, learning, exact resume, checkpoints, time budget, config."""

import json
import math
import time

import numpy as np
import pytest
import torch

from posenas_core.errors import CheckpointError, ConfigError
from posenas_core.models.baselines import BaselineSpec
from posenas_core.models.registry import build_model
from posenas_core.runs.io import atomic_torch_save, read_jsonl
from posenas_core.train.checkpoints import load_checkpoint
from posenas_core.train.steps import heatmap_mse
from posenas_core.train.trainer import TrainConfig, lr_at, train

# Backbone stride 16 (stem 4 x 2 x 2) with 2 deconvs: output stride 4; 32x32 input -> 8x8 heatmaps.
TINY = BaselineSpec(stem_channels=8, stages=((1, 8, 1), (1, 16, 2), (1, 16, 2)), head_channels=16,
                    head_layers=2, num_joints=4)
K, HW, HM = 4, (32, 32), (8, 8)



pytestmark = pytest.mark.usefixtures("one_torch_thread")

class KilledError(RuntimeError):
    pass


class FakePoseSet:
    """Fixed samples with the TopDownDataset item keys: a bright blob in the image at each joint, Gaussian
    heatmap targets (peak 1) at the same place, joint 3 unlabelled in odd samples. Per-epoch 'augmentation'
    noise from default_rng([seed, epoch, i]). `kill_at=(epoch, n)` raises after n items of that epoch."""

    def __init__(self, n=8, seed=0, kill_at=None):
        rng = np.random.default_rng(seed)
        self.n, self.seed, self.epoch, self.kill_at = n, seed, 0, kill_at
        self.joints = rng.uniform(1, HM[0] - 2, (n, K, 2))            # heatmap coordinates
        ys, xs = np.mgrid[0:HM[0], 0:HM[1]]
        self.targets = np.exp(-((xs - self.joints[..., 0, None, None]) ** 2
                                + (ys - self.joints[..., 1, None, None]) ** 2) / 2).astype(np.float32)
        yi, xi = np.mgrid[0:HW[0], 0:HW[1]]
        self.images = np.zeros((n, 3, *HW), np.float32)
        for i in range(n):
            for j in range(K):
                cx, cy = (self.joints[i, j] + 0.5) * 4 - 0.5
                self.images[i, j % 3] += np.exp(-((xi - cx) ** 2 + (yi - cy) ** 2) / 8) * (1 + j // 3)
        self.weights = np.ones((n, K), np.float32)
        self.weights[1::2, 3] = 0
        self.epochs_set, self.fetched = [], []

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.epochs_set.append(epoch)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.kill_at is not None and self.kill_at[0] == self.epoch:
            if sum(1 for e, _ in self.fetched if e == self.epoch) >= self.kill_at[1]:
                raise KilledError("simulated kill")
        self.fetched.append((self.epoch, i))
        noise = np.random.default_rng([self.seed, self.epoch, i]).normal(0, 0.05, self.images[i].shape)
        return {"image": (self.images[i] + noise).astype(np.float32), "target": self.targets[i],
                "target_weight": self.weights[i], "index": i,
                "affine": np.eye(2, 3, dtype=np.float32), "flipped": False}


def cfg(**kw):
    base = dict(epochs=2, batch_size=4, base_lr=1e-2, warmup_epochs=0.5, log_every=1, progress=False,
                ckpt_every_steps=None, channels_last=False)
    base.update(kw)
    return TrainConfig(**base)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def strip(records):
    return [{k: v for k, v in r.items() if k not in ("time", "wall", "img_per_s")} for r in records]


# ---------------------------------------------------------------------------------------------

def test_heatmap_mse_matches_numpy_oracle():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 4, 5, generator=g), torch.rand(2, 3, 4, 5, generator=g)
    w = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    p, t, wn = pred.numpy(), target.numpy(), w.numpy()
    oracle = np.sum((p - t) ** 2 * wn[:, :, None, None]) / p.size      # mean over B, K, h, w (not renormalised)
    assert heatmap_mse(pred, target, w).item() == pytest.approx(oracle, rel=1e-6)
    assert heatmap_mse(target, target, w).item() == 0
    with pytest.raises(ValueError, match="shape"):
        heatmap_mse(pred, target[:, :2], w)


def test_lr_schedule_warmup_then_cosine():
    peak, total, warm = 1e-3, 100, 10
    lrs = [lr_at(s, total, warm, peak, 0.1) for s in range(total)]
    assert lrs[0] == pytest.approx(peak / warm) and lrs[9] == pytest.approx(peak)
    assert lrs[10] == pytest.approx(peak)
    assert lrs[-1] == pytest.approx(0.1 * peak)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[10 + 89 // 2] < peak and lrs[55] == pytest.approx(0.1 * peak + 0.9 * peak * 0.5 * (1 + math.cos(math.pi * 45 / 89)))
    assert lr_at(0, 10, 0, 1.0) == 1.0


def test_train_config_dict_round_trip_and_errors():
    c = TrainConfig(epochs=3, grad_clip=1.0, max_minutes=0.5)
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ConfigError, match="unknown key.*'lr'"):
        TrainConfig.from_dict({"lr": 1e-3})
    for kw, field in [({"epochs": 0}, "epochs"), ({"base_lr": -1.0}, "base_lr"), ({"warmup_epochs": 5, "epochs": 2},
                      "warmup_epochs"), ({"grad_clip": 0}, "grad_clip"), ({"bf16": 1}, "bf16"),
                      ({"max_minutes": 0}, "max_minutes"), ({"ckpt_every_steps": 0}, "ckpt_every_steps")]:
        with pytest.raises(ConfigError, match=f"TrainConfig.{field}"):
            TrainConfig(**kw)


def test_loss_decreases_on_learnable_fixed_set(tmp_path):
    ds = FakePoseSet()
    res = train(TINY, ds, tmp_path, cfg(epochs=40, warmup_epochs=1, log_every=10), val_fn=None)
    losses = [r["loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "loss" in r]
    assert res.completed and res.step == 80
    assert losses[-1] < 0.3 * losses[0], losses
    assert all(np.isfinite(losses))


def test_epoch_order_and_augmentation_are_pure_functions_of_seed_and_epoch(tmp_path):
    a, b, c = FakePoseSet(), FakePoseSet(), FakePoseSet()
    train(TINY, a, tmp_path / "a", cfg(seed=3))
    train(TINY, b, tmp_path / "b", cfg(seed=3))
    train(TINY, c, tmp_path / "c", cfg(seed=4))
    assert a.fetched == b.fetched and a.epochs_set == [0, 1]
    order0 = [i for e, i in a.fetched if e == 0]
    order1 = [i for e, i in a.fetched if e == 1]
    assert sorted(order0) == list(range(8)) and order0 != order1
    assert a.fetched != c.fetched


@pytest.mark.parametrize("kill_at, ckpt_every, resume_at", [
    ((1, 0), 1, (1, 0)),      # killed at the start of epoch 1: resume from the epoch-end checkpoint
    ((1, 6), 1, (1, 1)),      # killed mid-epoch just after a step checkpoint
    ((1, 6), 2, (1, 0)),      # killed mid-epoch one step after the last checkpoint: that step is redone
], ids=["epoch-end", "mid-epoch", "mid-epoch-lost-step"])
def test_exact_resume_is_bit_identical(tmp_path, kill_at, ckpt_every, resume_at):
    val_calls = []

    def val_fn(model):
        val_calls.append(1)
        return {"AP": float(len(val_calls) % 2)}      # a deterministic fake metric: 1, 0, 1

    c = cfg(epochs=3, ckpt_every_steps=ckpt_every, log_every=1)
    ref = train(TINY, FakePoseSet(), tmp_path / "ref", c, val_fn=val_fn)
    ref_ckpt = torch.load(tmp_path / "ref/checkpoints/last.pt", weights_only=True)

    run = tmp_path / "run"
    val_calls.clear()
    with pytest.raises(KilledError):          # killed in epoch 1 after kill_at[1] items
        train(TINY, FakePoseSet(kill_at=kill_at), run, c, val_fn=val_fn)
    part = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert (part["epoch"], part["step_in_epoch"]) == resume_at
    res = train(TINY, FakePoseSet(), run, c, val_fn=val_fn)
    assert res.completed and res.step == ref.step == 6
    assert states_equal(ref.model.state_dict(), res.model.state_dict())
    got = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert states_equal(ref_ckpt["model"], got["model"])
    for a, b in zip(ref_ckpt["optimizer"]["state"].values(), got["optimizer"]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert got["best"] == ref_ckpt["best"] == {"metric": "AP", "value": 1.0, "epoch": 1, "step": 2}
    # The log of the resumed run equals the uninterrupted one (lines after the checkpoint were dropped).
    assert strip(read_jsonl(tmp_path / "ref/metrics.jsonl")) == strip(read_jsonl(run / "metrics.jsonl"))


def test_time_budget_stops_saves_and_resumes_identically(tmp_path):
    c = cfg(epochs=2)
    ref = train(TINY, FakePoseSet(), tmp_path / "ref", c)
    vals = []
    res = train(TINY, FakePoseSet(), tmp_path / "run", cfg(epochs=2, max_minutes=1e-9),
                val_fn=lambda m: vals.append(m.training) or {"loss": 1.0})
    assert res.stop_reason == "time_budget" and not res.completed
    assert (res.epoch, res.step_in_epoch, res.step) == (0, 1, 1)
    assert len(vals) == 1                          # one final validation at the stop
    ck = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert ck["step"] == 1 and ck["last_val"] == {"loss": 1.0}
    assert (tmp_path / "run/checkpoints/best.pt").exists()
    res2 = train(TINY, FakePoseSet(), tmp_path / "run", c)
    assert res2.completed and res2.step == 4
    assert states_equal(ref.model.state_dict(), res2.model.state_dict())
    res3 = train(TINY, FakePoseSet(), tmp_path / "run", c)
    assert res3.stop_reason == "already_complete"


def test_best_checkpoint_and_metrics(tmp_path):
    aps = iter([0.1, 0.3, 0.2])
    res = train(TINY, FakePoseSet(), tmp_path, cfg(epochs=3), val_fn=lambda m: {"AP": np.float64(next(aps)), "AR": 0.5})
    assert res.best == {"metric": "AP", "value": 0.3, "epoch": 2, "step": 4}
    best = torch.load(tmp_path / "checkpoints/best.pt", weights_only=True)
    assert best["step"] == 4 and best["best"]["value"] == 0.3
    recs = read_jsonl(tmp_path / "metrics.jsonl")
    vals = [r for r in recs if "val" in r]
    assert [(r["epoch"], r["step"], r["val"]["AP"]) for r in vals] == [(1, 2, 0.1), (2, 4, 0.3), (3, 6, 0.2)]
    logs = [r for r in recs if "loss" in r]
    assert [r["step"] for r in logs] == [1, 2, 3, 4, 5, 6]
    assert {"step", "epoch", "loss", "lr", "img_per_s", "time"} <= set(logs[0])
    conf = json.loads((tmp_path / "config.json").read_text())
    assert conf["spec"] == TINY.to_dict() and conf["train"]["epochs"] == 3


def test_load_checkpoint_rebuilds_and_detects_mismatch(tmp_path):
    res = train(TINY, FakePoseSet(), tmp_path, cfg(epochs=1))
    path = tmp_path / "checkpoints/last.pt"
    model, ck = load_checkpoint(path)
    assert not model.training and ck["spec"] == TINY.to_dict()
    assert states_equal(model.state_dict(), res.model.state_dict())
    x = torch.randn(2, 3, *HW)
    res.model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), res.model(x))

    other = TINY.replace(head_channels=32)
    with pytest.raises(CheckpointError, match="head_channels.*16.*32"):
        load_checkpoint(path, expected_spec=other)
    bad = dict(ck, spec=other.to_dict())          # spec says 32-channel head, weights have 16
    atomic_torch_save(tmp_path / "bad.pt", bad)
    with pytest.raises(CheckpointError, match=r"head\.deconv_layers\.0\.weight.*\(16, 16, 4, 4\).*\(16, 32, 4, 4\)"):
        load_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_resume_refuses_other_spec_or_trajectory(tmp_path):
    train(TINY, FakePoseSet(), tmp_path, cfg(epochs=1))
    with pytest.raises(CheckpointError, match="different spec.*head_channels"):
        train(TINY.replace(head_channels=32), FakePoseSet(), tmp_path, cfg(epochs=1))
    with pytest.raises(ConfigError, match="batch_size=4.*batch_size=2"):
        train(TINY, FakePoseSet(), tmp_path, cfg(epochs=1, batch_size=2))
    with pytest.raises(ConfigError, match="steps per epoch"):
        train(TINY, FakePoseSet(n=12), tmp_path, cfg(epochs=1))
    res = train(TINY, FakePoseSet(), tmp_path, cfg(epochs=1, batch_size=2), resume=False)
    assert res.step == 4


def test_given_model_must_fit_spec_and_small_dataset_error(tmp_path):
    with pytest.raises(CheckpointError, match="train\\(model=...\\)"):
        train(TINY, FakePoseSet(), tmp_path, cfg(), model=build_model(TINY.replace(num_joints=3)))
    with pytest.raises(ConfigError, match="fewer than TrainConfig.batch_size=16"):
        train(TINY, FakePoseSet(), tmp_path, cfg(batch_size=16))


def test_channels_last_and_bf16_run(tmp_path):
    res = train(TINY, FakePoseSet(), tmp_path, cfg(epochs=1, channels_last=True, bf16=True, grad_clip=1.0,
                                                   weight_decay=1e-4))
    assert res.completed
    assert all(torch.isfinite(v).all() for v in res.model.state_dict().values() if v.is_floating_point())


def test_loader_workers_do_not_change_the_result(tmp_path):
    a = train(TINY, FakePoseSet(), tmp_path / "a", cfg(epochs=1, num_workers=0))
    b = train(TINY, FakePoseSet(), tmp_path / "b", cfg(epochs=1, num_workers=2))
    assert states_equal(a.model.state_dict(), b.model.state_dict())


def test_step_schedule_drops_tenfold_at_the_simplebaseline_milestones():
    lrs = [lr_at(s, 140, 0, 1.0, schedule="step") for s in range(140)]
    assert lrs[89] == 1.0 and lrs[90] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)
    assert lrs[120] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="lr_schedule.*'cosine' or 'step'"):
        TrainConfig(lr_schedule="linear")


def test_budget_planner_follows_the_measured_speed():
    from posenas_core.train.budget import BudgetPlanner

    p = BudgetPlanner(budget_s=100.0, validating=False, elapsed_s=0.0, step=0)   # reserve 2 s
    assert p.replan(10, 10.0, total_steps=50) == 10 + int(88.0 * 1.0 - 2)   # 1 step/s, 88 s left, 2 steps' slack
    # the machine slows to 0.5 step/s: the end moves in within the 60 s horizon
    assert p.replan(20, 30.0, total_steps=98) == 20 + int(68.0 * 20 / 30 - 2)
    assert p.replan(40, 70.0, total_steps=65) == 40 + int(28.0 * 30 / 60 - 2)
    assert p.replan(45, 99.0, total_steps=54) == 45          # budget spent: stop now
    q = BudgetPlanner(budget_s=100.0, validating=True, elapsed_s=0.0, step=0)
    q.validate(lambda: time.sleep(0.01))
    assert q.reserve_s == 4.0                                 # 4% unless a validation takes longer


class FakeClock:
    """The trainer's `time` module with a clock that only moves when a sample is fetched (0.05 s each)."""

    def __init__(self):
        self.t = 0.0

    def perf_counter(self):
        return self.t

    def time(self):
        return 1.7e9 + self.t


class ClockedPoseSet(FakePoseSet):
    def __init__(self, clock, **kw):
        super().__init__(**kw)
        self.clock = clock

    def __getitem__(self, i):
        self.clock.t += 0.05
        return super().__getitem__(i)


def test_fill_budget_replans_and_ends_the_schedule_inside_the_budget(tmp_path, monkeypatch):
    # An initial plan of 1 epoch (2 steps) and a 6 s budget at 5 steps/s (batch 4 x 0.05 s, fake clock):
    # the trainer re-plans upward from the speed it measures and ends with the cosine at its floor, in time.
    import posenas_core.train.trainer as trainer

    clock = FakeClock()
    monkeypatch.setattr(trainer, "time", clock)
    c = cfg(epochs=1, max_minutes=0.1, fill_budget=True, warmup_epochs=0.0, log_every=2)
    res = train(TINY, ClockedPoseSet(clock), tmp_path / "run", c)
    logs = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert res.stop_reason == "completed" and res.step == res.total_steps
    assert 26 <= res.step <= 30 and clock.t <= 6.0               # 30 steps would take the whole 6 s
    peak = 1e-2 * 4 / 32
    assert max(r["lr"] for r in logs) > 0.9 * peak and logs[-1]["lr"] < 0.05 * peak   # the cosine ran its course
    assert logs[-1]["total_steps"] == res.step and logs[0]["total_steps"] > 20
    ck = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert ck["total_steps"] == res.total_steps
    # resuming a finished budget run does nothing more
    again = train(TINY, ClockedPoseSet(clock), tmp_path / "run", c)
    assert again.stop_reason == "already_complete" and again.step == res.step
    with pytest.raises(ConfigError, match="fill_budget.*only with a time budget"):
        cfg(fill_budget=True)
