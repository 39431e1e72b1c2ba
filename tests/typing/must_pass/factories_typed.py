"""The typed factories: the model, the splits, the optimizer and the schedule a config describes."""

import torch

from app import factories
from app.data import Splits
from app.launch import compose_config
from app.models import ImageClassifier

cfg = compose_config(["+debug=fast", "dataset.train_size=16", "dataset.val_size=8"])
model: ImageClassifier = factories.model(cfg)
head: torch.nn.Sequential = factories.head(cfg)
splits: Splits = factories.splits(cfg)
optimizer: torch.optim.Optimizer = factories.optimizer(cfg, model.head.parameters())
schedule = factories.scheduler(cfg, optimizer, steps_per_epoch=4)
if schedule is not None:
    optimizer.step()
    schedule.step()
images, labels = splits.train[0]
print(len(head), len(splits.train), splits.names[:2], images.shape, int(labels))
