"""An experiment of one's own, typed: each group a config object, stored for +experiment=NAME."""

from app.configs import (
    AdamWConfig,
    DigitsConfig,
    ImageConfig,
    ResNet18Config,
    TrainerConfig,
    as_untyped,
    experiment,
    store,
)
from app.launch import compose_config

MyExperiment = experiment(
    "MyExperiment",
    dataset=DigitsConfig(image=ImageConfig(size=64)),
    feature_extractor=ResNet18Config(),
    optimizer=AdamWConfig(lr=1e-3),
    trainer=TrainerConfig(epochs=2, freeze_extractor=True),
)
store(as_untyped(MyExperiment), group="experiment", name="my_experiment", package="_global_")
store.add_to_hydra_store(overwrite_ok=True)
cfg = compose_config(["+experiment=my_experiment"])
assert cfg.trainer.epochs == 2 and cfg.optimizer.lr == 1e-3 and cfg.dataset.image.size == 64
