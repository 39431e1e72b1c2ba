"""Models: a pretrained torchvision CNN body (the feature extractor) under a trainable head.

A backbone's facts (its width, smallest input, weight names) live on its config class in
``app.configs``; the factories here build the torchvision model, load its weights and cut off
its classifier, and check the width they get against the one the config declares.
"""

import os
from collections.abc import Callable
from enum import Enum
from typing import Any, NamedTuple, Optional

import torch
from torch import nn

from app.configs import (
    AlexNetWeights,
    ConvNeXtTinyWeights,
    EfficientNetB0Weights,
    MainConfig,
    MobileNetV3SmallWeights,
    ResNet18Weights,
    ResNet50Weights,
    Stages,
    VGG11BNWeights,
    ViTB16Weights,
    typed_config,
)
from app.errors import CheckpointError, ExtractorWeightsDoNotFit, WeightsUnavailable, WeightsUnreadable
from app.files import CHECKPOINT_FORMAT, checkpoint_pickle

# The attribute that holds a torchvision classification model's classifier, by family.
CLASSIFIER_ATTRIBUTES = ("classifier", "fc", "heads", "head")


def staged(named: list[tuple[str, nn.Parameter]], stages: Stages) -> list[list[nn.Parameter]]:
    """``named`` parameters (``module.named_parameters()``) by stage, in ``stages``' order: each
    parameter in the one stage whose dotted name prefixes hold its name (a bug of the backbone's
    ``stages`` otherwise, named here: a test checks every backbone's)."""
    by_stage: list[list[nn.Parameter]] = [[] for _ in stages]
    for name, parameter in named:
        found = [i for i, prefixes in enumerate(stages) if any(name == q or name.startswith(q + ".") for q in prefixes)]
        if len(found) != 1:
            raise ValueError(f"the extractor's parameter {name} is in {len(found)} of its stages, not one: {stages}")
        by_stage[found[0]].append(parameter)
    return by_stage


def load_weights(
    module: nn.Module, weights: dict[str, torch.Tensor], what: str, refusal: type[CheckpointError] = CheckpointError
) -> None:
    """``module.load_state_dict(weights)``, refused (``refusal``) with the differing names and shapes named."""
    own = module.state_dict()
    missing, extra = sorted(own.keys() - weights.keys()), sorted(weights.keys() - own.keys())
    differ = [k for k in own.keys() & weights.keys() if own[k].shape != weights[k].shape]
    if missing or extra or differ:

        def some(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

        parts = [
            f"{k}: the checkpoint has {list(weights[k].shape)}, this config builds {list(own[k].shape)}"
            for k in sorted(differ)[:3]
        ]
        parts += [f"{len(missing)} not in the checkpoint ({some(missing)})"] if missing else []
        parts += [f"{len(extra)} in the checkpoint, not in this model ({some(extra)})"] if extra else []
        raise refusal(
            f"{what} does not fit the model this config builds: "
            + "; ".join(parts)
            + "; use the model settings it was trained with (its config is saved beside it)"
        )
    module.load_state_dict(weights)


def read_state(path: str) -> Any:
    """A file ``torch.save`` wrote, read as plain data (tensors, dicts, lists, numbers, strings):
    ``weights_only``, so no pickled object is built and nothing in the file runs; and only once
    its pickle is known to be of a checkpoint's size (``files.checkpoint_pickle``: a regular
    file's zip, its data.pkl within bounds) and the file no larger than this machine's memory."""
    try:
        checkpoint_pickle(path)  # about 10 ms; torch.load would unpickle whatever size it holds
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        if os.path.getsize(path) > memory:  # read whole into memory, it would be killed for it
            raise CheckpointError(f"{path} holds {os.path.getsize(path):,} bytes, more than this machine's memory")
        return torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for what it refuses
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint ({reason}): it may be cut short, not a torch file, "
            "or hold objects that would run code when read"
        ) from None


def load_checkpoint(path: str) -> dict[str, Any]:
    """A checkpoint app-train wrote, read without running any pickled code."""
    state = read_state(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} was not written by app-train (a plain torchvision state dict goes to "
            "feature_extractor.checkpoint=)"
        )
    return state


