"""The training job: ``python -m app.train [overrides]`` or ``app-train [overrides]``.

``fit`` reads top to bottom: config -> data -> model -> optimizer -> epochs -> artefacts. Torch
is imported inside it, so that ``--help``, ``--cfg``, tab completion and a refused override never
pay for it.
"""

import contextlib
import dataclasses
import datetime
import logging
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from app import distributed, files, launch, summary
from app.checks import ConfigError, check_config
from app.configs import CONFIG_NAME, JOB_NAME, VERSION_BASE
from app.errors import RankZeroFailed, RunDirTaken, Stopped
from app.training.runtime import FAILED_JOB_VALUE, absolute_paths, cores_per_job, failure, record_status

log = logging.getLogger("app.train")


def train(cfg: DictConfig, output_dir: Path) -> float:
    """Check ``cfg`` as the launch check would, then ``run`` it: for callers from Python.

    Logs what the CLI logs, to the console and to ``output_dir/train.log``. Raises
    ``app.checks.ConfigError`` before anything is created when ``cfg`` breaks a rule.
    """
    problems = check_config(cfg)
    if problems:
        raise ConfigError(problems)
    with _logging_like_the_cli(output_dir):
        return run(cfg, output_dir)


@contextlib.contextmanager
def _logging_like_the_cli(output_dir: Path) -> Iterator[None]:
    """The app's log lines on the console and in ``train.log``, as Hydra's job logging writes
    them; nothing is added under Hydra, which does that already."""
    if HydraConfig.initialized():
        yield
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    app_log = logging.getLogger("app")
    handlers: list[logging.Handler] = [logging.FileHandler(output_dir / f"{JOB_NAME}.log")]
    if not logging.getLogger().handlers:  # a notebook or script that set up no logging
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        app_log.addHandler(handler)
    level = app_log.level
    app_log.setLevel(logging.INFO)
    try:
        yield
    finally:
        app_log.setLevel(level)
        for handler in handlers:
            app_log.removeHandler(handler)
            handler.close()


def run(cfg: DictConfig, output_dir: Path) -> float:
    """Fine-tune the model ``cfg`` describes in ``output_dir``, which no other live run may be
    writing in, and no earlier run's artefacts may be left in unless ``trainer.overwrite`` (or
    ``trainer.resume`` continues that run).

    ``cfg`` must be checked already. Returns the best validation accuracy (what a sweeper
    optimises). Among many processes (torchrun, SLURM), rank 0 holds the run dir and decides
    whether the run resumes, and the others follow.
    """
    from app import engine

    device = distributed.device_of(engine.resolve_device(cfg.trainer.device.value))
    main = distributed.ranks().main
    with (
        distributed.process_group(device, cfg.trainer.process_group_timeout_min),
        files.run_lock(str(output_dir)) if main else contextlib.nullcontext(),
    ):
        resume = distributed.decided_by_rank0("run", lambda: _take_run_dir(cfg, output_dir))
        return fit(cfg, output_dir, Path(resume) if resume is not None else None)


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
    return resume


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


