"""Data-parallel training under torch DDP: the process group from torchrun's environment, batch shards, agreement.

    init_from_env(device)   -> Ranks        joins the group torchrun describes (WORLD_SIZE > 1), else a 1-rank Ranks
    Ranks.shard(batch_indices)              the part of one global batch this rank trains on
    Ranks.agree(values)                     rank 0's integers, on every rank (stop decisions, re-planned steps)

Launch: `torchrun --nproc_per_node=N -m posenas_core.cli supernet train ...` (gloo on the CPU, nccl on CUDA).
Each rank holds the whole model and trains on batch_size / N of every global batch (the batch size must
divide); DDP averages the gradients once per optimizer step, so every rank takes the same step. BatchNorm
stays per rank (SyncBatchNorm does not run on the CPU); DDP broadcasts rank 0's buffers at each forward.
Only rank 0 writes the run directory.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from posenas_core.errors import ConfigError

__all__ = ["Ranks", "init_from_env", "current_ranks", "check_batch_size"]


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among `world` ranks (world 1: not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """True on the rank that writes files and runs validation."""
        return self.rank == 0

    def shard(self, batch: list) -> list:
        """This rank's contiguous part of one global batch (equal parts when the size divides; a short last
        batch is split as evenly as it goes)."""
        n, w, r = len(batch), self.world, self.rank
        return batch[r * n // w:(r + 1) * n // w]

    def agree(self, values: list[int]) -> list[int]:
        """`values` as rank 0 has them, on every rank (identity when not distributed)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor([int(v) for v in values], dtype=torch.int64)
        torch.distributed.broadcast(t, 0)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def check_batch_size(batch_size: int, ranks: Ranks) -> None:
    """ConfigError when the global batch does not split evenly over the ranks."""
    if batch_size % ranks.world:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {ranks.world} DDP ranks; allowed: a "
                          f"multiple of {ranks.world} (each rank trains on batch_size / {ranks.world} images per step)")


def init_from_env(device: torch.device | None = None) -> Ranks:
    """Join the process group torchrun set up (env WORLD_SIZE, RANK, MASTER_ADDR, ...), once; a single process
    (no WORLD_SIZE, or 1) gets Ranks(0, 1). Backend: nccl for CUDA devices, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    dist = torch.distributed
    if not dist.is_available():
        raise ConfigError(f"WORLD_SIZE={world} asks for DDP, but this torch build has no torch.distributed")
    if not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def current_ranks() -> Ranks:
    """The ranks of an already initialised process group, else Ranks(0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()
