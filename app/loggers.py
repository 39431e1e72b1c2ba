"""What a run shows people: ``curves.png`` in every run dir, and the ``logger`` group's options.

Every run keeps ``metrics.csv`` (``app.engine.MetricsLog``), which resume, the summary and
``curves.png`` read; a logger adds a view of the same figures.
"""

from pathlib import Path
from typing import Any, Optional

from app.engine import write_atomically
from app.folders import TENSORBOARD


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


def plot_curves(rows: list[dict[str, Any]], path: Path, best_epoch: Optional[int]) -> None:
    """Loss and accuracy per epoch, train against val (and the EMA's val), best epoch marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    epochs = [int(row["epoch"]) for row in rows]
    figure = Figure(figsize=(10, 4))
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.95, wspace=0.25)  # a layout engine costs 2x
    FigureCanvasAgg(figure)
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "acc")):
        for split in ("train", "val", "ema_val"):
            values = [float(row[f"{split}_{metric}"]) for row in rows if row.get(f"{split}_{metric}") not in (None, "")]
            if values:
                axes.plot(epochs[: len(values)], values, marker="o", label=split.replace("_", " "))
        if best_epoch is not None:
            axes.axvline(best_epoch, color="grey", linestyle="--", label=f"best (epoch {best_epoch})")
        axes.set_xlabel("epoch")
        axes.set_ylabel("accuracy" if metric == "acc" else "cross-entropy loss")
        axes.grid(alpha=0.3)
        axes.legend()
    write_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=80))