def downloaded(weights: Any, name: str) -> dict[str, torch.Tensor]:
    """``weights.get_state_dict()``: from torch's hub cache (``$TORCH_HOME/hub/checkpoints``),
    else downloaded there with its hash checked; read ``weights_only`` (torch.hub's default is
    not), so a file planted in the cache runs nothing: ``WeightsUnreadable``. Offline, a
    ``WeightsUnavailable`` that says where the file goes and what to do instead."""
    import os
    import pickle

    from torch.hub import get_dir

    target = os.path.join(get_dir(), "checkpoints", os.path.basename(weights.url))  # torch.hub's cache path
    try:
        state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except OSError as error:  # urllib's URLError, a refused connection, a full disk, ...
        reason = getattr(error, "reason", None) or error
        raise WeightsUnavailable(
            f"feature_extractor.weights={name}: torchvision could not download {weights.url} ({reason}). "
            f"Offline, fetch that file elsewhere and either copy it to {target} or give it with "
            "feature_extractor.checkpoint=PATH (and feature_extractor.weights=null)"
        ) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:  # what torch.load refuses
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsUnreadable(
            f"feature_extractor.weights={name}: {target} is not a plain state dict ({reason})"
        ) from None
    if not isinstance(state, dict):
        raise WeightsUnreadable(
            f"feature_extractor.weights={name}: {target} holds a {type(state).__name__}, not a state dict"
        )
    return state


def torchvision_body(
    build: Callable[[], nn.Module],
    weights_enum: Any,
    weights: Optional[Enum],
    checkpoint: Optional[str],
    out_features: int,
) -> nn.Module:
    """``build()`` with its weights loaded and its classifier cut off, so that it returns the
    ``out_features``-wide vectors its classifier's first linear layer used to read.

    ``checkpoint`` is a state dict of the whole torchvision model saved with ``torch.save``, or a
    checkpoint this app wrote (``best.pt``), whose extractor weights are loaded.
    """
    net = build()
    if weights is not None and checkpoint is not None:
        raise ValueError("set feature_extractor.weights or feature_extractor.checkpoint, not both")
    if weights is not None:  # torchvision downloads these on first use
        net.load_state_dict(downloaded(weights_enum[weights.name], weights.name))
    state = read_state(checkpoint) if checkpoint is not None else None
    ours = isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT
    what = f"feature_extractor.checkpoint={checkpoint}"
    if state is not None and not ours:
        load_weights(net, state, what, ExtractorWeightsDoNotFit)
    name = next(attr for attr in CLASSIFIER_ATTRIBUTES if isinstance(getattr(net, attr, None), nn.Module))
    classifier: nn.Module = getattr(net, name)
    layers = list(classifier.children()) if isinstance(classifier, nn.Sequential) else [classifier]
    first = next(i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear))
    width = layers[first].in_features
    if width != out_features:
        raise ValueError(
            f"feature_extractor.out_features={out_features}, but {type(net).__name__} produces {width} features"
        )
    # What comes before the first linear layer stays (ConvNeXt's LayerNorm2d and Flatten), but dropout.
    kept = [layer for layer in layers[:first] if not isinstance(layer, nn.Dropout)]
    setattr(net, name, nn.Sequential(*kept) if kept else nn.Identity())
    if ours:
        assert isinstance(state, dict)
        prefix = "extractor."
        extractor = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
        load_weights(net, extractor, what, ExtractorWeightsDoNotFit)
    return net


def _torchvision(name: str, weights_enum: str) -> tuple[Callable[[], nn.Module], Any]:
    import torchvision.models

    return getattr(torchvision.models, name), getattr(torchvision.models, weights_enum)


def alexnet(out_features: int, weights: Optional[AlexNetWeights] = None, checkpoint: Optional[str] = None) -> nn.Module:
    """AlexNet's convolutional body, pooled and flattened."""
    return torchvision_body(*_torchvision("alexnet", "AlexNet_Weights"), weights, checkpoint, out_features)


def resnet18(
    out_features: int, weights: Optional[ResNet18Weights] = None, checkpoint: Optional[str] = None
) -> nn.Module:
    """ResNet-18 up to its global pool."""
    return torchvision_body(*_torchvision("resnet18", "ResNet18_Weights"), weights, checkpoint, out_features)


def resnet50(
    out_features: int, weights: Optional[ResNet50Weights] = None, checkpoint: Optional[str] = None
) -> nn.Module:
    """ResNet-50 up to its global pool."""
    return torchvision_body(*_torchvision("resnet50", "ResNet50_Weights"), weights, checkpoint, out_features)


def vgg11_bn(
    out_features: int, weights: Optional[VGG11BNWeights] = None, checkpoint: Optional[str] = None
) -> nn.Module:
    """VGG-11 with batch norm: its convolutions, pooled to 7x7 and flattened."""
    return torchvision_body(*_torchvision("vgg11_bn", "VGG11_BN_Weights"), weights, checkpoint, out_features)