def fit(cfg: DictConfig, output_dir: Path, resume: Optional[Path] = None) -> float:
    """The job, top to bottom: config -> data -> model -> optimizer -> resume -> epochs -> artefacts.

    ``resume`` is the checkpoint to continue from (``files.checkpoint_to_resume``).
    """
    import random

    import numpy as np
    import torch
    from hydra.utils import instantiate
    from torch.nn.parallel import DistributedDataParallel

    from app import data, engine, features, loggers, plots
    from app.errors import NonFiniteLoss
    from app.models import ImageClassifier

    t = cfg.trainer
    r = distributed.ranks()  # one process, or one of many (torchrun, SLURM): rank 0 writes the files
    output_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[assignment]
    state = engine.load_checkpoint(str(resume)) if resume is not None else None  # refused before any work
    if t.resume is not None and resume is None:
        log.info("trainer.resume=auto: no %s in %s yet, so the run starts from the beginning", files.LAST, output_dir)
    if t.threads is not None:
        torch.set_num_threads(t.threads)
        log.info("%d torch thread%s", t.threads, "s" if t.threads > 1 else "")
    # Each process draws its own dropout; they all start from rank 0's weights (DDP copies them)
    torch.manual_seed(t.seed + r.rank)
    random.seed(t.seed + r.rank)
    np.random.seed(t.seed + r.rank)
    device = distributed.device_of(engine.resolve_device(t.device.value))
    step = engine.Step(device, engine.resolve_precision(t.precision.value, device), t.channels_last)
    total = lambda values: distributed.sums(values, device)  # noqa: E731 (a pass's sums over every process)

    # Data: each epoch's order is drawn from the seed and the epoch, so a resumed run draws it
    # again; trainer.batch_size is the global batch, each process takes its share of every batch
    splits: data.Splits = instantiate(cfg.dataset, data.preset_for(cfg))  # the weights' preset, if the images follow it
    pin = device.type == "cuda"  # page-locked batches copy to the GPU asynchronously
    batch_size = t.batch_size // r.world  # the launch check keeps it whole
    if t.overfit_batches:  # the first batches, in one order, for training and validation alike
        overfit = min(len(splits.train), t.overfit_batches * t.batch_size)
        train_order = data.EpochOrder(overfit, t.seed, False, r.rank, r.world)
        val_order = data.EpochOrder(overfit, t.seed, False, r.rank, r.world, pad=False)
    else:
        train_order = data.EpochOrder(len(splits.train), t.seed, True, r.rank, r.world)
        val_order = data.EpochOrder(len(splits.val), t.seed, False, r.rank, r.world, pad=False)
    batches_per_epoch = math.ceil(len(train_order) / batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / t.accumulate_batches)

    # Model: the extractor and the head are each built from their own config node
    model = ImageClassifier(instantiate(cfg.feature_extractor), instantiate(cfg.classifier), t.freeze_extractor).to(
        device
    )
    model.to(memory_format=step.memory_format)
    # Among processes, DDP averages the gradients; ``model`` stays the one checkpoints hold
    parallel = DistributedDataParallel(model, [device] if device.type == "cuda" else None) if r.many else model
    head = [p for p in model.head.parameters() if p.requires_grad]
    body = [p for p in model.extractor.parameters() if p.requires_grad]  # none when frozen
    # The head's group first: its lr is optimizer.lr, the one metrics.csv and the loggers show.
    groups = [{"params": head}] + ([{"params": body, "lr": cfg.optimizer.lr * t.extractor_lr_scale}] if body else [])
    optimizer = instantiate(cfg.optimizer)(groups)
    scheduler = instantiate(cfg.scheduler)(optimizer, steps_per_epoch) if cfg.scheduler is not None else None
    ema = engine.exponential_average(model, t.ema_decay) if t.ema_decay is not None else None
    training = engine.Training(optimizer, scheduler, t.accumulate_batches, t.clip_grad_norm, t.label_smoothing, ema)
    log.info(
        "%d train / %d val images%s, %d classes, %s px x %d ch | %.2fM trainable parameters | %s, %s%s",
        train_order.size,
        val_order.size,
        " (the same: trainer.overfit_batches)" if t.overfit_batches else "",
        splits.classes,
        cfg.dataset.image.size,
        cfg.dataset.image.channels,
        sum(p.numel() for p in head + body) / 1e6,
        device,
        step.precision,
        f" | rank {r.rank} of {r.world} processes, {batch_size} images of each batch" if r.many else "",
    )

    # Resume: everything but the random state, which is set last, just before the first step
    done, progress, best, waited = 0, engine.Progress(), {}, 0
    if state is not None:
        engine.restore(state, model, training, step, f"trainer.resume={resume}")
        done, progress, best, waited = (
            state["epoch"],
            engine.Progress(**state["progress"]),
            state["best"],
            state["waited"],
        )
        log.info(
            "resuming %s: %d epochs done%s",
            resume,
            done,
            f", and {progress.batches} batches of epoch {done + 1}" if progress.batches else "",
        )

    # Features: a frozen extractor's, computed once (or read from trainer.feature_cache_dir), stand
    # in for the images, and the model runs its head alone on them; checkpoints hold it whole.
    # Among processes, rank 0 fills the cache and the others read it.
    waited_for = datetime.timedelta(minutes=t.process_group_timeout_min)
    splits = distributed.rank0_first("features", lambda: features.cached(cfg, splits, model, step), waited_for)
    train_loader = data.loader(splits.train, batch_size, train_order, t.num_workers, pin)
    val_loader = data.loader(
        splits.train if t.overfit_batches else splits.val, batch_size, val_order, t.num_workers, pin
    )
    if r.main:
        files.write_atomically(output_dir / files.CONFIG, lambda tmp: OmegaConf.save(cfg, tmp, resolve=True))
    forward = engine.compiled(parallel, next(iter(train_loader))[0], step) if t.compile else parallel
    # Validation runs on each process's share of the split, unpadded, and adds the sums up; the
    # module DDP wraps validates (DDP's forward would wait on the others at every batch)
    validation = model if r.many else forward
    metrics = engine.MetricsLog(
        output_dir / files.METRICS,
        engine.METRICS_FIELDS + (engine.EMA_FIELDS if ema else []),
        keep=done,
        earlier=resume.parent.parent / files.METRICS if resume is not None else None,
        write=r.main,
    )
    logger: loggers.Logger = (
        instantiate(cfg.logger)(output_dir, training.steps) if r.main else loggers.Logger(output_dir)
    )
    training.on_step = lambda n, loss, lr: logger.step(n, loss.item(), lr) if logger.wants_step(n) else None  # noqa: E731
    if t.profile_steps and r.main:
        training.profiler = engine.StepProfiler(t.profile_steps, output_dir / files.PROFILE, device)
    if state is not None:  # each process's own; one the stopped run did not have draws a stream of its own
        saved = state.get("rng_ranks") or [state["rng"]]
        if r.rank < len(saved):
            engine.set_rng_state(saved[r.rank])
        else:
            torch.manual_seed(t.seed + r.rank + training.steps)

    lr = 0.0  # the lr each epoch starts with (its metrics row shows it)

    def save(name: str, epoch: int, partial: engine.Progress) -> None:
        """``checkpoints/<name>`` from rank 0, with every process's random state (all call it)."""
        rngs = distributed.gathered(engine.rng_state())
        if r.main:
            engine.save_checkpoint(
                checkpoints / name,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": step.scaler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "epoch": epoch,
                    "steps": training.steps,
                    "progress": dataclasses.asdict(partial),
                    "epoch_lr": lr,
                    "best": best,
                    "waited": waited,
                    "rng": rngs[0],
                    "config": config,
                    "classes": splits.names,
                    **({"rng_ranks": rngs} if r.many else {}),
                },
            )

    def stopped(stop: engine.GracefulStop, where: str) -> Stopped:
        signum = stop.requested or signal.SIGTERM
        return Stopped(
            signum,
            (
                f"{signal.Signals(signum).name}: stopped {where}; checkpoints/last.pt holds the run so far. "
                f"To resume: {resume_command(output_dir)}"
            ),
        )

    # Epochs: train, validate, log one line, keep the last and the best checkpoint
    last: dict[str, Any] = metrics.rows[-1] if metrics.rows else {}
    checkpoints = output_dir / files.CHECKPOINTS
    started, stopped_early = time.perf_counter(), None
    vote = distributed.StopVote(device) if r.many else None  # every process stops at the same step
    stop = engine.GracefulStop(vote)
    with (
        stop.installed(),
        engine.deterministic(t.deterministic),
        contextlib.closing(logger),
        data.workers_released(train_loader, val_loader),
        contextlib.closing(vote) if vote is not None else contextlib.nullcontext(),
    ):
        for epoch in range(done + 1, t.epochs + 1):
            train_order.set_epoch(epoch, skip=progress.batches * t.batch_size)
            lr = state["epoch_lr"] if state is not None and progress.batches else optimizer.param_groups[0]["lr"]
            # a stopped epoch's sums so far are the whole run's: rank 0 carries them on
            start = progress if r.main else engine.Progress(progress.batches, seconds=progress.seconds)
            try:
                train_pass = engine.whole(
                    engine.run_pass(forward, train_loader, step, training, f"epoch {epoch} train", start, stop), total
                )
            except NonFiniteLoss as error:
                kept = f"checkpoints/last.pt holds epoch {done}" if done else "no checkpoint was written"
                raise NonFiniteLoss(f"epoch {epoch}: {error}; the run stopped ({kept})") from None
            progress = engine.Progress()
            if not train_pass.complete:
                save("last.pt", epoch - 1, train_pass.progress)
                raise stopped(stop, f"at epoch {epoch}, batch {train_pass.progress.batches}/{batches_per_epoch}")
            val_pass = engine.whole(engine.run_pass(validation, val_loader, step, None, f"epoch {epoch} val"), total)
            ema_pass = (
                engine.whole(engine.run_pass(ema.module, val_loader, step, None, "EMA val"), total)
                if ema is not None
                else None
            )
            last = engine.epoch_row(epoch, lr, train_pass, val_pass, ema_pass)
            metrics.append(last)
            logger.epoch(training.steps, last)
            improved = not best or last["val_acc"] > float(best["val_acc"])
            best, waited = (last, 0) if improved else (best, waited + 1)
            done = epoch
            save("last.pt", epoch, progress)
            if r.main:
                if improved:  # the same state: a second name for last.pt's file, which the next epoch replaces
                    files.link_atomically(checkpoints / "last.pt", checkpoints / "best.pt")
                plots.curves(metrics.rows, output_dir / files.CURVES, int(best["epoch"]))
            log.info(
                "epoch %d/%d  train loss %.4f acc %.3f | val loss %.4f acc %.3f%s | lr %.3g | %.1fs, %.0f img/s",
                epoch,
                t.epochs,
                last["train_loss"],
                last["train_acc"],
                last["val_loss"],
                last["val_acc"],
                f" | EMA val acc {last['ema_val_acc']:.3f}" if ema is not None else "",
                lr,
                last["seconds"],
                last["images_per_s"],
            )
            if epoch < t.epochs and stop.asked():
                raise stopped(stop, f"after epoch {epoch}")
            if t.early_stopping_patience is not None and waited >= t.early_stopping_patience:
                stopped_early = epoch
                log.info("early stopping: val acc has not improved for %d epochs", waited)
                break
    if training.profiler is not None:
        training.profiler.close()  # a run shorter than trainer.profile_steps: what it took

    if r.main:
        engine.save_json(
            output_dir / files.SUMMARY,
            {
                "final": last,
                "best": best,
                "stopped_early": stopped_early,
                "seconds": round(time.perf_counter() - started, 3),
                "tags": list(cfg.get("tags") or []),
            },
        )
    log.info("best val acc %.3f at epoch %d; artefacts in %s", float(best["val_acc"]), int(best["epoch"]), output_dir)
    return float(best["val_acc"])


