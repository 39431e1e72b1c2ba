"""Models: a pretrained torchvision CNN body (the feature extractor) under a trainable head."""

from typing import Any, Optional

import torch
from torch import nn


def _load(model: nn.Module, weights_enum: Any, weights: Optional[str], checkpoint: Optional[str]) -> None:
    if weights is not None and checkpoint is not None:
        raise ValueError("set feature_extractor.weights or feature_extractor.checkpoint, not both")
    if weights is not None:  # torchvision downloads these on first use
        model.load_state_dict(weights_enum[weights].get_state_dict(progress=True))
    if checkpoint is not None:
        model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))


def _check_width(name: str, out_features: int, actual: int) -> None:
    if out_features != actual:
        raise ValueError(
            f"feature_extractor.out_features={out_features}, but {name} produces {actual} features"
        )


def alexnet(
    weights: Optional[str] = None, checkpoint: Optional[str] = None, out_features: int = 9216
) -> nn.Module:
    """AlexNet's convolutional body, pooled to 6x6 and flattened: 9216 features per image.

    ``checkpoint`` is a state dict of ``torchvision.models.alexnet()`` saved with ``torch.save``.
    """
    from torchvision.models import AlexNet_Weights
    from torchvision.models import alexnet as build

    _check_width("alexnet", out_features, 256 * 6 * 6)
    net = build()
    _load(net, AlexNet_Weights, weights, checkpoint)
    return nn.Sequential(net.features, net.avgpool, nn.Flatten(1))


def resnet18(
    weights: Optional[str] = None, checkpoint: Optional[str] = None, out_features: int = 512
) -> nn.Module:
    """ResNet-18 up to its global pool: 512 features per image."""
    from torchvision.models import ResNet18_Weights
    from torchvision.models import resnet18 as build

    _check_width("resnet18", out_features, 512)
    net: nn.Module = build()
    _load(net, ResNet18_Weights, weights, checkpoint)
    net.fc = nn.Identity()  # the global-pooled features, not class scores
    return net


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
