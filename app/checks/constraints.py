"""Constraints, as annotated: a field's PEP 593 annotation (``Annotated[int, Ge(1)]``, in
``app.configs``) turned into pydantic-core's validator (``validator``) and into words
(``describe``, ``type_name``); the problem a value that breaks it, or does not resolve, becomes
(``unresolved``); and the rules table that ``--help`` and the README list (``rules_table``,
``rules_help``, ``schema_rules``)."""

import dataclasses
import functools
import os
import re
import types
import typing
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Annotated, Any, Optional, Union

from annotated_types import Ge, GroupedMetadata, Gt, Le, Lt, MaxLen, MinLen, MultipleOf, Predicate

from app.checks.problems import Absent, Problem, suggest
from app.configs import PATH_CHECKS, MainConfig, store


@functools.cache
def field_hints(schema: type) -> dict[str, Any]:
    """``{field: type hint with its annotations}`` of a config dataclass."""
    hints = typing.get_type_hints(schema, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)}


def _optional(hint: Any) -> Any:
    """``X`` for ``Optional[X]``, else None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType) and type(None) in args:
        return next(arg for arg in args if arg is not type(None))
    return None


def unwrap(hint: Any) -> tuple[Any, list[Any]]:
    """The bare type under ``Optional`` and ``Annotated``, and the annotations found on the way,
    each grouped one (``Interval``, ``Len``) split into its parts (``Ge``, ``Lt``, ``MinLen``...)."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(hint) is Annotated:
            for item in hint.__metadata__:
                metadata += list(item) if isinstance(item, GroupedMetadata) else [item]
            hint = hint.__origin__
        elif _optional(hint) is not None:
            hint = _optional(hint)
        elif typing.get_origin(hint) is tuple:
            hint, length = _listed(hint)
            metadata += [MinLen(length), MaxLen(length)]
        else:
            return hint, metadata


def _listed(hint: Any) -> tuple[Any, int]:
    """A fixed-length tuple of one type (``tuple[float, float]``) as the list OmegaConf holds it
    (a ``ListConfig``), and its length."""
    items = typing.get_args(hint)
    if not items or Ellipsis in items or len(set(items)) > 1:
        raise TypeError(f"{hint!r}: a tuple of items of one type, of a fixed length, is what app.checks validates")
    return list[items[0]], len(items)  # type: ignore[valid-type]


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(metadata: Sequence[Any]) -> str:
    low: Optional[tuple[str, Any]] = None
    high: Optional[tuple[str, Any]] = None
    for part in metadata:
        if isinstance(part, (Ge, Gt)):
            low = ("<=" if isinstance(part, Ge) else "<", part.ge if isinstance(part, Ge) else part.gt)
        elif isinstance(part, (Le, Lt)):
            high = ("<=" if isinstance(part, Le) else "<", part.le if isinstance(part, Le) else part.lt)
    if low and high:
        if low == high == ("<=", low[1]):
            return f"= {_num(low[1])}"
        return f"{_num(low[1])} {low[0]} value {high[0]} {_num(high[1])}"
    if low:
        return f"{'>=' if low[0] == '<=' else '>'} {_num(low[1])}"
    if high:
        return f"{high[0]} {_num(high[1])}"
    return ""


def describe(hint: Any, why: bool = True) -> str:
    """The rule a field's annotations state, in words (``""`` when they state none), with the
    reason for it unless ``why`` is false."""
    bare, metadata = unwrap(hint)
    parts = [_bounds(metadata)]
    parts += [str(m.func.__doc__ or m.func.__name__).strip() for m in metadata if isinstance(m, Predicate)]
    if isinstance(bare, type) and issubclass(bare, Enum):
        parts.append("one of " + ", ".join(bare.__members__))
    if typing.get_origin(bare) is list:
        each = describe(typing.get_args(bare)[0])
        lengths = {getattr(m, "min_length", None) for m in metadata} & {
            getattr(m, "max_length", None) for m in metadata
        }
        parts += [f"{lengths.pop()} items" if lengths - {None} else "", f"each {each}" if each else ""]
    text = ", ".join(part for part in parts if part)
    # annotated_types.doc() gives typing_extensions.Doc (PEP 727) or its own DocInfo
    reasons = [m.documentation for m in metadata if isinstance(getattr(m, "documentation", None), str)]
    return f"{text} ({reasons[0]})" if text and reasons and why else text


def _has_schema(hint: Any) -> bool:
    """True when values of ``hint`` are walked as config nodes rather than validated whole."""
    bare, _ = unwrap(hint)
    if typing.get_origin(bare) is list:
        return _has_schema(typing.get_args(bare)[0])
    return bare is Any or dataclasses.is_dataclass(bare)


@functools.cache
def _constrained(hint: Any) -> bool:
    """True when a value can break ``hint`` in a way OmegaConf's type check lets through: it
    carries annotations, or holds floats (which may be nan or inf)."""
    bare, metadata = unwrap(hint)
    if typing.get_origin(bare) is list:
        return True
    return bool(metadata) or bare is float


