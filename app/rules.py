"""Value rules, declared next to the config fields they guard (``checked(default, Rule(...))``).

A rule lives in the field's dataclass metadata: OmegaConf ignores it, ``app.validation`` reads
it, ``--help`` and the README list it. No torch, no Hydra.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

RULE = "app.rule"
T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    """Bounds and choices a value must meet. ``None`` always passes: it means "unset"."""

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    one_of: Optional[Sequence[Any]] = None
    existing_file: bool = False
    existing_dir: bool = False
    why: str = ""  # the reason, shown with the rule

    def describe(self) -> str:
        parts = []
        low = f"{_num(self.ge)} <= " if self.ge is not None else f"{_num(self.gt)} < " if self.gt is not None else ""
        high = f" <= {_num(self.le)}" if self.le is not None else f" < {_num(self.lt)}" if self.lt is not None else ""
        if low and high:
            parts.append(f"{low}value{high}")
        elif low:  # "2 <= " reads better as ">= 2"
            parts.append((">= " if self.ge is not None else "> ") + low.split()[0])
        elif high:
            parts.append(high.strip())
        if self.one_of is not None:
            parts.append("one of " + ", ".join(str(v) for v in self.one_of))
        if self.existing_file:
            parts.append("an existing file")
        if self.existing_dir:
            parts.append("an existing directory")
        return " and ".join(parts)

    def broken_by(self, value: Any) -> bool:
        """True when ``value`` (or, for a list, one of its items) breaks the rule."""
        if value is None:
            return False
        if isinstance(value, (list, tuple)):
            return any(self.broken_by(item) for item in value)
        if self.one_of is not None and value not in self.one_of:
            return True
        if self.existing_file and not _is_path(str(value), os.path.isfile):
            return True
        if self.existing_dir and not _is_path(str(value), os.path.isdir):
            return True
        if any(bound is not None for bound in (self.ge, self.gt, self.le, self.lt)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return True
            return (
                (self.ge is not None and value < self.ge)
                or (self.gt is not None and value <= self.gt)
                or (self.le is not None and value > self.le)
                or (self.lt is not None and value >= self.lt)
            )
        return False


def _is_path(path: str, test: Callable[[str], bool]) -> bool:
    try:
        return test(path)
    except ValueError:  # an embedded NUL byte, say
        return False


def _num(value: Optional[float]) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def checked(default: T, rule: Rule) -> T:
    """A dataclass field with ``default`` that must satisfy ``rule``."""
    result: T = field(default=default, metadata={RULE: rule})
    return result


def rule_of(metadata: Any) -> Optional[Rule]:
    rule = metadata.get(RULE)
    return rule if isinstance(rule, Rule) else None
