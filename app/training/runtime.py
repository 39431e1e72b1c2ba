"""The runtime every ``hydra_main`` shares (app-train's, app-evaluate's, app-predict's): paths
made absolute, cores shared under a parallel launcher, an error told as one paragraph, the run
dir's ``status.json`` and the value a failed sweep job returns. Torch-free until an error is told."""

import contextlib
import functools
import json
import logging
import os
import signal
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from app import files
from app.checks.built import resolved_as_built
from app.configs import JOB_NAME, JOBLIB_LAUNCHER, RESUME_AUTO, SUBMITIT_LAUNCHERS, path_fields
from app.errors import AppError, RankZeroFailed, RunDirBusy, Stopped, WeightsUnavailable
from app.training import distributed

log = logging.getLogger("app.train")

# What a failed sweep job returns to its sweeper. Not an exception: Hydra's basic sweeper and
# Optuna's re-raise a job's exception once its batch ends, which stops the sweep (and skips the
# summary). Not NaN: hydra-optuna-sweeper 1.3 tells Optuna 2.10 the NaN, which refuses it, and
# then tells the trial FAIL with the same value, which raises and ends the search. Not a low
# accuracy: Optuna would record a completed trial and steer away from a point that merely
# crashed. None makes the sweeper's float() fail inside its own try, so Optuna records the
# trial as FAIL (its sampler ignores it, a resumed study keeps it as failed) and the search goes
# on; the plugin then logs "Failed ... with max_failure_rate" but cannot re-raise: the job
# completed as far as Hydra knows.
FAILED_JOB_VALUE = None


def failure(error: BaseException) -> str:
    """What went wrong inside a job, as one paragraph: what failed and what to do."""
    what, hint = told(error)
    return f"The run failed: {what}\n  hint: {hint}"


def told(error: BaseException) -> tuple[str, str]:
    """(what failed, as ``Type: message`` on one line; the hint) of an error inside a job."""
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__  # what a factory raised, without Hydra's wrapping
    message = str(error)
    if "\nOriginal Traceback" in message:  # torch re-raised it from a loader worker: its last line says what
        message = message.strip().splitlines()[-1].partition(": ")[2]
    return f"{type(error).__name__}: {' '.join(message.split()) or type(error).__name__}", hint_for(error)


def hint_for(error: BaseException) -> str:
    """The app's own errors carry their hint; a few of the libraries' are known by type."""
    if isinstance(error, AppError):
        return error.hint
    if isinstance(error, urllib.error.URLError):  # a download of torchvision's, outside models.downloaded
        return WeightsUnavailable.hint
    # torch raises torch.OutOfMemoryError on CUDA, but a plain RuntimeError from its CPU allocator
    if isinstance(error, MemoryError) or _out_of_memory(error):
        return "lower trainer.batch_size or dataset.image.size, or pick a smaller feature_extractor"
    return AppError.hint


def _out_of_memory(error: BaseException) -> bool:
    import torch

    cpu = isinstance(error, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(error)
    return cpu or isinstance(error, torch.OutOfMemoryError)


# Hydra writes .hydra/ (config.yaml, hydra.yaml, overrides.yaml) into the run dir before the job
# starts, so a job that then found the dir held by a live run had replaced that run's .hydra/
# already. The app's Hydra config has hydra.output_subdir=null instead, and each job writes the
# same three files, as Hydra writes them, once it holds the dir's lock (held_run_dir).
_hydra_files: ContextVar[Optional[dict[str, str]]] = ContextVar("hydra_files", default=None)
# Whether this job has held its run dir: a job refused for a live run's dir writes nothing there
_held: ContextVar[bool] = ContextVar("held", default=False)


def _new_job(cfg: DictConfig) -> None:
    """A job starts: Hydra's files of ``cfg`` as Hydra passed it, kept for ``held_run_dir``; its
    run dir not held yet."""
    _hydra_files.set(hydra_files(cfg))
    _held.set(False)


def hydra_files(cfg: DictConfig) -> dict[str, str]:
    """What Hydra would have written in ``.hydra/`` for the job ``cfg`` (as Hydra passed it)."""
    from hydra.core.hydra_config import HydraConfig

    return {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),  # its node, under "hydra:", as Hydra saves it
        "overrides.yaml": OmegaConf.to_yaml(HydraConfig.get().overrides.task),
    }


@contextlib.contextmanager
def held_run_dir(output_dir: Path) -> Iterator[None]:
    """The run dir's lock, held (``RunDirBusy`` if a live run has it), and only then Hydra's
    files of this job written in it."""
    with files.run_lock(str(output_dir)):
        _held.set(True)
        (output_dir / files.STATUS).unlink(missing_ok=True)  # an earlier job's, until this one ends
        for name, text in (_hydra_files.get() or {}).items():
            files.write_atomically(output_dir / files.HYDRA / name, functools.partial(Path.write_text, data=text))
        yield


