"""What the cross-field rules read besides a config's values: which kind of config a node is
(by its type, never by the keys it happens to have), the images a dataset splits, the processes
that train one run, whether a directory can be made, and the image sizes each extractor takes.
"""

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from app.checks.constraints import group_options
from app.configs import SUBMITIT_LAUNCHERS, ImageFolderConfig, node_class


def kind(cfg: DictConfig, group: str) -> Optional[type]:
    """The config class of ``cfg``'s ``group`` node (its own type, or for an untyped node the
    stored option with its ``_target_``: ``app.configs.node_class``); None where ``cfg`` has no
    such node (app-evaluate's and app-predict's configs have no trainer, ``~scheduler`` no scheduler)."""
    node = cfg.get(group)
    return node_class(group, node) if isinstance(node, DictConfig) else None


def is_a(cfg: DictConfig, group: str, schema: type) -> bool:
    """True when ``cfg``'s ``group`` node is a ``schema`` (``dataset`` an ``ImageFolderConfig``, say)."""
    found = kind(cfg, group)
    return found is not None and issubclass(found, schema)


def primary(cfg: DictConfig, schema: type) -> bool:
    """True when ``cfg`` is the primary config ``schema`` (``EvaluateConfig``, ``PredictConfig``,
    ``InferenceConfig`` for both), by the type Hydra composed it as."""
    typed = OmegaConf.get_type(cfg)
    return isinstance(typed, type) and issubclass(typed, schema)


def launcher_target(cfg: DictConfig) -> Optional[str]:
    """The ``_target_`` of Hydra's launcher; None for a config without Hydra's node (one that
    ``compose_config`` or a Python caller of ``train()`` gives)."""
    hydra = cfg.get("hydra")
    launcher = hydra.get("launcher") if isinstance(hydra, DictConfig) else None
    return str(launcher.get("_target_")) if isinstance(launcher, DictConfig) else None


# The processes of a pasted torchrun command that app-check checks (``torchrun_processes``);
# None: this process's own torchrun launch, if any, told by WORLD_SIZE.
_TORCHRUN: ContextVar[Optional[int]] = ContextVar("torchrun_processes", default=None)


@contextlib.contextmanager
def torchrun_processes(count: int) -> Iterator[None]:
    """Check as the rank 0 of a torchrun launch of ``count`` processes will (``app-check torchrun ...``)."""
    token = _TORCHRUN.set(count)
    try:
        yield
    finally:
        _TORCHRUN.reset(token)


def torchrun_world() -> int:
    """The processes of the torchrun launch being checked: a pasted command's, else torchrun's
    ``WORLD_SIZE`` (the launch check runs in its rank 0); 1 outside torchrun."""
    told = _TORCHRUN.get()
    return told if told is not None else int(os.environ.get("WORLD_SIZE", "1"))


def processes(cfg: DictConfig) -> int:
    """How many processes train one run together: a submitit job's nodes x tasks_per_node, or
    torchrun's (``torchrun_world``); 1 otherwise."""
    if launcher_target(cfg) in SUBMITIT_LAUNCHERS:
        launcher = cfg.hydra.launcher
        return max(int(launcher.get("nodes") or 1), 1) * max(int(launcher.get("tasks_per_node") or 1), 1)
    return torchrun_world()


def dataset_images(cfg: DictConfig) -> Optional[int]:
    """How many images the dataset option splits (digits: of its classes; folder: on disk, when
    dataset.root is a directory: else its own problem says so); None for the others."""
    dataset, schema = cfg.dataset, kind(cfg, "dataset")
    counts = getattr(schema, "images_per_class", None)
    if counts is not None:
        return int(sum(counts[: dataset.classes]))
    if schema is not None and issubclass(schema, ImageFolderConfig) and os.path.isdir(dataset.root):
        from app.files import class_folders, image_files

        return sum(len(image_files(dataset.root, name)) for name in class_folders(dataset.root))
    return None


def training_images(cfg: DictConfig) -> Optional[int]:
    """How many images a run trains on, where the check can know (digits, fake, CIFAR-10, a
    folder on disk); None otherwise. As ``app.data`` splits them: a seeded split holds
    ``held_out`` images back, ``train_size`` caps the rest."""
    from app.configs import Cifar10Config, FakeDataConfig
    from app.files import held_out

    dataset, schema = cfg.dataset, kind(cfg, "dataset")
    if schema is None:
        return None
    if issubclass(schema, FakeDataConfig):
        return 1000 if dataset.train_size is None else int(dataset.train_size)  # app.data.fake's null: 1000
    if issubclass(schema, Cifar10Config):
        images = 5000 * int(dataset.classes)  # CIFAR-10's training batches: 5,000 images a class
    else:
        total = dataset_images(cfg)
        if total is None:
            return None
        own_split = dataset.get("val_root") is None and "val_fraction" in dataset
        images = total - held_out(total, dataset.val_fraction) if own_split else total
    return images if dataset.train_size is None else min(images, int(dataset.train_size))


def unwritable(path: str) -> str:
    """Why this user cannot make or write in directory ``path`` ("" when they can)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is {'not a directory' if not os.path.isdir(existing) else 'not writable'}"
    return ""


def gib(count: float) -> str:
    return f"{count / 2**30:,.1f} GiB"


def input_sizes() -> str:
    """``alexnet 63 px, ..., vit_b_16 224 px exactly``: the image sizes each extractor takes."""

    def size(node: Any) -> str:
        low, high = type(node).min_image_size, type(node).max_image_size
        return f"{low} px" if high is None else f"{low} px exactly" if high == low else f"{low}-{high} px"

    return ", ".join(
        f"{option} {size(node)}" for group, option, node in group_options() if group == "feature_extractor"
    )


def architecture_of(path: str) -> tuple[Optional[str], str]:
    """Which feature_extractor option a ``feature_extractor.checkpoint`` file is of, read
    without torch: (the option, or None where no option's facts match, and what the file is, in
    words); ("", "") for a file neither a plain state dict nor an app checkpoint (the job says)."""
    from app.files import checkpoint_config
    from app.state_dicts import state_dict_shapes, state_digest

    trained = checkpoint_config(path)
    options = [(option, type(node)) for group, option, node in group_options() if group == "feature_extractor"]
    if trained is not None:
        target = (trained.get("feature_extractor") or {}).get("_target_")
        option = next((o for o, schema in options if getattr(schema, "_target_", None) == target), None)
        return option, f"a checkpoint of an app-train run of feature_extractor={option or target}"
    shapes = state_dict_shapes(path)
    if shapes is None:
        return "", ""
    for option, schema in options:
        body = {k: v for k, v in shapes.items() if not k.startswith(f"{schema.classifier_attribute}.")}
        if schema.body_state == (len(body), state_digest(body)):
            return option, f"a state dict of torchvision's {option}"
    first, shape = next(iter(shapes.items()))
    tensors = f"{len(shapes)} tensor{'s' if len(shapes) != 1 else ''}"
    return None, f"a state dict of {tensors} (the first: {first} {list(shape)}) that fits no option"
