"""Supernet training under torch DDP: 2 CPU processes (gloo) launched by torchrun on a tiny split hold identical
weights after training, rank 0's checkpoint resumes in a single process, and a batch that does not split over
the ranks is refused."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posenas_core.errors import ConfigError
from posenas_core.train.distributed import Ranks, check_batch_size
from posenas_core.train.supernet import train_supernet

from tests.train.test_supernet_training import TinyPoseSet, cfg

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _torchrun(*args, tmp_path) -> subprocess.CompletedProcess:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(WORKER), *map(str, args)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_cpu_ranks_stay_identical_and_the_checkpoint_resumes_in_one_process(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = _torchrun(tmp_path / "run", out, tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0.keys() == r1.keys() and all(torch.equal(r0[k], r1[k]) for k in r0)
    ckpt = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert ckpt["step"] == 4 and all(torch.equal(r0[k], ckpt["model"][k]) for k in r0)
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]                      # one log, written by rank 0

    # A DDP run killed after its third step resumes in one process and finishes the schedule.
    out2 = tmp_path / "out2"
    out2.mkdir()
    p = _torchrun(tmp_path / "run2", out2, 1, 2, tmp_path=tmp_path)       # each rank fetches 2 items per step
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(f.name for f in out2.iterdir()) == ["rank0.killed", "rank1.killed"]
    part = torch.load(tmp_path / "run2/checkpoints/last.pt", weights_only=True)
    assert (part["step"], part["epoch"], part["step_in_epoch"]) == (3, 1, 1)
    res = train_supernet("vipnas-res50", TinyPoseSet(), tmp_path / "run2", cfg(epochs=2), num_random=1)
    assert res.completed and res.step == 4
    final = res.model.state_dict()
    assert any(not torch.equal(final[k], part["model"][k]) for k in final)  # it trained on from step 3
    assert all(torch.isfinite(v).all() for v in final.values() if v.is_floating_point())


def test_a_batch_that_does_not_split_over_the_ranks_is_refused():
    check_batch_size(8, Ranks(0, 2))
    with pytest.raises(ConfigError, match=r"batch_size 6 is not divisible by the 4 DDP ranks; allowed: a multiple "
                                          r"of 4"):
        check_batch_size(6, Ranks(1, 4))
    assert Ranks(1, 2).shard(list(range(8))) == [4, 5, 6, 7] and Ranks(0, 3).shard([1, 2]) == []
