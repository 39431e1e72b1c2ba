"""Path fields take a pathlib.Path as well as a str; a composed config reads back a str."""

import os
from pathlib import Path

from app.configs import Cifar10Config, ImageFolderConfig, PredictConfig, ResNet18Config, TrainerConfig

folder = ImageFolderConfig(root=Path("photos/train"), classes=3, val_root=Path("photos/val"))
print(os.fspath(folder.root))
ResNet18Config(checkpoint=Path("resnet18.pth"))
TrainerConfig(resume=Path("outputs/run/checkpoints/last.pt"), feature_cache_dir=Path("/tmp/features"))
Cifar10Config(root=Path.home() / "data" / "cifar10")
PredictConfig(checkpoint=Path("best.pt"), input=Path("photos"), top_k=3)
