"""Data-parallel training over processes that torchrun (or SLURM, through Hydra's submitit
launcher) starts: which process this is, what rank 0 decides for the others, the process group,
and the sums a run adds up over it. Torch is imported inside the functions that need it, so
that ``app-train``'s launch check stays torch-free in a single process.
"""

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from app.errors import RankZeroFailed

log = logging.getLogger("app.distributed")

T = TypeVar("T")

# How long a process waits for rank 0's word before the launch (its check takes ~1 s; a cold
# torch import on a busy node ~30 s). A rank 0 that dies instead is noticed by torchrun at once.
LAUNCH_TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class Ranks:
    """This process's place among those that train one run together."""

    rank: int = 0
    local_rank: int = 0  # on its node: the GPU it takes
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run's files."""
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world > 1


def ranks() -> Ranks:
    """This process's place, from the variables torchrun exports (``from_submitit`` exports the
    same ones from SLURM's); a single process without them."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return Ranks()
    return Ranks(int(env["RANK"]), int(env.get("LOCAL_RANK", "0")), int(env["WORLD_SIZE"]))


def from_submitit(launcher_target: str) -> None:
    """Under Hydra's submitit launcher with more than one task per job (SLURM's ``srun`` starts
    one per GPU), export ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE`` and
    ``LOCAL_RANK`` from SLURM's variables, as submitit's own helper reads them."""
    if "submitit" not in launcher_target or "RANK" in os.environ:
        return
    import submitit

    if submitit.JobEnvironment().num_tasks > 1:
        # Every task keeps every GPU of its node and takes the one of its local rank.
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


# ------------------------------------------------------------------ rank 0 decides, the others follow
_store: Any = None


def store() -> Any:
    """The key-value store of this launch (torchrun's agent's, else one rank 0 hosts at
    ``MASTER_ADDR:MASTER_PORT``), made once per process and shared by the process group."""
    global _store
    if _store is None:
        from torch.distributed.rendezvous import rendezvous

        _store, _, _ = next(rendezvous("env://", timeout=LAUNCH_TIMEOUT))
    return _store


def decided_by_rank0(key: str, decide: Callable[[], T], timeout: timedelta = LAUNCH_TIMEOUT) -> T:
    """``decide()`` on rank 0, its JSON result handed to every other process through the store;
    where rank 0's ``decide`` raises, the others raise ``RankZeroFailed`` (rank 0 re-raises its own)."""
    r = ranks()
    if not r.many:
        return decide()
    shared = store()
    name = f"app/{key}"
    if r.main:
        try:
            value = decide()
        except BaseException as error:
            shared.set(name, json.dumps({"failed": f"{type(error).__name__}: {error}"}))
            raise
        shared.set(name, json.dumps({"value": value}))
        return value
    shared.wait([name], timeout)
    told = json.loads(shared.get(name))
    if "failed" in told:
        raise RankZeroFailed(f"rank 0 failed ({told['failed']})")
    result: T = told["value"]
    return result


def rank0_first(key: str, work: Callable[[], T], timeout: timedelta) -> T:
    """``work()`` on rank 0 first, then on the others (rank 0 fills a cache the others read)."""
    if not ranks().many:
        return work()
    if ranks().main:
        done: list[T] = []
        decided_by_rank0(key, lambda: done.append(work()), timeout)
        return done[0]
    decided_by_rank0(key, lambda: None, timeout)
    return work()


# ------------------------------------------------------------------------ the process group
def backend(device: str) -> str:
    """nccl for CUDA devices, gloo for CPUs."""
    return "nccl" if device.startswith("cuda") else "gloo"


