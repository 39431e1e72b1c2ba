"""Refuse a bad configuration before anything runs.

``check_overrides`` composes every point of a run or sweep exactly as Hydra will, and
``check_config`` checks a composed config against the value rules declared next to each field
(``app.rules``), the cross-field rules below, the schema's keys and the target allow-list. Each
problem names the key, the value given, the rule and a hint. No torch is imported.
"""

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from app.rules import Rule, rule_of

CONFIG_NAME = "config"


@dataclass
class Problem:
    key: str
    value: str
    rule: str
    hint: str
    point: Optional[Sequence[str]] = None  # the overrides of the sweep point it was found in
    error: Optional[BaseException] = None  # re-raised under HYDRA_FULL_ERROR=1

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


def _suggest(word: str, choices: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)


# ------------------------------------------------------------------------------ targets
_user_targets: set[str] = set()


def allow_target(path: str) -> None:
    """Let configs name ``path`` as a ``_target_`` (for configs a user registers on purpose)."""
    _user_targets.add(path)


def _targets(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(key, value as written) of every ``_target_`` under an OmegaConf node."""
    if not isinstance(node, (DictConfig, ListConfig)) or node._is_none() or node._is_missing():
        return
    keys = range(len(node)) if isinstance(node, ListConfig) else map(str, node.keys())
    for key in keys:
        child = node._get_node(key)  # type: ignore[arg-type]
        if key == "_target_":
            yield f"{path}.{key}", child._value()  # type: ignore[union-attr]
        else:
            yield from _targets(child, f"{path}.{key}")


def allowed_targets() -> set[str]:
    """Every ``_target_`` that a config registered in Hydra's ConfigStore uses, and the user's."""
    from hydra.core.config_store import ConfigNode, ConfigStore

    def entries(repo: dict[str, Any]) -> Iterator[ConfigNode]:
        for item in repo.values():
            yield from entries(item) if isinstance(item, dict) else [item]

    stored = {
        str(value) for entry in entries(ConfigStore.instance().repo)
        for _, value in _targets(entry.node, "") if not str(value).startswith("${")
    }
    return stored | _user_targets


# --------------------------------------------------------------------- cross-field rules
CrossRule = Callable[[DictConfig], Iterator[Problem]]
CROSS_RULES: list[tuple[str, CrossRule]] = []


def cross_rule(description: str) -> Callable[[CrossRule], CrossRule]:
    def register(check: CrossRule) -> CrossRule:
        CROSS_RULES.append((description, check))
        return check

    return register


@cross_rule("dataset.image.size >= the extractor's smallest input (alexnet 63 px, resnet18 32 px)")
def _image_fits_extractor(cfg: DictConfig) -> Iterator[Problem]:
    extractor = OmegaConf.get_type(cfg.feature_extractor)
    minimum = getattr(extractor, "min_image_size", 1)
    size = cfg.dataset.image.size
    if isinstance(size, int) and size < minimum:
        yield Problem(
            "dataset.image.size", str(size),
            f">= {minimum}: the smallest image {cfg.feature_extractor._target_} accepts",
            f"use dataset.image.size={max(minimum, 64)} or more, or another feature_extractor",
        )


@cross_rule(
    "the head's Linear layers chain: the first in_features is feature_extractor.out_features, "
    "each next one the previous out_features, and the last out_features is dataset.classes"
)
def _head_widths_chain(cfg: DictConfig) -> Iterator[Problem]:
    layers = cfg.classifier.get("_args_")
    linear = [
        (i, layer) for i, layer in enumerate(layers or [])
        if isinstance(layer, DictConfig) and layer.get("_target_") == "torch.nn.Linear"
    ]
    if not linear:
        yield Problem(
            "classifier._args_", str(OmegaConf.to_container(layers)) if layers is not None else "null",
            "the head has at least one torch.nn.Linear layer",
            "pick a stored head: classifier=small or classifier=large",
        )
        return
    width, source = cfg.feature_extractor.out_features, "feature_extractor.out_features"
    for i, layer in linear:
        if layer.in_features != width:
            yield Problem(
                f"classifier._args_.{i}.in_features", str(layer.in_features),
                f"equals {source} ({width})",
                f"leave it to interpolation: classifier._args_.{i}.in_features='${{{source}}}'",
            )
        width, source = layer.out_features, f"classifier._args_.{i}.out_features"
    last, classes = linear[-1][0], cfg.dataset.classes
    if width != classes:
        yield Problem(
            f"classifier._args_.{last}.out_features", str(width),
            f"equals dataset.classes ({classes}): one score per class",
            "set dataset.classes instead; the last layer follows it",
        )


@cross_rule("dataset=folder: dataset.classes equals the number of class folders under dataset.root")
def _classes_match_folders(cfg: DictConfig) -> Iterator[Problem]:
    if "root" not in cfg.dataset:
        return
    from app.folders import class_folders, image_files

    root = cfg.dataset.root
    names = class_folders(root)
    classes = cfg.dataset._get_node("classes")._value()
    if classes != len(names):
        yield Problem(
            "dataset.classes", str(classes),
            f"equals the number of class folders in {root}: {len(names)} ({', '.join(names[:6])}"
            f"{', ...' if len(names) > 6 else ''})",
            f"set dataset.classes={len(names)}",
        )
    empty = [name for name in names if not image_files(root, name)]
    if empty:
        yield Problem(
            "dataset.root", str(root), "every class folder holds at least one image",
            f"add images to, or remove: {', '.join(empty)}",
        )


@cross_rule("feature_extractor.weights and feature_extractor.checkpoint are not both set")
def _one_source_of_weights(cfg: DictConfig) -> Iterator[Problem]:
    fe = cfg.feature_extractor
    if fe.get("weights") is not None and fe.get("checkpoint") is not None:
        yield Problem(
            "feature_extractor.checkpoint", str(fe.checkpoint),
            "only one of feature_extractor.weights and feature_extractor.checkpoint",
            "drop one of them (feature_extractor.weights=null)",
        )


@cross_rule("optimizer.nesterov=true needs optimizer.momentum > 0 and optimizer.dampening = 0")
def _nesterov_momentum(cfg: DictConfig) -> Iterator[Problem]:
    opt = cfg.optimizer
    if opt.get("nesterov") and not (opt.get("momentum", 0) > 0 and opt.get("dampening", 0) == 0):
        yield Problem(
            "optimizer.nesterov", "true", "Nesterov momentum needs momentum > 0 and dampening = 0",
            "set optimizer.momentum=0.9 optimizer.dampening=0, or optimizer.nesterov=false",
        )


# ------------------------------------------------------------------ the rules, as a table
def rules_table(options: Sequence[tuple[str, str, Any]]) -> list[tuple[str, str]]:
    """(key, rule) for every rule of the ``(group, option, dataclass instance)`` configs,
    then the cross-field rules. What ``--help`` prints and the README lists."""
    found: dict[str, dict[str, list[str]]] = {}
    names: dict[str, list[str]] = {}

    def walk(obj: Any, path: str, option: str) -> None:
        if isinstance(obj, list):
            for item in obj:
                walk(item, f"{path}[*]", option)
        elif dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                rule = rule_of(f.metadata)
                if rule is not None:
                    text = rule.describe() + (f" ({rule.why})" if rule.why else "")
                    found.setdefault(f"{path}.{f.name}", {}).setdefault(text, []).append(option)
                walk(getattr(obj, f.name), f"{path}.{f.name}", option)

    for group, option, node in options:
        names.setdefault(group, []).append(option)
        walk(node, group, option)
    rows = []
    for key, texts in found.items():
        group = key.split(".")[0]
        for text, where in texts.items():
            everywhere = len(texts) == 1 and len(set(where)) == len(names[group])
            rows.append((key, text if everywhere else f"{text} [{', '.join(sorted(set(where)))}]"))
    return rows + [("cross-field", description) for description, _ in CROSS_RULES]


def rules_help(options: Sequence[tuple[str, str, Any]]) -> str:
    rows = rules_table(options)
    width = max(len(key) for key, _ in rows)
    lines = [f"  {key:<{width}}  {text}" for key, text in rows]
    return (
        "== Rules (checked before anything runs; app-check checks without running) ==\n"
        + "\n".join(lines)
        + "\n\nAlso refused: unknown keys and group options, and any _target_ that no stored config uses.\n"
    )


# ------------------------------------------------------------------- one composed config
def _value_hint(key: str, rule: Rule, default: Any) -> str:
    if rule.existing_file or rule.existing_dir:
        return f"check the path: it is read from the directory you launch from ({os.getcwd()})"
    concrete = default not in (dataclasses.MISSING, None, "???") and not str(default).startswith("${")
    example = f", e.g. {key}={default}" if concrete else ""
    return f"give {key} a value with {rule.describe()}{example}"


def _check_node(node: Any, path: str, allowed: set[str], problems: list[Problem]) -> None:
    """Field rules, unknown keys and targets, for ``node`` and everything under it."""
    if isinstance(node, ListConfig):
        for index in range(len(node)):
            _check_node(node._get_node(index), f"{path}.{index}", allowed, problems)
        return
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    declared = (
        {f.name: f for f in dataclasses.fields(schema)}
        if isinstance(schema, type) and dataclasses.is_dataclass(schema)
        else None
    )
    for key in map(str, node.keys()):
        full = f"{path}.{key}" if path else key
        if declared is not None and key not in declared:
            close = _suggest(key, [name for name in declared if not name.startswith("_")])
            problems.append(Problem(
                full, str(node._get_node(key)._value()),  # type: ignore[union-attr]
                f"a key of {schema.__name__}: {', '.join(n for n in declared if not n.startswith('_'))}",  # type: ignore[union-attr]
                f"did you mean {' or '.join(f'{path}.{c}' for c in close)}?" if close
                else f"remove it; {path} takes only the keys above",
            ))
            continue
        try:
            value = node[key]
        except OmegaConfBaseException as error:
            raw = node._get_node(key)._value()  # type: ignore[union-attr]
            hint = (f"point the interpolation at a key that exists, e.g. '${{trainer.seed}}'"
                    if OmegaConf.is_interpolation(node, key) else f"set {full}")
            problems.append(Problem(full, str(raw), str(error).splitlines()[0], hint, error=error))
            continue
        if key == "_target_":
            _check_target(full, str(value), schema, declared, allowed, problems)
        rule = rule_of(declared[key].metadata) if declared is not None else None
        # An interpolated value is checked where it comes from, so one mistake is one problem.
        if rule is not None and not OmegaConf.is_interpolation(node, key):
            plain = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
            if rule.broken_by(plain):
                field = declared[key]  # type: ignore[index]
                why = f" ({rule.why})" if rule.why else ""
                problems.append(Problem(
                    full, str(plain), rule.describe() + why, _value_hint(full, rule, field.default)
                ))
        if isinstance(value, (DictConfig, ListConfig)):
            _check_node(node._get_node(key), full, allowed, problems)


def _check_target(
    key: str, value: str, schema: Any, declared: Optional[dict[str, Any]], allowed: set[str],
    problems: list[Problem],
) -> None:
    """A typed node builds what its class says; an untyped one only what some config builds."""
    own = declared["_target_"].default if declared is not None else dataclasses.MISSING
    if own not in (dataclasses.MISSING, "???") and value != own:
        problems.append(Problem(
            key, value, f"{schema.__name__} builds {own}; its fields fit that signature only",
            "pick another option of the group instead (see --help)",
        ))
    elif value not in allowed:
        problems.append(Problem(
            key, value, "a _target_ that the app's registered configs use",
            "pick a stored option of the group instead (see --help); to build your own class, "
            "register its config and call app.validation.allow_target",
        ))


def check_config(cfg: DictConfig, allowed: Optional[set[str]] = None) -> list[Problem]:
    """Every problem of one composed config (its ``hydra`` node, if there, for targets only)."""
    problems: list[Problem] = []
    allowed = allowed_targets() if allowed is None else allowed
    job = cfg
    if "hydra" in cfg:
        job = cfg.copy()
        with open_dict(job):
            del job["hydra"]
        problems.extend(
            Problem(key, str(value), "a _target_ that a registered config uses",
                    "register the config of your callback or plugin instead of naming a target")
            for key, value in _targets(cfg.hydra, "hydra") if str(value) not in allowed
        )
    _check_node(job, "", allowed, problems)
    # A cross-field rule says more than a field's own rule (">= 63 for alexnet" beats ">= 1"),
    # so its problem replaces the field's; a rule that cannot read its values stays silent.
    for _, rule in CROSS_RULES:
        try:
            found = list(rule(job))
        except Exception:
            continue
        keys = {p.key for p in found}
        problems = [p for p in problems if p.key not in keys] + found
    return problems


def raise_if_invalid(cfg: DictConfig) -> None:
    problems = check_config(cfg)
    if problems:
        raise ConfigError(problems)


# ---------------------------------------------------------------- overrides, sweep points
def _override_value(overrides: Sequence[str], key: str) -> str:
    for text in overrides:
        name, _, value = text.partition("=")
        if name.lstrip("+~") == key:
            return value
    return "?"


def _composition_problem(error: Exception, overrides: Sequence[str]) -> Problem:
    """A Hydra composition error, told as key, value, rule and hint."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigIndexError, ConfigKeyError, ConfigTypeError, ValidationError

    message = str(error)
    first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    cause = error.__cause__
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        options = list(error.options or [])
        if not group:  # the primary config itself
            return Problem("--config-name", option, "a stored primary config", "leave --config-name out", error=error)
        close = _suggest(option, options)
        hint = f"did you mean {' or '.join(f'{group}={c}' for c in close)}? " if close else ""
        return Problem(
            group.replace("/", "."), option, f"one of the options of group {group}: {', '.join(options)}",
            hint + f"list them with --help", error=error,
        )
    key = re.sub(r"\[(\d+)\]", r".\1", str(getattr(cause, "full_key", "") or "?"))
    if isinstance(cause, (ConfigKeyError, ConfigIndexError)) or isinstance(cause, AttributeError):
        schema = getattr(cause, "object_type", None)
        if isinstance(cause, ConfigIndexError):
            return Problem(key, _override_value(overrides, key), "an index inside the list",
                           "count from 0; --cfg job shows the list", error=error)
        names = [f.name for f in dataclasses.fields(schema) if not f.name.startswith("_")] if (
            isinstance(schema, type) and dataclasses.is_dataclass(schema)) else []
        parent, _, leaf = key.rpartition(".")
        close = _suggest(leaf, names)
        hint = (f"did you mean {' or '.join(f'{parent}.{c}' for c in close)}?" if close
                else f"{parent or 'the config'} has the keys: {', '.join(names)}" if names
                else "print the config with --cfg job to see its keys")
        return Problem(key, _override_value(overrides, key),
                       f"a key that exists in {getattr(schema, '__name__', 'the config')}", hint, error=error)
    if isinstance(cause, ConfigTypeError) and "deletion" in str(cause):
        return Problem(f"~{key}", "", "typed fields cannot be removed; ~ removes a group or a key added with +",
                       f"set a value instead ({key}=...), or remove a group such as ~scheduler", error=error)
    if isinstance(cause, ValidationError):
        detail = str(cause).splitlines()[0]
        schema, leaf = getattr(cause, "object_type", None), key.rpartition(".")[2]
        defaults = {f.name: f.default for f in dataclasses.fields(schema)} if (
            isinstance(schema, type) and dataclasses.is_dataclass(schema)) else {}
        default = defaults.get(leaf, dataclasses.MISSING)
        default = default.name if isinstance(default, Enum) else default
        hint = (f"e.g. {key}={default} (the default)" if default not in (dataclasses.MISSING, "???", None)
                and not str(default).startswith("${") else f"--cfg job shows {key} and its type")
        return Problem(key, _override_value(overrides, key), detail, hint, error=error)
    if "An item is already at" in message:
        key = message.split("'")[1]
        return Problem(f"+{key}", _override_value(overrides, key), "+ adds a key that does not exist yet",
                       f"drop the +: {key}=...", error=error)
    if "Ambiguous value for argument" in message:
        given = first.split("'")[1] if "'" in first else "override="
        key, _, value = given.partition("=")
        return Problem(key, value,
                       "a comma-separated value is a sweep, and sweeps need -m",
                       "add -m (--multirun) to sweep, or write a list as key=[a,b]", error=error)
    return Problem("override", " ".join(overrides), first,
                   "see python -m app.train --help for the keys and the override grammar", error=error)


def _parse_each(overrides: Sequence[str]) -> tuple[list[Any], list[Problem]]:
    """Hydra's override grammar, one override at a time so a problem names its culprit."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    hydra = GlobalHydra.instance()  # its config loader expands glob() over group options
    parser = OverridesParser.create(hydra.config_loader() if hydra.is_initialized() else None)
    parsed, problems = [], []
    for text in overrides:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except OverrideParseException as error:
            detail = str(error).splitlines()[0]
            problems.append(Problem(
                text.partition("=")[0] or text, text.partition("=")[2],
                f"Hydra's override grammar: key=value, +key=value, ~key, group=option ({detail})",
                "quote values with spaces or special characters: key='a value'", error=error,
            ))
    return parsed, problems


def _search_space(overrides: list[str], config_name: str) -> list[str]:
    """The command line plus the sweeper's ``hydra.sweeper.params`` (the command line wins), with
    each ``interval(a,b)`` of a search space (Optuna) replaced by its two bounds."""
    from hydra import compose

    fixed = [o for o in overrides if o.startswith(("hydra/sweeper=", "hydra.sweeper.")) and "," not in o]
    params = compose(config_name=config_name, overrides=fixed, return_hydra_config=True).hydra.sweeper.get("params")
    given = {o.lstrip("+~").partition("=")[0] for o in overrides}
    space = list(overrides) + [f"{k}={v}" for k, v in (params or {}).items() if k not in given]
    return [_bounds_as_choice(o) for o in space]


def _bounds_as_choice(text: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(text)
    if not override.is_interval_sweep():
        return text
    sweep = override.value()
    return f"{override.get_key_element()}=choice({sweep.start},{sweep.end})"  # type: ignore[union-attr]


def sweep_points(
    overrides: Sequence[str], multirun: bool, config_name: str = CONFIG_NAME
) -> tuple[list[list[str]], list[Problem]]:
    """The override list of every job that the run or sweep launches; for a search space (Optuna's
    ``interval``), every combination of its bounds and choices. Needs Hydra initialised."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    parsed, problems = _parse_each(overrides)
    if problems:
        return [], problems
    if not multirun:
        return [list(overrides)], []
    try:
        parsed, problems = _parse_each(_search_space(list(overrides), config_name))
        if problems:
            return [], problems
        return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch], []
    except Exception as error:  # the sweeper config itself does not compose, or an odd sweep
        return [], [_composition_problem(error, list(overrides)) if not isinstance(error, HydraException)
                    or error.__cause__ else Problem(
                        "-m", " ".join(overrides), str(error).splitlines()[0],
                        "sweeps expand lists (a,b), range(), choice() and, with Optuna, interval()",
                        error=error)]


