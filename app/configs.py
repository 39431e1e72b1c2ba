"""The schema: every config of the app, and the one store that registers them with Hydra.

Each config is a typed dataclass whose ``_target_`` is the import path of what it builds, so
mypy checks configs written in Python, OmegaConf refuses mistyped overrides, and importing this
module (for ``--help``, ``--cfg``, tab completion, notebooks) never imports torch. A value's
constraint sits on its field as a PEP 593 annotation from ``annotated-types``
(``Annotated[int, Ge(1)]``); ``app.checks`` enforces them, ``--help`` and the README list them.
Every class is a keyword-only dataclass on ``Config``: a field without a default is one mypy
requires, ``_target_`` and fixed widths cannot be passed (``init=False``), and a value set under
a name that is not a field raises ``UnknownField``. This module imports nothing else from ``app``.

The tree (``python -m app.train --help`` lists it too)::

    dataset            digits* | fake | folder | cifar10  what to train on
    feature_extractor  alexnet* | resnet18 | resnet50 | vgg11_bn | mobilenet_v3_small |
                       efficientnet_b0 | convnext_tiny | vit_b_16   the pretrained CNN body
    classifier         small* | large           the head trained on top of it
    optimizer          adam* | adamw | sgd
    scheduler          cosine* | constant | onecycle | step   stepped per optimizer step, with warm-up
    trainer            default*                 epochs, batch size, seed, device, resume, ...
    logger             csv* | tensorboard       besides metrics.csv and curves.png
    debug              fast | overfit | profile add with ``+debug=NAME``
    experiment         digits_resnet18_frozen | digits_alexnet_finetune | digits_resnet18_finetune
                       add with ``+experiment=NAME``: several groups set at once
    hparams_search     lr_wd | head_lr          add with ``+hparams_search=NAME``: an Optuna search

Beside ``config`` (app-train's), the primary configs ``evaluate`` and ``predict`` are those of
``app-evaluate`` and ``app-predict``.
"""

import difflib
import functools
import os
import typing
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Annotated, Any, ClassVar, Optional, Union

from annotated_types import Ge, Gt, Interval, Len, Predicate, doc
from hydra_zen import ZenStore, make_config
from omegaconf import II, MISSING

CONFIG_NAME = "config"
JOB_NAME = "train"
VERSION_BASE = "1.3"

store = ZenStore(name="app")

# Hydra's sweepers and launchers that the app knows, by the ``_target_`` their stored configs
# name (hydra-core 1.3 and its plugins 1.2; a test compares them with the installed plugins').
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
SEARCH_SWEEPER = "hydra_plugins.app_search.resumable_optuna.ResumableOptunaSweeper"  # Optuna, resuming its study
OPTUNA_SWEEPERS = (OPTUNA_SWEEPER, SEARCH_SWEEPER)
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
SUBMITIT_LAUNCHERS = ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", SLURM_LAUNCHER)


@dataclass(frozen=True)
class Extra:
    """An optional dependency of the app (pyproject.toml's ``[project.optional-dependencies]``):
    its name there, the package it brings, and a module that is there once it is installed
    (looked up, never imported: a missing extra costs nothing)."""

    name: str
    package: str
    module: str

    @property
    def install(self) -> str:
        return f"pip install -e '.[{self.name}]' (in the checkout; or pip install {self.package})"

    def installed(self) -> bool:
        import importlib.util

        return importlib.util.find_spec(self.module) is not None


JOBLIB = Extra("joblib", "hydra-joblib-launcher", "hydra_plugins.hydra_joblib_launcher")
SUBMITIT = Extra("submitit", "hydra-submitit-launcher", "hydra_plugins.hydra_submitit_launcher")
OPTUNA = Extra("optuna", "hydra-optuna-sweeper", "hydra_plugins.hydra_optuna_sweeper")
TENSORBOARD = Extra("tensorboard", "tensorboard", "tensorboard")
# The group options that need an extra: --help lists them with it, and one chosen without it is
# refused naming the install command (Hydra registers a plugin's options only once it is installed).
OPTIONS_OF_EXTRAS: dict[str, dict[str, Extra]] = {
    "hydra/launcher": {"joblib": JOBLIB, "submitit_local": SUBMITIT, "submitit_slurm": SUBMITIT, "slurm_ddp": SUBMITIT},
    "hydra/sweeper": {"optuna": OPTUNA},
    "hparams_search": {"lr_wd": OPTUNA, "head_lr": OPTUNA},  # SEARCHES: Optuna studies
    "logger": {"tensorboard": TENSORBOARD},
}


# ------------------------------------------------------------------------------ constraints
def grey_or_rgb(channels: int) -> bool:
    """one of 1, 3 (grey images are repeated for RGB backbones)"""
    return channels in (1, 3)


def existing_file(path: str) -> bool:
    """an existing file"""
    return _is(os.path.isfile, path)


def existing_dir(path: str) -> bool:
    """an existing directory"""
    return _is(os.path.isdir, path)


def directory_path(path: str) -> bool:
    """a directory path (made when absent)"""
    return bool(path) and "\0" not in path


def _is(test: Any, path: str) -> bool:
    try:
        return bool(test(path))
    except ValueError:  # an embedded NUL byte, say
        return False


# A path is read from the directory the run is launched from (app.training.runtime.absolute_paths
# makes each one absolute in the job, from the fields whose predicate is one of PATH_CHECKS).
# To mypy a path field takes a str or a pathlib.Path; OmegaConf 2.3, which has no Union, holds
# it as the str it converts a Path to (so a composed or loaded config always reads back a str).
if typing.TYPE_CHECKING:
    PathText = Union[str, os.PathLike[str]]
else:
    PathText = str
FilePath = Annotated[PathText, Predicate(existing_file)]
DirPath = Annotated[PathText, Predicate(existing_dir)]
AtLeastOne = Annotated[int, Ge(1)]
NotNegative = Annotated[float, Ge(0)]
Positive = Annotated[float, Gt(0)]
# Loader workers: at most 64. Each is a process with its own copy of the dataset object and
# prefetch_factor (2) batches in flight, forked at each run's start: past the cores no decoding
# gets faster, and a typo (trainer.num_workers=1000) would fork a thousand processes.
Workers = Annotated[int, Interval(ge=0, le=64), doc("each loader worker is a process: 64 at most")]
# torch's intra-op threads: at most 1024, more than any machine's cores (a typo would start that many).
Threads = Annotated[int, Interval(ge=1, le=1024), doc("more threads than cores only slow torch down")]


# ------------------------------------------------------------------------------ the base
class UnknownField(AttributeError):
    """A value set on a config object under a name that is none of its fields: a typo that
    would otherwise train with the default (``cfg.trainer.epoch = 2`` leaves ``epochs`` as it is)."""

    hint = "set one of the fields the config class declares (mypy --strict flags the name too)"

    def __init__(self, config: object, name: str) -> None:
        names = list(getattr(config, "__dataclass_fields__", {}))
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        also = (
            f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else f"; its fields: {', '.join(names)}"
        )
        super().__init__(f"{type(config).__name__} has no field {name!r}{also}", name=name, obj=config)


class Config:
    """The base of every config class: keyword-only dataclasses (``@dataclass(kw_only=True)``), so
    that a field without a default is one mypy requires, and objects that refuse a value set under
    a name that is not a field (``UnknownField``) where a plain object would grow a new attribute."""

    if not typing.TYPE_CHECKING:  # to mypy, a class with __setattr__ takes any attribute name

        def __new__(cls, *args: Any, **values: Any) -> Any:
            config = super().__new__(cls)
            # the names it is given (kw_only: all of them by name), which a partial override sets
            object.__setattr__(config, "_given", tuple(values))
            return config

        def __setattr__(self, name: str, value: Any) -> None:
            if name not in self.__dataclass_fields__:
                raise UnknownField(self, name)
            object.__setattr__(self, name, value)


# --------------------------------------------------------------------------------- dataset
class Normalize(Enum):
    """Whose resize and statistics standardise the images."""

    auto = "auto"  # the weights' preset when feature_extractor.weights is set, else the dataset's own
    dataset = "dataset"  # the dataset's own statistics, resized to dataset.image.size
    weights = "weights"  # the preset of feature_extractor.weights (of its DEFAULT when unset: a loaded state dict)


