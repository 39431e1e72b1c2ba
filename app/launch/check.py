"""The launch check: every point of a run or ``-m`` sweep composed as Hydra will compose it and
checked by ``app.checks`` (``check_overrides``, ``check_command``; a pasted torchrun command as
its rank 0 will check it), the refusal printed (``report``), and the same check from Python
(``compose_config``, ``load_config``)."""

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from app.checks import Absent, ConfigError, Problem, Targets, check_config, render, torchrun_processes
from app.configs import CONFIG_NAME, MainConfig, typed_layer
from app.launch.argv import Command
from app.launch.hydra_errors import NOT_AN_INTEGER, _compose
from app.launch.hydra_setup import app_hydra, as_the_job_sees_it
from app.launch.overrides import key_of
from app.launch.sweeps import _first_job, _minimises, interval_of, samples, sweep_points, sweeper_params

SEARCHPATH = "hydra.searchpath"
Composed = tuple[Optional[DictConfig], list[Problem]]  # what _compose gives: the config, or None, and problems


def _strings(value: Any) -> Iterator[str]:
    """Every string in an override's value: a list's, a dict's, a sweep's choices."""
    from hydra.core.override_parser.types import ChoiceSweep

    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple, dict, ChoiceSweep)):
        items = value.list if isinstance(value, ChoiceSweep) else value.values() if isinstance(value, dict) else value
        for item in items:
            yield from _strings(item)