def check_overrides(
    overrides: Sequence[str], multirun: bool = False, config_name: str = CONFIG_NAME
) -> tuple[int, list[Problem]]:
    """Compose and check every point of the run (or ``-m`` sweep); (points, problems)."""
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra

    import app.configs  # noqa: F401  (registers the configs)

    GlobalHydra.instance().clear()
    with initialize(version_base=app.configs.VERSION_BASE, config_path=None, job_name=app.configs.JOB_NAME):
        points, problems = sweep_points(overrides, multirun, config_name)
        allowed: Optional[set[str]] = None  # read from the store once the first point has composed
        for point in points:
            tag = point if multirun else None
            try:
                cfg = compose(config_name=config_name, overrides=point, return_hydra_config=True)
                allowed = allowed_targets() if allowed is None else allowed
                found = check_config(cfg, allowed)
            except Exception as error:  # composition refused: say why in the same format
                found = [_composition_problem(error, point)]
            for problem in found:
                problem.point = tag
            problems.extend(found)
    return max(len(points), 1), problems


def report(problems: Sequence[Problem], points: int) -> None:
    """Print the refusal to stderr; under HYDRA_FULL_ERROR=1 re-raise the first underlying error."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        for problem in problems:
            if problem.error is not None:
                raise problem.error
    sys.stderr.write(render(problems, points))
