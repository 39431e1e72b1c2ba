"""What is refused: one composed config in, ``Problem``s out.

Each field's constraint is a PEP 593 annotation in ``app.configs`` (``Annotated[int, Ge(1)]``),
validated by pydantic's validation core on the value the job will receive (interpolations
resolved); unknown keys
are refused with the closest valid names; a ``_target_`` must be one a registered config uses;
cross-field rules below cover what one field cannot say alone. ``render`` turns problems into
the report a person reads, and ``rules_help`` the annotations into the table at the end of
``--help``. Nothing here imports torch, except the CUDA rule when a config asks for ``cuda``.
"""

import dataclasses
import difflib
import functools
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Optional, Union

from annotated_types import Ge, GroupedMetadata, Gt, Le, Lt, MaxLen, MinLen, MultipleOf, Predicate
from omegaconf import DictConfig, ListConfig, Node, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from app.configs import (
    Cifar10Config,
    Device,
    MainConfig,
    directory_path,
    existing_dir,
    existing_file,
    feature_cache_unused_because,
    resumable,
    store,
)


@dataclass
class Problem:
    key: str
    value: str
    rule: str
    hint: str
    point: Optional[Sequence[str]] = None  # the overrides of the sweep point it was found in
    error: Optional[BaseException] = None  # re-raised under HYDRA_FULL_ERROR=1
    via: str = ""  # the key an interpolated value comes from: a problem there says it first

    def render(self) -> str:
        where = f"   [sweep point: {' '.join(self.point) or '(defaults)'}]" if self.point is not None else ""
        given = self.key if self.key.startswith("~") else f"{self.key}={self.value}"
        return f"{given}{where}\n  rule: {self.rule}\n  hint: {self.hint}"


class ConfigError(ValueError):
    """A configuration that breaks the rules; ``str()`` is the report a person reads."""

    def __init__(self, problems: Sequence[Problem], points: int = 1) -> None:
        self.problems, self.points = list(problems), points
        super().__init__(render(self.problems, points))


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
    names = [name for name in field_hints(schema) if not name.startswith("_") and name != "defaults"] if schema else []
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


# ---------------------------------------------------------------- constraints, as annotated
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
        else:
            return hint, metadata


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
        return Problem(key, str(value), rule, _value_hint(key, hint, example), error=error)


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
    return any(
        isinstance(m, Predicate) and m.func in (existing_file, existing_dir, directory_path, resumable)
        for m in metadata
    )


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
    concrete = default not in (dataclasses.MISSING, "???", None) and not str(default).startswith("${")
    return str(default) if concrete else None


# ------------------------------------------------------------------------------ targets
_user_targets: set[str] = set()


def allow_target(path: str) -> None:
    """Let configs name ``path`` as a ``_target_`` (for configs a user registers on purpose)."""
    _user_targets.add(path)


def target_nodes(node: Any) -> Iterator[DictConfig]:
    """Every node with a ``_target_`` under an OmegaConf node, read as written (never resolved)."""
    if not isinstance(node, (DictConfig, ListConfig)) or node._is_none() or node._is_missing():
        return
    if isinstance(node, DictConfig) and "_target_" in node:
        yield node
    keys = range(len(node)) if isinstance(node, ListConfig) else map(str, node.keys())
    for key in keys:
        yield from target_nodes(node._get_node(key))  # type: ignore[arg-type]


# Resolvers that only read what the config or the environment holds. Any other (oc.create and
# oc.decode build nodes from strings, and so may build a _target_) is refused wherever the
# check cannot resolve it as the job will.
READING_RESOLVERS = {"hydra", "now", "oc.env", "oc.select", "oc.deprecated", "oc.dict.keys", "oc.dict.values"}
RESOLVER = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")


def resolved_leaves(
    node: Any, path: str, skip: Sequence[str] = (), seen: Optional[dict[int, Any]] = None
) -> Iterator[tuple[str, Any, Any, Optional[str]]]:
    """``(key, name, value, None)`` for every leaf under ``node`` as the job will read it: each
    interpolation resolved, and a node that a resolver builds from a string (``oc.create``,
    ``oc.decode``) searched too; ``(key, name, None, text)`` for a value that cannot be resolved
    here. Keys in ``skip`` (at the top) are left out."""
    seen = {} if seen is None else seen  # by id, holding each node so that no id is reused
    if id(node) in seen or (isinstance(node, (DictConfig, ListConfig)) and (node._is_none() or node._is_missing())):
        return
    seen[id(node)] = node
    items: Iterator[tuple[Any, Any]]
    if isinstance(node, ListConfig):
        items = ((index, node._get_node(index)) for index in range(len(node)))
    elif isinstance(node, DictConfig):
        items = ((key, node._get_node(key)) for key in node.keys() if key not in skip)
    elif isinstance(node, (dict, list)):  # oc.decode builds plain containers
        items = iter(node.items() if isinstance(node, dict) else enumerate(node))
    else:
        return
    for key, child in items:
        full = f"{path}.{key}" if path else str(key)
        if isinstance(child, Node) and child._is_interpolation():
            try:
                child = node[key]
            except Exception:
                yield full, key, None, str(child._value())
                continue
        if isinstance(child, (DictConfig, ListConfig, dict, list)):
            yield from resolved_leaves(child, full, (), seen)
        else:
            yield full, key, child._value() if isinstance(child, Node) else child, None