@contextlib.contextmanager
def process_group(device: Any, timeout_min: int) -> Iterator[None]:
    """torch's default process group over every rank while the block runs (nothing in one
    process). A collective that waits longer than ``timeout_min`` fails the run, so that a rank
    lost without its launcher noticing cannot hang the others for ever."""
    r = ranks()
    if not r.many:
        yield
        return
    import torch
    import torch.distributed as dist
    from torch.distributed.distributed_c10d import PrefixStore

    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend(device.type),
        store=PrefixStore("app/group", store()),
        rank=r.rank,
        world_size=r.world,
        timeout=timedelta(minutes=timeout_min),
        device_id=device if device.type == "cuda" else None,
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def device_of(device: Any) -> Any:
    """``device`` for this process: the GPU of its local rank where ``device`` is CUDA."""
    import torch

    r = ranks()
    return torch.device("cuda", r.local_rank) if r.many and device.type == "cuda" else device


def sums(values: list[float], device: Any) -> list[float]:
    """``values`` added up over every process (as float64: counts of images stay exact)."""
    if not ranks().many:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.tolist()]


class StopVote:
    """Whether any process was asked to stop, as every process learns it at the same optimizer
    step: each call starts this step's vote (an all-reduce of a flag) and returns the last one's,
    so that a GPU never idles waiting for it, as the loss's finiteness is checked one step late."""

    def __init__(self, device: Any) -> None:
        import torch

        self.flags = [torch.zeros(1, device=device) for _ in range(2)]  # this vote's, and the last one's
        self.pending: Any = None
        self.votes = 0

    def __call__(self, here: bool) -> bool:
        import torch.distributed as dist

        flag = self.flags[self.votes % 2]
        flag.fill_(float(here))  # a kernel, not a copy from the host: no wait for the device
        last, self.pending = self.pending, (dist.all_reduce(flag, async_op=True), flag)
        self.votes += 1
        if last is None:
            return False
        last[0].wait()
        return bool(last[1].item() > 0)

    def close(self) -> None:
        """Wait for the vote still open: every rank started it, and a process group destroyed
        under an unfinished collective aborts the process (``terminate called``)."""
        if self.pending is not None:
            work, self.pending = self.pending[0], None
            with contextlib.suppress(Exception):  # a lost peer: the run's own error tells of it
                work.wait()


def gathered(value: T) -> list[T]:
    """``value`` from every process, in rank order (one in a single process)."""
    if not ranks().many:
        return [value]
    import torch.distributed as dist

    every: list[Any] = [None] * ranks().world
    dist.all_gather_object(every, value)
    return every


def peer_lost(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another process ended (its own
    error is the one to read)."""
    text = str(error)
    return ranks().many and (
        "gloo/transport" in text  # gloo: "Connection closed by peer", a recv that timed out
        or ("NCCL" in text and "abort" in text.lower())
    )


# ------------------------------------------------------------------------------------ logs
def tell_torchrun(message: str) -> None:
    """Under torchrun, why this process is about to exit non-zero, in the error file torchrun
    reads (``TORCHELASTIC_ERROR_FILE``, JSON as torch's ``@record`` writes it): its
    ``ChildFailedError`` report then shows ``message`` as the root cause instead of
    ``error_file: <N/A>`` and a link. torchrun prints that report (and its own traceback) for every
    non-zero exit; it cannot be silenced."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    import time

    from app.files import write_atomically

    data = {"message": message, "timestamp": int(time.time())}
    write_atomically(Path(path), lambda tmp: tmp.write_text(json.dumps(data)))


def log_per_rank(run_dir: str, job_name: str) -> None:
    """On ranks other than 0: the job's log goes to ``<job>.rank<N>.log`` beside rank 0's
    ``<job>.log``, and the console shows only their warnings and errors, marked with the rank."""
    r = ranks()
    if r.main:
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            if os.path.basename(handler.baseFilename) != f"{job_name}.log":
                continue
            ours = logging.FileHandler(os.path.join(run_dir, f"{job_name}.rank{r.rank}.log"))
            ours.setFormatter(handler.formatter)
            ours.setLevel(handler.level)
            root.removeHandler(handler)
            handler.close()
            root.addHandler(ours)
        elif isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.WARNING)
            handler.setFormatter(
                logging.Formatter(f"[%(asctime)s][rank {r.rank}][%(name)s][%(levelname)s] - %(message)s")
            )
