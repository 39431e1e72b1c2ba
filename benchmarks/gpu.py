"""The GPU tier in one run, one table: what a short loan of a GPU should measure.

* *training*: images/s of the app's own training pass (``app.training.build.build`` then
  ``engine.run_pass``, as ``fit`` runs it; no feature cache) over precision x channels_last, plus
  ``torch.compile`` at the fastest eager setting, for the default job (AlexNet on digits, 124 px,
  batch 32, the whole model trained) and for ResNet-50 at 224 px (batch 64, the whole model);
* *loader*: 224-px batches from a folder of 375x500 JPEGs on the device: the app's training loader
  (CPU decode in worker processes, pinned memory) against ``torchvision.io.decode_jpeg`` on the
  GPU (files read in this process, decoded, resized, cropped and standardised there); each
  against what ResNet-50 consumes in bf16, so a starved GPU shows;
* *ddp*: with 2 or more GPUs, ``benchmarks/ddp.py`` over 1 and all of them (nccl).

A setting that fails is a row saying so, with its error; the exit status is then 1.

    bash benchmarks/gpu.sh                               # on a GPU machine: 2-4 minutes
    python benchmarks/gpu.py --device cpu --smoke        # the same code at tiny sizes (a test runs it)
"""

import argparse
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ddp
import torch
from data import write_photographs
from throughput import machine