def _builds_nodes(text: str) -> list[str]:
    """The resolvers in ``text`` that may build a node from a string (any but the reading ones)."""
    return sorted(set(RESOLVER.findall(text)) - READING_RESOLVERS)


def is_logging_import(value: str) -> bool:
    """True for what Python's logging config may import here: a class of the standard library's
    ``logging`` or ``logging.handlers`` (every option of Hydra's job_logging and hydra_logging
    uses these; colorlog's formatter for its plugin), or ``ext://sys.stdout`` / ``sys.stderr``."""
    if value.startswith("ext://"):
        return value in ("ext://sys.stdout", "ext://sys.stderr")
    return value.rpartition(".")[0] in ("logging", "logging.handlers") or value == "colorlog.ColoredFormatter"


@dataclass
class Targets:
    """What may be built: the ``_target_`` of every config in Hydra's ConfigStore (with the
    dataclass that describes it, where one does) and the user's own."""

    schemas: dict[str, Optional[type]]

    @classmethod
    def registered(cls) -> "Targets":
        from hydra.core.config_store import ConfigStore

        def entries(repo: dict[str, Any]) -> Iterator[Any]:
            for item in repo.values():
                yield from entries(item) if isinstance(item, dict) else [item.node]

        schemas: dict[str, Optional[type]] = {path: None for path in _user_targets}
        for entry in entries(ConfigStore.instance().repo):
            for node in target_nodes(entry):
                target = str(node._get_node("_target_")._value())  # type: ignore[union-attr]
                schema = OmegaConf.get_type(node)
                if not target.startswith("${") and schemas.get(target) is None:
                    schemas[target] = schema if dataclasses.is_dataclass(schema) else None
        return cls(schemas)


def group_options() -> list[tuple[str, str, Any]]:
    """``(group, option, stored config)`` of every option the app registers."""
    return [(e["group"], e["name"], e["node"]) for e in store if e["group"]]


# --------------------------------------------------------------------- cross-field rules
CrossRule = Callable[[DictConfig], Iterator[Problem]]
CROSS_RULES: list[tuple[str, CrossRule]] = []


def cross_rule(description: str) -> Callable[[CrossRule], CrossRule]:
    def register(check: CrossRule) -> CrossRule:
        CROSS_RULES.append((description, check))
        return check

    return register


def _input_sizes() -> str:
    def size(node: Any) -> str:
        low, high = type(node).min_image_size, type(node).max_image_size
        return f"{low} px" if high is None else f"{low} px exactly" if high == low else f"{low}-{high} px"

    return ", ".join(
        f"{option} {size(node)}" for group, option, node in group_options() if group == "feature_extractor"
    )


@cross_rule(f"dataset.image.size fits the extractor: at least its smallest input ({_input_sizes()})")
def _image_fits_extractor(cfg: DictConfig) -> Iterator[Problem]:
    extractor = OmegaConf.get_type(cfg.feature_extractor)
    low, high = getattr(extractor, "min_image_size", 1), getattr(extractor, "max_image_size", None)
    size = cfg.dataset.image.size
    if not isinstance(size, int) or low <= size <= (high or size):
        return
    target = cfg.feature_extractor._target_
    if high == low:
        yield Problem(
            "dataset.image.size",
            str(size),
            f"= {low}: the one image size {target} is built for",
            f"use dataset.image.size={low}, or another feature_extractor",
        )
    elif size < low:
        yield Problem(
            "dataset.image.size",
            str(size),
            f">= {low}: the smallest image {target} accepts",
            f"use dataset.image.size={max(low, 64)} or more, or another feature_extractor",
        )
    else:
        yield Problem(
            "dataset.image.size",
            str(size),
            f"<= {high}: the largest image {target} accepts",
            f"use dataset.image.size={high} or less, or another feature_extractor",
        )


