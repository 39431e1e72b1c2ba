"""What a run writes in its run dir: ``config.yaml``, ``metrics.csv``, the logger's files,
``checkpoints/``, ``curves.png``, ``profile/`` and ``summary.json``.

Among processes only rank 0 writes, decided once: ``RunFiles(run_dir, write=ranks.main)``. The
others keep in memory what the run reads back (the metrics rows) and write nothing.
"""

import contextlib
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Optional

from hydra.utils import instantiate
from omegaconf import OmegaConf

from app import files, loggers, plots
from app.training.build import Job
from app.training.checkpoints import save_checkpoint
from app.training.engine import StepProfiler
from app.training.metrics import EMA_FIELDS, METRICS_FIELDS, MetricsLog, save_json

log = logging.getLogger("app.train")


class RunFiles(contextlib.AbstractContextManager["RunFiles"]):
    """The run dir's files; ``write=False`` (ranks other than 0) writes none of them."""

    def __init__(self, run_dir: Path, write: bool = True) -> None:
        self.dir, self.write = run_dir, write
        self.metrics: Optional[MetricsLog] = None
        self.logger = loggers.Logger(run_dir)

    def open(self, job: Job, kept_epochs: int, resumed: Optional[Path]) -> None:
        """``config.yaml``; ``metrics.csv`` with the first ``kept_epochs`` rows of the run that
        ``resumed`` (a checkpoint) continues; the logger, from the step the run is at; the profiler."""
        cfg, training = job.cfg, job.training
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.write:
            files.write_atomically(self.dir / files.CONFIG, lambda tmp: OmegaConf.save(cfg, tmp, resolve=True))
        earlier = resumed.parent.parent / files.METRICS if resumed is not None else None
        fields = METRICS_FIELDS + (EMA_FIELDS if training.ema is not None else [])
        self.metrics = MetricsLog(self.dir / files.METRICS, fields, kept_epochs, earlier, write=self.write)
        if self.write:
            self.logger = instantiate(cfg.logger)(self.dir, training.steps)
        logger = self.logger
        training.on_step = lambda n, loss, lr: logger.step(n, loss.item(), lr) if logger.wants_step(n) else None
        if cfg.trainer.profile_steps and self.write:
            training.profiler = StepProfiler(cfg.trainer.profile_steps, self.dir / files.PROFILE, job.step.device)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.metrics.rows if self.metrics is not None else []

    def record(self, row: dict[str, Any], steps: int) -> None:
        """An epoch's row: in ``metrics.csv`` before the checkpoint that counts the epoch done."""
        assert self.metrics is not None, "RunFiles.open first"
        self.metrics.append(row)
        self.logger.epoch(steps, row)

    def checkpoint(self, name: str, state: dict[str, Any]) -> None:
        if self.write:
            save_checkpoint(self.dir / files.CHECKPOINTS / name, state)

    def kept(self, improved: bool, best_epoch: int) -> None:
        """After an epoch's ``last.pt``: ``best.pt`` when it improved, and ``curves.png``."""
        if not self.write:
            return
        checkpoints = self.dir / files.CHECKPOINTS
        if improved:  # the same state: a second name for last.pt's file, which the next epoch replaces
            files.link_atomically(checkpoints / "last.pt", checkpoints / "best.pt")
        plots.curves(self.rows, self.dir / files.CURVES, best_epoch)

    def summary(self, data: dict[str, Any]) -> None:
        if self.write:
            save_json(self.dir / files.SUMMARY, data)

    def __exit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.logger.close()
