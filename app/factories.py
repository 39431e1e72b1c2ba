"""The typed way to build what a config describes: ``model(cfg)``, ``splits(cfg)``,
``parameter_groups(cfg, model)``, ``optimizer(cfg, params)``, ``scheduler(cfg, optimizer, steps)``,
each returning its real type (``hydra.utils.instantiate`` returns ``Any``).

Each takes the whole run's config, a ``MainConfig`` built in Python (checked here first, as the
launch checks it: ``ConfigError``) or the ``DictConfig`` of ``app.launch.compose_config`` (taken
as checked): a head's widths follow the extractor and the dataset, a dataset's seed the trainer's.
The job builds its run with these same functions (``app.training.build``).
"""

from collections.abc import Iterable
from typing import Any, Optional, Union

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from app import data
from app.checks import checked
from app.configs import FeatureExtractorConfig, MainConfig, node_class
from app.models import ImageClassifier, staged

RunConfig = Union[MainConfig, DictConfig]  # a run built in Python, or compose_config's
# Where torch 2.4+ has fused Adam, AdamW and SGD kernels. For the frozen extractor's 9216->100->10
# head on 2 CPU cores, an epoch's optimizer steps take ~0.2 s one tensor at a time, and ~0.05 s fused
# (docs/benchmarks.md, the feature cache): the optimizer is most of a small head's work.
FUSED_DEVICES = ("cpu", "cuda")
# What torch optimizers take: tensors, or parameter groups (dicts with "params" and their own lr)
Parameters = Union[Iterable[torch.Tensor], Iterable[dict[str, Any]]]


def _node(cfg: RunConfig) -> DictConfig:
    return cfg if isinstance(cfg, DictConfig) else checked(cfg)


def extractor(cfg: RunConfig) -> nn.Module:
    """The pretrained body of ``cfg.feature_extractor``: images in, ``[batch, out_features]`` out."""
    body: nn.Module = instantiate(_node(cfg).feature_extractor)
    return body


def head(cfg: RunConfig) -> nn.Sequential:
    """The head of ``cfg.classifier``, its widths from the extractor to the classes."""
    layers: nn.Sequential = instantiate(_node(cfg).classifier)
    return layers


def model(cfg: RunConfig) -> ImageClassifier:
    """The extractor and the head, the extractor frozen as ``trainer.freeze_extractor`` says."""
    node = _node(cfg)
    return ImageClassifier(extractor(node), head(node), node.trainer.freeze_extractor)


def splits(cfg: RunConfig) -> data.Splits:
    """The dataset's training and validation splits, their images prepared as the run prepares them."""
    node = _node(cfg)
    # the weights' preset, if the images follow it
    built: data.Splits = instantiate(node.dataset, data.preset_for(node))
    return built


def parameter_groups(cfg: RunConfig, model: ImageClassifier) -> list[dict[str, Any]]:
    """What the optimizer trains, the head's group first, at ``optimizer.lr`` (the lr metrics.csv
    shows); then, unless frozen, the extractor at ``trainer.extractor_lr_scale`` x that, or with
    ``trainer.layer_decay`` below 1, a group per stage of its config's ``stages``, from the top
    down: the top stage at decay x the head's lr, each stage below at decay x the one above."""
    node = _node(cfg)
    t = node.trainer
    groups: list[dict[str, Any]] = [{"params": [p for p in model.head.parameters() if p.requires_grad]}]
    trained = [(name, p) for name, p in model.extractor.named_parameters() if p.requires_grad]  # none when frozen
    lr = node.optimizer.lr * t.extractor_lr_scale
    if not trained or t.layer_decay == 1:
        return groups + ([{"params": [p for _, p in trained], "lr": lr}] if trained else [])
    backbone: type[FeatureExtractorConfig] = node_class("feature_extractor", node.feature_extractor)
    by_stage = [params for params in staged(trained, backbone.stages) if params]
    return groups + [
        {"params": params, "lr": lr * t.layer_decay**depth} for depth, params in enumerate(reversed(by_stage), 1)
    ]


def optimizer(cfg: RunConfig, params: Parameters) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``params``; ``optimizer.fused`` null: torch's fused kernel where it
    has one for the parameters' device (CPU, CUDA), one pass over all of them per step."""
    node, groups = _node(cfg), [dict(g, params=list(g["params"])) if isinstance(g, dict) else g for g in params]
    fused = node.optimizer.get("fused")
    if fused is None:
        tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
        fused = bool(tensors) and all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in tensors)
    built: torch.optim.Optimizer = instantiate(node.optimizer)(groups, fused=fused)
    return built


def scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Optional[LRScheduler]:
    """``cfg.scheduler`` for ``optimizer``, stepped after each of the ``steps_per_epoch`` optimizer
    steps of an epoch; None where the config has no scheduler."""
    node = _node(cfg)
    if node.scheduler is None:
        return None
    built: LRScheduler = instantiate(node.scheduler)(optimizer, steps_per_epoch)
    return built
