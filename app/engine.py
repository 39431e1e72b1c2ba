"""One pass over a loader (training or evaluation) and the files a run leaves behind."""

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

METRICS_FIELDS = [
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"
]


@dataclass
class PassResult:
    loss: float
    acc: float
    images: int
    seconds: float


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():  # the launch check refuses it first
        raise RuntimeError("trainer.device=cuda, but torch sees no CUDA device: use auto or cpu")
    return torch.device(name)


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Step:
    """How each batch is computed: where, in which precision and memory format."""

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        self.dtype = AUTOCAST_DTYPES[self.precision]
        # float16 gradients underflow without scaling; bfloat16 and float32 need none
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format


def run_pass(
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]],
    step: Step,
    optimizer: Optional[torch.optim.Optimizer] = None,
    desc: str = "",
) -> PassResult:
    """Train on every batch when given an optimizer, else evaluate without gradients."""
    training = optimizer is not None
    device = step.device
    model.train(training)
    loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per step
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    scaling = step.scaler.is_enabled()
    start = time.perf_counter()
    with torch.set_grad_enabled(training):
        for images, labels in tqdm(loader, desc=desc, leave=False, disable=None, unit="batch"):
            images = images.to(device, non_blocking=True, memory_format=step.memory_format)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=step.dtype, enabled=step.dtype is not None):
                logits = model(images)
                loss = nn.functional.cross_entropy(logits, labels)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                if scaling:
                    step.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                    step.scaler.step(optimizer)
                    step.scaler.update()
                else:  # fp32 and bf16 need no scaler: skip its calls, a few us a step
                    loss.backward()  # type: ignore[no-untyped-call]
                    optimizer.step()
            # Each op here is a kernel launch per step, which a fast GPU waits on: keep them few.
            loss_sum.add_(loss.detach(), alpha=len(labels))
            correct.add_((logits.argmax(1) == labels).sum())
            seen += len(labels)
    seconds = time.perf_counter() - start
    return PassResult(loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1), seen, seconds)


def write_atomically(path: Path, write: Any) -> None:
    """Write through a temporary file of this process's own, flushed to disk before it replaces
    ``path``, so that no interruption (a kill, a power cut) leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    with tmp.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, config: dict[str, Any]
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "config": config,
    }
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def save_json(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


class MetricsLog:
    """``metrics.csv``: one row per epoch, flushed as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("w", newline="") as f:
            csv.DictWriter(f, METRICS_FIELDS).writeheader()

    def append(self, row: dict[str, Any]) -> None:
        """One whole line, on disk before the epoch counts as done."""
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, METRICS_FIELDS).writerow(row)
            f.flush()
            os.fsync(f.fileno())


def epoch_row(epoch: int, lr: float, train: PassResult, val: PassResult) -> dict[str, Any]:
    seconds = train.seconds + val.seconds
    return {
        "epoch": epoch,
        "train_loss": round(train.loss, 6),
        "train_acc": round(train.acc, 6),
        "val_loss": round(val.loss, 6),
        "val_acc": round(val.acc, 6),
        "lr": lr,
        "seconds": round(seconds, 3),
        "images_per_s": round(train.images / train.seconds, 1) if train.seconds else 0.0,
    }