@cross_rule(
    "the head's Linear layers chain: the first in_features is feature_extractor.out_features, "
    "each next one the previous out_features, and the last out_features is dataset.classes"
)
def _head_widths_chain(cfg: DictConfig) -> Iterator[Problem]:
    layers = cfg.classifier.get("_args_")
    linear = [
        (i, layer)
        for i, layer in enumerate(layers or [])
        if isinstance(layer, DictConfig) and layer.get("_target_") == "torch.nn.Linear"
    ]
    if not linear:
        yield Problem(
            "classifier._args_",
            str(OmegaConf.to_container(layers)) if layers is not None else "null",
            "the head has at least one torch.nn.Linear layer",
            "pick a stored head: classifier=small or classifier=large",
        )
        return
    width, source = cfg.feature_extractor.out_features, "feature_extractor.out_features"
    for i, layer in linear:
        if not all(isinstance(v, int) for v in (layer.in_features, layer.out_features, width)):
            return  # a width of the wrong type: the field's own problem says so
        if layer.in_features != width:
            yield Problem(
                f"classifier._args_.{i}.in_features",
                str(layer.in_features),
                f"equals {source} ({width})",
                f"leave it to interpolation: classifier._args_.{i}.in_features='${{{source}}}'",
            )
        width, source = layer.out_features, f"classifier._args_.{i}.out_features"
    last, classes = linear[-1][0], cfg.dataset.classes
    if width != classes:
        yield Problem(
            f"classifier._args_.{last}.out_features",
            str(width),
            f"equals dataset.classes ({classes}): one score per class",
            "set dataset.classes instead; the last layer follows it",
        )


@cross_rule(
    "dataset=folder: dataset.classes equals the number of class folders under dataset.root, each holds an image, "
    "and dataset.val_root, when set, has the same class folders"
)
def _classes_match_folders(cfg: DictConfig) -> Iterator[Problem]:
    if "root" not in cfg.dataset or "val_root" not in cfg.dataset:
        return
    from app.files import class_folders, image_files

    root, val_root = cfg.dataset.root, cfg.dataset.val_root
    names = class_folders(root)
    classes = cfg.dataset.classes
    if classes != len(names):
        yield Problem(
            "dataset.classes",
            str(classes),
            f"equals the number of class folders in {root}: {len(names)} ({', '.join(names[:6])}"
            f"{', ...' if len(names) > 6 else ''})",
            f"set dataset.classes={len(names)}",
        )
    for key, folder, expected in [("dataset.root", root, None), ("dataset.val_root", val_root, names)]:
        if folder is None:
            continue
        found = class_folders(folder)
        if expected is not None and found != expected:
            missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
            differences = ([f"it lacks {', '.join(missing)}"] if missing else []) + (
                [f"{', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not in dataset.root"] if extra else []
            )
            yield Problem(
                key,
                str(folder),
                f"the class folders of dataset.root ({', '.join(expected[:6])}{', ...' if len(expected) > 6 else ''})",
                f"{'; '.join(differences)}: give both folders the same classes",
            )
            continue
        empty = [name for name in found if not image_files(folder, name)]
        if empty:
            yield Problem(
                key,
                str(folder),
                "every class folder holds at least one image",
                f"add images to, or remove: {', '.join(empty)}",
            )


@cross_rule("dataset=cifar10: dataset.root holds cifar-10-batches-py, unless dataset.download=true")
def _cifar10_is_there(cfg: DictConfig) -> Iterator[Problem]:
    if cfg.dataset._target_ != Cifar10Config._target_ or cfg.dataset.download:
        return
    from app.files import CIFAR10_FOLDER, cifar10_present

    root = cfg.dataset.root
    if not cifar10_present(root):
        yield Problem(
            "dataset.root",
            str(root),
            f"a directory that holds {CIFAR10_FOLDER} (CIFAR-10's python batches) when dataset.download=false",
            f"add dataset.download=true where the network allows, or copy the {CIFAR10_FOLDER} folder into {root}",
        )


def _dataset_images(dataset: DictConfig) -> Optional[int]:
    """How many images the dataset option splits (digits: of its classes; folder: on disk)."""
    counts = getattr(OmegaConf.get_type(dataset), "images_per_class", None)
    if counts is not None:
        return int(sum(counts[: dataset.classes]))
    if "val_root" in dataset:
        from app.files import class_folders, image_files

        return sum(len(image_files(dataset.root, name)) for name in class_folders(dataset.root))
    return None


