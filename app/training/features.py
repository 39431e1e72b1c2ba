"""The frozen extractor's feature cache: each image's features computed once, stored under a key
of everything they depend on, and given to the head in place of the images from then on.

A cache folder is ``trainer.feature_cache_dir/<extractor>-<dataset>-<size>px-<digest>/``, holding
``train.pt`` and ``val.pt`` (``{"features": [N, out_features], "labels": [N]}``) and ``key.json``,
written last, which holds what the digest is taken of (``cache_key``). A folder is used only
when its ``key.json`` equals this run's key.
"""

import hashlib
import json
import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from app import data, files
from app.configs import feature_cache_unused_because
from app.models import ImageClassifier
from app.training import engine, loaders
from app.training.metrics import save_json

log = logging.getLogger("app.features")

FORMAT = "app-train features 2"  # in the key: bump it when code changes the images or features a config yields
SPLITS = ("train", "val")


class Features(data.ImageTensorDataset):
    """``(features, label)`` pairs held as one ``[N, out_features]`` tensor, in memory or memory-mapped."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, mapped: bool = False) -> None:
        super().__init__(features, labels, channels=0)
        self.mapped = mapped  # read from the file as needed, not held in memory

    def __getitem__(self, index: int | list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


def cached(cfg: DictConfig, splits: data.Splits, model: ImageClassifier, step: engine.Step) -> data.Splits:
    """``splits`` with each image replaced by its features under ``model``'s extractor, read from
    the cache or computed and stored there first; ``splits`` itself when the run cannot use one."""
    why = feature_cache_unused_because(cfg)
    if why is not None:  # said only where a frozen extractor could have used it
        log.log(
            logging.INFO if cfg.trainer.freeze_extractor or cfg.trainer.freeze_epochs else logging.DEBUG,
            "feature cache: not used (%s)",
            why,
        )
        return splits
    t = cfg.trainer
    key = cache_key(cfg, splits, model, step)
    folder = Path(os.path.expanduser(t.feature_cache_dir)) / folder_name(cfg, key)
    limit = t.feature_cache_memory_gib * 2**30
    sizes = (len(splits.train), len(splits.val))
    if _key_of(folder) == key:
        try:
            found = [load(folder / f"{name}.pt", limit, size) for name, size in zip(SPLITS, sizes)]
            log.info("feature cache: reused %s (%s)", folder, _described(found))
            return splits._replace(train=found[0], val=found[1])
        except (
            OSError,
            EOFError,
            RuntimeError,
            ValueError,
            KeyError,
            pickle.UnpicklingError,
        ) as error:  # torn, foreign
            log.warning("feature cache: %s cannot be read (%s); computing the features again", folder, error)
    began = time.perf_counter()
    for name, split in zip(SPLITS, (splits.train, splits.val)):  # one split in memory at a time
        _write(folder / f"{name}.pt", *compute(split, model, step, t.batch_size, t.num_workers))
    save_json(folder / "key.json", key)  # last: a folder with a key.json is whole
    found = [load(folder / f"{name}.pt", limit, size) for name, size in zip(SPLITS, sizes)]
    log.info("feature cache: built %s in %.1fs (%s)", folder, time.perf_counter() - began, _described(found))
    return splits._replace(train=found[0], val=found[1])


def _write(path: Path, features: torch.Tensor, labels: torch.Tensor) -> None:
    files.write_atomically(path, files.file_writer(lambda f: torch.save({"features": features, "labels": labels}, f)))


def compute(
    split: data.ImageDataset, model: ImageClassifier, step: engine.Step, batch_size: int, workers: Optional[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image's features, in order, as training computes them: the extractor in eval mode,
    without gradients, under the run's autocast and memory format."""
    batches = loaders.loader(split, batch_size, loaders.EpochOrder(len(split), 0, False), workers, False)
    model.eval()
    features: Optional[torch.Tensor] = None
    labels = torch.empty(len(split), dtype=torch.long)
    done = 0
    with torch.no_grad(), loaders.workers_released(batches):
        for images, targets in batches:
            with torch.autocast(step.device.type, dtype=step.dtype, enabled=step.dtype is not None):
                batch = model.features(step.inputs(images)).cpu()
            if features is None:  # allocated once: a concatenation would hold every split twice
                features = torch.empty((len(split), batch.shape[1]), dtype=batch.dtype)
            features[done : done + len(batch)] = batch
            labels[done : done + len(batch)] = targets
            done += len(batch)
    assert features is not None, "an empty split"  # the launch check leaves an image in each
    return features, labels