def mobilenet_v3_small(
    out_features: int, weights: Optional[MobileNetV3SmallWeights] = None, checkpoint: Optional[str] = None
) -> nn.Module:
    """MobileNetV3-Small up to its global pool."""
    return torchvision_body(
        *_torchvision("mobilenet_v3_small", "MobileNet_V3_Small_Weights"), weights, checkpoint, out_features
    )


def efficientnet_b0(
    out_features: int, weights: Optional[EfficientNetB0Weights] = None, checkpoint: Optional[str] = None
) -> nn.Module:
    """EfficientNet-B0 up to its global pool."""
    return torchvision_body(
        *_torchvision("efficientnet_b0", "EfficientNet_B0_Weights"), weights, checkpoint, out_features
    )


def convnext_tiny(
    out_features: int, weights: Optional[ConvNeXtTinyWeights] = None, checkpoint: Optional[str] = None
) -> nn.Module:
    """ConvNeXt-Tiny up to its global pool and layer norm."""
    return torchvision_body(*_torchvision("convnext_tiny", "ConvNeXt_Tiny_Weights"), weights, checkpoint, out_features)


def vit_b_16(out_features: int, weights: Optional[ViTB16Weights] = None, checkpoint: Optional[str] = None) -> nn.Module:
    """ViT-B/16 for 224-px images: its class token after the encoder."""
    return torchvision_body(*_torchvision("vit_b_16", "ViT_B_16_Weights"), weights, checkpoint, out_features)


class ImageClassifier(nn.Module):
    """``head(extractor(images))``; a frozen extractor stays in eval mode and out of autograd.

    A 2-D batch is a batch of the extractor's features already (the feature cache's): it goes to
    the head alone.
    """

    def __init__(self, extractor: nn.Module, head: nn.Module, freeze_extractor: bool = False) -> None:
        super().__init__()
        self.extractor, self.head, self.freeze_extractor = extractor, head, False
        self.freeze(freeze_extractor)

    def freeze(self, frozen: bool = True) -> None:
        """Freeze the extractor (out of autograd, batch norm in eval mode), or let it train again
        (``trainer.freeze_epochs``: its second stage)."""
        self.freeze_extractor = frozen
        self.extractor.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "ImageClassifier":
        super().train(mode)
        if self.freeze_extractor:
            self.extractor.eval()  # batch-norm statistics stay those of the pretrained body
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The extractor's ``[batch, out_features]`` vectors for an image batch."""
        if images.shape[1] == 1:  # grey images on an RGB backbone: repeat the channel
            images = images.expand(-1, 3, -1, -1)
        if self.freeze_extractor:
            with torch.no_grad():
                features: torch.Tensor = self.extractor(images)
        else:
            features = self.extractor(images)
        return features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = images if images.dim() == 2 else self.features(images)
        logits: torch.Tensor = self.head(features)
        return logits


class Trained(NamedTuple):
    """A model app-train trained, ready to run, with the config it was trained with."""

    model: ImageClassifier  # in eval mode, on the device it was loaded to
    config: MainConfig  # typed: config.dataset is a DigitsConfig, an ImageFolderConfig, ...
    classes: list[str]  # the class of each output, in order ("0".."9" for digits, folder names)


def load(checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu") -> Trained:
    """A checkpoint app-train wrote (``checkpoints/best.pt``) as a ready model, its typed config
    and its class names, without downloading anything: ``app.models.load("outputs/.../best.pt")``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf.errors import OmegaConfBaseException

    from app.checks.built import checked_checkpoint

    checkpoint = os.fspath(checkpoint)
    state = load_checkpoint(checkpoint)
    values = state.get("config")
    if not isinstance(values, dict):
        raise CheckpointError(f"{checkpoint} holds no config of a run")
    built = checked_checkpoint(values, checkpoint)  # a checkpoint is an input too: what it builds is checked first
    try:
        config = typed_config(values)
        extractor = built.feature_extractor
        extractor.checkpoint = None  # the weights are the checkpoint's own, loaded below
        if "weights" in extractor:
            extractor.weights = None
        model = ImageClassifier(instantiate(extractor), instantiate(built.classifier), config.trainer.freeze_extractor)
        classes = [str(c) for c in state.get("classes") or range(config.dataset.classes)]
    except (OmegaConfBaseException, InstantiationException, AttributeError, KeyError, TypeError, ValueError) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        raise CheckpointError(
            f"{checkpoint}: its config does not build a model ({type(cause).__name__}: {cause})"
        ) from None
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError(f"{checkpoint} holds no model weights")
    load_weights(model, weights, checkpoint)
    return Trained(model.eval().to(device), config, classes)
