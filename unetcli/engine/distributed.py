"""Distributed training through PyTorch's own engine: ``torchrun`` + ``torch.distributed`` + DistributedDataParallel.

``unetcli train`` started by ``torchrun --nproc-per-node N [--nnodes M ...] -m unetcli train ...`` finds the
rendezvous in the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ...) and
joins the process group: gloo on the CPU, NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``). Without those
variables it runs as a single process (world size 1). ``unetcli train --nproc N`` is a convenience that re-runs the
same command under ``python -m torch.distributed.run --standalone --nproc-per-node N``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from unetcli.devices import select_device
from unetcli.errors import UsageError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the run: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, metrics, plots and weights."""
        return self.rank == 0


def init_distributed(device_spec: str) -> tuple[DistContext, torch.device]:
    """Join the torchrun process group if there is one; choose this process's device.

    Args:
        device_spec: ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``). Under torchrun with CUDA each process
            takes ``cuda:LOCAL_RANK``.

    Returns:
        (context, device). Single-process runs get ``DistContext()`` and ``select_device(device_spec)``.

    Raises:
        UsageError: the device is unavailable, or torchrun started more processes on a machine than it has GPUs.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = select_device(device_spec)
    if world_size <= 1:
        return DistContext(), device
    ctx = DistContext(rank=int(os.environ["RANK"]), world_size=world_size,
                      local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                      local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise UsageError(f"torchrun started {ctx.local_world_size} processes on this machine but it has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ctx, device


def all_reduce_sums(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Sum each value over all ranks (identity in a single process); every rank gets the totals.

    Ranks may hold different keys (a rank with no validation photos has no metrics): the union is summed,
    a missing key counting as 0.
    """
    if not ctx.enabled:
        return values
    names: list = [None] * ctx.world_size
    dist.all_gather_object(names, sorted(values))
    keys = sorted(set().union(*names))
    t = torch.tensor([float(values.get(k, 0.0)) for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist()))


def gather_lists(values: list[int], ctx: DistContext) -> list[list[int]]:
    """Every rank's list, in rank order (``[values]`` in a single process)."""
    if not ctx.enabled:
        return [values]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, values)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait until every rank reaches this point (no-op in a single process)."""
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op in a single process)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def launch_local(nproc: int, argv: list[str]) -> int:
    """Re-run ``unetcli ARGV`` as ``nproc`` processes on this machine through torchrun; returns its exit code.

    Each process gets ``cores // nproc`` threads (``OMP_NUM_THREADS``, unless the caller set it), so processes do
    not fight over cores.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "unetcli", *argv]
    return subprocess.call(cmd, env=env)
