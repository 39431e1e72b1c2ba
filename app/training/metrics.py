"""What a run records: ``metrics.csv`` (one row per epoch), and JSON files written whole."""

import csv
import json
import os
from pathlib import Path
from typing import Any, Optional

from app.files import write_atomically
from app.training.engine import PassResult

METRICS_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


EMA_FIELDS = ["ema_val_loss", "ema_val_acc"]


TIMING_FIELDS = ("seconds", "images_per_s")  # the columns two identical runs may differ in


# ------------------------------------------------------------------------------- metrics
def save_json(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


class MetricsLog:
    """``metrics.csv``: one row per epoch, on disk as it is written; ``rows`` holds them all.

    ``keep`` continues a run: the rows of its first ``keep`` epochs are kept (read from
    ``earlier``, the metrics of the run it continues), any later one is dropped. ``write=False``
    keeps the rows in memory only (the processes other than rank 0).
    """

    def __init__(
        self, path: Path, fields: list[str], keep: int = 0, earlier: Optional[Path] = None, write: bool = True
    ) -> None:
        self.path, self.fields, self.write = path, fields, write
        source = earlier if earlier is not None and earlier.exists() else path
        self.rows: list[dict[str, Any]] = []
        if keep and source is not None and source.exists():
            with source.open(newline="") as f:
                rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
            self.rows = [row for row in rows if row["epoch"] <= keep]

        def rows_to(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fields, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.rows)

        if self.write:
            write_atomically(path, rows_to)

    def append(self, row: dict[str, Any]) -> None:
        """One whole line, on disk before the epoch counts as done."""
        if not self.write:
            self.rows.append(row)
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def epoch_row(
    epoch: int, lr: float, train: PassResult, val: PassResult, ema: Optional[PassResult] = None
) -> dict[str, Any]:
    row = {
        "epoch": epoch,
        "train_loss": round(train.loss, 6),
        "train_acc": round(train.acc, 6),
        "val_loss": round(val.loss, 6),
        "val_acc": round(val.acc, 6),
        "lr": float(f"{lr:.6g}"),
        "seconds": round(train.seconds + val.seconds + (ema.seconds if ema else 0.0), 3),
        "images_per_s": round(train.images / train.seconds, 1) if train.seconds else 0.0,
    }
    if ema is not None:
        row |= {"ema_val_loss": round(ema.loss, 6), "ema_val_acc": round(ema.acc, 6)}
    return row
