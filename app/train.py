"""The training command: ``python -m app.train [overrides]`` or ``app-train [overrides]``.

``main`` checks every run or sweep point (torch-free), then hands the command line to Hydra,
whose ``hydra_main`` runs each job: ``app.training.fit.run`` builds it and ``fit`` runs it.
``train`` does the same for a config built in Python. Registrations live in other modules
(``python -m app.train`` imports this file as ``__main__``).
"""

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from app import launch, summary
from app.checks import ConfigError, checked
from app.configs import CONFIG_NAME, JOB_NAME, VERSION_BASE, MainConfig
from app.errors import RankZeroFailed
from app.training import distributed, runtime

log = logging.getLogger("app.train")


def train(cfg: MainConfig | DictConfig, output_dir: str | os.PathLike[str]) -> float:
    """Check ``cfg`` (a ``MainConfig`` built in Python, or ``compose_config``'s ``DictConfig``)
    as the launch check would, then ``run`` it, in ``output_dir``: for callers from Python.

    Logs what the CLI logs, to the console and to ``output_dir/train.log``. Raises
    ``app.checks.ConfigError`` before anything is created when ``cfg`` breaks a rule.
    """
    node, output = checked(cfg), Path(output_dir)
    with _logging_like_the_cli(output):
        return run(node, output)


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
    """``app.training.fit.run``: the checked job in its run dir (imported when a job runs, so that
    the launch check never imports torch)."""
    from app.training import fit

    return fit.run(cfg, output_dir)


@hydra.main(config_path=None, config_name=CONFIG_NAME, version_base=VERSION_BASE)
def hydra_main(cfg: DictConfig) -> Optional[float]:
    """The job Hydra runs, once per run or sweep point, each checked by ``main`` already.

    Returns the best val acc, or, for a failed sweep job, None (``runtime.FAILED_JOB_VALUE``).
    """
    return runtime.training_job(run, cfg)


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
            given = "; ".join(dict.fromkeys(p.render().splitlines()[0].partition("   [")[0] for p in problems))
            distributed.tell_torchrun(
                f"app-train refused the command line, nothing was run (the report above): {given}"
            )
        if distributed.ranks().many:
            _as_rank0_says(None if problems else command)
        elif problems or command is None:
            sys.exit(1)
        elif launch.launched_elsewhere(command):  # each task may resolve ${now:...} on its own
            _run_with(command, launch.pinned_dirs(command))
        sweeps = len(summary.finished)
        try:
            hydra_main()
        except KeyboardInterrupt as error:  # outside a job: a job says itself what it leaves
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            sys.stderr.write("Interrupted outside a job (Hydra's setup, or between sweep jobs): none was running.\n")
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
        if not main_rank:
            distributed.tell_torchrun("rank 0 refused the command line, or failed before the run: it says why")
        sys.exit(1)
    _run_with(command, [*overrides, *([] if main_rank else ["hydra.output_subdir=null"])])


def _run_with(command: launch.Command, overrides: list[str]) -> None:
    """``sys.argv`` with ``overrides`` in place of the command's own (they end the command line)."""
    sys.argv = [*sys.argv[: len(sys.argv) - len(command.overrides)], *overrides]


if __name__ == "__main__":
    main()
