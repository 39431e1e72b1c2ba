"""One composed config in, every ``Problem`` out (``check_config``): the walk over its nodes
(unknown keys, each field's constraint on the value the job will receive, a typed node's
``_target_``), every ``_target_`` that the job or Hydra will build and every class Python's
logging will import (interpolations resolved: ``resolved_leaves``) checked against the
allow-list (``Targets``, ``allow_target``), then the cross-field rules of ``app.checks.rules``.

A rule that raises is a bug of the launch check, never a silent pass: it becomes an internal
problem that refuses the config and names the rule (``internal_problem``; ``HYDRA_FULL_ERROR=1``
re-raises its exception). Where the environment variable ``APP_CHECKS_STRICT`` names a file
(the test suite's ``tests/conftest.py`` sets it for every test and every process a test starts,
and fails the session when the file is not empty), the rule's exception is also written to that
file and re-raised, so that no test can pass over a rule that raised, whatever it asserts.
"""

import copy
import dataclasses
import os
import re
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, ListConfig, Node, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

import app.checks.checkpoint_rules  # noqa: F401  (the checkpoint files')
import app.checks.hydra_rules  # noqa: F401  (registers the rules on Hydra's node in CROSS_RULES)
import app.checks.recipe_rules  # noqa: F401  (and the fine-tuning recipes')
from app.checks.constraints import _constrained, _has_schema, _validate, example, field_hints, unresolved
from app.checks.outputs import logging_problems
from app.checks.problems import ConfigError, Problem, unknown_key
from app.checks.rules import CROSS_RULES, CrossRule
from app.configs import MainConfig

STRICT = "APP_CHECKS_STRICT"  # a file: a rule that raises is written there and re-raised


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


def _hydra_builds_written_out(cfg: DictConfig) -> Iterator[Problem]:
    """Hydra builds its callbacks, launcher and sweeper in the launch process, beside the check,
    and a launcher's job may build them again elsewhere: what decides what they build (a
    ``_target_``, a node built from a string) is a value written out, never an interpolation
    that another moment (``now``) or environment (``oc.env``) resolves otherwise."""
    hydra = cfg.get("hydra")
    if not isinstance(hydra, DictConfig):
        return
    for part in ("callbacks", "launcher", "sweeper"):
        node = hydra._get_node(part)
        if not isinstance(node, (DictConfig, ListConfig)) or node._is_none() or node._is_missing():
            continue
        for key, value in _written(OmegaConf.to_container(node, resolve=False), f"hydra.{part}"):
            if "${" in value and (key.endswith("._target_") or _builds_nodes(value)):
                yield Problem(
                    key,
                    value,
                    "written out where it decides what Hydra builds (not an interpolation)",
                    "write the value itself on the command line",
                )


