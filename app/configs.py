"""Every config of the app, and the one store that registers them with Hydra.

Each config is a typed dataclass whose ``_target_`` is the import path of what it builds, so
mypy checks configs written in Python, OmegaConf refuses mistyped overrides, and importing this
module (for ``--help``, ``--cfg``, tab completion, notebooks) never imports torch.

The tree (``python -m app.train --help`` lists it too)::

    dataset            digits* | fake           what to train on
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
from typing import Any, Optional

from hydra.conf import HelpConf, HydraConf, JobConf
from hydra_zen import ZenStore
from omegaconf import II, MISSING, DictConfig

CONFIG_NAME = "config"
JOB_NAME = "train"
VERSION_BASE = "1.3"

store = ZenStore(name="app")


# --------------------------------------------------------------------------------- dataset
@dataclass
class ImageConfig:
    size: int = 124  # side of the square images fed to the extractor, in pixels
    channels: int = 3  # 1 (grey, repeated for RGB backbones) or 3


@dataclass
class DatasetConfig:
    """Keys every dataset option has; the factory returns a train and a validation split."""

    _target_: str = MISSING
    image: ImageConfig = field(default_factory=ImageConfig)
    classes: int = 10
    train_size: Optional[int] = None  # images to use; null: all there are
    val_size: Optional[int] = None
    seed: int = II("trainer.seed")  # the split (or the generated data) follows the run's seed


@dataclass
class DigitsConfig(DatasetConfig):
    """scikit-learn's 1,797 handwritten 8x8 digits, resized; ``classes`` keeps digits 0..classes-1."""

    _target_: str = "app.data.digits"
    val_fraction: float = 0.2


@dataclass
class FakeDataConfig(DatasetConfig):
    """torchvision FakeData: random images, deterministic from the seed (smoke tests, benchmarks)."""

    _target_: str = "app.data.fake"
    train_size: Optional[int] = 256  # null: 1000
    val_size: Optional[int] = 64  # null: 200


store(DigitsConfig(), group="dataset", name="digits")
store(FakeDataConfig(), group="dataset", name="fake")


# ------------------------------------------------------------------------ feature extractor
@dataclass
class FeatureExtractorConfig:
    """A pretrained CNN body that maps an image batch to flat ``out_features``-wide vectors."""

    _target_: str = MISSING
    weights: Optional[str] = None  # torchvision weights name, e.g. IMAGENET1K_V1 (downloads)
    checkpoint: Optional[str] = None  # a local torchvision state dict to load instead
    out_features: int = MISSING  # the width it produces; the head's first layer follows it


@dataclass
class AlexNetConfig(FeatureExtractorConfig):
    _target_: str = "app.models.alexnet"
    out_features: int = 9216


@dataclass
class ResNet18Config(FeatureExtractorConfig):
    _target_: str = "app.models.resnet18"
    out_features: int = 512


store(AlexNetConfig(), group="feature_extractor", name="alexnet")
store(ResNet18Config(), group="feature_extractor", name="resnet18")


# ------------------------------------------------------------------------------- classifier
@dataclass
class LinearConfig:
    _target_: str = "torch.nn.Linear"
    in_features: int = MISSING
    out_features: int = MISSING
    bias: bool = True


@dataclass
class ReLUConfig:
    _target_: str = "torch.nn.ReLU"
    inplace: bool = False


@dataclass
class DropoutConfig:
    _target_: str = "torch.nn.Dropout"
    p: float = 0.5
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
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.0
    nesterov: bool = False


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    amsgrad: bool = False


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


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
    T_max: int = II("trainer.epochs")
    eta_min: float = 0.0


@dataclass
class StepConfig(SchedulerConfig):
    _target_: str = "torch.optim.lr_scheduler.StepLR"
    step_size: int = 1
    gamma: float = 0.5


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
    epochs: int = 4
    batch_size: int = 32
    seed: int = 0
    device: Device = Device.auto
    num_workers: Optional[int] = None  # null: chosen from the dataset and the cores
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
# Hydra's own config, stored like the rest: the job is called ``train`` (so the log is
# ``train.log``) whatever module or script launched it.
store(
    HydraConf(
        job=JobConf(name=JOB_NAME),
        help=HelpConf(app_name="app-train", header=HELP_HEADER),
    ),
    group="hydra",
    name="config",
)

store.add_to_hydra_store(overwrite_ok=True)


# ------------------------------------------------------------------------ use from Python
def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The composed, validated config for ``overrides``, as ``python -m app.train`` would see it.

    For notebooks and tests; needs no Hydra app. ``OmegaConf.to_object`` turns it into a
    ``MainConfig`` instance when typed attribute access is wanted.
    """
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(config_name=CONFIG_NAME, overrides=list(overrides))
    with initialize(version_base=VERSION_BASE, config_path=None, job_name=JOB_NAME):
        return compose(config_name=CONFIG_NAME, overrides=list(overrides))