class Augment(Enum):
    """What randomly changes a training image each epoch (validation images never change): each
    policy after light's random resized crop and flip (torchvision's, ``transforms.v2``)."""

    none = "none"
    light = "light"  # torchvision's RandomResizedCrop(size) + RandomHorizontalFlip
    trivialaugment = "trivialaugment"  # + TrivialAugmentWide: one op a picture, at a random strength
    randaugment = "randaugment"  # + RandAugment(dataset.randaugment_ops, dataset.randaugment_magnitude)
    autoaugment = "autoaugment"  # + AutoAugment's ImageNet policy
    augmix = "augmix"  # + AugMix (severity 3, width 3: torchvision's defaults)


class Corrupt(Enum):
    """What the scan before training does with image files it cannot decode."""

    skip = "skip"  # leave them out, with a warning naming the first few
    fail = "fail"  # stop with one error naming them


# ImageNet's statistics per RGB channel: what pretrained torchvision weights expect of photographs
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
Statistics = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per RGB channel
Stages = tuple[tuple[str, ...], ...]  # a backbone's parameters by depth: module name prefixes per stage


@dataclass(kw_only=True)
class ImageConfig(Config):
    # side of the square images fed to the extractor, in pixels (its minimum: a cross-field rule)
    size: AtLeastOne = 124
    channels: Annotated[int, Predicate(grey_or_rgb)] = 3
    normalize: Normalize = Normalize.auto


@dataclass(kw_only=True)
class DatasetConfig(Config):
    """Keys every dataset option has; the factory returns a train and a validation split."""

    in_memory: ClassVar[bool] = False  # the factory holds every image, resized, in memory
    # (mean, std) per RGB channel that standardise its images without a weights' preset (a grey
    # image takes their average); None: pixels are left in [0, 1]
    statistics: ClassVar[Optional[Statistics]] = None

    _target_: str = field(init=False, default=MISSING)
    _convert_: str = field(init=False, default="object")  # the factory receives an ImageConfig, as its signature says
    image: ImageConfig = field(default_factory=ImageConfig)
    classes: Annotated[int, Ge(2), doc("a classifier needs two classes or more")] = 10
    train_size: Optional[AtLeastOne] = None  # images to use; null: all there are
    val_size: Optional[AtLeastOne] = None
    seed: int = II("trainer.seed")  # the split (or the generated data) follows the run's seed


BothSplits = Annotated[float, Interval(gt=0, lt=1), doc("both splits need images")]


@dataclass(kw_only=True)
class DigitsConfig(DatasetConfig):
    """scikit-learn's 1,797 handwritten 8x8 digits, resized; ``classes`` keeps digits 0..classes-1."""

    in_memory: ClassVar[bool] = True
    # scikit-learn's 1,797 digits at 8x8, pixel/16 (computed once, so that a picture needs no
    # training split to be standardised as the run standardised it)
    statistics: ClassVar[Optional[Statistics]] = ((0.3053,) * 3, (0.3760,) * 3)
    images_per_class: ClassVar[tuple[int, ...]] = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)

    _target_: str = field(init=False, default="app.data.digits")
    classes: Annotated[int, Interval(ge=2, le=10), doc("digits has ten classes, 0-9")] = 10
    val_fraction: BothSplits = 0.2


@dataclass(kw_only=True)
class FakeDataConfig(DatasetConfig):
    """torchvision FakeData: random images, deterministic from the seed (smoke tests, benchmarks)."""

    # random pixels in [0, 1], left as they are (no statistics)
    _target_: str = field(init=False, default="app.data.fake")
    train_size: Optional[AtLeastOne] = 256  # null: 1000
    val_size: Optional[AtLeastOne] = 64  # null: 200


@dataclass(kw_only=True)
class AugmentedDatasetConfig(DatasetConfig):
    """A dataset of pictures decoded on access (in loader workers), which can change them each
    epoch: drawn from (seed, epoch, index), so a resumed run sees what an uninterrupted one saw."""

    # its keys that change the training images only: a model is evaluated without them
    augment_keys: ClassVar[tuple[str, ...]] = ("augment", "randaugment_ops", "randaugment_magnitude", "random_erasing")

    augment: Augment = Augment.none
    randaugment_ops: Annotated[int, Interval(ge=1, le=14), doc("RandAugment has 14 ops")] = 2  # ops a picture
    # strength of each op, in RandAugment's 31 bins (torchvision's default 9; 30: its strongest)
    randaugment_magnitude: Annotated[int, Interval(ge=0, le=30), doc("RandAugment has 31 bins, 0-30")] = 9
    # probability that torchvision's RandomErasing blanks a random rectangle of a standardised
    # training image (its recipe: 0.1); 0: off. On top of any augment, none included
    random_erasing: Annotated[float, Interval(ge=0, le=1), doc("a probability")] = 0.0


@dataclass(kw_only=True)
class ImageFolderConfig(AugmentedDatasetConfig):
    """Your own images: one subfolder of ``root`` per class, searched recursively for the file
    types torchvision's ImageFolder reads."""

    statistics: ClassVar[Optional[Statistics]] = (IMAGENET_MEAN, IMAGENET_STD)  # photographs

    _target_: str = field(init=False, default="app.data.image_folder")
    root: DirPath
    classes: Annotated[int, Ge(2), doc("must equal the number of class folders")]
    val_fraction: BothSplits = 0.2  # unused with val_root
    val_root: Optional[DirPath] = None  # the same class folders, validation images: instead of the seeded split
    corrupt: Corrupt = Corrupt.fail  # files PIL cannot decode, found by a scan before training


@dataclass(kw_only=True)
class Cifar10Config(AugmentedDatasetConfig):
    """torchvision's CIFAR-10: 50,000 training and 10,000 test (here: validation) 32x32 images;
    ``classes`` keeps classes 0..classes-1 (airplane, automobile, bird, ...)."""

    # the 50,000 training images' per-channel mean and std, as commonly quoted
    statistics: ClassVar[Optional[Statistics]] = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))

    _target_: str = field(init=False, default="app.data.cifar10")
    classes: Annotated[int, Interval(ge=2, le=10), doc("CIFAR-10 has ten classes")] = 10
    # where cifar-10-batches-py is, or goes; read from the launch dir when relative, ~ expanded
    root: Annotated[PathText, Predicate(directory_path)] = "${oc.env:HOME}/.cache/app-train/cifar10"
    download: bool = False  # fetch the archive (163 MB) into root when it is not there


store(DigitsConfig(), group="dataset", name="digits")
store(FakeDataConfig(), group="dataset", name="fake")
store(ImageFolderConfig(root=MISSING, classes=MISSING), group="dataset", name="folder")  # given at launch
store(Cifar10Config(), group="dataset", name="cifar10")


# ------------------------------------------------------------------------ feature extractor
@dataclass(frozen=True)
class Preset:
    """How torchvision prepared the images a set of weights was trained on (its ``transforms()``):
    the shorter side resized to ``resize``, the centre ``crop`` cut out, then standardised."""

    resize: int
    crop: int
    interpolation: str = "bilinear"  # or "bicubic"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


IMAGENET_V1 = Preset(256, 224)  # every V1 weight of these bodies but EfficientNet's (a test compares each)


class AlexNetWeights(Enum):
    """The names of ``torchvision.models.AlexNet_Weights``."""

    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "DEFAULT"


class ResNet18Weights(Enum):
    """The names of ``torchvision.models.ResNet18_Weights``."""

    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "DEFAULT"


class ResNet50Weights(Enum):
    """The names of ``torchvision.models.ResNet50_Weights`` (DEFAULT is V2)."""

    IMAGENET1K_V1 = "IMAGENET1K_V1"
    IMAGENET1K_V2 = "IMAGENET1K_V2"
    DEFAULT = "DEFAULT"


class VGG11BNWeights(Enum):
    """The names of ``torchvision.models.VGG11_BN_Weights``."""

    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "DEFAULT"


class MobileNetV3SmallWeights(Enum):
    """The names of ``torchvision.models.MobileNet_V3_Small_Weights``."""

    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "DEFAULT"


class EfficientNetB0Weights(Enum):
    """The names of ``torchvision.models.EfficientNet_B0_Weights``."""

    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "DEFAULT"


class ConvNeXtTinyWeights(Enum):
    """The names of ``torchvision.models.ConvNeXt_Tiny_Weights``."""

    IMAGENET1K_V1 = "IMAGENET1K_V1"
    DEFAULT = "DEFAULT"


