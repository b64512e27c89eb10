"""A torchrun worker for tests/train/test_supernet_ddp.py (not a test itself):

    torchrun --standalone --nproc_per_node=2 tests/train/ddp_worker.py RUN OUT [KILL_EPOCH KILL_ITEMS]

trains the vipnas-res50 supernet for 2 epochs of 8 tiny samples at global batch 4 (2 per rank), then saves
this rank's weights as OUT/rank<r>.pt; with KILL_* the dataset raises after that many items of that epoch
(on every rank at the same step), as a kill would stop the run; OUT/rank<r>.killed marks it.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from posenas_core.train.distributed import init_from_env  # noqa: E402
from posenas_core.train.supernet import train_supernet  # noqa: E402
from tests.train.test_supernet_training import KilledError, TinyPoseSet, cfg  # noqa: E402


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    kill = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else None
    torch.set_num_threads(1)
    ranks = init_from_env()
    try:
        result = train_supernet("vipnas-res50", TinyPoseSet(kill_at=kill), run, cfg(epochs=2), num_random=1)
    except KilledError:
        (out / f"rank{ranks.rank}.killed").write_text("killed")
        return
    torch.save(result.model.state_dict(), out / f"rank{ranks.rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