def searchpath_problems(
    overrides: Sequence[str], config_name: str = CONFIG_NAME, config_dir: Optional[str] = None
) -> list[Problem]:
    """A ``hydra.searchpath`` entry other than a directory (``file://`` or a plain path), on the
    command line or in a primary config of ``config_dir``: Hydra imports a ``pkg://`` entry's
    module to look in it as it starts composing, before any check (1.3.8: its config loader's
    ``_process_config_searchpath``, which asks each source ``available()``). Checked on the
    text, before anything is composed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser, entries = OverridesParser.create(), list[tuple[str, str]]()
    for text in overrides:
        if key_of(text) == SEARCHPATH:
            try:
                entries += [("", path) for path in _strings(parser.parse_override(text).value())]
            except OverrideParseException:  # told by parse_each; Hydra composes nothing from such a line
                pass
    name = config_name if config_name.endswith(".yaml") else f"{config_name}.yaml"
    primary = os.path.join(config_dir, name) if config_dir is not None else ""
    if os.path.isfile(primary):  # Hydra reads its primary config's hydra.searchpath first, resolved
        try:
            paths = OmegaConf.select(OmegaConf.load(primary), SEARCHPATH)
            paths = OmegaConf.to_container(paths, resolve=True) if OmegaConf.is_config(paths) else paths
        except (OSError, YAMLError, OmegaConfBaseException) as error:
            return [Problem("--config-name", primary, f"a primary config the launch check can read ({error})", "")]
        entries += [(f" (in {primary})", path) for path in _strings(paths)]
    return [
        Problem(
            SEARCHPATH,
            path,
            f"a directory (file://DIR or a path){where}: Hydra opens any other source while composing, before "
            "any check (a pkg:// entry's module is imported)",
            "give a directory of configs with --config-dir DIR or hydra.searchpath=[file:///abs/dir]",
        )
        for where, path in entries
        if "://" in path and path.partition("://")[0] != "file"  # Hydra's own test of a path's scheme
    ]


def check_overrides(
    overrides: Sequence[str],
    multirun: bool = False,
    config_name: str = CONFIG_NAME,
    config_dir: Optional[str] = None,
) -> tuple[int, list[Problem]]:
    """Compose and check every point of the run (or ``-m`` sweep); (points, problems)."""
    if config_dir is not None and not os.path.isdir(config_dir):
        return 1, [
            Problem(
                "--config-dir",
                config_dir,
                "an existing directory of configs",
                f"check the path: it is read from {os.getcwd()}",
                absent=Absent.FILE if not os.path.lexists(config_dir) else None,
            )
        ]
    problems = searchpath_problems(overrides, config_name, config_dir)
    if problems:
        return 1, problems
    with app_hydra(config_dir):
        points, problems = sweep_points(overrides, multirun)
        if problems:
            return 1, problems
        composed = _compose(points[0], config_name)
        first: Optional[Composed] = composed  # None once the points change
        base, space, offset = composed[0], list[str](), 0
        if multirun and base is not None:
            params = sweeper_params(base, overrides)
            problems = searchpath_problems(params)  # the sweeper's own search space, before a point is composed
            if problems:
                return 1, problems
            space = [o for o in [*overrides, *params] if interval_of(o) is not None]
            if space and not samples(base):
                told = [p for p in composed[1] if p.key == "hydra.sweeper"]  # a sweeper chosen, not there
                return 1, composed[1] + ([] if told else [_interval_needs_a_sampler(space[0], overrides)])
            if params:  # the sweeper adds keys to sweep: every point changes
                points, problems = sweep_points(overrides, multirun, params)
                first = None
            problems = list(_minimises(base, overrides)) + problems  # params change no sweeper setting
            offset = _first_job(base)
        problems += _check_points(points, first, config_name, multirun, offset, space)
    return max(len(points), 1), problems


def _interval_needs_a_sampler(interval: str, overrides: Sequence[str]) -> Problem:
    """``interval()`` under a sweeper that only lists points: where the command line chose one
    (and it composed, else that is the problem told), it is that choice that has to change."""
    chosen = next((o for o in overrides if key_of(o) == "hydra.sweeper" and "/" in o), None)
    key, _, value = interval.partition("=")
    return Problem(
        key,
        value,
        "interval() needs a sweeper that samples from a range",
        f"{chosen} only lists points: use hydra/sweeper=optuna, or sweep a list: key=a,b,c"
        if chosen
        else "add hydra/sweeper=optuna, or sweep a list: key=a,b,c",
    )


def _check_points(
    points: Sequence[list[str]],
    first: Optional[Composed],
    config_name: str,
    multirun: bool,
    offset: int,
    space: Sequence[str],
) -> list[Problem]:
    """Every point composed (the first one's composition ``first``, when it is still the first
    point's) and checked as its job will see it, job ``offset + index`` of a sweep."""
    problems: list[Problem] = []
    targets: Optional[Targets] = None  # read from the store once, for the whole sweep
    dirs: dict[str, list[str]] = {}  # each job's run dir: the first point that has it
    for index, point in enumerate(points):
        cfg, found = first if index == 0 and first is not None else _compose(point, config_name)
        if cfg is not None:
            targets = targets or Targets.registered()
            with as_the_job_sees_it(cfg, offset + index if multirun else None):
                found += check_config(cfg, targets)
                run_dir = OmegaConf.select(cfg, "hydra.runtime.output_dir", default=None)
            if multirun and isinstance(run_dir, str) and run_dir and not found:
                found += _own_dir(run_dir, point, dirs.setdefault(run_dir, point), cfg)
        for problem in found:
            problem.point = point if multirun else None
            if any(key_of(o) == problem.key for o in space) and NOT_AN_INTEGER in problem.rule:
                problem.hint = f"interval() draws floats: cast it, {problem.key}=int(interval(low,high))"
        problems.extend(found)
    return problems


def _own_dir(run_dir: str, point: list[str], first: list[str], cfg: DictConfig) -> list[Problem]:
    """Nothing, or the problem of a sweep job whose run dir an earlier point's job has too: one
    would replace (``trainer.overwrite``) or continue (``trainer.resume``) the other's run."""
    if point is first:
        return []
    subdir = cfg.hydra.sweep._get_node("subdir")._value()
    return [
        Problem(
            "hydra.sweep.subdir",
            str(subdir),
            f"each sweep job in a dir of its own ({run_dir} is also the dir of the point {' '.join(first)})",
            "keep ${hydra.job.num} in hydra.sweep.subdir (its default is ${hydra.job.num})",
        )
    ]


def check_command(command: Command) -> tuple[int, list[Problem]]:
    """(points, problems) of one command line, flags included; a command that only prints has none."""
    if command.prints_only:
        return 1, []
    if command.rerun is not None:
        return 1, [
            Problem(
                "--experimental-rerun",
                command.rerun,
                "a run this app checks first: a rerun unpickles the file and runs its config unchecked",
                "rerun with the overrides in that run's .hydra/overrides.yaml instead",
            )
        ]
    if command.config_path is not None:
        return 1, [
            Problem(
                "--config-path",
                command.config_path,
                "the primary config is the app's own (Python, in the ConfigStore)",
                "add a directory of configs with --config-dir instead, or register yours in Python",
            )
        ]
    with torchrun_processes(command.processes) if command.processes > 1 else contextlib.nullcontext():
        return check_overrides(command.overrides, command.multirun, command.config_name, command.config_dir)


def report(problems: Sequence[Problem], points: int) -> None:
    """Print the refusal to stderr; under HYDRA_FULL_ERROR=1 re-raise the first underlying error."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        for problem in problems:
            if problem.error is not None:
                raise problem.error
    sys.stderr.write(render(problems, points))


# ------------------------------------------------------------------------ use from Python
def compose_config(overrides: Sequence[str] = (), validate: bool = True) -> DictConfig:
    """The config ``python -m app.train OVERRIDES`` would run, checked as the launch checks it.

    Raises ``app.checks.ConfigError`` (its ``.problems`` hold key, value, rule and hint) for
    whatever ``app-train`` would refuse; ``validate=False`` skips all but composition. For
    notebooks and tests: it needs no Hydra app, and leaves a caller's Hydra context alone.
    """
    if isinstance(overrides, str):
        raise TypeError(f"overrides is a list of strings, e.g. [{overrides!r}], not one string")
    problems = searchpath_problems(overrides)
    if problems:
        raise ConfigError(problems)
    with app_hydra():
        cfg, problems = _compose(list(overrides), CONFIG_NAME)
        if cfg is not None and validate:
            problems += check_config(cfg)
    if problems or cfg is None:
        raise ConfigError(problems)
    with open_dict(cfg):
        del cfg["hydra"]  # the job's config, as the task function receives it
    return cfg


def load_config(overrides: Sequence[str] = ()) -> MainConfig:
    """``compose_config(overrides)`` as a ``MainConfig`` instance: dataclasses all the way down,
    interpolations resolved, for typed attribute access."""
    config = OmegaConf.to_object(compose_config(overrides))
    if not isinstance(config, MainConfig):
        raise TypeError(f"composed a {type(config).__name__}, not a MainConfig")
    # a layer written as a dict on the command line, as its layer config (LinearConfig, ...)
    layers = [typed_layer(layer) for layer in config.classifier._args_]
    typed: list[Any] = [OmegaConf.to_object(layer) if OmegaConf.is_config(layer) else layer for layer in layers]
    config.classifier._args_ = typed
    return config