class ViTB16Weights(Enum):
    """The 224-px names of ``torchvision.models.ViT_B_16_Weights`` (the SWAG end-to-end weights
    need 384-px inputs, which this body, built for 224, does not take)."""

    IMAGENET1K_V1 = "IMAGENET1K_V1"
    IMAGENET1K_SWAG_LINEAR_V1 = "IMAGENET1K_SWAG_LINEAR_V1"
    DEFAULT = "DEFAULT"


@dataclass(kw_only=True)
class FeatureExtractorConfig(Config):
    """A pretrained CNN body that maps an image batch to flat ``out_features``-wide vectors.

    Each backbone's facts live on its own class: ``out_features`` (the width it produces, which
    the head's first layer follows), ``min_image_size`` (and ``max_image_size`` for a body built
    for one size), the ``weights`` names it accepts and, by name, how those weights' images were
    prepared (``presets``, which the images follow: ``dataset.image.normalize``), and its
    parameters by depth (``stages``, for ``trainer.layer_decay``).
    """

    min_image_size: ClassVar[int] = 1  # smallest dataset.image.size the body accepts
    max_image_size: ClassVar[Optional[int]] = None  # largest, where there is one
    presets: ClassVar[dict[str, Preset]] = {}  # by weights name, DEFAULT included
    # its parameters by depth, from the input up, each stage the dotted name prefixes of its
    # modules (trainer.layer_decay lowers the lr stage by stage); none: the body is one stage
    stages: ClassVar[Stages] = ()
    # what a state dict of the whole torchvision model holds but the classifier (the attribute
    # cut off): (tensors, files.state_digest of their names and shapes); (0, ""): not known. The
    # launch check knows a feature_extractor.checkpoint of another architecture by it.
    classifier_attribute: ClassVar[str] = "classifier"
    body_state: ClassVar[tuple[int, str]] = (0, "")

    _target_: str = field(init=False, default=MISSING)
    # a local state dict of the torchvision model, or a checkpoint this app wrote (its extractor)
    checkpoint: Optional[FilePath] = None
    out_features: int = field(init=False, default=MISSING)

    @property
    def weights(self) -> Optional[Enum]:
        """torchvision's weights, by name (downloaded on first use): a field of each body, whose
        Enum holds the names it accepts (not a field here: OmegaConf would type every body's
        weights as this one's); a body without such weights has none."""
        return None