def _written(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(key, text) of every string under a plain container, as written."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        if isinstance(child, str):
            yield f"{path}.{key}", child
        else:
            yield from _written(child, f"{path}.{key}")


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


def walked(cfg: DictConfig, targets: Optional[Targets] = None) -> list[Problem]:
    """The walk's problems of ``cfg`` (keys, values, typed targets) and the ``_target_``
    allow-list's: what ``check_config`` starts with, and all ``app.checks.built`` checks."""
    walk = _Walk(Targets.registered() if targets is None else targets)
    walk.node(cfg, "")
    return walk.problems + list(_builds_only_registered(cfg, walk.targets, {p.key for p in walk.problems}))


def checked(config: "MainConfig | DictConfig") -> DictConfig:
    """A run's config given in Python, as the ``DictConfig`` the job reads, checked as the launch
    checks it: a ``MainConfig`` (built in Python: its head's widths may still be interpolations)
    or its ``DictConfig`` (``app.launch.compose_config``'s). Raises ``ConfigError`` for what
    app-train would refuse, ``TypeError`` for anything else."""
    node: DictConfig
    if isinstance(config, MainConfig):
        node = OmegaConf.structured(config)
        with open_dict(node):
            del node["defaults"]  # Hydra's defaults list, gone from a composed config
    elif isinstance(config, DictConfig):
        node = config
    else:
        raise TypeError(f"a MainConfig, or its DictConfig (app.launch.compose_config's), not a {type(config).__name__}")
    problems = check_config(node)
    if problems:
        raise ConfigError(problems)
    return node


def check_config(cfg: DictConfig, targets: Optional[Targets] = None) -> list[Problem]:
    """Every problem of one composed config (of its ``hydra`` node, what Hydra instantiates or
    imports from it)."""
    problems = walked(cfg, targets)
    problems += _hydra_builds_written_out(cfg)
    problems += _logging_imports_only_logging(cfg)
    problems += logging_problems(cfg, {p.key for p in problems})
    problems = _told_once(problems)
    # A cross-field rule says more than a field's own rule (">= 63 for alexnet" beats ">= 1"),
    # so its problem replaces the field's.
    told, refused = bool(problems), {p.key for p in problems}
    hidden = _refused_hidden(cfg, problems)
    for description, rule in CROSS_RULES:
        found = _apply(rule, description, hidden, told)
        if found is None:  # the rule reads a refused value: it may only say more about that value
            found = [p for p in _apply(rule, description, cfg, told) or [] if p.key in refused]
        keys = {p.key for p in found}
        problems = [p for p in problems if p.key not in keys] + found
    return problems


def _refused_hidden(cfg: DictConfig, problems: list[Problem]) -> DictConfig:
    """What the cross-field rules read: ``cfg``, with each value the walk refused made missing.

    A rule that reads a refused value has nothing to add about other keys until it is fixed: it
    would only echo it (``dataset.classes=0`` is refused, and the splits rule would go on to say
    that a split "holds out 1 of the 0 images"). Reading a missing value raises, ``_apply`` says
    so, and the rule is heard only on the keys refused (``dataset.image.size=0``: ">= 63, the
    smallest alexnet accepts" says more than ">= 1"). Only a config with problems is copied (a few
    milliseconds; a valid one, the common case and every point of a sweep, is not)."""
    if not problems:
        return cfg
    hidden = copy.deepcopy(cfg)
    for key in dict.fromkeys(p.key for p in problems):
        path = _nodes_to(hidden, key)
        if path:
            for node in path:  # Hydra's node is read-only at every level
                OmegaConf.set_readonly(node, False)
            path[-1][_index(path[-1], key.rpartition(".")[2])] = MISSING
    return hidden


def _nodes_to(cfg: DictConfig, key: str) -> list[Any]:
    """The containers from ``cfg`` down to the one that holds ``key`` as written, through no
    interpolation (the walk refuses what one builds, where it is written); [] where there is none."""
    path: list[Any] = [cfg]
    parts = key.split(".")
    for depth, part in enumerate(parts, start=1):
        node = path[-1]
        if not isinstance(node, (DictConfig, ListConfig)) or node._is_interpolation() or node._is_missing():
            return []
        index = _index(node, part)
        if index is None:
            return []
        if depth < len(parts):
            path.append(node._get_node(index))
    return path


def _index(node: Any, part: str) -> Any:
    """``part`` as ``node``'s key or list index; None where ``node`` has no such entry."""
    if isinstance(node, ListConfig):
        return int(part) if part.isdigit() and int(part) < len(node) else None
    return part if part in node.keys() else None


def _told_once(problems: list[Problem]) -> list[Problem]:
    """An interpolated value breaks a rule where it comes from: one mistake, one problem (in a
    cycle of interpolations, every key of the cycle says so)."""
    via = {p.key: p.via for p in problems}

    def in_cycle(key: str) -> bool:
        seen, step = set(), via.get(key, "")
        while step in via and step not in seen:
            seen.add(step)
            step = via[step]
        return key in seen

    return [p for p in problems if p.via not in via or in_cycle(p.key)]


def _apply(rule: CrossRule, description: str, cfg: DictConfig, told: bool) -> Optional[list[Problem]]:
    """The problems ``rule`` finds in ``cfg``, or None where it read a value the walk refused; a
    rule that raises otherwise is an internal problem."""
    try:
        return list(rule(cfg))
    except Exception as error:
        if told and isinstance(error, OmegaConfBaseException):
            # The rule read a value that the walk has refused already (hidden by _refused_hidden,
            # an interpolation that does not resolve, a missing mandatory value): that problem is
            # told, and the rule has nothing to add until it is fixed. Any other exception is a bug.
            return None
        strict = os.environ.get(STRICT)
        if strict:
            with open(strict, "a") as log:
                log.write(f"{rule.__module__}.{rule.__qualname__} raised:\n{traceback.format_exc()}\n")
            error.add_note(f"{STRICT} is set: the cross-field rule {rule.__qualname__} raised (a bug of the check)")
            raise
        return [internal_problem(rule, description, error)]


def internal_problem(rule: CrossRule, description: str, error: Exception) -> Problem:
    """A rule that raised instead of answering: refused, and told as the app's bug."""
    return Problem(
        f"{rule.__module__}.{rule.__qualname__}",
        f"{type(error).__name__}: {' '.join(str(error).split())}",
        f"a bug of the app's launch check, not of the config: a cross-field rule raised ({description})",
        "please report it with the command line; HYDRA_FULL_ERROR=1 shows where it raised",
        error=error,
    )
