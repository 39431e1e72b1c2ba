"""Pixels: how a picture becomes the tensor a model reads (``Pixels``: resize, crop,
standardisation), from a dataset's own statistics or a set of weights' ``Preset``, and what a
run's validation images go through (``image_transform``) or, for a trained model evaluated on
other images, how it prepared its own (``trained_preset``). ``app.data`` re-exports them."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch
from omegaconf import DictConfig

from app.configs import DatasetConfig, DigitsConfig, FeatureExtractorConfig, ImageConfig, Normalize, Preset, node_class


@dataclass(frozen=True)
class Pixels:
    """How a picture becomes a tensor: its shorter side resized to ``resize`` with
    ``interpolation``, the centre ``size`` x ``size`` cut out, standardised with ``mean`` and
    ``std`` (none: left in [0, 1])."""

    size: int
    channels: int
    resize: int
    interpolation: str
    mean: Optional[tuple[float, ...]]
    std: Optional[tuple[float, ...]]


def pixels(image: ImageConfig, dataset: type[DatasetConfig], preset: Optional[Preset]) -> Pixels:
    """The ``Pixels`` of a dataset (its config class) at ``image``, by ``preset`` or, when there
    is none, by the dataset's own statistics."""
    if preset is None and image.normalize is Normalize.weights:
        raise ValueError("dataset.image.normalize=weights needs the weights' preset: pass app.data.preset_for(cfg)")
    own = dataset.statistics
    mean: Optional[tuple[float, ...]]
    std: Optional[tuple[float, ...]]
    if preset is not None:
        resize = round(image.size * preset.resize / preset.crop)  # 256/224 x size, as torchvision's 224 px
        mean, std, interpolation = preset.mean, preset.std, preset.interpolation
    else:
        resize, interpolation = image.size, "bilinear"
        mean, std = own if own is not None else (None, None)
    if image.channels == 1 and mean is not None and std is not None:  # grey: the channels' average
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    return Pixels(image.size, image.channels, resize, interpolation, mean, std)


def preset_for(cfg: DictConfig) -> Optional[Preset]:
    """The weights' preset a run's images follow (``dataset.image.normalize``), or None for the
    dataset's own statistics; reads only the ``dataset`` and ``feature_extractor`` nodes."""
    normalize = Normalize(_name(cfg.dataset.image.get("normalize", "auto")))
    weights = cfg.feature_extractor.get("weights")
    if normalize is Normalize.dataset or (normalize is Normalize.auto and weights is None):
        return None
    backbone: type[FeatureExtractorConfig] = node_class("feature_extractor", cfg.feature_extractor)
    return backbone.presets["DEFAULT" if weights is None else _name(weights)]


def trained_preset(cfg: DictConfig) -> Preset:
    """How the run ``cfg`` (a trained model's config) prepared its validation images, as a
    ``Preset`` that any dataset applies: the weights' own, or its dataset's statistics at its
    size (mean 0, std 1 for a dataset left in [0, 1]). A model is evaluated on other images as
    it saw its own: never with the statistics of the dataset option it is evaluated on."""
    preset = preset_for(cfg)
    if preset is not None:
        return preset
    dataset: type[DatasetConfig] = node_class("dataset", cfg.dataset)
    own = dataset.statistics
    mean, std = own if own is not None else ((0.0,) * 3, (1.0,) * 3)
    size = int(cfg.dataset.image.size)
    return Preset(size, size, "bilinear", mean, std)  # resize = crop: the shorter side to size, as pixels() does


def _name(value: Any) -> str:
    return str(getattr(value, "name", value))  # an Enum member, or its name as a resolved config holds it


def _interpolation(name: str) -> Any:
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name)


@dataclass(frozen=True)
class Augmentation:
    """How a training picture changes each epoch: a dataset's ``augment`` keys
    (``AugmentedDatasetConfig``). ``policy`` is an ``Augment`` name."""

    policy: str = "none"
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    random_erasing: float = 0.0

    @property
    def crops(self) -> bool:
        """A random resized crop and flip (then the policy) instead of the resize and centre crop."""
        return self.policy != "none"

    @property
    def random(self) -> bool:
        return self.crops or self.random_erasing > 0


UNCHANGED = Augmentation()  # validation images, and training images with augment=none


