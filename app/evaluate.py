"""Evaluate a trained model: ``app-evaluate checkpoint=PATH [overrides]`` or ``python -m app.evaluate``.

The model and, unless the command line says otherwise, the dataset come from the checkpoint
(``app.launch.from_checkpoint``); the run dir gets ``metrics.json`` and ``confusion.png``.
"""

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from app import files, launch
from app.configs import EVALUATE_NAME, VERSION_BASE, EvaluateConfig, Split

if TYPE_CHECKING:  # torch: imported when a job runs
    from app import data, models

log = logging.getLogger("app.evaluate")

USAGE = """app-evaluate: a trained model's loss, accuracy and per-class figures on a dataset split.

    app-evaluate checkpoint=outputs/DATE/TIME/checkpoints/best.pt
    app-evaluate checkpoint=best.pt split=train                 # its training split
    app-evaluate checkpoint=best.pt dataset.root=/data/new split=all   # every image of a folder never trained on
    app-evaluate checkpoint=best.pt dataset.root=/data/new      # the same dataset option, other images
    app-evaluate checkpoint=best.pt dataset=folder dataset.root=/data/other dataset.classes=10

    app-evaluate checkpoint=best.pt tta=flip                     # test-time augmentation: flip or five_crop

The dataset is the checkpoint's (option and values) unless overridden; its image settings are
always the checkpoint's. Keys: checkpoint, split (val|train|all), tta (none|flip|five_crop),
batch_size, device, precision, num_workers, dataset.*; --cfg job prints the config. Writes
metrics.json and confusion.png in the run dir (hydra.run.dir); with tta, metrics.json holds the
figures without it too. Exit 1 with the reason for a config it refuses.
"""


def evaluate(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """The checkpoint's model on ``cfg.dataset``'s split: figures logged and written to ``output_dir``."""
    from app import models, plots
    from app.training import engine, inference, loaders
    from app.training.metrics import save_json

    trained = models.load(cfg.checkpoint)
    device = engine.resolve_device(cfg.device.value)
    precision = cfg.precision.value if cfg.precision is not None else trained.config.trainer.precision.value
    step = engine.Step(device, engine.resolve_precision(precision, device))
    splits = evaluated_splits(cfg, trained)
    images = _split(splits, cfg.split)
    log.info("%s", _which_images(cfg, splits, len(images)))
    loader = loaders.loader(
        images, cfg.batch_size, loaders.EpochOrder(len(images), 0, False), cfg.num_workers, device.type == "cuda"
    )
    tta = cfg.tta.value
    with loaders.workers_released(loader):
        found = inference.predictions(trained.model.to(device), loader, step, f"{cfg.split.value} split", tta)
    plain = inference.classification_metrics(found.logits, found.labels, trained.classes)
    figures = {"checkpoint": str(cfg.checkpoint), "split": cfg.split.value, "tta": tta}
    if found.tta is None:
        figures.update(plain)
    else:  # the averaged views' figures, and the plain images' beside them
        figures.update(inference.classification_metrics(found.tta, found.labels, trained.classes))
        figures["without_tta"] = {k: v for k, v in plain.items() if k in ("loss", "accuracy", "top5_accuracy")}
    output_dir.mkdir(parents=True, exist_ok=True)
    save_json(output_dir / files.EVALUATION, figures)
    plots.confusion(figures["confusion"], trained.classes, output_dir / files.CONFUSION)
    log.info("%s split, %d images: %s", cfg.split.value, figures["images"], _figures(figures))
    if found.tta is not None:
        log.info("  with tta=%s; without it: %s", tta, _figures(figures["without_tta"]))
    for row in figures["per_class"]:
        log.info(
            "  %-12s precision %s  recall %s  (%d images)",
            row["class"],
            _share(row["precision"]),
            _share(row["recall"]),
            row["support"],
        )
    log.info("%s and %s in %s", files.EVALUATION, files.CONFUSION, output_dir)
    return figures


def _split(splits: "data.Splits", split: Split) -> "data.ImageDataset":
    from torch.utils.data import ConcatDataset

    if split is Split.all:
        return ConcatDataset([splits.train, splits.val])  # type: ignore[return-value]  # a Dataset of the same items
    return splits.val if split is Split.val else splits.train


def _which_images(cfg: DictConfig, splits: "data.Splits", count: int) -> str:
    """What is evaluated, said before it is: the split, its images of how many, and where from."""
    total = len(splits.train) + len(splits.val)
    root = cfg.dataset.get("root")
    where = root if root is not None else str(cfg.dataset._target_).rpartition(".")[2]  # digits, fake
    if cfg.split is Split.all:
        return f"evaluating all {count} images of {where} (both splits)"
    fraction = cfg.dataset.get("val_fraction")
    seeded = cfg.dataset.get("val_root") is None and fraction is not None
    held = f"the {fraction:.0%} a seeded split holds out, seed {cfg.dataset.seed}" if seeded else "its own split"
    other = "split=train or split=all for the rest" if cfg.split is Split.val else "split=val or split=all"
    what = held if cfg.split is Split.val else "the images a run on it trains on"
    return f"evaluating the {cfg.split.value} split of {where}: {count} of its {total} images ({what}; {other})"


def evaluated_splits(cfg: DictConfig, trained: "models.Trained") -> "data.Splits":
    """``cfg.dataset``'s splits with the images prepared as the trained run prepared its own
    (``data.trained_preset``: from the checkpoint, whatever the dataset option); ``ClassesDiffer``
    for a dataset whose classes are named otherwise than the model's."""
    from hydra.utils import instantiate

    from app import data
    from app.errors import ClassesDiffer

    splits: data.Splits = instantiate(cfg.dataset, data.trained_preset(OmegaConf.structured(trained.config)))
    if splits.names != trained.classes:
        differ = [f"{a}/{b}" for a, b in zip(splits.names, trained.classes) if a != b]
        raise ClassesDiffer(
            f"the dataset's classes are not the model's: {', '.join(splits.names[:10])} against "
            f"{', '.join(trained.classes[:10])} (dataset/model: {', '.join(differ[:5])})"
        )
    return splits


def _figures(figures: dict[str, Any]) -> str:
    top5 = f", top-5 accuracy {figures['top5_accuracy']:.3f}" if "top5_accuracy" in figures else ""
    return f"loss {figures['loss']:.4f}, accuracy {figures['accuracy']:.3f}{top5}"


def _share(value: Any) -> str:
    return "  -  " if value is None else f"{value:.3f}"


@hydra.main(config_path=None, config_name=EVALUATE_NAME, version_base=VERSION_BASE)
def hydra_main(cfg: DictConfig) -> None:
    """The job Hydra runs, after ``main`` checked it."""
    from app.training.runtime import run_job

    run_job(evaluate, cfg, log)


def main() -> None:
    """``app-evaluate`` and ``python -m app.evaluate``: check, then run."""
    launch.entry_main(EVALUATE_NAME, EvaluateConfig, USAGE, hydra_main, sys.argv[1:])


if __name__ == "__main__":
    main()
