"""The baseline: a minimal hand-written PyTorch fine-tuning loop, no Hydra, no app code.

It does the app's default job the way one would write it by hand — the same digits, split and
standardisation, the same AlexNet (or ResNet-18) body and small head, Adam, the same batch size
and precision — so that ``throughput.py`` can run it in-process against the app's loop, and run
it as a whole process (``python benchmarks/plain_loop.py``) to compare peak memory.
"""

import argparse
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
Batches = DataLoader[tuple[torch.Tensor, ...]]


# The app's fixed statistics of the digits (app.configs.DigitsConfig.statistics: all 1,797 of
# scikit-learn's 8x8 digits, pixel / 16), not a split's own: a picture is then standardised
# without a training split, and throughput.py's check that both sides train on identical
# images (torch.equal) holds. With the split's own statistics (0.30/0.37 vs this split's) the
# images differed by up to 0.19.
DIGITS_MEAN, DIGITS_STD = 0.3053, 0.3760


def load_digits(
    size: int,
    seed: int = 0,
    train_size: Optional[int] = None,
    val_fraction: float = 0.2,
    val_size: Optional[int] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's digits resized to ``size`` px and standardised: ``[N, 1, size, size]`` splits."""
    from sklearn.datasets import load_digits as load

    bunch = load()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(len(order) * val_fraction))  # at least one validation image
    val_idx, train_idx = order[:n_val][:val_size], order[n_val:][:train_size]
    images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images - DIGITS_MEAN) / DIGITS_STD
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]


def loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool, pin: bool) -> Batches:
    # Grey digits on an RGB backbone: an expanded view, so the copy to 3 channels is per batch.
    dataset = TensorDataset(images.expand(-1, 3, -1, -1), labels)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, pin_memory=pin)


def build_model(extractor: str, classes: int = 10) -> tuple[nn.Module, nn.Module]:
    """The body and the small head: ``Linear(width, 100) -> ReLU -> Linear(100, classes)``."""
    import torchvision

    if extractor == "alexnet":
        net = torchvision.models.alexnet()
        body: nn.Module = nn.Sequential(net.features, net.avgpool, nn.Flatten(1))
        width = 256 * 6 * 6
    else:
        body = torchvision.models.resnet18()
        body.fc = nn.Identity()
        width = 512
    return body, nn.Sequential(nn.Linear(width, 100), nn.ReLU(), nn.Linear(100, classes))


def train_pass(
    model: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, ...]],
    device: torch.device,
    dtype: Optional[torch.dtype] = None,
    memory_format: torch.memory_format = torch.contiguous_format,
    scaler: Optional[torch.amp.GradScaler] = None,
) -> int:
    """One epoch of training; returns the images seen, after waiting for the device."""
    total, seen = torch.zeros((), device=device), 0
    for images, labels in batches:
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        if scaler is None:
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        else:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optimizer)
            scaler.update()
        total += loss.detach()
        seen += len(labels)
    total.item()
    return seen


class Plain:
    """Model, optimizer and per-batch settings of the hand-written loop."""

    def __init__(
        self,
        extractor: str,
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = False,
        freeze: bool = False,
    ) -> None:
        self.body, self.head = build_model(extractor)
        self.freeze, self.device, self.dtype = freeze, device, DTYPES[precision]
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self.body.to(device).to(memory_format=self.format)
        self.head.to(device)
        if freeze:
            self.body.requires_grad_(False)
        params = self.head.parameters() if freeze else [*self.body.parameters(), *self.head.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=1e-4)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        if self.freeze:
            with torch.no_grad():
                features = self.body(images)
            out: torch.Tensor = self.head(features)
            return out
        out = self.head(self.body(images))
        return out

    def train_pass(self, batches: Iterable[tuple[torch.Tensor, ...]]) -> int:
        self.body.train(not self.freeze)
        self.head.train()
        return train_pass(self.logits, self.optimizer, batches, self.device, self.dtype, self.format, self.scaler)

    @torch.no_grad()
    def accuracy(self, batches: Batches) -> float:
        self.body.eval()
        self.head.eval()
        correct, seen = 0, 0
        for images, labels in batches:
            images = images.to(self.device, non_blocking=True, memory_format=self.format)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                correct += int((self.logits(images).argmax(1).cpu() == labels).sum())
            seen += len(labels)
        return correct / max(seen, 1)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--extractor", choices=["alexnet", "resnet18"], default="alexnet")
    parser.add_argument("--size", type=int, default=124)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--val-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--freeze-extractor", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=list(DTYPES), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="where the checkpoint goes (default: a temporary dir, removed)")
    return parser


def main() -> None:
    """The whole job as one process: data, model, epochs, a checkpoint each epoch."""
    args = get_args_parser().parse_args()
    if args.out is not None:
        run(args, args.out)
        return
    with tempfile.TemporaryDirectory() as out:  # not a folder in whatever the cwd is
        run(args, Path(out))


def run(args: argparse.Namespace, out: Path) -> None:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train_x, train_y, val_x, val_y = load_digits(args.size, args.seed, args.train_size, val_size=args.val_size)
    pin = device.type == "cuda"
    train = loader(train_x, train_y, args.batch_size, True, pin)
    val = loader(val_x, val_y, args.batch_size, False, pin)
    plain = Plain(args.extractor, device, args.precision, args.channels_last, args.freeze_extractor)
    out.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        seen = plain.train_pass(train)
        acc = plain.accuracy(val)
        seconds = time.perf_counter() - start
        print(f"epoch {epoch}: val acc {acc:.3f}, {seconds:.1f}s, {seen / seconds:.0f} img/s")
        state = {
            "body": plain.body.state_dict(),
            "head": plain.head.state_dict(),
            "optimizer": plain.optimizer.state_dict(),
            "epoch": epoch,
        }
        torch.save(state, out / "last.pt")


if __name__ == "__main__":
    main()