def _policy(augmentation: Augmentation) -> list[Any]:
    """The policy after the crop and flip, on the PIL picture (torchvision's ``transforms.v2``)."""
    from torchvision.transforms import v2

    policies: dict[str, Callable[[], Any]] = {
        "light": list,
        "trivialaugment": lambda: [v2.TrivialAugmentWide()],
        "randaugment": lambda: [
            v2.RandAugment(num_ops=augmentation.randaugment_ops, magnitude=augmentation.randaugment_magnitude)
        ],
        "autoaugment": lambda: [v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)],
        "augmix": lambda: [v2.AugMix()],
    }
    return policies[augmentation.policy]()  # type: ignore[no-any-return]


def picture_transform(p: Pixels, augmentation: Augmentation = UNCHANGED) -> Callable[[Any], torch.Tensor]:
    """A picture (PIL, already in the right mode) to a tensor by ``p``, changed by
    ``augmentation``: a random resized crop and a horizontal flip instead of the resize and
    centre crop, then its policy; random erasing last, on the standardised tensor (as
    torchvision's reference recipe erases)."""
    from torchvision import transforms
    from torchvision.transforms import v2

    interpolation = _interpolation(p.interpolation)
    steps: list[Any] = (
        [
            transforms.RandomResizedCrop(p.size, interpolation=interpolation, antialias=True),
            transforms.RandomHorizontalFlip(),
            *_policy(augmentation),
        ]
        if augmentation.crops
        else [transforms.Resize(p.resize, interpolation=interpolation, antialias=True), transforms.CenterCrop(p.size)]
    )
    steps.append(transforms.ToTensor())
    if p.mean is not None and p.std is not None:
        steps.append(transforms.Normalize(p.mean, p.std))
    if augmentation.random_erasing > 0:
        steps.append(v2.RandomErasing(p=augmentation.random_erasing))
    return transforms.Compose(steps)  # type: ignore[no-any-return]


def decoded(picture: Any, mode: str, p: Pixels, random_crop: bool = False) -> Any:
    """``picture`` (a PIL image opened from a file, its pixels not read yet) decoded in ``mode``.
    Without ``random_crop``, a JPEG is decoded at the smallest of 1/8, 1/4, 1/2 or full scale
    whose shorter side still holds ``p.resize`` pixels (PIL's draft mode: the JPEG decoder's own
    downscaling), as the resize that follows needs no more; a random crop may need them all."""
    if not random_crop:
        picture.draft(mode, (p.resize, p.resize))  # a no-op for other formats, or pixels already read
    return picture.convert(mode)


def resized(images: torch.Tensor, p: Pixels) -> torch.Tensor:
    """In-memory square images ``[N, C, h, w]`` in [0, 1], by ``p`` (upsampling: no antialiasing)."""
    out = torch.nn.functional.interpolate(images, size=(p.resize, p.resize), mode=p.interpolation, align_corners=False)
    start = (p.resize - p.size) // 2  # torchvision's CenterCrop rounds the same way
    out = out[..., start : start + p.size, start : start + p.size].contiguous()
    if p.mean is not None and p.std is not None:
        out.sub_(torch.tensor(p.mean).view(-1, 1, 1)).div_(torch.tensor(p.std).view(-1, 1, 1))
    return out


def image_transform(cfg: DictConfig) -> Callable[[Any], torch.Tensor]:
    """What a run's validation images go through, as a function of a PIL image: the run's config
    (its ``dataset`` and ``feature_extractor`` nodes) in, ``[channels, size, size]`` tensors out;
    no dataset is loaded. For digits, the picture is an 8x8 grey one (pixel = value x 255 / 16)."""
    from torchvision.transforms.functional import to_tensor

    image = ImageConfig(
        size=cfg.dataset.image.size,
        channels=cfg.dataset.image.channels,
        normalize=Normalize(_name(cfg.dataset.image.get("normalize", "auto"))),
    )
    dataset: type[DatasetConfig] = node_class("dataset", cfg.dataset)
    if issubclass(dataset, DigitsConfig):  # held in memory as grey tensors, resized as a batch: see digits()
        grey = pixels(ImageConfig(size=image.size, channels=1, normalize=image.normalize), dataset, preset_for(cfg))
        return lambda picture: resized(to_tensor(picture.convert("L"))[None], grey)[0].expand(image.channels, -1, -1)
    p = pixels(image, dataset, preset_for(cfg))
    transform, mode = picture_transform(p), "RGB" if image.channels == 3 else "L"
    return lambda picture: transform(decoded(picture, mode, p))
