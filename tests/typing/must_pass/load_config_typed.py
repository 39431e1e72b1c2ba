"""load_config gives dataclasses: each group's own class, narrowed with isinstance."""

from enum import Enum
from typing import Optional

from app.configs import ImageFolderConfig, LinearConfig, SGDConfig
from app.launch import load_config

cfg = load_config(["optimizer=sgd", "dataset.classes=4"])
assert isinstance(cfg.optimizer, SGDConfig)
momentum: float = cfg.optimizer.momentum
weights: Optional[Enum] = cfg.feature_extractor.weights  # every body has weights
epochs: int = cfg.trainer.epochs
cfg.trainer.epochs = epochs + 1
last = cfg.classifier._args_[-1]
assert isinstance(last, LinearConfig) and last.out_features == 4
if isinstance(cfg.dataset, ImageFolderConfig):
    print(cfg.dataset.root)
print(momentum, weights, cfg.trainer.epochs)
