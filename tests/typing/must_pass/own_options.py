"""Options and experiments of one's own, registered with the typed helpers."""

from dataclasses import dataclass

from app.configs import DigitsConfig, TrainerConfig, add_experiment, add_option, experiment
from app.launch import compose_config


@dataclass(kw_only=True)
class ThreeDigits(DigitsConfig):
    """Digits 0-2 only."""

    classes: int = 3


add_option("dataset", "three_digits", ThreeDigits())
add_experiment("three_quick", experiment("ThreeQuick", dataset=ThreeDigits(), trainer=TrainerConfig(epochs=1)))
cfg = compose_config(["+experiment=three_quick"])
assert cfg.dataset.classes == 3 and cfg.trainer.epochs == 1
