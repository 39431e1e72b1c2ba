"""The training loop: ``run`` takes the run dir and builds the job, ``fit`` runs it, top to bottom."""

import contextlib
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from app import files
from app.checks.built import resolved_as_built
from app.configs import JOB_NAME
from app.errors import NonFiniteLoss, PeerLost, RunDirTaken, Stopped
from app.training import checkpoints, distributed, engine, runtime
from app.training.build import Job, build
from app.training.checkpoints import Resume, RunState
from app.training.loaders import workers_released
from app.training.metrics import epoch_row
from app.training.run_files import RunFiles
from app.training.signals import GracefulStop

log = logging.getLogger("app.train")


def run(cfg: DictConfig, output_dir: Path) -> float:
    """Fine-tune the model ``cfg`` describes in ``output_dir``, which no other live run may be
    writing in, and no earlier run's artefacts may be left in unless ``trainer.overwrite`` (or
    ``trainer.resume`` continues that run).

    ``cfg`` must be checked already. Returns the best validation accuracy (what a sweeper
    optimises). Among many processes (torchrun, SLURM), rank 0 holds the run dir and decides
    whether the run resumes, and the others follow.
    """
    t, ranks = cfg.trainer, distributed.ranks()
    device = distributed.device_of(engine.resolve_device(t.device.value))
    lock = runtime.held_run_dir(output_dir) if ranks.main else contextlib.nullcontext()
    with distributed.process_group(device, t.process_group_timeout_min), lock:
        cfg = resolved_as_built(cfg)  # resolved once, here, and checked: what the job builds is what was checked
        resume = Resume.read(distributed.decided_by_rank0("run", lambda: _take_run_dir(cfg, output_dir)))
        if t.resume is not None and resume is None:
            log.info(
                "trainer.resume=auto: no %s in %s yet, so the run starts from the beginning", files.LAST, output_dir
            )
        try:
            return fit(build(cfg, ranks, device), RunFiles(output_dir, write=ranks.main), resume)
        except Exception as error:
            if distributed.peer_lost(error):  # gloo's "[.../pair.cc:561] Connection closed by peer [addr]. ..."
                cause = " ".join(str(error).split()).rpartition("] ")[2].split(". ")[0]
                raise PeerLost(f"another process of this run ended ({cause})") from error
            raise


def _take_run_dir(cfg: DictConfig, output_dir: Path) -> Optional[str]:
    """The checkpoint the run continues from, or None; an earlier run is refused or replaced."""
    left = files.run_artefacts(str(output_dir))
    resume = files.checkpoint_to_resume(str(output_dir), cfg.trainer.resume)
    if left and not cfg.trainer.overwrite and resume is None:
        raise RunDirTaken(
            f"{output_dir} holds an earlier run ({', '.join(left)}): choose another run dir, set "
            "trainer.resume=auto to continue it, or trainer.overwrite=true to replace it"
        )
    if left and cfg.trainer.overwrite:
        log.warning("replacing the earlier run in %s (trainer.overwrite=true)", output_dir)
        files.remove_run_artefacts(str(output_dir))
    files.mark_run_dir(str(output_dir), JOB_NAME)
    return resume


def fit(job: Job, run_files: RunFiles, resume: Optional[Resume] = None) -> float:
    """The run: resume, then each epoch (train, validate, record, checkpoint), then its summary.
    Returns the best validation accuracy."""
    t = job.cfg.trainer
    run = checkpoints.resumed(job, resume)  # weights, optimizer, schedule and EMA back; where the run was
    run_files.open(job, run.epoch, resume.path if resume is not None else None)
    checkpoints.reseed(job, run)  # last, just before the first step
    vote = distributed.StopVote(job.step.device) if job.ranks.many else None  # every process stops at one step
    stop, started, stopped_early = GracefulStop(vote), time.perf_counter(), None
    closing_vote = contextlib.closing(vote) if vote is not None else contextlib.nullcontext()
    with (
        stop.installed(),
        engine.deterministic(t.deterministic),
        run_files,
        workers_released(*job.loaders()),
        closing_vote,
    ):
        for epoch in range(run.epoch + 1, t.epochs + 1):
            job.enter(epoch)  # trainer.freeze_epochs: its second stage from epoch N + 1
            train = _train_epoch(job, run, epoch, stop)
            if not train.complete:
                run.progress = train.progress
                checkpoints.save(job, run_files, run)
                raise _stopped(
                    stop, run_files.dir, f"at epoch {epoch}, batch {train.progress.batches}/{job.batches_per_epoch}"
                )
            row = _validated(job, epoch, run.epoch_lr, train)
            run_files.record(row, job.training.steps)  # before the checkpoint that counts the epoch done
            improved = run.finished(epoch, row)
            checkpoints.save(job, run_files, run)
            run_files.kept(improved, int(run.best["epoch"]))  # best.pt, curves.png
            _logged(job, row)
            if epoch < t.epochs and stop.asked():
                raise _stopped(stop, run_files.dir, f"after epoch {epoch}")
            if t.early_stopping_patience is not None and run.waited >= t.early_stopping_patience:
                stopped_early = epoch
                log.info("early stopping: val acc has not improved for %d epochs", run.waited)
                break
    if job.training.profiler is not None:
        job.training.profiler.close()  # a run shorter than trainer.profile_steps: what it took
    seconds = round(time.perf_counter() - started, 3)
    last = run_files.rows[-1] if run_files.rows else {}
    run_files.summary({"final": last, "best": run.best, "stopped_early": stopped_early, "seconds": seconds,
                       "tags": list(job.cfg.get("tags") or [])})  # fmt: skip
    log.info("best val acc %.3f at epoch %d; artefacts in %s", float(run.best["val_acc"]), int(run.best["epoch"]),
             run_files.dir)  # fmt: skip
    return float(run.best["val_acc"])


