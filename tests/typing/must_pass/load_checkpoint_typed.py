"""A trained model loaded from a Path onto a torch.device, its config typed."""

import os
from pathlib import Path

import torch

from app.configs import AlexNetConfig
from app.models import Trained, load

checkpoint = Path(os.environ.get("APP_EXAMPLE_CHECKPOINT", "best.pt"))
if checkpoint.exists():
    trained: Trained = load(checkpoint, device=torch.device("cpu"))
    extractor = trained.config.feature_extractor
    print(extractor.weights, isinstance(extractor, AlexNetConfig), trained.config.dataset.image.size)
    with torch.no_grad():
        size = trained.config.dataset.image.size
        scores: torch.Tensor = trained.model(torch.zeros(1, 3, size, size))
    print(trained.classes[int(scores.argmax())])