from app import factories
from app.launch import compose_config
from app.training import engine
from app.training.build import build
from app.training.distributed import Ranks
from app.training.loaders import EpochOrder, loader, workers_released

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Model:
    """One job to time: its name in the table and the overrides that make it."""

    name: str
    overrides: tuple[str, ...]
    batch_size: int
    batches: int  # a timed pass


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no compile: checks the script, not speed")
    parser.add_argument("--images", type=int, default=1024, help="JPEGs the loader reads (default 1024)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "gpu.json")
    return parser


def models(smoke: bool) -> list[Model]:
    if smoke:  # AlexNet needs 63 px at least
        return [
            Model("default job", ("dataset.image.size=64",), 4, 2),
            Model("resnet50", ("feature_extractor=resnet50", "dataset=fake", "dataset.image.size=64"), 4, 2),
        ]
    return [
        Model("default job", (), 32, 20),
        Model("resnet50 224px", ("feature_extractor=resnet50", "dataset=fake", "dataset.image.size=224"), 64, 10),
    ]


def settings(device: str, smoke: bool) -> list[tuple[str, bool]]:
    """(precision, channels_last): every eager pair (compile is added at the best of them by
    ``training`` once it is known). fp16 and channels_last are GPU settings."""
    precisions = ["fp32", "bf16", "fp16"] if device == "cuda" else ["fp32", "bf16"]
    layouts = [False, True] if device == "cuda" or not smoke else [False]
    return [(p, cl) for p in precisions for cl in layouts]


def timed_training(model: Model, device: str, precision: str, channels_last: bool, compiled: bool) -> float:
    """Images/s of the second of two training passes (the first warms up, compiles, autotunes)."""
    cfg = compose_config(
        [
            *model.overrides,
            f"trainer.batch_size={model.batch_size}",
            f"dataset.train_size={model.batch_size * model.batches}",
            f"trainer.device={device}",
            f"trainer.precision={precision}",
            f"trainer.channels_last={str(channels_last).lower()}",
            f"trainer.compile={str(compiled).lower()}",
            "trainer.feature_cache=false",
        ]
    )
    job = build(cfg, Ranks(), engine.resolve_device(device))
    rates = []
    with workers_released(job.train_loader, job.val_loader):  # persistent workers, as fit's
        for _ in range(2):
            synchronize(device)
            began = time.perf_counter()
            images = engine.run_pass(job.forward, job.train_loader, job.step, job.training).images
            synchronize(device)
            rates.append(images / (time.perf_counter() - began))
    return rates[-1]


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def row(name: str, setting: str, run: Callable[..., float], *args: Any) -> dict[str, Any]:
    """One line of the table: ``run(*args)`` images/s, or the error that stopped it (the others go on)."""
    try:
        return {"what": name, "setting": setting, "images_per_s": round(run(*args), 1)}
    except Exception as error:  # a benchmark reports a setting that fails; the exit status says so
        traceback.print_exc()
        return {"what": name, "setting": setting, "error": f"{type(error).__name__}: {error}"[:200]}


def training(device: str, smoke: bool) -> list[dict[str, Any]]:
    rows = []
    for model in models(smoke):
        eager = {}
        for precision, channels_last in settings(device, smoke):
            label = f"{precision}{' channels_last' if channels_last else ''}"
            rows.append(row(model.name, label, timed_training, model, device, precision, channels_last, False))
            eager[(precision, channels_last)] = rows[-1].get("images_per_s", 0.0)
        if max(eager.values()) > 0 and not smoke:  # compile: ~20-60 s a model on a GPU, so once, at the best
            precision, channels_last = max(eager, key=lambda k: eager[k])
            label = f"{precision}{' channels_last' if channels_last else ''} compile"
            rows.append(row(model.name, label, timed_training, model, device, precision, channels_last, True))
    return rows


def loaders(device: str, images: int, smoke: bool) -> list[dict[str, Any]]:
    """The app's loader (CPU decode in workers) and GPU decode, both ending in device batches."""
    size, batch = (64, 8) if smoke else (224, 64)
    workers = 1 if smoke else min(8, os.cpu_count() or 1)
    target = torch.device(device)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_photographs(root, images)
        overrides = ["dataset=folder", f"dataset.root={root}", "dataset.classes=2", f"dataset.image.size={size}"]
        splits = factories.splits(compose_config([*overrides, "dataset.val_fraction=0.01", f"trainer.device={device}"]))

        def app_loader() -> float:
            batches = loader(splits.train, batch, EpochOrder(len(splits.train), 0, True), workers, device == "cuda")
            with workers_released(batches):
                return passes(lambda: [x.to(target, non_blocking=True) for x, _ in batches], len(splits.train), device)

        files = sorted(str(p) for p in root.rglob("*.jpg"))
        return [
            row("loader", f"app, CPU decode, {workers} workers", app_loader),
            row("loader", f"decode_jpeg on {device}", device_decode, files, size, batch, target),
        ]


def device_decode(files: list[str], size: int, batch: int, device: torch.device) -> float:
    """``torchvision.io.decode_jpeg`` of whole batches on ``device``, resized, cropped, standardised."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms.v2.functional import center_crop, normalize, resize

    from app.configs import IMAGENET_MEAN, IMAGENET_STD

    def one_pass() -> list[torch.Tensor]:
        out = []
        for start in range(0, len(files), batch):
            data = [read_file(path) for path in files[start : start + batch]]
            decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
            resized = [center_crop(resize(image, [size], antialias=True), [size, size]) for image in decoded]
            images = torch.stack(resized).float().div_(255)
            out.append(normalize(images, list(IMAGENET_MEAN), list(IMAGENET_STD)))
        return out

    return passes(one_pass, len(files), str(device.type))


def passes(run: Callable[[], object], count: int, device: str) -> float:
    run()  # untimed: the page cache, workers, the decoder's set-up
    synchronize(device)
    began = time.perf_counter()
    run()
    synchronize(device)
    return count / (time.perf_counter() - began)


def scaling(device: str) -> list[dict[str, Any]]:
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if gpus < 2:
        return [{"what": "ddp", "setting": f"nccl: needs 2 GPUs, has {gpus}", "skipped": True}]
    overrides = ["trainer.epochs=3", "trainer.batch_size=256", "trainer.num_workers=0", "trainer.feature_cache=false"]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in sorted({1, gpus}):
            run = ddp.run(n, device, overrides, Path(folder) / f"p{n}")
            rows.append({"what": "ddp", "setting": f"{n} GPUs, nccl", "images_per_s": round(run["images_per_s"], 1)})
    return rows


def table(rows: list[dict[str, Any]], consumes: float | None) -> str:
    lines = [f"{'what':<16}{'setting':<34}{'images/s':>10}"]
    for r in rows:
        if "images_per_s" in r:
            figure = f"{r['images_per_s']:>10.0f}"
            if r["what"] == "loader" and consumes:
                figure += f"  {r['images_per_s'] / consumes:.2f}x what resnet50 bf16 consumes"
        else:
            figure = f"  {r.get('error', 'skipped')}"
        lines.append(f"{r['what']:<16}{r['setting']:<34}{figure}")
    return "\n".join(lines)


def main() -> None:
    args = get_args_parser().parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py: torch sees no CUDA GPU (try --device cpu --smoke to check the script)")
    began = time.perf_counter()
    rows = training(args.device, args.smoke)
    rows += loaders(args.device, 16 if args.smoke else args.images, args.smoke)
    rows += scaling(args.device)
    resnet = [r for r in rows if r["what"].startswith("resnet50") and r["setting"].startswith("bf16")]
    consumes = max((r["images_per_s"] for r in resnet if "images_per_s" in r), default=None)
    report = {"machine": machine(args.device), "smoke": args.smoke, "seconds": round(time.perf_counter() - began)}
    print(f"\n{report['machine']}\n\n{table(rows, consumes)}\n\n{report['seconds']} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**report, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")
    if any("error" in r for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
