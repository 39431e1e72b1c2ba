"""What a run records: ``metrics.csv`` (one row per epoch), and JSON files written whole."""

import csv
import io
import json
from pathlib import Path
from typing import Any, Optional

from app.errors import FileRefused
from app.files import append_whole, read_bounded, write_atomically
from app.training.engine import PassResult

METRICS_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


EMA_FIELDS = ["ema_val_loss", "ema_val_acc"]


TIMING_FIELDS = ("seconds", "images_per_s")  # the columns two identical runs may differ in
# The largest metrics.csv a resumed run reads back: 64 MiB, about 500,000 epochs' rows of 130 bytes.
MAX_METRICS_BYTES = 64 * 2**20


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
            self.rows = [row for row in _read(source) if row["epoch"] <= keep]

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
        line = io.StringIO()
        csv.DictWriter(line, self.fields, extrasaction="ignore").writerow(row)
        append_whole(self.path, line.getvalue())  # a full disk: the file as it was, and a DiskFull
        self.rows.append(row)


def _read(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.csv`` the app wrote: ``FileRefused`` for one it did not write."""
    try:
        rows = [
            {k: _number(v) for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(read_bounded(path, MAX_METRICS_BYTES).decode()))
        ]
    except (UnicodeDecodeError, csv.Error) as error:
        raise FileRefused(f"{path}: not a metrics.csv this app wrote ({error})") from None
    if any(not isinstance(row.get("epoch"), int) for row in rows):
        raise FileRefused(f"{path}: a row without a whole epoch number, not a metrics.csv this app wrote")
    return rows


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
