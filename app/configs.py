"""Every config of the app, and the one store that registers them with Hydra.

Each config is a typed dataclass whose ``_target_`` is the import path of what it builds, so
mypy checks configs written in Python, OmegaConf refuses mistyped overrides, and importing this
module (for ``--help``, ``--cfg``, tab completion, notebooks) never imports torch.

The tree (``python -m app.train --help`` lists it too)::

    dataset            digits* | fake | folder  what to train on
    feature_extractor  alexnet* | resnet18      the pretrained CNN body
    classifier         small* | large           the head trained on top of it
    optimizer          adam* | adamw | sgd
    scheduler          cosine* | step           ``~scheduler`` keeps the lr constant
    trainer            default*                 epochs, batch size, seed, device, ...
    debug              fast                     add with ``+debug=fast`` for a tiny run
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Optional

from hydra.conf import HelpConf, HydraConf, JobConf
from hydra.core.config_store import ConfigStore
from hydra_zen import ZenStore
from omegaconf import II, MISSING, DictConfig

from app.rules import RULE, Rule, checked
from app.validation import raise_if_invalid, rules_help

AT_LEAST_ONE = Rule(ge=1)
NOT_NEGATIVE = Rule(ge=0)
POSITIVE = Rule(gt=0)

CONFIG_NAME = "config"
JOB_NAME = "train"
VERSION_BASE = "1.3"

store = ZenStore(name="app")


# --------------------------------------------------------------------------------- dataset
@dataclass
class ImageConfig:
    # side of the square images fed to the extractor, in pixels (its minimum: a cross-field rule)
    size: int = checked(124, AT_LEAST_ONE)
    channels: int = checked(3, Rule(one_of=(1, 3), why="grey images are repeated for RGB backbones"))


@dataclass
class DatasetConfig:
    """Keys every dataset option has; the factory returns a train and a validation split."""

    _target_: str = MISSING
    image: ImageConfig = field(default_factory=ImageConfig)
    classes: int = checked(10, Rule(ge=2, why="a classifier needs two classes or more"))
    train_size: Optional[int] = checked(None, AT_LEAST_ONE)  # images to use; null: all there are
    val_size: Optional[int] = checked(None, AT_LEAST_ONE)
    seed: int = II("trainer.seed")  # the split (or the generated data) follows the run's seed


@dataclass
class DigitsConfig(DatasetConfig):
    """scikit-learn's 1,797 handwritten 8x8 digits, resized; ``classes`` keeps digits 0..classes-1."""

    _target_: str = "app.data.digits"
    classes: int = checked(10, Rule(ge=2, le=10, why="digits has ten classes, 0-9"))
    val_fraction: float = checked(0.2, Rule(gt=0, lt=1, why="both splits need images"))


@dataclass
class FakeDataConfig(DatasetConfig):
    """torchvision FakeData: random images, deterministic from the seed (smoke tests, benchmarks)."""

    _target_: str = "app.data.fake"
    train_size: Optional[int] = checked(256, AT_LEAST_ONE)  # null: 1000
    val_size: Optional[int] = checked(64, AT_LEAST_ONE)  # null: 200


@dataclass
class ImageFolderConfig(DatasetConfig):
    """Your own images: one subfolder of ``root`` per class, as torchvision's ImageFolder reads."""

    _target_: str = "app.data.image_folder"
    root: str = checked(MISSING, Rule(existing_dir=True))
    classes: int = checked(MISSING, Rule(ge=2, why="must equal the number of class folders"))
    val_fraction: float = checked(0.2, Rule(gt=0, lt=1, why="both splits need images"))


store(DigitsConfig(), group="dataset", name="digits")
store(FakeDataConfig(), group="dataset", name="fake")
store(ImageFolderConfig(), group="dataset", name="folder")


# ------------------------------------------------------------------------ feature extractor
@dataclass
class FeatureExtractorConfig:
    """A pretrained CNN body that maps an image batch to flat ``out_features``-wide vectors."""

    min_image_size: ClassVar[int] = 1  # smallest dataset.image.size the body accepts

    _target_: str = MISSING
    # torchvision weights name (downloads on first use); or a local torchvision state dict
    weights: Optional[str] = checked(None, Rule(one_of=("IMAGENET1K_V1", "DEFAULT")))
    checkpoint: Optional[str] = checked(None, Rule(existing_file=True))
    out_features: int = MISSING  # the width it produces; the head's first layer follows it


