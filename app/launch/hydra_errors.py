"""Hydra's composition and override-grammar errors, told as ``Problem``s (key, value, rule, hint),
and ``_compose``, which leaves out each override Hydra cannot take and composes on, so that one
pass reports every mistake.

Some errors are known by their text alone (Hydra raises a bare ``ConfigCompositionException``):
each text matched here is pinned by a test that triggers Hydra's real error
(``tests/test_hydra_internals.py``), so that a Hydra or OmegaConf upgrade that rewords one fails
there, not in a user's refusal.
"""

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, Optional

from hydra.errors import MissingConfigException
from omegaconf import DictConfig

from app.checks import Absent, Problem, example, suggest, unknown_key
from app.configs import OPTIONS_OF_EXTRAS
from app.launch.overrides import key_of, value_of

# The texts matched below, as Hydra 1.3 and OmegaConf 2.3 write them.
ALREADY_THERE = "An item is already at"  # +key=value for a key the config has: "... at 'key'."
AMBIGUOUS = "Ambiguous value for argument"  # key=a,b without -m: "... argument 'key=a,b'"
NO_DELETION = "deletion"  # ~key of a typed field: "XConfig (DictConfig) does not support deletion"
NOT_AN_INTEGER = "Integer"  # a float for an int field: "Value '1.0' of type 'float' could not be converted to Integer"
# a key an option (an experiment) sets that the group option chosen beside it lacks:
# "In 'experiment/x': ConfigKeyError raised while composing config:\nKey 'augment' not in
# 'DigitsConfig'\n    full_key: dataset.augment"
SET_BY_OPTION = re.compile(
    r"In '(?P<option>[^']+)': ConfigKeyError raised while composing config:\s*"
    r"Key '(?P<leaf>[^']+)' not in '(?P<schema>[^']+)'\s*full_key: (?P<key>\S+)"
)