@functools.cache
def validator(hint: Any) -> Any:
    """pydantic-core's validator for a field's type hint: the type, strictly (a layer written as
    a dict gets no conversion from OmegaConf, so "3" must not pass as 3), no nan or inf (they
    train to NaN without an error), and every annotated-types constraint on it.

    Its verdicts are those of ``pydantic.TypeAdapter(hint)`` in strict mode without inf and nan
    (a test compares them value by value); it skips pydantic's own import, about 65 ms of every
    launch, by building the core schema that TypeAdapter would build.
    """
    from pydantic_core import SchemaValidator

    return SchemaValidator(_core_schema(hint))


def _core_schema(hint: Any) -> Any:
    from pydantic_core import PydanticCustomError
    from pydantic_core import core_schema as cs

    if _optional(hint) is not None:
        return cs.nullable_schema(_core_schema(_optional(hint)))
    metadata: list[Any] = []
    while typing.get_origin(hint) is Annotated:  # not unwrap: an Optional inside stays nullable
        metadata += hint.__metadata__
        hint = hint.__origin__
    limits: dict[str, Any] = {}
    checks = []
    for item in metadata:
        for part in item if isinstance(item, GroupedMetadata) else [item]:  # Interval, Len
            if isinstance(part, (Ge, Gt, Le, Lt, MultipleOf, MinLen, MaxLen)):
                name = {"MultipleOf": "multiple_of", "MinLen": "min_length", "MaxLen": "max_length"}.get(
                    type(part).__name__, type(part).__name__.lower()
                )
                limits[name] = getattr(part, name)
            elif isinstance(part, Predicate):
                checks.append(part.func)
            elif not isinstance(getattr(part, "documentation", None), str):  # doc(): words only
                raise TypeError(f"{part!r}: a constraint that app.checks cannot enforce yet")
    if typing.get_origin(hint) is tuple:
        hint, length = _listed(hint)
        limits |= {"min_length": length, "max_length": length}
    schema: cs.CoreSchema
    if hint is bool:
        schema = cs.bool_schema(strict=True)
    elif hint is int:
        schema = cs.int_schema(strict=True, **limits)
    elif hint is float:
        schema = cs.float_schema(strict=True, allow_inf_nan=False, **limits)
    elif hint is str:
        schema = cs.str_schema(strict=True, **limits)
    elif isinstance(hint, type) and issubclass(hint, Enum):
        schema = cs.is_instance_schema(hint)
    elif typing.get_origin(hint) is list:
        schema = cs.list_schema(_core_schema(typing.get_args(hint)[0]), strict=True, **limits)
    elif not limits and not checks:  # a type OmegaConf checks alone (a user's config, say)
        schema = cs.any_schema()
    else:
        raise TypeError(f"{hint!r}: constraints on a type that app.checks cannot validate yet")

    def holds(check: Callable[[Any], bool]) -> Callable[[Any], Any]:
        def validate(value: Any) -> Any:
            if not check(value):
                raise PydanticCustomError("predicate_failed", "Predicate {name} failed", {"name": check.__name__})
            return value

        return validate

    for check in checks:
        schema = cs.no_info_after_validator_function(holds(check), schema)
    return schema


# Errors that break a constraint of the annotation, rather than the type.
_CONSTRAINT_ERRORS = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "multiple_of",
    "predicate_failed",
    "too_short",
    "too_long",
}


def _validate(key: str, value: Any, hint: Any, example: Optional[str] = None) -> Optional[Problem]:
    from pydantic_core import ValidationError

    try:
        validator(hint).validate_python(value)
        return None
    except ValidationError as error:
        kind, rule = error.errors()[0]["type"], describe(hint)
        if kind == "finite_number":
            rule = f"a finite number, {rule}" if rule else "a finite number"
        elif kind not in _CONSTRAINT_ERRORS or not rule:
            rule = f"a value of type {type_name(hint)}" + (f", {rule}" if rule else "")
        absent = Absent.FILE if is_path(hint) and isinstance(value, str) and _not_there(value) else None
        return Problem(key, str(value), rule, _value_hint(key, hint, example), error=error, absent=absent)


def _not_there(path: str) -> bool:
    """Nothing at ``path`` (a command written for a file made later), not the wrong kind of file."""
    try:
        return not os.path.lexists(path)
    except ValueError:  # an embedded NUL byte: no file could ever be there
        return False


def type_name(hint: Any) -> str:
    """``int``, ``list of float``, ``AlexNetWeights or null``: a type hint as a person reads it."""
    bare, _ = unwrap(hint)
    name = (
        f"list of {type_name(typing.get_args(bare)[0])}"
        if typing.get_origin(bare) is list
        else getattr(bare, "__name__", str(bare))
    )
    return f"{name} or null" if _optional(hint) is not None else name


REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")  # ${trainer.epochs}: a plain reference


