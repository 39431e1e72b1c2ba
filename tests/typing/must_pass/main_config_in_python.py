"""A whole run's config built in Python: every group given, checked as app-train checks it."""

from app.checks import checked
from app.configs import (
    AdamWConfig,
    CosineConfig,
    DigitsConfig,
    ImageConfig,
    LoggerConfig,
    MainConfig,
    ResNet18Config,
    SmallHeadConfig,
    TrainerConfig,
)

config = MainConfig(
    dataset=DigitsConfig(image=ImageConfig(size=64), classes=5),
    feature_extractor=ResNet18Config(),
    classifier=SmallHeadConfig(),
    optimizer=AdamWConfig(lr=1e-3, betas=(0.9, 0.99)),
    scheduler=CosineConfig(warmup_epochs=0.5),
    trainer=TrainerConfig(epochs=2, batch_size=16),
    logger=LoggerConfig(),
    tags=["baseline"],
)
config.trainer.epochs = 3
node = checked(config)  # the DictConfig the job reads
assert node.trainer.epochs == 3 and node.classifier._args_[-1].out_features == 5
