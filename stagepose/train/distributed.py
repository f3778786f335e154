"""Device choice and multi-process training under ``torchrun``.

The same ``stagepose train`` command runs on one CPU, one GPU or several GPUs: ``torchrun`` sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each process's environment; with ``WORLD_SIZE`` > 1 the
loop joins a process group (NCCL on CUDA, Gloo on CPU), wraps the student in DistributedDataParallel
and shards the data with a DistributedSampler. Only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from stagepose.errors import ConfigError

BACKEND_TIMEOUT = datetime.timedelta(minutes=30)  # rank 0 validates alone while the others wait


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def read_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as torchrun sets them (absent: a single process).

    Raises:
        ConfigError: the variables are not whole numbers or are inconsistent.
    """
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return DistEnv(rank=rank, world_size=world, local_rank=local)


def resolve_device(setting: str, env: DistEnv | None = None) -> torch.device:
    """The device of this process for ``setting`` "auto", "cpu" or "cuda".

    Raises:
        ConfigError: "cuda" asked for but no CUDA device is usable, or fewer GPUs than local ranks.
    """
    env = env or DistEnv()
    if setting == "cpu":
        return torch.device("cpu")
    if setting not in ("auto", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {setting!r}")
    if not torch.cuda.is_available():
        if setting == "cuda":
            raise ConfigError("device 'cuda' was asked for but PyTorch sees no CUDA GPU "
                              "(CPU-only torch build or no driver); use device auto or cpu")  # fmt: skip
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if env.local_rank >= count:
        raise ConfigError(f"LOCAL_RANK {env.local_rank} but only {count} GPU(s); start torchrun with "
                          f"--nproc_per_node={count} or fewer")  # fmt: skip
    return torch.device("cuda", env.local_rank)


def init_process_group(env: DistEnv, device: torch.device) -> None:
    """Join the job's process group (no-op for a single process)."""
    if not env.distributed or torch.distributed.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size,
                                         timeout=BACKEND_TIMEOUT)  # fmt: skip


def barrier(env: DistEnv) -> None:
    """Wait for every process (no-op for a single process)."""
    if env.distributed and torch.distributed.is_initialized():
        torch.distributed.barrier()


def any_rank(env: DistEnv, flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set on any process (itself for a single process): so that every rank stops at
    the same step when a signal reaches only some of them, instead of one waiting forever in an all-reduce."""
    if not (env.distributed and torch.distributed.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def destroy_process_group(env: DistEnv) -> None:
    """Leave the process group if this module joined one."""
    if env.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