@cross_rule("dataset.val_fraction leaves images for training: both splits hold at least one")
def _splits_hold_images(cfg: DictConfig) -> Iterator[Problem]:
    from app.files import held_out

    images = _dataset_images(cfg.dataset)
    if images is None or "val_fraction" not in cfg.dataset or cfg.dataset.get("val_root") is not None:
        return
    fraction = cfg.dataset.val_fraction
    if images - held_out(images, fraction) < 1:
        yield Problem(
            "dataset.val_fraction",
            str(fraction),
            f"leaves images for training: it holds out {held_out(images, fraction)} of the {images} images",
            f"lower it: with {images} images, dataset.val_fraction=0.2 holds out {held_out(images, 0.2)}",
        )


def _gib(count: float) -> str:
    return f"{count / 2**30:,.1f} GiB"


@cross_rule("the images a run holds fit in this machine's memory (dataset.image.size, trainer.batch_size)")
def _images_fit_in_memory(cfg: DictConfig) -> Iterator[Problem]:
    size, batch = cfg.dataset.image.size, cfg.trainer.batch_size
    image = 3 * size * size * 4  # float32, the RGB the model reads
    held = 4 * batch * image  # a batch on its way, and the loader's prefetched ones
    if OmegaConf.get_type(cfg.dataset).in_memory:  # type: ignore[union-attr]
        held += 2 * (_dataset_images(cfg.dataset) or 0) * size * size * 4  # resized once, then split
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if held > memory:
        yield Problem(
            "dataset.image.size",
            str(size),
            f"images that fit in memory: at {size} px the run holds about {_gib(held)}, "
            f"this machine has {_gib(memory)}",
            "lower dataset.image.size (224 is what ImageNet models see) or trainer.batch_size",
        )


@cross_rule("feature_extractor.weights and feature_extractor.checkpoint are not both set")
def _one_source_of_weights(cfg: DictConfig) -> Iterator[Problem]:
    fe = cfg.feature_extractor
    if fe.get("weights") is not None and fe.get("checkpoint") is not None:
        yield Problem(
            "feature_extractor.checkpoint",
            str(fe.checkpoint),
            "only one of feature_extractor.weights and feature_extractor.checkpoint",
            "drop one of them (feature_extractor.weights=null)",
        )


@cross_rule("optimizer.nesterov=true needs optimizer.momentum > 0 and optimizer.dampening = 0")
def _nesterov_momentum(cfg: DictConfig) -> Iterator[Problem]:
    opt = cfg.optimizer
    if opt.get("nesterov") and not (opt.get("momentum", 0) > 0 and opt.get("dampening", 0) == 0):
        yield Problem(
            "optimizer.nesterov",
            "true",
            "Nesterov momentum needs momentum > 0 and dampening = 0",
            "set optimizer.momentum=0.9 optimizer.dampening=0, or optimizer.nesterov=false",
        )


@cross_rule(
    "the run dir (hydra.run.dir, or each sweep job's dir under hydra.sweep.dir) is named, can be made, "
    "no live run writes in it, and it holds no earlier run unless trainer.overwrite=true or trainer.resume "
    "continues it"
)
def _run_dir_is_free(cfg: DictConfig) -> Iterator[Problem]:
    from app.files import checkpoint_to_resume, lock_holder, run_artefacts

    sweep = not OmegaConf.is_missing(cfg.hydra.job, "num")  # set for a sweep's jobs only
    key, run_dir = ("hydra.sweep.dir" if sweep else "hydra.run.dir"), str(cfg.hydra.runtime.output_dir)
    if not run_dir:
        yield Problem(
            key,
            "",
            "a directory for the run's files (empty: they would land in the launch dir)",
            f"leave {key} out for a new dated one, or name a directory",
        )
        return
    blocked = _unwritable(run_dir)
    if blocked:
        yield Problem(key, run_dir, "a directory this user can create and write in", f"{blocked}: choose another {key}")
        return
    trainer = cfg.get("trainer")  # app-evaluate and app-predict have none: they never continue a run
    continued = trainer is not None and checkpoint_to_resume(run_dir, trainer.resume) is not None
    holder, left = lock_holder(run_dir), run_artefacts(run_dir)
    if holder is not None:
        yield Problem(
            key,
            run_dir,
            "a run dir no live run is writing in",
            f"a run (pid {holder}) is still writing there: wait for it, or choose another {key}",
        )
    elif left and not continued and not (trainer is not None and trainer.overwrite):
        ways = (
            "or leave it out for a new dated one"
            if trainer is None
            else "add trainer.resume=auto to continue that run, or trainer.overwrite=true to replace it"
        )
        yield Problem(
            key,
            run_dir,
            f"a new run dir: this one holds an earlier run ({', '.join(left)})",
            f"choose another {key}, {ways}",
        )


