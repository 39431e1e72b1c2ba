"""Models: a pretrained torchvision CNN body (the feature extractor) under a trainable head.

A backbone's facts (its width, smallest input, weight names) live on its config class in
``app.configs``; the factories here build the torchvision model, load its weights and cut off
its classifier, and check the width they get against the one the config declares.
"""

from enum import Enum
from typing import Any, Callable, Optional

import torch
from torch import nn

from app.configs import AlexNetWeights, ResNet18Weights

# The attribute that holds a torchvision classification model's classifier, by family.
CLASSIFIER_ATTRIBUTES = ("classifier", "fc", "heads", "head")


def torchvision_body(
    build: Callable[[], nn.Module], weights_enum: Any, weights: Optional[Enum], checkpoint: Optional[str],
    out_features: int,
) -> nn.Module:
    """``build()`` with its weights loaded and its classifier replaced by ``nn.Identity``, so it
    returns the ``out_features``-wide vectors its classifier used to read."""
    net = build()
    if weights is not None and checkpoint is not None:
        raise ValueError("set feature_extractor.weights or feature_extractor.checkpoint, not both")
    if weights is not None:  # torchvision downloads these on first use
        net.load_state_dict(weights_enum[weights.name].get_state_dict(progress=True))
    if checkpoint is not None:
        net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    name = next(attr for attr in CLASSIFIER_ATTRIBUTES if isinstance(getattr(net, attr, None), nn.Module))
    classifier: nn.Module = getattr(net, name)
    width = next(m.in_features for m in classifier.modules() if isinstance(m, nn.Linear))
    if width != out_features:
        raise ValueError(
            f"feature_extractor.out_features={out_features}, but {type(net).__name__} produces {width} features"
        )
    setattr(net, name, nn.Identity())
    return net


def alexnet(
    out_features: int, weights: Optional[AlexNetWeights] = None, checkpoint: Optional[str] = None
) -> nn.Module:
    """AlexNet's convolutional body, pooled and flattened.

    ``checkpoint`` is a state dict of ``torchvision.models.alexnet()`` saved with ``torch.save``.
    """
    from torchvision.models import AlexNet_Weights
    from torchvision.models import alexnet as build

    return torchvision_body(build, AlexNet_Weights, weights, checkpoint, out_features)


def resnet18(
    out_features: int, weights: Optional[ResNet18Weights] = None, checkpoint: Optional[str] = None
) -> nn.Module:
    """ResNet-18 up to its global pool."""
    from torchvision.models import ResNet18_Weights
    from torchvision.models import resnet18 as build

    return torchvision_body(build, ResNet18_Weights, weights, checkpoint, out_features)


class ImageClassifier(nn.Module):
    """``head(extractor(images))``; a frozen extractor stays in eval mode and out of autograd."""

    def __init__(self, extractor: nn.Module, head: nn.Module, freeze_extractor: bool = False) -> None:
        super().__init__()
        self.extractor, self.head, self.freeze_extractor = extractor, head, freeze_extractor
        if freeze_extractor:
            self.extractor.requires_grad_(False)

    def train(self, mode: bool = True) -> "ImageClassifier":
        super().train(mode)
        if self.freeze_extractor:
            self.extractor.eval()  # batch-norm statistics stay those of the pretrained body
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:  # grey images on an RGB backbone: repeat the channel
            images = images.expand(-1, 3, -1, -1)
        if self.freeze_extractor:
            with torch.no_grad():
                features = self.extractor(images)
        else:
            features = self.extractor(images)
        logits: torch.Tensor = self.head(features)
        return logits
