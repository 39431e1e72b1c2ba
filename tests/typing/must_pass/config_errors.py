"""What a refusal carries in Python: every problem, and the cause Hydra or OmegaConf gave."""

from app.checks import ConfigError, Problem
from app.configs import TrainerConfig, UnknownField
from app.launch import compose_config

try:
    compose_config(["dataset.classes=0", "trainer.epochs=${nowhere}"])
except ConfigError as error:
    problems: list[Problem] = error.problems
    print([(p.key, p.rule, p.hint) for p in problems], repr(error.__cause__))

trainer = TrainerConfig()
try:
    setattr(trainer, "epoch", 2)  # noqa: B010  (a typo the runtime refuses too)
except UnknownField as error:
    print(error, error.hint)
