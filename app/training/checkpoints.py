"""Checkpoints: what a run saves and resumes from (weights, optimizer, schedule, scaler, EMA,
every random number generator, where the run is), in types ``torch.load`` reads safely."""

import dataclasses
import logging
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

import numpy as np
import torch
from torch import nn

from app.checks.built import changed_since
from app.errors import CheckpointError, RunChanged
from app.files import CHECKPOINT_FORMAT, file_writer, write_atomically
from app.models import load_checkpoint as load_checkpoint
from app.models import load_weights
from app.training import distributed
from app.training.engine import Progress, Step, Training

if TYPE_CHECKING:
    from app.training.build import Job
    from app.training.run_files import RunFiles

log = logging.getLogger("app.train")


class Resume(NamedTuple):
    """The checkpoint a run continues from (``files.checkpoint_to_resume``), read before any work."""

    path: Path
    state: dict[str, Any]

    @classmethod
    def read(cls, path: Optional[str]) -> Optional["Resume"]:
        return cls(Path(path), load_checkpoint(path)) if path is not None else None


@dataclass
class RunState:
    """Where a run is, besides its weights: what ``last.pt`` holds and a resumed run starts from."""

    epoch: int = 0  # epochs done
    progress: Progress = field(default_factory=Progress)  # of the next epoch, when a signal stopped it
    best: dict[str, Any] = field(default_factory=dict)  # the best epoch's metrics row
    waited: int = 0  # epochs since the best one
    epoch_lr: float = 0.0  # the lr the epoch in progress started with (its metrics row shows it)
    rngs: list[dict[str, Any]] = field(default_factory=list)  # each process's random state, when resumed

    def finished(self, epoch: int, row: dict[str, Any]) -> bool:
        """Count ``epoch`` done with its metrics ``row``; whether it is the best one so far."""
        improved = not self.best or row["val_acc"] > float(self.best["val_acc"])
        self.best, self.waited = (row, 0) if improved else (self.best, self.waited + 1)
        self.epoch, self.progress = epoch, Progress()
        return improved


def resumed(job: "Job", resume: Optional[Resume]) -> RunState:
    """Put a checkpoint's model, optimizer, schedule, scaler and EMA back into ``job`` and return
    where its run was (a new run's start without one). The random state is set last, by ``reseed``."""
    if resume is None:
        return RunState()  # its first epoch takes the optimizer's lr (fit)
    state = resume.state
    changed = changed_since(state.get("config") or {}, job.config)
    if changed:
        raise RunChanged(
            f"trainer.resume={resume.path} continues a run whose config had "
            + "; ".join(f"{key}={was} (now {now})" for key, was, now in changed[:5])
        )
    restore(state, job.model, job.training, job.step, f"trainer.resume={resume.path}")
    run = RunState(state["epoch"], Progress(**state["progress"]), state["best"], state["waited"], state["epoch_lr"],
                   state.get("rng_ranks") or [state["rng"]])  # fmt: skip
    batches = f", and {run.progress.batches} batches of epoch {run.epoch + 1}" if run.progress.batches else ""
    log.info("resuming %s: %d epochs done%s", resume.path, run.epoch, batches)
    return run


def reseed(job: "Job", run: RunState) -> None:
    """Each process's random state, as the stopped run left it, just before the first step; a
    process the stopped run did not have draws a stream of its own."""
    if not run.rngs:
        return
    if job.ranks.rank < len(run.rngs):
        set_rng_state(run.rngs[job.ranks.rank])
    else:
        torch.manual_seed(job.cfg.trainer.seed + job.ranks.rank + job.training.steps)


def save(job: "Job", files: "RunFiles", run: RunState, name: str = "last.pt") -> None:
    """``checkpoints/<name>`` from rank 0, with every process's random state (all must call it)."""
    rngs = distributed.gathered(rng_state())
    training = job.training
    ema = training.ema
    files.checkpoint(name, {
        "model": job.model.state_dict(), "optimizer": training.optimizer.state_dict(),
        "scaler": job.step.scaler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
        "epoch": run.epoch, "steps": training.steps, "progress": dataclasses.asdict(run.progress),
        "epoch_lr": run.epoch_lr, "best": run.best, "waited": run.waited, "rng": rngs[0], "config": job.config,
        "classes": job.splits.names, **({"rng_ranks": rngs} if job.ranks.many else {}),
    })  # fmt: skip


# ---------------------------------------------------------------------------- state
def rng_state() -> dict[str, Any]:
    """Every random number generator a run draws from, in types ``torch.load`` reads safely."""
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    # to a file object of Python's: a full disk is then an OSError, a DiskFull (files.file_writer)
    write_atomically(path, file_writer(lambda f: torch.save({"format": CHECKPOINT_FORMAT, **state}, f)))


def restore(state: dict[str, Any], model: nn.Module, training: Training, step: Step, what: str) -> None:
    """Put a checkpoint's model, optimizer, lr schedule, grad scaler and EMA back.

    The schedule is built from this run's config and replayed to the checkpoint's step, so that a
    longer ``trainer.epochs`` extends it; its hyper-parameters then win over the optimizer's
    saved ones. The random state is the caller's to set, last.
    """
    load_weights(model, state["model"], what)
    optimizer, scheduler = training.optimizer, training.scheduler
    training.steps = state["steps"]
    if scheduler is not None:
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(training.steps):
                scheduler.step()
    scheduled = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(state["optimizer"])
    except ValueError as error:
        raise CheckpointError(f"{what}: its optimizer state does not fit this optimizer ({error})") from None
    if scheduler is not None:
        for group, hyper in zip(optimizer.param_groups, scheduled):
            group.update(hyper)
    if state["scaler"]:
        step.scaler.load_state_dict(state["scaler"])
    if training.ema is not None and state["ema"] is not None:
        load_weights(training.ema, state["ema"], f"{what} (its EMA)")