def _unwritable(path: str) -> str:
    """Why this user cannot make or write in directory ``path`` ("" when they can)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is {'not a directory' if not os.path.isdir(existing) else 'not writable'}"
    return ""


@cross_rule(
    "trainer.feature_cache_dir is a directory this user can make or write in, when the feature cache is used "
    "(trainer.freeze_extractor=true, trainer.feature_cache=true, no random dataset.augment)"
)
def _feature_cache_dir_is_writable(cfg: DictConfig) -> Iterator[Problem]:
    t = cfg.trainer
    if feature_cache_unused_because(cfg) is not None:
        return
    blocked = _unwritable(os.path.expanduser(t.feature_cache_dir))
    if blocked:
        yield Problem(
            "trainer.feature_cache_dir",
            t.feature_cache_dir,
            "a directory this user can create and write in",
            f"{blocked}: choose another trainer.feature_cache_dir, or set trainer.feature_cache=false",
        )


@cross_rule("trainer.extractor_lr_scale is 1 when trainer.freeze_extractor=true (a frozen extractor has no lr)")
def _scale_needs_a_trained_extractor(cfg: DictConfig) -> Iterator[Problem]:
    if cfg.trainer.freeze_extractor and cfg.trainer.extractor_lr_scale != 1:
        yield Problem(
            "trainer.extractor_lr_scale",
            _num(cfg.trainer.extractor_lr_scale),
            "1 when trainer.freeze_extractor=true: a frozen extractor is not trained",
            "drop trainer.extractor_lr_scale, or set trainer.freeze_extractor=false",
        )


@cross_rule("trainer.resume and trainer.overwrite=true are not both set: a run is continued or replaced")
def _resume_or_overwrite(cfg: DictConfig) -> Iterator[Problem]:
    if cfg.trainer.resume is not None and cfg.trainer.overwrite:
        yield Problem(
            "trainer.overwrite",
            "true",
            "false when trainer.resume is set: a run is continued or replaced, not both",
            "drop trainer.overwrite=true to continue the run, or trainer.resume",
        )


@cross_rule("scheduler.warmup_epochs < trainer.epochs: the warm-up ends inside the run")
def _warmup_ends_in_the_run(cfg: DictConfig) -> Iterator[Problem]:
    scheduler = cfg.scheduler
    epochs = cfg.trainer.epochs
    if scheduler is not None and "warmup_epochs" in scheduler and 1 <= epochs <= scheduler.warmup_epochs:
        yield Problem(
            "scheduler.warmup_epochs",
            _num(scheduler.warmup_epochs),
            f"< trainer.epochs ({cfg.trainer.epochs}): the warm-up ends inside the run",
            f"e.g. scheduler.warmup_epochs={max(cfg.trainer.epochs - 1, 0)}, or more trainer.epochs",
        )


@cross_rule("logger=tensorboard needs the tensorboard package installed")
def _tensorboard_is_there(cfg: DictConfig) -> Iterator[Problem]:
    import importlib.util

    if str(cfg.logger._target_).endswith("TensorBoardLogger") and importlib.util.find_spec("tensorboard") is None:
        yield Problem(
            "logger",
            "tensorboard",
            "a logger whose package is installed: tensorboard is not",
            "pip install tensorboard (or the app's extra: pip install -e '.[tensorboard]'), or logger=csv",
        )


@cross_rule(
    "hydra/sweeper=optuna: n_trials >= 1, n_jobs >= 1, 0 <= max_failure_rate <= 1, direction minimize or "
    "maximize (the job returns one value), and no custom_search_space (it imports and calls the function it names)"
)
def _optuna_can_run(cfg: DictConfig) -> Iterator[Problem]:
    sweeper = cfg.hydra.sweeper
    if not str(sweeper._target_).endswith("OptunaSweeper"):
        return
    from hydra_plugins.hydra_optuna_sweeper.config import Direction

    for key, ok, rule, fix in [
        ("n_trials", sweeper.n_trials >= 1, ">= 1: the trials to run", 20),
        ("n_jobs", sweeper.n_jobs >= 1, ">= 1: the trials drawn at a time", 1),
        ("max_failure_rate", 0 <= sweeper.max_failure_rate <= 1, "0 <= value <= 1: a fraction of a batch", 0.0),
    ]:
        if not ok:
            yield Problem(f"hydra.sweeper.{key}", str(sweeper[key]), rule, f"e.g. hydra.sweeper.{key}={fix}")
    direction = sweeper.direction
    name = direction.name if isinstance(direction, Direction) else str(direction)
    if name not in Direction.__members__:
        yield Problem(
            "hydra.sweeper.direction",
            name,
            f"one of {', '.join(Direction.__members__)}: the job returns one value, the best validation accuracy",
            "hydra.sweeper.direction=maximize",
        )
    if sweeper.get("custom_search_space") is not None:
        yield Problem(
            "hydra.sweeper.custom_search_space",
            str(sweeper.custom_search_space),
            "null: Optuna would import and call the function it names, which no check covers",
            "declare the search space with hydra.sweeper.params or on the command line",
        )


@cross_rule(
    "hydra/launcher=joblib or submitit_*: joblib's n_jobs is not 0; submitit's timeout_min, nodes, tasks_per_node "
    "and cpus_per_task are >= 1, gpus_per_node and gpus_per_task >= 0"
)
def _launcher_can_run(cfg: DictConfig) -> Iterator[Problem]:
    launcher = cfg.hydra.launcher
    target = str(launcher.get("_target_", ""))
    if target.endswith("JoblibLauncher") and launcher.get("n_jobs") == 0:
        yield Problem(
            "hydra.launcher.n_jobs", "0", "not 0: the jobs run at once (-1: one per core)", "hydra.launcher.n_jobs=2"
        )
    if "submitit" not in target:
        return
    # joblib and submitit take these numbers as they are: 0 minutes or -1 GPUs fail only on the cluster
    for key, low in [
        ("timeout_min", 1),
        ("nodes", 1),
        ("tasks_per_node", 1),
        ("cpus_per_task", 1),
        ("gpus_per_node", 0),
        ("gpus_per_task", 0),
    ]:
        value = launcher.get(key)
        if value is not None and value < low:
            yield Problem(f"hydra.launcher.{key}", str(value), f">= {low}", f"e.g. hydra.launcher.{key}={max(low, 1)}")


def processes(cfg: DictConfig) -> int:
    """How many processes train one run together: a submitit job's nodes x tasks_per_node, or
    torchrun's ``WORLD_SIZE`` (the launch check runs in its rank 0); 1 otherwise."""
    launcher = cfg.hydra.get("launcher") if "hydra" in cfg else None
    if launcher is not None and "submitit" in str(launcher.get("_target_", "")):
        return max(int(launcher.get("nodes") or 1), 1) * max(int(launcher.get("tasks_per_node") or 1), 1)
    return int(os.environ.get("WORLD_SIZE", "1"))