RESNET_STAGES: Stages = (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",))


# Each stride-32 body below ends on single pixels at 32 px; smaller inputs are refused.
@dataclass(kw_only=True)
class AlexNetConfig(FeatureExtractorConfig):
    body_state: ClassVar[tuple[int, str]] = (10, "887b64f244a5b315")
    min_image_size: ClassVar[int] = 63  # smaller maps vanish in AlexNet's third max-pool
    presets: ClassVar[dict[str, Preset]] = {"IMAGENET1K_V1": IMAGENET_V1, "DEFAULT": IMAGENET_V1}
    stages: ClassVar[Stages] = (
        ("features.0",),
        ("features.3",),
        ("features.6",),
        ("features.8",),
        ("features.10",),
    )  # its 5 convolutions

    _target_: str = field(init=False, default="app.models.alexnet")
    weights: Optional[AlexNetWeights] = None  # torchvision's weights (downloads on first use)
    out_features: Annotated[int, Interval(ge=9216, le=9216), doc("AlexNet pools to 256x6x6")] = field(
        init=False, default=9216
    )


@dataclass(kw_only=True)
class ResNet18Config(FeatureExtractorConfig):
    classifier_attribute: ClassVar[str] = "fc"
    body_state: ClassVar[tuple[int, str]] = (120, "d4bd6dd933942dc1")
    min_image_size: ClassVar[int] = 32
    stages: ClassVar[Stages] = RESNET_STAGES
    presets: ClassVar[dict[str, Preset]] = {"IMAGENET1K_V1": IMAGENET_V1, "DEFAULT": IMAGENET_V1}

    _target_: str = field(init=False, default="app.models.resnet18")
    weights: Optional[ResNet18Weights] = None
    out_features: Annotated[int, Interval(ge=512, le=512), doc("ResNet-18 pools to 512 channels")] = field(
        init=False, default=512
    )


@dataclass(kw_only=True)
class ResNet50Config(FeatureExtractorConfig):
    classifier_attribute: ClassVar[str] = "fc"
    body_state: ClassVar[tuple[int, str]] = (318, "6248419c8198da76")
    min_image_size: ClassVar[int] = 32
    stages: ClassVar[Stages] = RESNET_STAGES
    presets: ClassVar[dict[str, Preset]] = {
        "IMAGENET1K_V1": IMAGENET_V1,
        "IMAGENET1K_V2": Preset(232, 224),
        "DEFAULT": Preset(232, 224),
    }

    _target_: str = field(init=False, default="app.models.resnet50")
    weights: Optional[ResNet50Weights] = None
    out_features: Annotated[int, Interval(ge=2048, le=2048), doc("ResNet-50 pools to 2048 channels")] = field(
        init=False, default=2048
    )


@dataclass(kw_only=True)
class VGG11BNConfig(FeatureExtractorConfig):
    body_state: ClassVar[tuple[int, str]] = (56, "45820d4649f34acd")
    min_image_size: ClassVar[int] = 32  # five 2x2 max-pools
    # a stage per resolution: each convolution with its batch norm, between the max-pools
    stages: ClassVar[Stages] = (
        ("features.0", "features.1"),
        ("features.4", "features.5"),
        ("features.8", "features.9", "features.11", "features.12"),
        ("features.15", "features.16", "features.18", "features.19"),
        ("features.22", "features.23", "features.25", "features.26"),
    )
    presets: ClassVar[dict[str, Preset]] = {"IMAGENET1K_V1": IMAGENET_V1, "DEFAULT": IMAGENET_V1}

    _target_: str = field(init=False, default="app.models.vgg11_bn")
    weights: Optional[VGG11BNWeights] = None
    out_features: Annotated[int, Interval(ge=25088, le=25088), doc("VGG pools to 512x7x7")] = field(
        init=False, default=25088
    )


@dataclass(kw_only=True)
class MobileNetV3SmallConfig(FeatureExtractorConfig):
    body_state: ClassVar[tuple[int, str]] = (240, "3f15a95f5b3f3e0b")
    min_image_size: ClassVar[int] = 32
    stages: ClassVar[Stages] = tuple((f"features.{i}",) for i in range(13))  # stem, 11 blocks, last conv
    presets: ClassVar[dict[str, Preset]] = {"IMAGENET1K_V1": IMAGENET_V1, "DEFAULT": IMAGENET_V1}

    _target_: str = field(init=False, default="app.models.mobilenet_v3_small")
    weights: Optional[MobileNetV3SmallWeights] = None
    out_features: Annotated[int, Interval(ge=576, le=576), doc("MobileNetV3-Small pools to 576 channels")] = field(
        init=False, default=576
    )


@dataclass(kw_only=True)
class EfficientNetB0Config(FeatureExtractorConfig):
    body_state: ClassVar[tuple[int, str]] = (358, "d801738d71f68510")
    min_image_size: ClassVar[int] = 32
    stages: ClassVar[Stages] = tuple((f"features.{i}",) for i in range(9))  # stem, 7 stages, last conv
    presets: ClassVar[dict[str, Preset]] = {
        "IMAGENET1K_V1": Preset(256, 224, "bicubic"),
        "DEFAULT": Preset(256, 224, "bicubic"),
    }

    _target_: str = field(init=False, default="app.models.efficientnet_b0")
    weights: Optional[EfficientNetB0Weights] = None
    out_features: Annotated[int, Interval(ge=1280, le=1280), doc("EfficientNet-B0 pools to 1280 channels")] = field(
        init=False, default=1280
    )


@dataclass(kw_only=True)
class ConvNeXtTinyConfig(FeatureExtractorConfig):
    body_state: ClassVar[tuple[int, str]] = (178, "21e0dae38a3c0be0")
    min_image_size: ClassVar[int] = 32  # a 4x4 stem, then three 2x2 downsamplings
    # stem, then each stage and downsampling; the norm its classifier began with stays in the body
    stages: ClassVar[Stages] = (*((f"features.{i}",) for i in range(7)), ("features.7", "classifier.0"))
    presets: ClassVar[dict[str, Preset]] = {"IMAGENET1K_V1": Preset(236, 224), "DEFAULT": Preset(236, 224)}

    _target_: str = field(init=False, default="app.models.convnext_tiny")
    weights: Optional[ConvNeXtTinyWeights] = None
    out_features: Annotated[int, Interval(ge=768, le=768), doc("ConvNeXt-Tiny pools to 768 channels")] = field(
        init=False, default=768
    )


@dataclass(kw_only=True)
class ViTB16Config(FeatureExtractorConfig):
    classifier_attribute: ClassVar[str] = "heads"
    body_state: ClassVar[tuple[int, str]] = (150, "20945a7fafb1990b")
    min_image_size: ClassVar[int] = 224  # its position embeddings are for 14x14 patches of 16 px
    max_image_size: ClassVar[Optional[int]] = 224
    # the patch embedding, then each of the 12 encoder blocks (the last with the encoder's final norm)
    stages: ClassVar[Stages] = (
        ("class_token", "conv_proj", "encoder.pos_embedding"),
        *((f"encoder.layers.encoder_layer_{i}",) for i in range(11)),
        ("encoder.layers.encoder_layer_11", "encoder.ln"),
    )
    presets: ClassVar[dict[str, Preset]] = {
        "IMAGENET1K_V1": IMAGENET_V1,
        "IMAGENET1K_SWAG_LINEAR_V1": Preset(224, 224, "bicubic"),
        "DEFAULT": IMAGENET_V1,
    }

    _target_: str = field(init=False, default="app.models.vit_b_16")
    weights: Optional[ViTB16Weights] = None
    out_features: Annotated[int, Interval(ge=768, le=768), doc("ViT-B/16's class token is 768 wide")] = field(
        init=False, default=768
    )


store(AlexNetConfig(), group="feature_extractor", name="alexnet")
store(ResNet18Config(), group="feature_extractor", name="resnet18")
store(ResNet50Config(), group="feature_extractor", name="resnet50")
store(VGG11BNConfig(), group="feature_extractor", name="vgg11_bn")
store(MobileNetV3SmallConfig(), group="feature_extractor", name="mobilenet_v3_small")
store(EfficientNetB0Config(), group="feature_extractor", name="efficientnet_b0")
store(ConvNeXtTinyConfig(), group="feature_extractor", name="convnext_tiny")
store(ViTB16Config(), group="feature_extractor", name="vit_b_16")


# ------------------------------------------------------------------------------- classifier
@dataclass(kw_only=True)
class LayerConfig(Config):
    """A layer of the head: a ``torch.nn`` module built from its fields (each subclass's)."""

    _target_: str = field(init=False, default=MISSING)


@dataclass(kw_only=True)
class LinearConfig(LayerConfig):
    _target_: str = field(init=False, default="torch.nn.Linear")
    in_features: AtLeastOne
    out_features: AtLeastOne
    bias: bool = True


@dataclass(kw_only=True)
class ReLUConfig(LayerConfig):
    _target_: str = field(init=False, default="torch.nn.ReLU")
    inplace: bool = False


@dataclass(kw_only=True)
class DropoutConfig(LayerConfig):
    _target_: str = field(init=False, default="torch.nn.Dropout")
    p: Annotated[float, Interval(ge=0, lt=1), doc("the probability of zeroing a unit")] = 0.5
    inplace: bool = False


# Widths chain through relative interpolation: in ``_args_[i]``, ``..`` is the ``_args_`` list,
# so ``${..[0].out_features}`` reads the first layer's width. The first layer follows the
# extractor and the last one the dataset, so no number has to be kept in sync by hand.
FROM_EXTRACTOR: Any = II("feature_extractor.out_features")
TO_CLASSES: Any = II("dataset.classes")


def _follows(index: int) -> Any:
    return II(f"..[{index}].out_features")


# To mypy the head's layers are LayerConfigs. To OmegaConf they are any nodes: a layer written as
# a dict on the command line would otherwise be read as LayerConfig, which has no fields; the
# launch check reads each one as the layer config with its _target_ (LinearConfig, ...).
if typing.TYPE_CHECKING:
    Layers = list[LayerConfig]
else:
    Layers = list[Any]


@dataclass(kw_only=True)
class HeadConfig(Config):
    """A ``torch.nn.Sequential`` whose layers are its positional ``_args_``."""

    _target_: str = field(init=False, default="torch.nn.Sequential")
    _args_: Layers


@dataclass(kw_only=True)
class SmallHeadConfig(HeadConfig):
    _args_: Layers = field(
        default_factory=lambda: [
            LinearConfig(in_features=FROM_EXTRACTOR, out_features=100),
            ReLUConfig(),
            LinearConfig(in_features=_follows(0), out_features=TO_CLASSES),
        ]
    )


@dataclass(kw_only=True)
class LargeHeadConfig(HeadConfig):
    _args_: Layers = field(
        default_factory=lambda: [
            LinearConfig(in_features=FROM_EXTRACTOR, out_features=512),
            ReLUConfig(),
            DropoutConfig(p=0.5),
            LinearConfig(in_features=_follows(0), out_features=256),
            ReLUConfig(),
            DropoutConfig(p=0.5),
            LinearConfig(in_features=_follows(3), out_features=TO_CLASSES),
        ]
    )


store(SmallHeadConfig(), group="classifier", name="small")
store(LargeHeadConfig(), group="classifier", name="large")


# -------------------------------------------------------------------------------- optimizer
@dataclass(kw_only=True)
class OptimizerConfig(Config):
    """Partial: the job calls it with the trainable parameters."""

    _target_: str = field(init=False, default=MISSING)
    _partial_: bool = field(init=False, default=True)
    _convert_: str = field(init=False, default="all")  # betas reach torch as a plain list, not a ListConfig
    lr: Positive = 1e-3
    weight_decay: NotNegative = 0.0
    # torch's fused implementation: one kernel per step over every parameter; null: fused where
    # torch has it for the parameters' device (CPU, CUDA), as app.factories.optimizer decides
    fused: Optional[bool] = None


@dataclass(kw_only=True)
class SGDConfig(OptimizerConfig):
    _target_: str = field(init=False, default="torch.optim.SGD")
    lr: Positive = 0.01
    momentum: NotNegative = 0.9
    dampening: NotNegative = 0.0
    nesterov: bool = False  # needs momentum > 0 and dampening 0 (a cross-field rule)


Beta = Annotated[float, Interval(ge=0, lt=1)]


@dataclass(kw_only=True)
class AdamConfig(OptimizerConfig):
    _target_: str = field(init=False, default="torch.optim.Adam")
    lr: Positive = 1e-4
    # torch unpacks exactly two coefficients, each a decay rate in [0, 1)
    betas: Annotated[tuple[Beta, Beta], Len(2, 2)] = (0.9, 0.999)
    eps: Positive = 1e-8
    amsgrad: bool = False


@dataclass(kw_only=True)
class AdamWConfig(AdamConfig):
    _target_: str = field(init=False, default="torch.optim.AdamW")
    weight_decay: NotNegative = 0.01


store(AdamConfig(), group="optimizer", name="adam")
store(AdamWConfig(), group="optimizer", name="adamw")
store(SGDConfig(), group="optimizer", name="sgd")


# -------------------------------------------------------------------------------- scheduler
Fraction = Annotated[float, Interval(gt=0, le=1)]


@dataclass(kw_only=True)
class SchedulerConfig(Config):
    """Partial: the job calls it with the optimizer and the optimizer steps per epoch, and steps
    it after every optimizer step; lengths are in epochs (fractions allowed)."""

    _target_: str = field(init=False, default=MISSING)
    _partial_: bool = field(init=False, default=True)
    warmup_epochs: NotNegative = 0.0  # a linear ramp from warmup_start_factor x lr up to lr
    warmup_start_factor: Fraction = 0.01


@dataclass(kw_only=True)
class ConstantConfig(SchedulerConfig):
    """The optimizer's lr throughout (after any warm-up)."""

    _target_: str = field(init=False, default="app.schedules.constant")


@dataclass(kw_only=True)
class CosineConfig(SchedulerConfig):
    """Cosine decay from lr to eta_min over the epochs after the warm-up."""

    _target_: str = field(init=False, default="app.schedules.cosine")
    epochs: AtLeastOne = II("trainer.epochs")
    eta_min: NotNegative = 0.0


@dataclass(kw_only=True)
class StepConfig(SchedulerConfig):
    """lr x gamma every step_size epochs after the warm-up."""

    _target_: str = field(init=False, default="app.schedules.step")
    step_size: Positive = 1.0
    gamma: Positive = 0.5


class Anneal(Enum):
    cos = "cos"
    linear = "linear"


@dataclass(kw_only=True)
class OneCycleConfig(SchedulerConfig):
    """torch's OneCycleLR, peaking at the optimizer's lr: its warm-up is the rise to the peak."""

    _target_: str = field(init=False, default="app.schedules.onecycle")
    epochs: AtLeastOne = II("trainer.epochs")
    warmup_epochs: NotNegative = 0.3  # the rise (cosine or linear, as anneal_strategy); at least one step
    warmup_start_factor: Fraction = 0.04  # torch's div_factor=25
    final_div_factor: Annotated[float, Ge(1)] = 1e4  # the run ends at the start lr / final_div_factor
    anneal_strategy: Anneal = Anneal.cos


store(ConstantConfig(), group="scheduler", name="constant")
store(CosineConfig(), group="scheduler", name="cosine")
store(StepConfig(), group="scheduler", name="step")
store(OneCycleConfig(), group="scheduler", name="onecycle")


# ----------------------------------------------------------------------------------- logger
@dataclass(kw_only=True)
class LoggerConfig(Config):
    """Where the per-epoch figures go besides ``metrics.csv`` and ``curves.png``, which every run
    writes (resume, the summary and the plot read them)."""

    _target_: str = field(init=False, default="app.loggers.Logger")
    _partial_: bool = field(init=False, default=True)  # the job calls it with the run dir and the step it resumes from


@dataclass(kw_only=True)
class TensorBoardConfig(LoggerConfig):
    """TensorBoard event files in ``<run dir>/tensorboard`` (``pip install tensorboard``)."""

    _target_: str = field(init=False, default="app.loggers.TensorBoardLogger")
    every_n_steps: AtLeastOne = 10  # train loss and lr every n optimizer steps; the rest per epoch


store(LoggerConfig(), group="logger", name="csv")
store(TensorBoardConfig(), group="logger", name="tensorboard")


# ---------------------------------------------------------------------------------- trainer
class Device(Enum):
    auto = "auto"  # cuda when available, else cpu
    cpu = "cpu"
    cuda = "cuda"


class Precision(Enum):
    auto = "auto"  # bf16 where the device runs it natively (AVX512-BF16/AMX CPUs, Ampere+ GPUs), else fp32
    fp32 = "fp32"
    bf16 = "bf16"  # autocast to bfloat16
    fp16 = "fp16"  # autocast to float16, with gradient scaling


class ClassBalance(Enum):
    """How training treats classes of unequal size (their counts: the start log line)."""

    none = "none"  # as they come: a class's weight in the loss is its share of the images
    loss = "loss"  # each image's loss weighted by its class's inverse frequency (N / (classes x count))
    sampler = "sampler"  # each epoch draws its images classes-equally, with replacement, from the seed


RESUME_AUTO = "auto"  # trainer.resume=auto: the run dir's checkpoints/last.pt, when there is one


def whole_checkpoint(path: str) -> bool:
    """a whole checkpoint file written by torch.save"""
    # torch.save writes a zip archive, whose directory is at its end: a file cut short has none.
    return existing_file(path) and zipfile.is_zipfile(path)


def resumable(path: str) -> bool:
    """auto (the run dir's checkpoints/last.pt, if any), or a whole checkpoint file written by torch.save"""
    return path == RESUME_AUTO or whole_checkpoint(path)


@dataclass(kw_only=True)
class TrainerConfig(Config):
    # What a resumed run (trainer.resume) may set otherwise than the run it continues: how long it
    # goes on, where and how fast it computes, how it stops and reports. Any other key would make
    # it another run than the one its checkpoint holds (a new seed draws another val split, a new
    # batch size skips images, a new lr is not the schedule's): refused at launch and in the job.
    resume_may_change: ClassVar[tuple[str, ...]] = (
        "epochs", "device", "num_workers", "threads", "feature_cache", "feature_cache_dir",
        "feature_cache_memory_gib", "precision", "channels_last", "compile", "deterministic",
        "overwrite", "resume", "early_stopping_patience", "profile_steps", "process_group_timeout_min",
    )  # fmt: skip
    epochs: AtLeastOne = 4
    # images per forward pass, over all processes (torchrun, SLURM: each takes batch_size / processes);
    # an optimizer step sees accumulate_batches of them
    batch_size: AtLeastOne = 32
    seed: Annotated[int, Interval(ge=0, lt=2**32), doc("torch, NumPy and Python's random all take 32 bits")] = 0
    device: Device = Device.auto
    num_workers: Optional[Workers] = None  # null: chosen for the data (0 under a parallel launcher)
    # torch's intra-op threads; null: torch's own count less one if it would take every core (a busy core
    # stalls them all: app.training.build.default_threads), or the cores / the jobs a parallel launcher runs
    threads: Optional[Threads] = None
    freeze_extractor: bool = False  # train the head only
    # staged fine-tuning: the extractor frozen for the first this many epochs (the head alone
    # trains), then trained at its lr for the rest; 0: off
    freeze_epochs: Annotated[int, Ge(0)] = 0
    # with the extractor frozen (freeze_extractor, or the first freeze_epochs) and no random
    # augmentation: each image's features are computed once,
    # kept under feature_cache_dir (keyed by extractor, weights, data and precision) and reused
    feature_cache: bool = True
    feature_cache_dir: Annotated[PathText, Predicate(directory_path)] = (
        "~/.cache/app-train/features"  # shared by runs and sweeps
    )
    # a cached split larger than this is read memory-mapped from disk, not loaded into memory
    feature_cache_memory_gib: NotNegative = 4.0
    # the extractor's lr is optimizer.lr x this: a pretrained body fine-tuned more gently than the head
    extractor_lr_scale: Annotated[float, Interval(gt=0, le=1)] = 1.0
    # layer-wise lr decay: each stage of the extractor (its config's ``stages``) trains at this x
    # the lr of the one above it, the top stage at this x the head's (x extractor_lr_scale); 1: off
    layer_decay: Annotated[float, Interval(gt=0, le=1)] = 1.0
    precision: Precision = Precision.auto
    channels_last: bool = False  # NHWC memory format: faster convolutions on recent GPUs
    compile: bool = False  # torch.compile the model (eager, with a warning, where it cannot)
    deterministic: bool = False  # torch's deterministic algorithms: same seed, same metrics.csv
    overwrite: bool = False  # replace what an earlier run left in the run dir (else: refused)
    resume: Optional[Annotated[PathText, Predicate(resumable)]] = None  # a last.pt, or auto
    label_smoothing: Annotated[float, Interval(ge=0, lt=1)] = 0.0
    class_balance: ClassBalance = ClassBalance.none  # for imbalanced folders: loss weights, or a sampler
    # Mixup / CutMix of each training batch with soft targets (torchvision's recipe: 0.2 and 1.0); 0: off
    mixup_alpha: Annotated[float, Ge(0), doc("a Beta distribution's alpha; 0 is off")] = 0.0
    cutmix_alpha: Annotated[float, Ge(0), doc("a Beta distribution's alpha; 0 is off")] = 0.0
    mix_switch_prob: Annotated[float, Interval(ge=0, le=1)] = 0.5  # with both on: a batch's chance of CutMix
    clip_grad_norm: Optional[Positive] = None  # the largest gradient norm an optimizer step takes
    accumulate_batches: AtLeastOne = 1  # batches whose gradients add up to one optimizer step
    early_stopping_patience: Optional[AtLeastOne] = None  # epochs without a better val acc
    ema_decay: Optional[Annotated[float, Interval(gt=0, lt=1)]] = None  # e.g. 0.999: keep an EMA of the weights
    profile_steps: Annotated[int, Ge(0)] = 0  # trace this many training steps into profile/
    overfit_batches: Annotated[int, Ge(0)] = 0  # >0: train and validate on the first n batches, unshuffled
    # among processes: how long one waits for the others (at a step, or while rank 0 fills the
    # feature cache) before the run fails, where no launcher ended it first (torch's default: 30)
    process_group_timeout_min: AtLeastOne = 30


store(TrainerConfig(), group="trainer", name="default")


def feature_cache_unused_because(cfg: Any) -> Optional[str]:
    """Why a run (its composed config) computes its features every epoch; None when the feature
    cache serves it. Read by the job (``app.features``) and the launch check alike."""
    t = cfg.trainer
    if not (t.freeze_extractor or t.freeze_epochs):
        return "trainer.freeze_extractor=false: the extractor trains, so its features change every step"
    if not t.feature_cache:
        return "trainer.feature_cache=false"
    augment = cfg.dataset.get("augment")  # a dataset without the key has no random augmentation
    name = getattr(augment, "name", augment)
    if augment is not None and name != "none":
        return f"dataset.augment={name}: every epoch draws other images"
    if cfg.dataset.get("random_erasing", 0) > 0:
        return f"dataset.random_erasing={cfg.dataset.random_erasing}: every epoch erases other rectangles"
    return None


# ------------------------------------------------------------------------------------- main
def plain_tag(tag: str) -> bool:
    """a word without spaces or commas"""
    return bool(tag) and not any(c.isspace() or c == "," for c in tag)


# The option of each group that app-train runs unless told otherwise
DEFAULT_OPTIONS = {
    "dataset": "digits",
    "feature_extractor": "alexnet",
    "classifier": "small",
    "optimizer": "adam",
    "scheduler": "cosine",
    "trainer": "default",
    "logger": "csv",
}
DEFAULTS: list[Any] = ["_self_", *({group: option} for group, option in DEFAULT_OPTIONS.items())]


@dataclass(kw_only=True)
class MainConfig(Config):
    """The schema of the whole run; the defaults list picks one option of each group."""

    # and TrainerConfig's; a schedule's length follows trainer.epochs (a run extended to 40 epochs)
    resume_may_change: ClassVar[tuple[str, ...]] = ("logger", "tags", "scheduler.epochs")

    # Hydra's defaults list (not an argument: in Python every group's config is given)
    defaults: list[Any] = field(init=False, default_factory=lambda: [*DEFAULTS])
    dataset: DatasetConfig
    feature_extractor: FeatureExtractorConfig
    classifier: HeadConfig
    optimizer: OptimizerConfig
    scheduler: Optional[SchedulerConfig]  # None: the optimizer's lr throughout
    trainer: TrainerConfig
    logger: LoggerConfig
    # words to find the run by later: kept in its summary.json and in the sweep's summary.csv
    tags: list[Annotated[str, Predicate(plain_tag)]] = field(default_factory=list)


# Each group's option is the defaults list's, an experiment's or the command line's; ~scheduler: none
store(MainConfig(**{group: MISSING for group in DEFAULT_OPTIONS} | {"scheduler": None}), name=CONFIG_NAME)


class Unset(Enum):
    """A group a partial override leaves as it is (``None`` there means: no scheduler)."""

    UNSET = "unset"


UNSET = Unset.UNSET


def given(config: Config) -> dict[str, Any]:
    """The values a config object was given as arguments (each ``Config`` value, its own given
    values likewise), as plain values; the fields left to their defaults are not among them."""
    from omegaconf import OmegaConf

    values: dict[str, Any] = {}
    for name in getattr(config, "_given", ()):
        value = getattr(config, name)
        if isinstance(value, Config):
            value = given(value)
        elif isinstance(value, (list, tuple)):  # a head's layers: whole, each with its _target_
            value = [OmegaConf.to_container(OmegaConf.structured(v)) if isinstance(v, Config) else v for v in value]
        values[name] = value
    return values


def partial_override(
    name: str,
    *,
    dataset: Optional[DatasetConfig] = None,
    feature_extractor: Optional[FeatureExtractorConfig] = None,
    classifier: Optional[HeadConfig] = None,
    optimizer: Optional[OptimizerConfig] = None,
    scheduler: Union[SchedulerConfig, None, Unset] = UNSET,
    trainer: Optional[TrainerConfig] = None,
    logger: Optional[LoggerConfig] = None,
    tags: Optional[list[str]] = None,
    pick_options: bool = False,
) -> type:
    """A config for the global package that sets what each group's config object was given
    (``trainer=TrainerConfig(epochs=1)`` sets ``trainer.epochs`` alone) and leaves every other key
    as it is; mypy checks each value's names and types. With ``pick_options``, a group given as the
    class of one of its stored options also picks that option (``optimizer=AdamWConfig(...)``:
    Hydra's ``override /optimizer: adamw``); a group's base class (``OptimizerConfig(lr=...)``)
    never does.

    Hydra merges only a subclass of ``MainConfig`` into the typed main config, so this is one,
    with its own defaults list and every field it does not set MISSING (which a merge skips).
    """
    groups: dict[str, Any] = {
        "dataset": dataset, "feature_extractor": feature_extractor, "classifier": classifier,
        "optimizer": optimizer, "trainer": trainer, "logger": logger,
    }  # fmt: skip
    values: dict[str, Any] = {group: given(config) for group, config in groups.items() if config is not None}
    if scheduler is not UNSET:
        values["scheduler"] = None if scheduler is None else given(scheduler)
        groups["scheduler"] = scheduler
    if tags is not None:
        values["tags"] = tags
    options = {group: _option_of(group, config) for group, config in groups.items() if pick_options}
    unset = {f.name: MISSING for f in fields(MainConfig) if f.init and f.name not in values}
    return make_config(
        hydra_defaults=[*({f"override /{group}": option} for group, option in options.items() if option), "_self_"],
        **unset,
        **values,
        bases=(MainConfig,),
        zen_dataclass={"cls_name": name, "module": __name__},
    )


def _option_of(group: str, config: Any) -> Optional[str]:
    """The name of ``group``'s stored option whose config class is the class of ``config``."""
    found = [e["name"] for e in store if e["group"] == group and type(e["node"]) is type(config)]
    return found[0] if len(found) == 1 else None


# ``+debug=fast``: a run of seconds, for smoke tests.
FastDebugConfig = partial_override(
    "FastDebugConfig",
    dataset=DatasetConfig(image=ImageConfig(size=64), train_size=64, val_size=32),
    trainer=TrainerConfig(epochs=1, batch_size=16),
)
# ``+debug=overfit``: the same two batches for 40 epochs at a constant, higher lr: the training
# loss must fall to about 0, or the model, the loss or the data has a bug. AlexNet from random
# weights in bf16 ends at about 0.002 after 40 epochs; after 30 it was still 0.03-0.10 (dropout
# and bf16 make the last epochs noisy), too close to the 0.05 the test asks for.
OverfitDebugConfig = partial_override(
    "OverfitDebugConfig",
    dataset=DatasetConfig(image=ImageConfig(size=64)),
    optimizer=OptimizerConfig(lr=3e-4),
    scheduler=None,
    trainer=TrainerConfig(epochs=40, batch_size=16, overfit_batches=2, early_stopping_patience=None),
)
# ``+debug=profile``: torch's profiler on a few steps of a short run, trace in profile/.
ProfileDebugConfig = partial_override(
    "ProfileDebugConfig",
    dataset=DatasetConfig(image=ImageConfig(size=64), train_size=128, val_size=32),
    trainer=TrainerConfig(epochs=1, batch_size=16, profile_steps=4),
)
store(FastDebugConfig(), group="debug", name="fast", package="_global_")
store(OverfitDebugConfig(), group="debug", name="overfit", package="_global_")
store(ProfileDebugConfig(), group="debug", name="profile", package="_global_")


# ------------------------------------------------------------------------------ experiments
experiment = functools.partial(partial_override, pick_options=True)
"""A named experiment for ``+experiment=NAME``: a ``partial_override`` whose groups given as an
option's class pick that option (Hydra's ``override /group: option``), every other key left as it is."""


def as_untyped(config: type) -> Any:
    """``config`` (a ``partial_override``) as a plain node without its MISSING keys, to store.

    Hydra retypes the root to the first ``MainConfig`` subclass merged into it and then refuses
    a second sibling (``+experiment=X +debug=fast``: "FastDebugConfig is not a subclass of X"),
    so an experiment is stored untyped and its values are checked against ``MainConfig`` as
    they are merged, as the nested values of every partial override already are.
    """
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(OmegaConf.structured(config))
    assert isinstance(values, dict)
    return OmegaConf.create({key: value for key, value in values.items() if value != MISSING})


# ``+experiment=digits_resnet18_frozen``: the ResNet-18 body frozen, a head trained on its
# features (computed once, then read from the feature cache), AdamW at a head's lr.
DigitsResNet18Frozen = experiment(
    "DigitsResNet18Frozen",
    dataset=DigitsConfig(image=ImageConfig(size=64)),  # 8x8 digits: 64 px is 2 pixels per ResNet-18 output map side
    feature_extractor=ResNet18Config(),
    classifier=SmallHeadConfig(),
    optimizer=AdamWConfig(lr=1e-3),
    trainer=TrainerConfig(freeze_extractor=True, epochs=8),
)
# ``+experiment=digits_alexnet_finetune``: all of AlexNet trained, its body at a tenth of the
# head's lr, the larger head and a one-cycle schedule.
DigitsAlexNetFinetune = experiment(
    "DigitsAlexNetFinetune",
    dataset=DigitsConfig(),
    feature_extractor=AlexNetConfig(),
    classifier=LargeHeadConfig(),
    optimizer=AdamWConfig(lr=3e-4),
    scheduler=OneCycleConfig(),
    trainer=TrainerConfig(freeze_extractor=False, extractor_lr_scale=0.1, epochs=6),
)
# ``+experiment=digits_resnet18_finetune``: all of ResNet-18 trained, its body at a tenth of the
# head's lr, warmed up for half an epoch, with label smoothing and an EMA of the weights; on your own
# images: ``+experiment=digits_resnet18_finetune dataset=folder dataset.root=DIR dataset.classes=N``.
DigitsResNet18Finetune = experiment(
    "DigitsResNet18Finetune",
    dataset=DigitsConfig(image=ImageConfig(size=64)),
    feature_extractor=ResNet18Config(),
    classifier=SmallHeadConfig(),
    optimizer=AdamWConfig(lr=1e-3),
    scheduler=CosineConfig(warmup_epochs=0.5),  # half an epoch: a +debug=fast run of 1 epoch keeps it
    trainer=TrainerConfig(
        freeze_extractor=False, extractor_lr_scale=0.1, epochs=6, label_smoothing=0.1, ema_decay=0.99
    ),
)
# ``+experiment=torchvision_recipe``: torchvision's classification recipe ("How to train
# state-of-the-art models using TorchVision's latest primitives", 2021: ResNet-50 to 80.9% on
# ImageNet) at a fine-tune's length: TrivialAugment, random erasing 0.1, mixup 0.2 and cutmix 1.0,
# label smoothing 0.1, SGD with momentum 0.9 and weight decay 2e-5 at its lr of 0.5 per 1024
# images (0.03125 for a batch of 64), cosine after a linear warm-up, an EMA of the weights.
# It changes the training images, so it needs a dataset that can (a folder, CIFAR-10):
# ``dataset=folder dataset.root=DIR dataset.classes=N +experiment=torchvision_recipe``.
TorchvisionRecipe = experiment(
    "TorchvisionRecipe",
    dataset=AugmentedDatasetConfig(augment=Augment.trivialaugment, random_erasing=0.1),
    feature_extractor=ResNet50Config(),
    optimizer=SGDConfig(lr=0.5 * 64 / 1024, momentum=0.9, weight_decay=2e-5),
    # 600 epochs and 5 of warm-up in the recipe: here 30, and half an epoch (a +debug=fast run keeps it)
    scheduler=CosineConfig(warmup_epochs=0.5),
    trainer=TrainerConfig(
        epochs=30,
        batch_size=64,
        label_smoothing=0.1,
        mixup_alpha=0.2,
        cutmix_alpha=1.0,
        # the recipe's EMA spans ~4% of its 750k steps; 0.99 per step spans ~100, as much of a fine-tune's
        ema_decay=0.99,
    ),
)
# ``+experiment=staged_finetune``: a pretrained body fine-tuned in two stages (fastai's
# fine_tune, Lightning's BackboneFinetuning): the head alone for 3 epochs (on cached features,
# where no augmentation changes the images), then the whole model, the body at a tenth of the
# head's lr, with AdamW, label smoothing and an EMA; give it pretrained weights:
# ``+experiment=staged_finetune feature_extractor.weights=IMAGENET1K_V1`` (or .checkpoint=PATH).
StagedFinetune = experiment(
    "StagedFinetune",
    feature_extractor=ResNet18Config(),
    classifier=SmallHeadConfig(),
    optimizer=AdamWConfig(lr=1e-3, weight_decay=0.05),
    scheduler=CosineConfig(warmup_epochs=0.5),
    trainer=TrainerConfig(epochs=10, freeze_epochs=3, extractor_lr_scale=0.1, label_smoothing=0.1, ema_decay=0.99),
)
EXPERIMENTS = {
    "torchvision_recipe": TorchvisionRecipe,
    "staged_finetune": StagedFinetune,
    "digits_resnet18_frozen": DigitsResNet18Frozen,
    "digits_alexnet_finetune": DigitsAlexNetFinetune,
    "digits_resnet18_finetune": DigitsResNet18Finetune,
}
for _name, _config in EXPERIMENTS.items():
    store(as_untyped(_config), group="experiment", name=_name, package="_global_")


# ------------------------------------------------------------------- your own, registered
@typing.overload
def add_option(group: typing.Literal["dataset"], name: str, config: DatasetConfig) -> None: ...
@typing.overload
def add_option(group: typing.Literal["feature_extractor"], name: str, config: FeatureExtractorConfig) -> None: ...
@typing.overload
def add_option(group: typing.Literal["classifier"], name: str, config: HeadConfig) -> None: ...
@typing.overload
def add_option(group: typing.Literal["optimizer"], name: str, config: OptimizerConfig) -> None: ...
@typing.overload
def add_option(group: typing.Literal["scheduler"], name: str, config: SchedulerConfig) -> None: ...
@typing.overload
def add_option(group: typing.Literal["trainer"], name: str, config: TrainerConfig) -> None: ...
@typing.overload
def add_option(group: typing.Literal["logger"], name: str, config: LoggerConfig) -> None: ...
def add_option(group: str, name: str, config: Config) -> None:
    """``config`` as option ``name`` of ``group`` (``app-train dataset=NAME``), in the app's store
    and in Hydra's; mypy and this function refuse a config of another group's class."""
    schema = _schema(group)
    if not isinstance(config, schema):
        raise TypeError(f"the {group} group's options are {schema.__name__}s, not {type(config).__name__}")
    store(config, group=group, name=name)
    store.add_to_hydra_store(overwrite_ok=True)


def add_experiment(name: str, config: type) -> None:
    """An ``experiment(...)`` as ``+experiment=NAME``, in the app's store and in Hydra's."""
    store(as_untyped(config), group="experiment", name=name, package="_global_")
    store.add_to_hydra_store(overwrite_ok=True)


def _schema(group: str) -> type:
    """The config class of ``group``'s slot in ``MainConfig`` (``Optional[X]``: X)."""
    hint: Any = {f.name: f.type for f in fields(MainConfig)}[group]
    base: type = typing.get_args(hint)[0] if typing.get_args(hint) else hint
    return base


# --------------------------------------------------------------------------- search presets


@dataclass(kw_only=True)
class SamplerSeedConfig(Config):
    seed: Optional[int] = 0  # the same trials, in the same order, for the same command


@dataclass(kw_only=True)
class SearchSweeperConfig(Config):
    """``hydra.sweeper`` as a search preset sets it: Optuna, maximising the best validation
    accuracy (what the job returns), its study kept in SQLite in the sweep dir."""

    _target_: str = field(init=False, default=SEARCH_SWEEPER)
    direction: str = "maximize"
    study_name: str = MISSING
    # the sweep dir is made before the study is opened (ResumableOptunaSweeper.sweep)
    storage: str = "sqlite:///${hydra.sweep.dir}/optuna.db"
    n_trials: AtLeastOne = 20  # in all: a rerun of the same command runs only those not finished
    n_jobs: AtLeastOne = 1  # trials drawn at a time (the launcher runs them: hydra/launcher=joblib)
    sampler: SamplerSeedConfig = field(default_factory=SamplerSeedConfig)
    params: dict[str, str] = field(default_factory=dict)  # key: Hydra sweep expression (interval, choice)


@dataclass(kw_only=True)
class SearchSweepDir(Config):
    dir: str = MISSING  # fixed, not dated: the same command finds the same study
    subdir: str = "${hydra.job.num}"


@dataclass(kw_only=True)
class SearchHydraConfig(Config):
    sweeper: SearchSweeperConfig = MISSING
    sweep: SearchSweepDir = MISSING


def search_preset(name: str, params: Mapping[str, str], n_trials: int = 20) -> type:
    """``+hparams_search=NAME``: the Optuna sweeper over ``params``, its study and sweep dir named ``NAME``."""
    return make_config(
        hydra_defaults=[{"override /hydra/sweeper": "optuna"}, "_self_"],
        hydra=SearchHydraConfig(
            sweeper=SearchSweeperConfig(study_name=name, n_trials=n_trials, params=dict(params)),
            sweep=SearchSweepDir(dir=f"multirun/search/{name}"),
        ),
        zen_dataclass={"cls_name": f"Search_{name}", "module": __name__},
    )


# ``+hparams_search=lr_wd``: the learning rate on a log scale and the weight decay, 20 trials.
LrWdSearch = search_preset(
    "lr_wd",
    {
        "optimizer.lr": "tag(log, interval(1e-5, 1e-2))",
        "optimizer.weight_decay": "interval(0, 0.1)",
    },
)
# ``+hparams_search=head_lr``: the head's size and the learning rate, 12 trials.
HeadLrSearch = search_preset(
    "head_lr",
    {
        "classifier": "choice(small, large)",
        "optimizer.lr": "tag(log, interval(1e-5, 1e-2))",
    },
    n_trials=12,
)
SEARCHES = {"lr_wd": LrWdSearch, "head_lr": HeadLrSearch}
for _name, _config in SEARCHES.items():
    store(as_untyped(_config), group="hparams_search", name=_name, package="_global_")


# ------------------------------------------------------------------- evaluate and predict
EVALUATE_NAME, PREDICT_NAME = "evaluate", "predict"  # their primary configs, and their jobs' names


def file_or_dir(path: str) -> bool:
    """an existing file or directory"""
    return existing_file(path) or existing_dir(path)


class Split(Enum):
    val = "val"  # the validation split the run held out (of a folder it never saw: a seeded share of it)
    train = "train"
    all = "all"  # both: every image of a dataset the run never trained on


class TestTime(Enum):
    """Test-time augmentation: each image's class probabilities averaged over views of it."""

    none = "none"
    flip = "flip"  # the image and its mirror
    five_crop = "five_crop"  # its four corners and centre, each 7/8 of a side, resized back


@dataclass(kw_only=True)
class InferenceConfig(Config):
    """What ``app-evaluate`` and ``app-predict`` share: a trained model and how to run it."""

    # checkpoints/best.pt or last.pt of a run: the model and its config come from it
    checkpoint: Annotated[PathText, Predicate(whole_checkpoint)]
    batch_size: AtLeastOne = 64
    device: Device = Device.auto
    precision: Optional[Precision] = None  # null: the checkpoint's trainer.precision
    num_workers: Optional[Workers] = None  # null: chosen for the data
    tta: TestTime = TestTime.none  # test-time augmentation: probabilities averaged over flip or five_crop views


@dataclass(kw_only=True)
class EvaluateConfig(InferenceConfig):
    """``app-evaluate checkpoint=PATH``: loss, accuracy and per-class figures on a dataset split.

    The dataset is the checkpoint's, option and values, unless the command line says otherwise
    (``dataset.root=...``, or ``dataset=folder ...``): ``app.launch.from_checkpoint`` puts the
    checkpoint's values first on the command line, where later overrides win.
    """

    defaults: list[Any] = field(init=False, default_factory=lambda: ["_self_", {"dataset": "digits"}])
    dataset: DatasetConfig
    split: Split = Split.val  # the validation split the run held out, its training split, or all of it


@dataclass(kw_only=True)
class PredictConfig(InferenceConfig):
    """``app-predict checkpoint=PATH input=FILE_OR_DIR``: a CSV of each image's classes, best first."""

    input: Annotated[PathText, Predicate(file_or_dir)]  # an image, or a folder searched recursively
    top_k: Optional[AtLeastOne] = None  # classes listed per image; null: 5, or all when there are fewer


store(EvaluateConfig(checkpoint=MISSING, dataset=MISSING), name=EVALUATE_NAME)  # given at launch
store(PredictConfig(checkpoint=MISSING, input=MISSING), name=PREDICT_NAME)


def option_class(group: str, values: Any) -> type:
    """The config class of ``group``'s stored option that builds what ``values`` (a resolved
    node, as a checkpoint holds it) builds: the option with its ``_target_``, else the group's
    schema (the heads share theirs)."""
    target = values.get("_target_") if hasattr(values, "get") else None  # a dict or a DictConfig
    found = {
        type(e["node"]): None for e in store if e["group"] == group and getattr(e["node"], "_target_", None) == target
    }
    # Of the classes that build it (a user's subclass, say), those with a field for every key it
    # has, and of these the one with the fewest fields: the class that wrote it
    keys = set(values.keys()) if hasattr(values, "keys") else set()
    # (a base before its subclasses where they have the same fields)
    fitting = sorted(
        ((len(fields(c)), len(c.__mro__)), c.__qualname__, c) for c in found if {f.name for f in fields(c)} >= keys
    )
    if len(fitting) == 1 or (fitting and fitting[0][0] < fitting[1][0]):
        return fitting[0][2]
    return _schema(group)  # none, or several alike (the heads share theirs)


PATH_CHECKS = (existing_file, existing_dir, directory_path, resumable)  # the predicates of path fields


def path_fields(schema: type) -> list[str]:
    """The fields of config class ``schema`` annotated as a path (``FilePath``, ``DirPath``, ...)."""
    hints = typing.get_type_hints(schema, include_extras=True)
    found = []
    for f in fields(schema):
        hint, metadata = hints[f.name], []
        while True:  # through Optional[...] and Annotated[...], gathering the annotations
            if typing.get_origin(hint) is Annotated:
                metadata += list(hint.__metadata__)
                hint = hint.__origin__
            elif type(None) in typing.get_args(hint):
                hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
            else:
                break
        if any(isinstance(m, Predicate) and m.func in PATH_CHECKS for m in metadata):
            found.append(f.name)
    return found


def node_class(group: str, node: Any) -> type:
    """The config class of a ``group`` node: its own type when it is typed (composed), else the
    class of the stored option with its ``_target_`` (a resolved or plain node)."""
    from omegaconf import DictConfig, OmegaConf

    typed = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    if isinstance(typed, type) and is_dataclass(typed):
        return typed
    return option_class(group, node)


def _typed_layers(values: Any) -> Any:
    """A head's resolved values with each of its layers typed (``typed_layer``)."""
    layers = values.get("_args_") if isinstance(values, dict) else None
    if not isinstance(layers, list):
        return values
    return {**values, "_args_": [typed_layer(layer) for layer in layers]}


def typed_layer(layer: Any) -> Any:
    """A layer's values (a dict, as a checkpoint or the command line writes it) as a node of the
    layer config with its ``_target_`` (``LinearConfig``, ...); anything else as it is."""
    from omegaconf import OmegaConf

    classes = {getattr(c, "_target_"): c for c in _subclasses(LayerConfig)}  # noqa: B009  (a class attribute)
    if isinstance(layer, dict) and layer.get("_target_") in classes:
        return OmegaConf.merge(OmegaConf.structured(classes[layer["_target_"]]), layer)
    return layer


def _subclasses(base: type) -> list[type]:
    direct: list[type] = base.__subclasses__()
    return [sub for child in direct for sub in [child, *_subclasses(child)]]


def typed_config(values: dict[str, Any]) -> MainConfig:
    """A run's resolved config (``config.yaml``, a checkpoint's ``config``) as a ``MainConfig``
    of dataclasses, each node typed as the option that wrote it."""
    from omegaconf import OmegaConf

    groups = list(DEFAULT_OPTIONS)
    nodes: dict[str, Any] = {
        name: None
        if values.get(name) is None
        else OmegaConf.merge(OmegaConf.structured(option_class(name, values[name])), _typed_layers(values[name]))
        for name in groups
    }
    nodes |= {
        f.name: values[f.name] for f in fields(MainConfig) if f.name not in [*groups, "defaults"] and f.name in values
    }
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(MainConfig), nodes))
    assert isinstance(config, MainConfig)
    return config


store.add_to_hydra_store(overwrite_ok=True)
