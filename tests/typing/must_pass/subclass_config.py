"""A config class of one's own, subclassing the app's: kw_only, new fields typed."""

from dataclasses import dataclass

from app.configs import DigitsConfig, TrainerConfig


@dataclass(kw_only=True)
class MyDigits(DigitsConfig):
    val_fraction: float = 0.3
    note: str = "a note"


@dataclass(kw_only=True)
class LongTrainer(TrainerConfig):
    epochs: int = 40


print(MyDigits(classes=4).val_fraction, LongTrainer().epochs)