@cross_rule(
    "trainer.batch_size is the global batch: it divides evenly over the processes that train one run "
    "(torchrun's --nproc_per_node x --nnodes, or submitit's nodes x tasks_per_node)"
)
def _batch_splits_over_processes(cfg: DictConfig) -> Iterator[Problem]:
    many, batch = processes(cfg), cfg.trainer.batch_size
    if many > 1 and batch % many:
        fits = max(many, round(batch / many) * many)
        yield Problem(
            "trainer.batch_size",
            str(batch),
            f"a multiple of the {many} processes that train the run: "
            "it is the global batch, each process takes an equal share",
            f"e.g. trainer.batch_size={fits} ({fits // many} images a process)",
        )


@cross_rule("under torchrun: one run per launch, not a -m sweep (every process would run the whole sweep)")
def _one_run_under_torchrun(cfg: DictConfig) -> Iterator[Problem]:
    if "hydra" in cfg and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not OmegaConf.is_missing(cfg.hydra.job, "num"):
        yield Problem(
            "hydra.mode",
            "MULTIRUN",
            "one run per torchrun launch (no -m): every process would run the whole sweep",
            "sweep with hydra/launcher=submitit_slurm (tasks_per_node=GPUs), or launch torchrun once per point",
        )


@cross_rule("hydra/launcher=submitit_*: with more than one task per node, gpus_per_node is 0 (CPUs) or one per task")
def _one_gpu_per_task(cfg: DictConfig) -> Iterator[Problem]:
    launcher = cfg.hydra.launcher
    if "submitit" not in str(launcher.get("_target_", "")):
        return
    tasks, gpus = launcher.get("tasks_per_node") or 1, launcher.get("gpus_per_node") or 0
    if tasks > 1 and gpus and gpus != tasks:
        yield Problem(
            "hydra.launcher.gpus_per_node",
            str(gpus),
            f"equal to tasks_per_node ({tasks}): each task trains on one GPU of its node",
            f"hydra.launcher.gpus_per_node={tasks}, or hydra.launcher.tasks_per_node={gpus}",
        )