def composition_problem(error: Exception, overrides: Sequence[str]) -> Problem:
    """A Hydra composition error, told as key, value, rule and hint."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        return _missing_option(error)
    message = str(error)
    problem = _cause_problem(error.__cause__, overrides) or _message_problem(message, overrides)
    if problem is None:
        first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        problem = Problem(
            "override",
            " ".join(overrides),
            first,
            "see python -m app.train --help for the keys and the override grammar",
        )
    problem.error = error
    return problem


def _missing_option(error: MissingConfigException) -> Problem:
    """A group option (or a primary config) that Hydra does not find: ``MissingConfigException``'s
    ``missing_cfg_file`` (``group/option``) and ``options`` (the group's options)."""
    group, _, option = str(error.missing_cfg_file).rpartition("/")
    options = list(error.options or [])
    if not group:  # the primary config itself
        return Problem("--config-name", option, "a stored primary config", "leave --config-name out", error=error)
    extra = OPTIONS_OF_EXTRAS.get(group, {}).get(option)
    if extra is not None and not extra.installed():
        return Problem(
            group.replace("/", "."),
            option,
            f"an option of the app's {extra.name} extra, which is not installed here",
            extra.install,
            error=error,
            absent=Absent.EXTRA,
        )
    close = suggest(option, options)
    hint = f"did you mean {' or '.join(f'{group}={c}' for c in close)}? " if close else ""
    return Problem(
        group.replace("/", "."),
        option,
        f"one of the options of group {group}: {', '.join(options)}",
        hint + "list them with --help",
        error=error,
    )


def _cause_problem(cause: Optional[BaseException], overrides: Sequence[str]) -> Optional[Problem]:
    """The problem of an OmegaConf error under Hydra's (its ``__cause__``), by its type; ``full_key``
    names the key (a list index as ``[n]``), ``object_type`` the typed node."""
    from omegaconf.errors import ConfigIndexError, ConfigKeyError, ConfigTypeError, ValidationError

    key = re.sub(r"\[(\d+)\]", r".\1", str(getattr(cause, "full_key", "") or "?"))
    if isinstance(cause, ConfigIndexError):  # name the override, which reaches past the list
        key = next((key_of(o) for o in overrides if key_of(o).startswith(key + ".")), key)
        return Problem(
            key, value_of(overrides, key), "an index inside the list", "count from 0; --cfg job shows the list"
        )
    if isinstance(cause, (ConfigKeyError, AttributeError)):
        schema = getattr(cause, "object_type", None)
        typed = schema if isinstance(schema, type) and dataclasses.is_dataclass(schema) else None
        return unknown_key(key, value_of(overrides, key), typed)
    if isinstance(cause, ConfigTypeError) and NO_DELETION in str(cause):
        return Problem(
            f"~{key}",
            "",
            "typed fields cannot be removed; ~ removes a group or a key added with +",
            f"set a value instead ({key}=...), or remove a group such as ~scheduler",
        )
    if isinstance(cause, ValidationError):
        detail = str(cause).splitlines()[0]
        schema, leaf = getattr(cause, "object_type", None), key.rpartition(".")[2]
        default = example(schema, leaf)
        hint = f"e.g. {key}={default} (the default)" if default is not None else f"--cfg job shows {key} and its type"
        return Problem(key, value_of(overrides, key), detail, hint)
    return None


def _message_problem(message: str, overrides: Sequence[str]) -> Optional[Problem]:
    """The problem of a Hydra error known by its text alone (the texts at the top)."""
    if ALREADY_THERE in message:
        key = message.split("'")[1]
        return Problem(
            f"+{key}", value_of(overrides, key), "+ adds a key that does not exist yet", f"drop the +: {key}=..."
        )
    if AMBIGUOUS in message:
        first = message.strip().splitlines()[0]
        given = first.split("'")[1] if "'" in first else "override="
        key, _, value = given.partition("=")
        return Problem(
            key,
            value,
            "a comma-separated value is a sweep, and sweeps need -m",
            "add -m (--multirun) to sweep, or write a list as key=[a,b]",
        )
    found = SET_BY_OPTION.search(message)
    if found is not None:
        return _key_the_option_lacks(found, overrides)
    return None


def _key_the_option_lacks(found: "re.Match[str]", overrides: Sequence[str]) -> Problem:
    """``+experiment=x`` sets ``dataset.augment``, which the run's dataset option has no key for:
    the options of that group that have it, to choose on the command line."""
    from app.checks import group_options

    key, option = found["key"], found["option"]
    group, _, leaf = key.rpartition(".")
    having = sorted({name for g, name, node in group_options() if g == group and hasattr(node, leaf)})
    added = next((o for o in overrides if key_of(o).lstrip("+") == option.replace("/", ".").rsplit(".", 1)[0]), option)
    choose = f"choose a {group} option that has it ({', '.join(f'{group}={n}' for n in having)}), or " if having else ""
    return Problem(
        key,
        f"set by {added}",
        f"a key of {found['schema']}, the {group} option this run composes",
        f"{choose}drop {added}",
    )


def _compose(overrides: Sequence[str], config_name: str) -> tuple[Optional[DictConfig], list[Problem]]:
    """The config (with Hydra's own) for ``overrides``. An override it cannot take becomes a
    problem and is left out, and composition goes on, so that one pass reports every mistake."""
    from hydra import compose

    remaining, problems = list(overrides), list[Problem]()
    while True:
        try:
            return compose(config_name=config_name, overrides=remaining, return_hydra_config=True), problems
        except Exception as error:
            problem = composition_problem(error, remaining)
            problems.append(problem)
            key = problem.key.lstrip("+~")
            # a wrong group option takes the keys set inside that group with it
            inside = isinstance(error, MissingConfigException)
            culprits = [o for o in remaining if key_of(o) == key or (inside and key_of(o).startswith(key + "."))]
            remaining = [o for o in remaining if o not in culprits]
            if not culprits or not remaining:  # stuck, or only the stored defaults are left
                return None, problems


def parse_each(overrides: Sequence[str]) -> tuple[list[Any], list[Problem]]:
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
            problems.append(
                Problem(
                    text.partition("=")[0] or text,
                    text.partition("=")[2],
                    f"Hydra's override grammar: key=value, +key=value, ~key, group=option ({detail})",
                    "quote values with spaces or special characters: key='a value'",
                    error=error,
                )
            )
    return parsed, problems