def load(path: Path, limit: float, size: int) -> Features:
    """A split's cached features: read whole when the file is at most ``limit`` bytes, else
    memory-mapped (the OS then keeps in memory what it can)."""
    if not path.is_file():  # a FIFO would hang torch.load: computed again instead (the caller)
        raise OSError(f"{path.name} is not a regular file")
    mapped = path.stat().st_size > limit
    stored = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    features, labels = stored["features"], stored["labels"]
    if features.dim() != 2 or len(features) != size or len(labels) != size:
        raise ValueError(f"{path.name} holds {len(features)} images, the split {size}")
    return Features(features, labels, mapped)


def cache_key(cfg: DictConfig, splits: data.Splits, model: ImageClassifier, step: engine.Step) -> dict[str, Any]:
    """Everything a split's features depend on: the extractor (its resolved config and a digest of
    its weights as loaded: torchvision's, a checkpoint's or the seed's), the resolved dataset node
    (image size, channels, split seed and sizes, root...), the files' paths, sizes and mtimes for
    a dataset read from disk, the precision, memory format and device type they are computed in,
    the torch and torchvision versions, and this module's ``FORMAT``."""
    import torchvision

    return {
        "format": FORMAT,
        "feature_extractor": OmegaConf.to_container(cfg.feature_extractor, resolve=True, enum_to_str=True),
        "weights": weights_digest(model.extractor),
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True, enum_to_str=True),
        "files": files_digest(splits),
        "precision": step.precision,
        "channels_last": step.channels_last,
        "device": step.device.type,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
    }


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of ``module``'s state dict: names, dtypes, shapes and bytes (on this 2-core CPU,
    AlexNet's 2.5M weights in 6 ms, ResNet-50's 24M in 57 ms)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name} {tensor.dtype} {list(tensor.shape)}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def files_digest(splits: data.Splits) -> Optional[str]:
    """SHA-256 of each image file's path, size and mtime, for datasets read from disk (None for
    datasets held in memory, which the dataset node describes whole)."""
    digest, found = hashlib.sha256(), False
    for split in (splits.train, splits.val):
        for path in getattr(split, "files", []):  # ImageFiles: read from disk
            stat = os.stat(path)
            digest.update(os.fsencode(path) + f"\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())  # a name's own bytes
            found = True
        digest.update(b"--\n")
    return digest.hexdigest() if found else None


def folder_name(cfg: DictConfig, key: dict[str, Any]) -> str:
    """``alexnet-digits-124px-<16 hex digits>``: readable, and one folder per key."""
    text = json.dumps(key, sort_keys=True)
    extractor, dataset = (str(node._target_).rsplit(".", 1)[-1] for node in (cfg.feature_extractor, cfg.dataset))
    return f"{extractor}-{dataset}-{cfg.dataset.image.size}px-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _key_of(folder: Path) -> Optional[dict[str, Any]]:
    try:
        key = json.loads(files.read_bounded(folder / "key.json", 2**20))  # a few kB: the paths' digest, not the paths
    except (OSError, ValueError):  # none yet, torn, not a file (FileRefused is an OSError): computed again
        return None
    return key if isinstance(key, dict) else None


def _described(found: list[Features]) -> str:
    width, dtype = found[0].images.shape[1], str(found[0].images.dtype).removeprefix("torch.")
    where = (
        "memory-mapped: larger than trainer.feature_cache_memory_gib" if any(f.mapped for f in found) else "in memory"
    )
    return f"{len(found[0])} train + {len(found[1])} val images x {width} {dtype} features, {where}"
