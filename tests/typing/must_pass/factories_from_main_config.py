"""The factories take a MainConfig built in Python too (checked first)."""

from app import factories
from app.configs import (
    AdamConfig,
    DigitsConfig,
    ImageConfig,
    LargeHeadConfig,
    LoggerConfig,
    MainConfig,
    ResNet18Config,
    TrainerConfig,
)

config = MainConfig(
    dataset=DigitsConfig(image=ImageConfig(size=32), classes=3, train_size=8, val_size=4),
    feature_extractor=ResNet18Config(),
    classifier=LargeHeadConfig(),
    optimizer=AdamConfig(),
    scheduler=None,
    trainer=TrainerConfig(epochs=1),
    logger=LoggerConfig(),
)
model = factories.model(config)
assert factories.scheduler(config, factories.optimizer(config, model.parameters()), 1) is None
print(sum(p.numel() for p in model.head.parameters()))
