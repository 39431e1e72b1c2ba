"""The problem model: what one broken rule is (``Problem``), the refusal that carries them
(``ConfigError``), and the report a person reads (``render``). Every other module of the
package, and the launch side, words what it finds through these."""

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Optional

from app.errors import AppError


class Absent(Enum):
    """What a problem says this machine lacks, where the config itself may be right: a command
    written for a folder made later, an extra, a cluster or a GPU. ``app-check --lint`` tells these from
    a refusal by a rule."""

    FILE = "a file or folder that is not there yet"
    EXTRA = "an optional package that is not installed"
    PROGRAM = "a program this machine lacks"
    DEVICE = "a GPU this machine lacks"


@dataclass
class Problem:
    key: str
    value: str
    rule: str
    hint: str
    point: Optional[Sequence[str]] = None  # the overrides of the sweep point it was found in
    error: Optional[BaseException] = None  # re-raised under HYDRA_FULL_ERROR=1
    via: str = ""  # the key an interpolated value comes from: a problem there says it first
    absent: Optional[Absent] = None  # set where the value names what this machine lacks

    def render(self) -> str:
        where = f"   [sweep point: {' '.join(self.point) or '(defaults)'}]" if self.point is not None else ""
        given = self.key if self.key.startswith("~") else f"{self.key}={self.value}"
        return f"{given}{where}\n  rule: {self.rule}\n  hint: {self.hint}"


class ConfigError(AppError, ValueError):
    """A configuration that breaks the rules; ``str()`` is the report a person reads."""

    hint = "each problem's hint above says what to change; app-check checks a command without running it"

    def __init__(self, problems: Sequence[Problem], points: int = 1) -> None:
        self.problems, self.points = list(problems), points
        super().__init__(render(self.problems, points))
        # The first underlying error (Hydra's, OmegaConf's), as ``raise ... from`` would chain it
        self.__cause__ = next((p.error for p in self.problems if p.error is not None), None)


def render(problems: Sequence[Problem], points: int = 1) -> str:
    """The report: one paragraph per distinct problem, however many sweep points share it."""
    failing = len({tuple(p.point) for p in problems if p.point is not None})
    scope = f" in {failing} of {points} sweep points" if points > 1 else ""
    distinct: dict[tuple[str, str, str, str], list[Problem]] = {}
    for p in problems:
        distinct.setdefault((p.key, p.value, p.rule, p.hint), []).append(p)
    paragraphs = []
    for same in distinct.values():
        text = same[0].render()
        if len(same) > 1:
            text = text.replace("   [sweep point:", f"   [{len(same)} sweep points, the first:", 1)
        paragraphs.append(text)
    plural = "s" if len(paragraphs) != 1 else ""
    head = f"Refused: {len(paragraphs)} problem{plural}{scope}; nothing was run."
    return "\n\n".join([head, *paragraphs]) + "\n"


def suggest(word: str, choices: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)


def unknown_key(key: str, value: str, schema: Optional[type]) -> Problem:
    """The one wording for a key its config does not have, whoever finds it."""
    parent, _, leaf = key.rpartition(".")
    fields = dataclasses.fields(schema) if schema and dataclasses.is_dataclass(schema) else ()
    names = [f.name for f in fields if not f.name.startswith("_") and f.name != "defaults"]
    close = suggest(leaf, names)
    rule = (
        f"a key of {schema.__name__}: {', '.join(names)}"
        if schema and names
        else f"a key that {parent or 'the config'} has"
    )
    hint = (
        f"did you mean {' or '.join(f'{parent}.{c}' if parent else c for c in close)}?"
        if close
        else f"remove it; --cfg job shows the keys of {parent or 'the config'}"
    )
    return Problem(key, value, rule, hint)