def unresolved(key: str, raw: str, error: Exception) -> Problem:
    """A value the config cannot give, with the hint that fits why."""
    from omegaconf.basecontainer import BaseContainer
    from omegaconf.errors import (
        InterpolationKeyError,
        InterpolationValidationError,
        MissingMandatoryValue,
        UnsupportedInterpolationType,
    )

    rule = str(error).splitlines()[0]
    if isinstance(error, MissingMandatoryValue):
        hint = f"set {key}"
    elif isinstance(error, InterpolationKeyError):
        hint = "point the interpolation at a key that exists (--cfg job shows them)"
    elif "Recursive interpolation" in rule:
        rule, hint = (
            "interpolations that end in a value",
            f"{raw} leads back to {key}: a cycle; give one key in it a value",
        )
    elif isinstance(error, UnsupportedInterpolationType):
        names = sorted(BaseContainer._resolvers)
        close = suggest(rule.split()[-1], names)
        hint = (f"did you mean {' or '.join(close)}? " if close else "") + f"the resolvers are: {', '.join(names)}"
    elif isinstance(error, InterpolationValidationError):
        hint = f"point it at a value that fits {key}, or give {key} a value of its own"
    else:
        hint = f"give {key} a value (--cfg job shows the config)"
    reference = REFERENCE.match(raw)
    return Problem(key, raw, rule, hint, error=error, via=reference.group(1) if reference else "")


def is_path(hint: Any) -> bool:
    """True for a field annotated as an existing file or directory."""
    _, metadata = unwrap(hint)
    return any(isinstance(m, Predicate) and m.func in PATH_CHECKS for m in metadata)


def _value_hint(key: str, hint: Any, example: Optional[str]) -> str:
    if is_path(hint):
        return f"check the path: a relative path is read from the directory you launch from ({os.getcwd()})"
    rule = describe(hint, why=False) or "the type above"
    return f"give {key} a value with {rule}" + (f", e.g. {key}={example}" if example else "")


def example(schema: Any, name: str) -> Optional[str]:
    """A field's default as written on the command line, where it has a concrete one."""
    if not dataclasses.is_dataclass(schema):
        return None
    default = next((f.default for f in dataclasses.fields(schema) if f.name == name), None)
    default = default.name if isinstance(default, Enum) else default
    default = list(default) if isinstance(default, tuple) else default  # as Hydra's grammar writes it: [0.9, 0.999]
    concrete = default not in (dataclasses.MISSING, "???", None) and not str(default).startswith("${")
    return str(default) if concrete else None


def group_options() -> list[tuple[str, str, Any]]:
    """``(group, option, stored config)`` of every option the app registers."""
    return [(e["group"], e["name"], e["node"]) for e in store if e["group"]]


# ------------------------------------------------------------------ the rules, as a table
def rules_table() -> list[tuple[str, str]]:
    """(key, rule) for every annotated field of every stored option, then the cross-field
    rules: what ``--help`` prints and the README lists. A rule that differs between the
    options of a group names the options it belongs to."""
    found: dict[str, dict[str, list[str]]] = {}
    names: dict[str, list[str]] = {}

    def walk(obj: Any, path: str, option: str) -> None:
        if isinstance(obj, list):
            for item in obj:
                walk(item, f"{path}[*]", option)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for name, hint in field_hints(type(obj)).items():
                text = describe(hint) if not name.startswith("_") else ""
                if text:
                    found.setdefault(f"{path}.{name}", {}).setdefault(text, []).append(option)
                walk(getattr(obj, name), f"{path}.{name}", option)

    for group, option, node in group_options():
        names.setdefault(group, []).append(option)
        walk(node, group, option)
    rows = []
    for key, texts in found.items():
        group = key.split(".")[0]
        for text, where in texts.items():
            everywhere = len(texts) == 1 and len(set(where)) == len(names[group])
            rows.append((key, text if everywhere else f"{text} [{', '.join(sorted(set(where)))}]"))
    for name, hint in field_hints(MainConfig).items():  # app-train's own fields, outside every group (tags)
        text = describe(hint) if name not in names and name != "defaults" else ""
        if text:
            rows.append((name, text))
    from app.checks.rules import CROSS_RULES  # the rules module builds on this one

    return rows + [("cross-field", description) for description, _ in CROSS_RULES]


def schema_rules(schema: type) -> list[tuple[str, str]]:
    """(key, rule) of each annotated top-level field of a primary config (app-evaluate's, app-predict's)."""
    return [
        (name, text)
        for name, hint in field_hints(schema).items()
        if not name.startswith("_") and (text := describe(hint))
    ]


def rules_help() -> str:
    rows = rules_table()
    width = max(len(key) for key, _ in rows)
    lines = [f"  {key:<{width}}  {text}" for key, text in rows]
    return (
        "== Rules (checked before anything runs; app-check checks without running) ==\n"
        + "\n".join(lines)
        + "\n\nAlso refused: nan and inf in any float, unknown keys and group options, and any _target_\n"
        "that no stored config uses.\n"
    )
