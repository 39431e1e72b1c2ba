"""Overrides are any sequence of strings."""

from collections.abc import Sequence

from app.launch import compose_config, load_config

overrides: Sequence[str] = ("classifier=large", "dataset.classes=3")
cfg = compose_config(overrides)
typed = load_config(list(overrides))
print(cfg.classifier._target_, typed.dataset.classes)
