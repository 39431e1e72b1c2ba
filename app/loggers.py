"""The ``logger`` group's options: where a run's figures go besides ``metrics.csv`` and ``curves.png``.

Every run keeps ``metrics.csv`` (``app.training.metrics.MetricsLog``), which resume, the summary and
``curves.png`` (``app.plots``) read; a logger adds a view of the same figures.
"""

from pathlib import Path
from typing import Any

from app.files import TENSORBOARD


class Logger:
    """``logger=csv``: ``metrics.csv`` and ``curves.png`` only."""

    def __init__(self, run_dir: Path, resume_step: int = 0, /) -> None:
        self.run_dir = run_dir

    def wants_step(self, step: int) -> bool:
        """Whether ``step`` gets its own figures (reading them waits for the device)."""
        return False

    def step(self, step: int, loss: float, lr: float) -> None:
        """The training loss and lr after optimizer step ``step``."""

    def epoch(self, step: int, row: dict[str, Any]) -> None:
        """An epoch's row of ``metrics.csv``, at the optimizer step it ended on."""

    def close(self) -> None:
        """Flush and let go of what the logger holds open."""


class TensorBoardLogger(Logger):
    """``logger=tensorboard``: event files in ``<run dir>/tensorboard``, stepped by optimizer
    steps; a resumed run drops the events after its checkpoint (``purge_step``)."""

    def __init__(self, run_dir: Path, resume_step: int = 0, /, every_n_steps: int = 10) -> None:
        super().__init__(run_dir, resume_step)
        from torch.utils.tensorboard import SummaryWriter

        self.every_n_steps = every_n_steps
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD), purge_step=resume_step or None)

    def wants_step(self, step: int) -> bool:
        return step % self.every_n_steps == 0

    def step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("step/train_loss", loss, step)
        self.writer.add_scalar("step/lr", lr, step)

    def epoch(self, step: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if key != "epoch" and value not in ("", None):
                self.writer.add_scalar(f"epoch/{key}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