@dataclass
class AlexNetConfig(FeatureExtractorConfig):
    min_image_size: ClassVar[int] = 63  # smaller maps vanish in AlexNet's third max-pool

    _target_: str = "app.models.alexnet"
    out_features: int = checked(9216, Rule(one_of=(9216,), why="AlexNet pools to 256x6x6"))


@dataclass
class ResNet18Config(FeatureExtractorConfig):
    min_image_size: ClassVar[int] = 32  # below it the last stage sees single pixels

    _target_: str = "app.models.resnet18"
    out_features: int = checked(512, Rule(one_of=(512,), why="ResNet-18 pools to 512 channels"))


store(AlexNetConfig(), group="feature_extractor", name="alexnet")
store(ResNet18Config(), group="feature_extractor", name="resnet18")


# ------------------------------------------------------------------------------- classifier
@dataclass
class LinearConfig:
    _target_: str = "torch.nn.Linear"
    in_features: int = checked(MISSING, AT_LEAST_ONE)
    out_features: int = checked(MISSING, AT_LEAST_ONE)
    bias: bool = True


@dataclass
class ReLUConfig:
    _target_: str = "torch.nn.ReLU"
    inplace: bool = False


@dataclass
class DropoutConfig:
    _target_: str = "torch.nn.Dropout"
    p: float = checked(0.5, Rule(ge=0, lt=1, why="the probability of zeroing a unit"))
    inplace: bool = False


# Widths chain through relative interpolation: in ``_args_[i]``, ``..`` is the ``_args_`` list,
# so ``${..[0].out_features}`` reads the first layer's width. The first layer follows the
# extractor and the last one the dataset, so no number has to be kept in sync by hand.
FROM_EXTRACTOR: Any = II("feature_extractor.out_features")
TO_CLASSES: Any = II("dataset.classes")


def _follows(index: int) -> Any:
    return II(f"..[{index}].out_features")


@dataclass
class HeadConfig:
    """A ``torch.nn.Sequential`` whose layers are its positional ``_args_``."""

    _target_: str = "torch.nn.Sequential"
    _args_: list[Any] = MISSING


@dataclass
class SmallHeadConfig(HeadConfig):
    _args_: list[Any] = field(
        default_factory=lambda: [
            LinearConfig(in_features=FROM_EXTRACTOR, out_features=100),
            ReLUConfig(),
            LinearConfig(in_features=_follows(0), out_features=TO_CLASSES),
        ]
    )