def _train_epoch(job: Job, run: RunState, epoch: int, stop: GracefulStop) -> engine.PassResult:
    """Epoch ``epoch``'s training pass, from where a stopped run left it (its order drawn again,
    the batches done skipped); its figures over every process."""
    t = job.cfg.trainer
    if not run.progress.batches:  # a resumed epoch keeps the lr it started with
        run.epoch_lr = job.training.optimizer.param_groups[0]["lr"]
    job.train_order.set_epoch(epoch, skip=run.progress.batches * t.batch_size)
    if job.training.mixing is not None:  # each batch's mix is drawn from the epoch and its number
        job.training.mixing.epoch = epoch
    # a stopped epoch's sums so far are the whole run's: rank 0 carries them on
    start = run.progress if job.ranks.main else engine.Progress(run.progress.batches, seconds=run.progress.seconds)
    try:
        result = engine.run_pass(
            job.forward, job.train_loader, job.step, job.training, f"epoch {epoch} train", start, stop
        )
    except NonFiniteLoss as error:
        kept = f"checkpoints/last.pt holds epoch {run.epoch}" if run.epoch else "no checkpoint was written"
        raise NonFiniteLoss(f"epoch {epoch}: {error}; the run stopped ({kept})") from None
    return engine.whole(result, job.sums)


def _validated(job: Job, epoch: int, lr: float, train: engine.PassResult) -> dict[str, Any]:
    """The epoch's metrics row: ``train``, then validation over the whole split (and of the EMA)."""
    val = engine.whole(engine.run_pass(job.validation, job.val_loader, job.step, None, f"epoch {epoch} val"), job.sums)
    ema = job.training.ema
    ema_pass = engine.run_pass(ema.module, job.val_loader, job.step, None, "EMA val") if ema is not None else None
    row = epoch_row(epoch, lr, train, val, engine.whole(ema_pass, job.sums) if ema_pass else None)
    return row


def _logged(job: Job, row: dict[str, Any]) -> None:
    """The epoch's line, once its checkpoint and curves are written."""
    ema, epoch, lr = job.training.ema, row["epoch"], row["lr"]
    log.info(
        "epoch %d/%d  train loss %.4f acc %.3f | val loss %.4f acc %.3f%s | lr %.3g | %.1fs, %.0f img/s",
        epoch, job.cfg.trainer.epochs, row["train_loss"], row["train_acc"], row["val_loss"], row["val_acc"],
        f" | EMA val acc {row['ema_val_acc']:.3f}" if ema is not None else "", lr, row["seconds"], row["images_per_s"],
    )  # fmt: skip


def _stopped(stop: GracefulStop, output_dir: Path, where: str) -> Stopped:
    signum = stop.requested or signal.SIGTERM
    return Stopped(signum, (
        f"{signal.Signals(signum).name}: stopped {where}; checkpoints/last.pt holds the run so far. "
        f"To resume: {resume_command(output_dir)}"
    ))  # fmt: skip


def resume_command(output_dir: Path) -> str:
    """The command that continues this run from its ``last.pt``."""
    if not HydraConfig.initialized():
        return f"train(cfg, {str(output_dir)!r}) with trainer.resume=auto"
    program = "python -m app.train" if sys.argv[0].endswith(os.path.join("app", "train.py")) else "app-train"
    processes = os.environ.get("LOCAL_WORLD_SIZE")
    if os.environ.get("TORCHELASTIC_RUN_ID") and processes:  # under torchrun: again with it
        script = "-m app.train" if program.startswith("python") else os.path.abspath(sys.argv[0])
        program = f"torchrun --nproc_per_node={processes} {script}"
    task = HydraConfig.get().overrides.task
    keep = [o for o in task if not o.startswith(("trainer.resume=", "trainer.overwrite="))]
    return shlex.join([*program.split(), *keep, f"hydra.run.dir={output_dir}", "trainer.resume=auto"])