@cross_rule("trainer.device=cuda needs a CUDA device that torch can see")
def _cuda_is_there(cfg: DictConfig) -> Iterator[Problem]:
    if cfg.trainer.device is not Device.cuda:
        return
    import torch  # only for a run that asks for cuda, which would import torch anyway

    if not torch.cuda.is_available():
        yield Problem(
            "trainer.device",
            "cuda",
            "a device this machine has: torch sees no CUDA device",
            "use trainer.device=auto (cuda where there is one) or trainer.device=cpu",
        )


@cross_rule(
    "app-evaluate, app-predict: checkpoint is one app-train wrote; evaluate's dataset.classes equals the "
    "checkpoint's; predict's top_k is at most its classes and its input holds images"
)
def _fits_the_checkpoint(cfg: DictConfig) -> Iterator[Problem]:
    if "checkpoint" not in cfg:
        return
    from app.files import checkpoint_config, image_files_under

    trained = checkpoint_config(cfg.checkpoint)
    if trained is None:
        yield Problem(
            "checkpoint",
            str(cfg.checkpoint),
            "a checkpoint app-train wrote (its config is inside)",
            "give a run's checkpoints/best.pt or last.pt; a torchvision state dict is for "
            "app-train feature_extractor.checkpoint=",
        )
        return
    classes = int(trained["dataset"]["classes"])
    if "dataset" in cfg and cfg.dataset.classes != classes:
        yield Problem(
            "dataset.classes",
            str(cfg.dataset.classes),
            f"equals the checkpoint's classes ({classes}): the model scores that many",
            "evaluate on a dataset with the classes the model was trained on",
        )
    if cfg.get("top_k") is not None and cfg.top_k > classes:
        yield Problem(
            "top_k",
            str(cfg.top_k),
            f"<= the checkpoint's classes ({classes})",
            f"top_k={min(5, classes)}, or leave it out (null: 5, or all when there are fewer)",
        )
    if "input" in cfg and os.path.isdir(cfg.input) and not image_files_under(cfg.input):
        yield Problem(
            "input",
            str(cfg.input),
            "a folder with at least one image in it (searched recursively)",
            "point input at an image or a folder of images",
        )


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


# ------------------------------------------------------------------- one composed config
class _Walk:
    """One pass over a composed config: every node's keys, values and targets."""

    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.problems: list[Problem] = []

    def node(self, node: Any, path: str) -> None:
        if isinstance(node, ListConfig):
            for index in range(len(node)):
                self.node(node._get_node(index), f"{path}.{index}")
            return
        if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
            return
        typed = OmegaConf.get_type(node)
        schema = typed if dataclasses.is_dataclass(typed) else None
        if schema is None and "_target_" in node:  # a plain dict: read it as the config it names
            schema = self.targets.schemas.get(str(node._get_node("_target_")._value()))  # type: ignore[union-attr]
        declared = field_hints(schema) if schema else {}
        for key in map(str, node.keys()):
            full = f"{path}.{key}" if path else key
            if path == "" and key == "hydra":
                continue  # Hydra's own config: only its targets are checked (check_config)
            if schema is not None and key not in declared:
                self.problems.append(unknown_key(full, str(node._get_node(key)._value()), schema))  # type: ignore[union-attr]
                continue
            self.value(node, key, full, declared.get(key, Any), schema, typed)
        if schema is not None and typed is not schema:  # an untyped node misses what no default fills
            for f in dataclasses.fields(schema):
                if (
                    f.name not in node
                    and f.default in (dataclasses.MISSING, "???")
                    and f.default_factory is dataclasses.MISSING
                ):
                    self.problems.append(
                        Problem(
                            f"{path}.{f.name}",
                            "(not given)",
                            f"{schema.__name__} needs it",
                            f"add {f.name} to the layer at {path}",
                        )
                    )

    def value(self, node: DictConfig, key: str, full: str, hint: Any, schema: Optional[type], typed: Any) -> None:
        try:
            value = node[key]
            plain = value
            if isinstance(value, ListConfig) and not _has_schema(hint):
                plain = OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException as error:
            raw = str(node._get_node(key)._value())  # type: ignore[union-attr]
            self.problems.append(unresolved(full, raw, error))
            return
        if key in ("_target_", "_partial_", "_convert_", "_recursive_"):
            self.fixed(full, key, value, OmegaConf.get_type(node))
        elif _has_schema(hint) and isinstance(value, (DictConfig, ListConfig)):
            self.node(value, full)  # resolved: a node a resolver builds is checked too
        elif not key.startswith("_") and hint is not Any and (schema is not typed or _constrained(hint)):
            problem = _validate(full, plain, hint, example(schema, key))
            if problem is not None:
                if OmegaConf.is_interpolation(node, key):
                    given = node._get_node(key)._value()  # type: ignore[union-attr]
                    problem.value = f"{given} (= {problem.value})"
                    source = node._get_node(key)._maybe_dereference_node()  # type: ignore[union-attr]
                    problem.via = source._get_full_key(None) if source is not None else ""
                self.problems.append(problem)

    def fixed(self, full: str, key: str, value: Any, typed: Any) -> None:
        """A typed node builds what its class says, and is called as its class says (which
        ``_target_`` any node may build: check_config)."""
        own = example(typed, key)
        if own is None or str(value) == own:
            return
        if key == "_target_":
            rule = f"{typed.__name__} builds {own}; its fields fit that signature only"
            hint = "pick another option of the group instead (see --help)"
        else:
            rule, hint = (
                f"{key}={own.lower()}: the job calls what {typed.__name__} builds that way",
                f"leave {full} out",
            )
        self.problems.append(Problem(full, str(value).lower() if isinstance(value, bool) else str(value), rule, hint))