@hydra.main(config_path=None, config_name=CONFIG_NAME, version_base=VERSION_BASE)
def hydra_main(cfg: DictConfig) -> Optional[float]:
    """The job Hydra runs, once per run or sweep point, each checked by ``main`` already.

    Returns the best val acc, or, for a failed sweep job, None (see ``FAILED_JOB_VALUE``).
    """
    hydra_config = HydraConfig.get()
    output_dir = Path(hydra_config.runtime.output_dir)
    distributed.from_submitit(str(hydra_config.launcher.get("_target_", "")))  # SLURM's ranks, as torchrun's
    main = distributed.ranks().main
    distributed.log_per_rank(str(output_dir), JOB_NAME)  # train.rank1.log, ...
    absolute_paths(cfg, hydra_config.runtime.cwd)  # the run dir may be the working dir now
    share = cores_per_job(hydra_config.launcher, os.cpu_count() or 1)
    if share is not None:  # jobs side by side: 2 joblib jobs on 2 cores get a thread each, not 2
        cfg.trainer.threads = cfg.trainer.threads or share
        if cfg.trainer.num_workers is None:  # loky's workers cannot start DataLoader workers either
            cfg.trainer.num_workers = 0
    started = time.perf_counter()

    def record(status: str, **more: str) -> None:
        if main:
            record_status(output_dir, status, time.perf_counter() - started, **more)

    if main:
        (output_dir / files.STATUS).unlink(missing_ok=True)  # an earlier job's, until this one ends
    try:
        best = run(cfg, output_dir)
    except RankZeroFailed as error:  # rank 0 tells why, on the console and in train.log
        log.warning("%s: this process stops too", error)
        sys.exit(1)
    except Exception as error:
        if isinstance(error, Stopped):
            log.warning("%s", error)
            record("stopped", error=str(error).splitlines()[0].partition(";")[0])
            sys.exit(128 + error.signum)  # 130 for SIGINT, 143 for SIGTERM: a sweep stops too
        paragraph = failure(error)
        record(
            "failed",
            error=paragraph.splitlines()[0].removeprefix("The run failed: "),
            hint=paragraph.splitlines()[-1].strip().removeprefix("hint: "),
        )
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", paragraph)  # on the console and in the run's log
        if hydra_config.mode == RunMode.MULTIRUN:
            return FAILED_JOB_VALUE  # the other points go on; main() exits 1 at the end
        sys.exit(1)
    record("completed")
    return best