@dataclass
class LargeHeadConfig(HeadConfig):
    _args_: list[Any] = field(
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
@dataclass
class OptimizerConfig:
    """Partial: the job calls it with the trainable parameters."""

    _target_: str = MISSING
    _partial_: bool = True
    _convert_: str = "all"  # betas reach torch as a plain list, not a ListConfig
    lr: float = checked(1e-3, POSITIVE)
    weight_decay: float = checked(0.0, NOT_NEGATIVE)


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = checked(0.01, POSITIVE)
    momentum: float = checked(0.9, NOT_NEGATIVE)
    dampening: float = checked(0.0, NOT_NEGATIVE)
    nesterov: bool = False  # needs momentum > 0 and dampening 0 (a cross-field rule)


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    lr: float = checked(1e-4, POSITIVE)
    betas: list[float] = field(
        default_factory=lambda: [0.9, 0.999], metadata={RULE: Rule(ge=0, lt=1)}
    )
    eps: float = checked(1e-8, POSITIVE)
    amsgrad: bool = False


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = checked(0.01, NOT_NEGATIVE)


store(AdamConfig(), group="optimizer", name="adam")
store(AdamWConfig(), group="optimizer", name="adamw")
store(SGDConfig(), group="optimizer", name="sgd")


# -------------------------------------------------------------------------------- scheduler
@dataclass
class SchedulerConfig:
    """Partial: the job calls it with the optimizer, and steps it once per epoch."""

    _target_: str = MISSING
    _partial_: bool = True


@dataclass
class CosineConfig(SchedulerConfig):
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    T_max: int = checked(II("trainer.epochs"), AT_LEAST_ONE)
    eta_min: float = checked(0.0, NOT_NEGATIVE)


@dataclass
class StepConfig(SchedulerConfig):
    _target_: str = "torch.optim.lr_scheduler.StepLR"
    step_size: int = checked(1, AT_LEAST_ONE)
    gamma: float = checked(0.5, POSITIVE)


store(CosineConfig(), group="scheduler", name="cosine")
store(StepConfig(), group="scheduler", name="step")


# ---------------------------------------------------------------------------------- trainer
class Device(Enum):
    auto = "auto"  # cuda when available, else cpu
    cpu = "cpu"
    cuda = "cuda"


class Precision(Enum):
    fp32 = "fp32"
    bf16 = "bf16"  # autocast to bfloat16
    fp16 = "fp16"  # autocast to float16, with gradient scaling


@dataclass
class TrainerConfig:
    epochs: int = checked(4, AT_LEAST_ONE)
    batch_size: int = checked(32, AT_LEAST_ONE)
    seed: int = checked(0, NOT_NEGATIVE)
    device: Device = Device.auto
    num_workers: Optional[int] = checked(None, NOT_NEGATIVE)  # null: chosen for the data
    freeze_extractor: bool = False  # train the head only
    precision: Precision = Precision.fp32
    channels_last: bool = False  # NHWC memory format: faster convolutions on recent GPUs


store(TrainerConfig(), group="trainer", name="default")

# ``+debug=fast``: a run of seconds, for smoke tests. A plain dict so that it sets only these keys.
store(
    {
        "dataset": {"image": {"size": 64}, "train_size": 64, "val_size": 32},
        "trainer": {"epochs": 1, "batch_size": 16},
    },
    group="debug",
    name="fast",
    package="_global_",
)


# ------------------------------------------------------------------------------------- main
@dataclass
class MainConfig:
    """The schema of the whole run; the defaults list picks one option of each group."""

    defaults: list[Any] = field(
        default_factory=lambda: [
            "_self_",
            {"dataset": "digits"},
            {"feature_extractor": "alexnet"},
            {"classifier": "small"},
            {"optimizer": "adam"},
            {"scheduler": "cosine"},
            {"trainer": "default"},
        ]
    )
    dataset: DatasetConfig = MISSING
    feature_extractor: FeatureExtractorConfig = MISSING
    classifier: HeadConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: Optional[SchedulerConfig] = None
    trainer: TrainerConfig = MISSING


store(MainConfig(), name=CONFIG_NAME)

HELP_HEADER = """== app-train ==
Fine-tune a classification head on a torchvision CNN. Every config is typed Python.

  app-train classifier=large optimizer.lr=3e-4 trainer.epochs=8
  app-train -m classifier=small,large        # one run dir per point
  app-train --cfg job                        # print the composed config
"""
GROUP_OPTIONS = [(e["group"], e["name"], e["node"]) for e in store if e["group"]]
# Hydra's own config, stored like the rest: the job is called ``train`` (so the log is
# ``train.log``) whatever module or script launched it; --help ends with every rule.
store(
    HydraConf(
        job=JobConf(name=JOB_NAME),
        help=HelpConf(app_name="app-train", header=HELP_HEADER, footer=rules_help(GROUP_OPTIONS)),
    ),
    group="hydra",
    name="config",
)

store.add_to_hydra_store(overwrite_ok=True)

# Hydra deep-copies the whole ConfigStore for each config-group query (~90 for --help, 0.6 s);
# nothing changes the store after registration and load() copies what it returns: share it.
ConfigStore.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]


# ------------------------------------------------------------------------ use from Python
def compose_config(overrides: Sequence[str] = (), validate: bool = True) -> DictConfig:
    """The composed config for ``overrides``, as ``python -m app.train`` would see it, checked
    against every rule (``app.validation.ConfigError`` lists what breaks them) unless
    ``validate=False``.

    For notebooks and tests; needs no Hydra app. ``OmegaConf.to_object`` turns it into a
    ``MainConfig`` instance when typed attribute access is wanted.
    """
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides))
    else:
        with initialize(version_base=VERSION_BASE, config_path=None, job_name=JOB_NAME):
            cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides))
    if validate:
        raise_if_invalid(cfg)
    return cfg

