"""What app-evaluate and app-predict compute from a trained model: each image's logits, with
test-time augmentation (``tta``) its class probabilities averaged over views of it, and a split's
figures."""

import math
from typing import Any, NamedTuple, Optional

import torch
import torchvision.transforms.v2.functional as TF
from torch import nn
from tqdm import tqdm

from app.training.engine import Step
from app.training.loaders import Batches

# five_crop's crops: 7/8 of each side, torchvision's evaluation crop (224 px of 256)
CROP = 0.875


class Predicted(NamedTuple):
    logits: torch.Tensor  # [images, classes] of each image as it is (float32, on the CPU)
    labels: torch.Tensor  # each batch's second item, in order: labels, or indices
    tta: Optional[torch.Tensor] = None  # with tta: log of the probabilities averaged over its views


def views(images: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The batch as test-time augmentation sees it: ``flip``, itself and its mirror; ``five_crop``,
    its four corners and centre of 7/8 of each side, each resized back to the model's input size
    (torchvision's v2 ``five_crop`` and ``resize``)."""
    if tta == "flip":
        return [images, TF.horizontal_flip(images)]
    if tta == "five_crop":
        height, width = images.shape[-2:]
        crops = TF.five_crop(images, [round(height * CROP), round(width * CROP)])
        return [TF.resize(crop, [height, width], antialias=True) for crop in crops]
    raise ValueError(f"tta={tta}: one of flip, five_crop")


def predictions(model: nn.Module, loader: Batches, step: Step, desc: str = "", tta: str = "none") -> Predicted:
    """Every batch's logits and second items (labels, or indices), in order; with ``tta``, each
    image's log-probabilities averaged over its views too (``log mean softmax``: the logits of
    the averaged probabilities, which cross-entropy and argmax read as any logits)."""
    model.eval()
    outputs, labels, averaged = [], [], []
    with torch.no_grad():
        for images, second in tqdm(loader, desc=desc, leave=False, disable=None, unit="batch"):
            images = images.to(step.device, non_blocking=True, memory_format=step.memory_format)
            with torch.autocast(step.device.type, dtype=step.dtype, enabled=step.dtype is not None):
                logits = model(images).float()
                if tta != "none":
                    shown = [logits if view is images else model(view).float() for view in views(images, tta)]
                    stacked = torch.stack([v.log_softmax(1) for v in shown])
                    averaged.append((stacked.logsumexp(0) - math.log(len(shown))).cpu())
            outputs.append(logits.cpu())
            labels.append(second)
    return Predicted(torch.cat(outputs), torch.cat(labels), torch.cat(averaged) if averaged else None)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, names: list[str]) -> dict[str, Any]:
    """Loss, accuracy, top-5 accuracy (with more than 5 classes), per-class precision, recall
    and support, and the confusion matrix (rows: true class, columns: predicted)."""
    classes = len(names)
    predicted = logits.argmax(1)
    confusion = torch.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    hits, support, picked = confusion.diag(), confusion.sum(1), confusion.sum(0)
    figures: dict[str, Any] = {
        "images": len(labels),
        "loss": nn.functional.cross_entropy(logits, labels).item(),
        "accuracy": (predicted == labels).float().mean().item(),
    }
    if classes > 5:
        figures["top5_accuracy"] = (logits.topk(5, 1).indices == labels[:, None]).any(1).float().mean().item()
    figures["per_class"] = [
        {
            "class": name,
            "precision": (hits[i] / picked[i]).item() if picked[i] else None,
            "recall": (hits[i] / support[i]).item() if support[i] else None,
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    ]
    figures["confusion"] = confusion.tolist()
    return figures