def run_job(job: Callable[[DictConfig, Path], Any], cfg: DictConfig, job_log: logging.Logger) -> None:
    """``job(cfg, run dir)`` for ``app-evaluate`` and ``app-predict``, under Hydra: paths made
    absolute, the run dir's lock held, and an error told as one paragraph (exit 1)."""
    from hydra.core.hydra_config import HydraConfig

    _new_job(cfg)
    hydra_config = HydraConfig.get()
    absolute_paths(cfg, hydra_config.runtime.cwd)
    output_dir = Path(hydra_config.runtime.output_dir)
    try:
        with held_run_dir(output_dir):
            files.mark_run_dir(str(output_dir), str(hydra_config.job.name))
            job(resolved_as_built(cfg), output_dir)
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _leave_alone(output_dir, error)
        job_log.error("%s", failure(error))
        sys.exit(1)


def _leave_alone(output_dir: Path, error: Exception) -> None:
    """A job refused for a dir a live run holds logs to the console only: Hydra's job logging
    opened the dir's log file before the job started, and it is that run's log."""
    if _held.get() or not isinstance(error, RunDirBusy):
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == output_dir.resolve():
            root.removeHandler(handler)
            handler.close()


def training_job(run: Callable[[DictConfig, Path], float], cfg: DictConfig) -> Optional[float]:
    """``run(cfg, run dir)`` as app-train's ``hydra_main`` runs it: SLURM's ranks exported, each
    rank's log, paths made absolute, cores shared with the jobs beside it, ``status.json``, and
    an error told as one paragraph; a failed sweep job returns ``FAILED_JOB_VALUE``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    _new_job(cfg)  # before anything changes cfg: as Hydra would have written it
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
        if main and _held.get():
            record_status(output_dir, status, time.perf_counter() - started, **more)

    try:
        best = run(cfg, output_dir)
    except RankZeroFailed as error:  # rank 0 tells why, on the console and in train.log
        log.warning("%s: this process stops too", error)
        sys.exit(1)
    except Stopped as error:
        log.warning("%s", error)
        record("stopped", error=str(error).splitlines()[0].partition(";")[0])
        sys.exit(128 + error.signum)  # 130 for SIGINT, 143 for SIGTERM: a sweep stops too
    except KeyboardInterrupt as error:  # a second signal (Interrupted), or one before the run's handlers
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        said = interrupted(output_dir)
        record("stopped", error=said)
        if main:
            sys.stderr.write(f"Interrupted: {said}.\n")
        sys.exit(128 + getattr(error, "signum", signal.SIGINT))
    except Exception as error:
        what, hint = told(error)
        record("failed", error=what, hint=hint)
        distributed.tell_torchrun(f"the run failed: {what} (rank {distributed.ranks().rank}'s log says more)")
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _leave_alone(output_dir, error)
        log.error("%s", failure(error))  # on the console and in the run's log
        if hydra_config.mode == RunMode.MULTIRUN:
            return FAILED_JOB_VALUE  # the other points go on; main() exits 1 at the end
        sys.exit(1)
    record("completed")
    return best


def interrupted(output_dir: Path) -> str:
    """What a run stopped at once leaves, as it is when this is said: its last saved state, or none."""
    last = output_dir / files.LAST
    if last.is_file():
        return f"the run stopped at once; {last} holds its last saved state (trainer.resume=auto continues it)"
    return f"the run stopped at once, before it saved any state (no {files.LAST} in {output_dir}): run it again"


def record_status(output_dir: Path, status: str, seconds: float, **more: str) -> None:
    """``status.json`` in the run dir: how its job ended (``app.summary`` reads it)."""
    data = {"status": status, "seconds": round(seconds, 3), **more}
    try:
        files.write_atomically(output_dir / files.STATUS, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))
    except OSError as error:  # a run dir that cannot be written: the log says why the job ended
        log.warning("could not write %s in %s: %s", files.STATUS, output_dir, error)


def cores_per_job(launcher: Any, cores: int) -> Optional[int]:
    """The cores each job may use under a launcher that runs jobs side by side (None: one at a
    time, Hydra's basic launcher): joblib's ``n_jobs`` share the machine's cores (-1: one job a
    core, as joblib counts), a submitit job has its ``cpus_per_task`` (null: 1, SLURM's default)."""
    target = str(launcher.get("_target_", "")) if launcher is not None else ""
    if target == JOBLIB_LAUNCHER:
        n_jobs = int(launcher.get("n_jobs") or -1)
        parallel = n_jobs if n_jobs > 0 else max(cores + 1 + n_jobs, 1)
        return max(cores // parallel, 1)
    if target in SUBMITIT_LAUNCHERS:
        return int(launcher.get("cpus_per_task") or 1)
    return None


def absolute_paths(cfg: DictConfig, launch_dir: str) -> None:
    """Make every relative path of ``cfg`` absolute from ``launch_dir``, where the launch check
    read it, so that a job that runs elsewhere (``hydra.job.chdir=true``) opens the same file."""
    for node in _typed_nodes(cfg):
        for name in path_fields(OmegaConf.get_type(node)):  # type: ignore[arg-type]
            value = node.get(name)
            if isinstance(value, str) and not os.path.isabs(os.path.expanduser(value)) and value != RESUME_AUTO:
                node[name] = os.path.join(launch_dir, value)
            elif isinstance(value, str) and value.startswith("~"):
                node[name] = os.path.expanduser(value)


def _typed_nodes(node: Any) -> Iterator[DictConfig]:
    import dataclasses

    if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing():
        if dataclasses.is_dataclass(OmegaConf.get_type(node)):
            yield node
        for key in node.keys():
            yield from _typed_nodes(node._get_node(key))
