"""Overrides as text, in Hydra's grammar: an override's key, the value a command line gives a
key, and a Python value written as an override."""

from collections.abc import Sequence
from typing import Any


def key_of(override: str) -> str:
    """The dotted key an override sets (``+``/``~`` dropped, a group's ``/`` as ``.``)."""
    return override.partition("=")[0].lstrip("+~").replace("/", ".")


def value_of(overrides: Sequence[str], key: str) -> str:
    """The value that ``overrides`` give ``key``, as typed; ``?`` when none does."""
    return next((text.partition("=")[2] for text in overrides if key_of(text) == key), "?")


def as_override(value: Any) -> str:
    """``value`` in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(as_override(v) for v in value) + "]"
    return "'" + str(value).replace("'", "\\'") + "'"  # Hydra's quoted string: only a quote is escaped