def main() -> None:
    """``python -m app.train`` and ``app-train``: check every run or sweep point, then launch;
    a sweep in which a job failed exits 1 once every job has ended."""
    with launch.shared_config_store():
        multirun, main_rank = False, distributed.ranks().main  # rank 0, or the one process
        command: Optional[launch.Command] = None
        try:
            parsed = command = launch.parse_command(sys.argv[1:])
            multirun = parsed.multirun and not parsed.prints_only
            # Under torchrun rank 0 alone checks: the others wait for its word
            points, problems = launch.check_command(parsed) if main_rank else (1, [])
        except ConfigError as error:
            points, problems = error.points, error.problems
        if problems and main_rank:
            launch.report(problems, points)
        if distributed.ranks().many:
            _as_rank0_says(None if problems else command)
        elif problems or command is None:
            sys.exit(1)
        elif launch.launched_elsewhere(command):  # each task may resolve ${now:...} on its own
            _run_with(command, launch.pinned_dirs(command))
        sweeps = len(summary.finished)
        try:
            hydra_main()
        except KeyboardInterrupt as error:  # a second signal (app.engine.Interrupted), or one before the run
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            sys.stderr.write("Interrupted: the run stopped at once; checkpoints/last.pt holds its last saved state.\n")
            sys.exit(128 + getattr(error, "signum", signal.SIGINT))
        rows = summary.finished[-1] if multirun and len(summary.finished) > sweeps else []
        failed = [row for row in rows if row.status != summary.COMPLETED]
        if failed:
            sys.stderr.write(
                f"{len(failed)} of {len(rows)} sweep jobs did not complete (job "
                f"{', '.join(str(r.job) for r in failed)}): each one's error is in summary.md and its run dir's "
                "train.log; the others ran to the end.\n"
            )
            sys.exit(1)


def _as_rank0_says(command: Optional[launch.Command]) -> None:
    """Under torchrun: every process runs in the run dir rank 0 resolved (ranks above 0 leave
    ``.hydra/`` to it), or exits 1 where rank 0's check refused the command (``None`` there)."""
    main_rank = distributed.ranks().main
    if command is not None and command.prints_only:  # --help, --cfg job: printed once, by rank 0
        if not main_rank:
            sys.exit(0)
        return
    try:
        overrides = distributed.decided_by_rank0("launch", lambda: launch.pinned_dirs(command) if command else None)
    except RankZeroFailed:  # rank 0 shows its own error
        overrides = None
    if overrides is None or command is None:
        sys.exit(1)
    _run_with(command, [*overrides, *([] if main_rank else ["hydra.output_subdir=null"])])


def _run_with(command: launch.Command, overrides: list[str]) -> None:
    """``sys.argv`` with ``overrides`` in place of the command's own (they end the command line)."""
    sys.argv = [*sys.argv[: len(sys.argv) - len(command.overrides)], *overrides]


if __name__ == "__main__":
    main()
