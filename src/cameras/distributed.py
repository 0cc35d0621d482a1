"""torchrun support: the rank, device and barrier of this process, from torch.distributed's environment."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch


@dataclass
class Launch:
    """This process's place in a (possibly single-process) run."""

    rank: int
    world: int
    device: torch.device
    barrier: Callable[[], None] | None
    run_id: str


@contextlib.contextmanager
def launch(device: str) -> Iterator[Launch]:
    """Join torchrun's process group when started by torchrun, else run as a single process.

    Each rank uses ``cuda:LOCAL_RANK`` (NCCL) when ``device`` is CUDA, else the CPU (gloo,
    with the CPU threads shared among the node's ranks). Rank 0 draws a run id that every
    rank receives, naming its shard files. The group is destroyed on exit.

    Example:
        >>> with launch("cpu") as l:
        ...     l.rank, l.world
        (0, 1)
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    under_torchrun = "TORCHELASTIC_RUN_ID" in os.environ and "RANK" in os.environ
    if world <= 1 and not under_torchrun:  # plain process (torchrun with one rank still joins a group)
        yield Launch(0, 1, torch.device(device), None, "run")
        return
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_node))
    dist.init_process_group(backend, timeout=timedelta(hours=24))  # ranks may finish hours apart
    box = [uuid.uuid4().hex[:8] if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)

    def barrier() -> None:
        if backend == "nccl":
            dist.barrier(device_ids=[local])
        else:
            dist.barrier()

    try:
        yield Launch(rank, world, dev, barrier, str(box[0]))
    finally:
        dist.destroy_process_group()
