"""Classify images with a trained model: ``app-predict checkpoint=PATH input=FILE_OR_DIR`` or
``python -m app.predict``.

Each image goes through the validation transform of the run that trained the model
(``app.data.image_transform``); the run dir gets ``predictions.csv``.
"""

import csv
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from app import files, images, launch
from app.configs import PREDICT_NAME, VERSION_BASE, PredictConfig

log = logging.getLogger("app.predict")

USAGE = """app-predict: each image's most likely classes, by a trained model.

    app-predict checkpoint=outputs/DATE/TIME/checkpoints/best.pt input=photo.png
    app-predict checkpoint=best.pt input=/data/unsorted top_k=3     # every image under it, recursively
    app-predict checkpoint=best.pt input=photo.png tta=flip         # averaged with its mirror (or five_crop)

Keys: checkpoint, input, top_k (null: 5, or all classes when there are fewer), tta
(none|flip|five_crop: probabilities averaged over the image's views), batch_size,
device, precision, num_workers; --cfg job prints the config. Writes predictions.csv in the run
dir (hydra.run.dir): file, class, probability, then class_2, probability_2, ... to top_k;
files that cannot be read are listed in the log and left out. Exit 1 with the reason for a
config it refuses.
"""


def predict(cfg: DictConfig, output_dir: Path) -> list[dict[str, Any]]:
    """The checkpoint's model on every image of ``cfg.input``: rows of ``predictions.csv``, best first per image."""
    from app import data, models
    from app.training import engine, inference, loaders

    trained = models.load(cfg.checkpoint)
    device = engine.resolve_device(cfg.device.value)
    precision = cfg.precision.value if cfg.precision is not None else trained.config.trainer.precision.value
    step = engine.Step(device, engine.resolve_precision(precision, device))
    found = files.image_files_under(cfg.input)
    unreadable = images.unreadable(found)
    readable = [path for path in found if path not in unreadable]
    for path, reason in unreadable.items():
        log.warning("left out %s: %s", files.shown(path), reason)
    if not readable:
        raise ValueError(f"none of the {len(found)} images under input={cfg.input} can be read")
    pictures = data.ImageList(readable, data.image_transform(OmegaConf.structured(trained.config)))
    loader = loaders.loader(
        pictures, cfg.batch_size, loaders.EpochOrder(len(pictures), 0, False), cfg.num_workers, device.type == "cuda"
    )
    with loaders.workers_released(loader):
        predicted = inference.predictions(trained.model.to(device), loader, step, "predict", cfg.tta.value)
    logits, order = predicted.logits if predicted.tta is None else predicted.tta, predicted.labels
    top_k = cfg.top_k if cfg.top_k is not None else min(5, len(trained.classes))
    probabilities, indices = logits.softmax(1).topk(top_k, 1)
    base = cfg.input if os.path.isdir(cfg.input) else os.path.dirname(cfg.input)
    rows = []
    for i, p, c in zip(order.tolist(), probabilities.tolist(), indices.tolist()):
        row: dict[str, Any] = {"file": files.shown(os.path.relpath(readable[i], base))}  # a name not UTF-8: \xNN
        for rank, (probability, label) in enumerate(zip(p, c), start=1):
            suffix = "" if rank == 1 else f"_{rank}"
            row[f"class{suffix}"], row[f"probability{suffix}"] = trained.classes[label], round(probability, 6)
        rows.append(row)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    output_dir.mkdir(parents=True, exist_ok=True)
    csv_text = text.getvalue()  # a class folder's name that is not UTF-8 (a lone surrogate): \udcNN
    files.write_atomically(
        output_dir / files.PREDICTIONS, lambda tmp: tmp.write_text(csv_text, "utf-8", "backslashreplace")
    )
    log.info(
        "%d images classified%s: %s",
        len(rows),
        f" ({len(unreadable)} unreadable left out)" if unreadable else "",
        output_dir / files.PREDICTIONS,
    )
    return rows


@hydra.main(config_path=None, config_name=PREDICT_NAME, version_base=VERSION_BASE)
def hydra_main(cfg: DictConfig) -> None:
    """The job Hydra runs, after ``main`` checked it."""
    from app.training.runtime import run_job

    run_job(predict, cfg, log)


def main() -> None:
    """``app-predict`` and ``python -m app.predict``: check, then run."""
    launch.entry_main(PREDICT_NAME, PredictConfig, USAGE, hydra_main, sys.argv[1:])


if __name__ == "__main__":
    main()