def _builds_only_registered(cfg: DictConfig, targets: Targets, given: set[str]) -> Iterator[Problem]:
    """Every ``_target_`` that the job or Hydra (its callbacks, launcher and sweeper) will
    instantiate, with interpolations resolved, is one a registered config builds."""
    hydra = cfg.get("hydra")
    instantiated = list(resolved_leaves(cfg, "", skip=["hydra"]))
    if isinstance(hydra, DictConfig):
        parts = ("callbacks", "launcher", "sweeper")
        instantiated += resolved_leaves(hydra, "hydra", skip=[str(k) for k in hydra if k not in parts])
    for key, name, value, text in instantiated:
        if key in given:  # the walk said what is wrong there
            continue
        if text is not None and (name == "_target_" or _builds_nodes(text)):
            building = ", ".join(_builds_nodes(text))
            yield Problem(
                key,
                text,
                "a value the launch check can resolve, where it decides what is built",
                "write the value out" + (f" instead of building it with {building}" if building else ""),
            )
        elif name == "_target_" and text is None and str(value) not in targets.schemas:
            yield Problem(
                key,
                str(value),
                "a _target_ that the app's registered configs use",
                "pick a stored option of the group instead (see --help); to build your own class, "
                "register its config and call app.checks.allow_target",
            )


def _logging_imports_only_logging(cfg: DictConfig) -> Iterator[Problem]:
    """Python's logging config imports and calls what its ``class`` and ``()`` keys and its
    ``ext://`` values name: in Hydra's job_logging and hydra_logging, only logging's own."""
    hydra = cfg.get("hydra")
    if not isinstance(hydra, DictConfig):
        return
    parts = ("job_logging", "hydra_logging")
    for key, name, value, text in resolved_leaves(hydra, "hydra", skip=[str(k) for k in hydra if k not in parts]):
        given = str(value) if text is None else text
        if (name in ("class", "()") or given.startswith("ext://")) and (
            text is not None or not is_logging_import(given)
        ):
            yield Problem(
                key,
                given,
                "a class of the standard library's logging (what Hydra's logging options use)",
                "pick a logging option of Hydra's: hydra/job_logging=default, stdout, disabled or none",
            )


def check_config(cfg: DictConfig, targets: Optional[Targets] = None) -> list[Problem]:
    """Every problem of one composed config (of its ``hydra`` node, what Hydra instantiates or
    imports from it)."""
    walk = _Walk(Targets.registered() if targets is None else targets)
    walk.node(cfg, "")
    problems = walk.problems
    problems += _builds_only_registered(cfg, walk.targets, {p.key for p in problems})
    problems += _logging_imports_only_logging(cfg)
    # An interpolated value breaks a rule where it comes from: one mistake, one problem (in a
    # cycle of interpolations, every key of the cycle says so).
    via = {p.key: p.via for p in problems}

    def in_cycle(key: str) -> bool:
        seen, step = set(), via.get(key, "")
        while step in via and step not in seen:
            seen.add(step)
            step = via[step]
        return key in seen

    problems = [p for p in problems if p.via not in via or in_cycle(p.key)]
    # A cross-field rule says more than a field's own rule (">= 63 for alexnet" beats ">= 1"),
    # so its problem replaces the field's; a rule that cannot read its values stays silent.
    for _, rule in CROSS_RULES:
        try:
            found = list(rule(cfg))
        except Exception:
            continue
        keys = {p.key for p in found}
        problems = [p for p in problems if p.key not in keys] + found
    return problems
