"""A ``-m`` sweep as Hydra's sweepers will run it: its points (a search space's ``interval()`` as its
bounds), what a sampler can draw from, the direction an Optuna search goes (``_minimises``), the
number its first job gets (``_first_job``), and the run or sweep dir pinned for processes that
would each resolve it again (``launched_elsewhere``, ``pinned_dirs``)."""

import os
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from app.checks import Problem
from app.configs import BASIC_SWEEPER, OPTUNA_SWEEPERS, SEARCH_SWEEPER
from app.files import next_job
from app.launch.argv import Command
from app.launch.hydra_errors import composition_problem, parse_each
from app.launch.hydra_setup import app_hydra
from app.launch.overrides import as_override, key_of


def samples(cfg: DictConfig) -> bool:
    """True when the composed sweeper draws points from ranges (Hydra's basic one only lists)."""
    return str(cfg.hydra.sweeper.get("_target_", "")) != BASIC_SWEEPER


def sweeper_params(cfg: DictConfig, overrides: Sequence[str]) -> list[str]:
    """The search space that the sweeper's own config adds (``hydra.sweeper.params``), as
    overrides, less the keys the command line sets itself (the command line wins)."""
    params = cfg.hydra.sweeper.get("params") or {}
    given = {key_of(o) for o in overrides}
    return [f"{key}={value}" for key, value in params.items() if str(key).replace("/", ".") not in given]


def interval_of(text: str) -> Any:
    """The ``interval()`` sweep of an override (Optuna's search space), or None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(text)
    return override.value() if override.is_interval_sweep() else None


def _bounds_as_choice(text: str) -> str:
    sweep = interval_of(text)
    return text if sweep is None else f"{text.partition('=')[0]}=choice({sweep.start},{sweep.end})"


def _interval_problems(texts: Sequence[str]) -> Iterator[Problem]:
    """An ``interval()`` a sampler can draw from: a low end below the high one, above 0 for log."""
    for text in texts:
        sweep = interval_of(text)
        key = text.partition("=")[0]
        if sweep is not None and not sweep.start < sweep.end:
            yield Problem(
                key,
                text.partition("=")[2],
                "interval(low, high) with low < high",
                f"swap the bounds: {key}=interval({sweep.end},{sweep.start})",
            )
        elif sweep is not None and "log" in sweep.tags and sweep.start <= 0:
            yield Problem(
                key,
                text.partition("=")[2],
                "a log-scale interval above 0",
                f"start it above 0, e.g. {key}=tag(log,interval({sweep.end / 1000:g},{sweep.end:g}))",
            )


def sweep_points(
    overrides: Sequence[str], multirun: bool, params: Sequence[str] = ()
) -> tuple[list[list[str]], list[Problem]]:
    """The override list of every job that the run or sweep (with the sweeper's ``params``)
    launches; for a search space (Optuna's ``interval``), every combination of its bounds and
    choices. Needs Hydra initialised."""
    # hydra._internal BasicSweeper.split_arguments; public replacement: none yet (1.4.0.dev9 keeps it internal)
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    parsed, problems = parse_each(overrides)
    if problems:
        return [], problems
    if not multirun:
        return [list(overrides)], []
    try:
        problems = list(_interval_problems([*overrides, *params]))
        if problems:
            return [], problems
        parsed, problems = parse_each([_bounds_as_choice(o) for o in [*overrides, *params]])
        if problems:
            return [], problems
        points = [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch]
        return (points, []) if points else ([], [_no_points(parsed, BasicSweeper.split_arguments)])
    except Exception as error:  # a sweep the basic sweeper cannot expand
        return [], [
            composition_problem(error, list(overrides))
            if not isinstance(error, HydraException) or error.__cause__
            else Problem(
                "-m",
                " ".join(overrides),
                str(error).splitlines()[0],
                "sweeps expand lists (a,b), range(), choice() and, with Optuna, interval()",
                error=error,
            )
        ]


def _no_points(parsed: Sequence[Any], split: Any) -> Problem:
    """The problem of a sweep with no point: the override whose sweep holds no value (a
    ``glob()`` that matches no option), or the whole command line; ``split``: sweep_points' own."""
    empty = next((o for o in parsed if not any(split([o], None))), None)
    key, value = (empty.input_line or "=").partition("=")[::2] if empty is not None else ("-m", "")
    return Problem(
        key,
        value,
        "a sweep holds at least one point",
        "the sweep expands to no value: for glob(), list the options (app-train --help) and match one of them",
    )


def _minimises(cfg: Optional[DictConfig], overrides: Sequence[str]) -> Iterator[Problem]:
    """Optuna's own default, minimize, refused unless the command line asks for it: the job
    returns the best validation accuracy, which a search must maximise."""
    if cfg is None or cfg.hydra.sweeper.get("_target_") not in OPTUNA_SWEEPERS:
        return
    direction = cfg.hydra.sweeper.get("direction")
    if str(getattr(direction, "name", direction)) == "minimize" and not any(
        key_of(o) == "hydra.sweeper.direction" for o in overrides
    ):
        yield Problem(
            "hydra.sweeper.direction",
            "minimize",
            "maximize for a search of this app (the job returns the best validation accuracy); "
            "minimize only when the command line says so",
            "add hydra.sweeper.direction=maximize, or use a preset: +hparams_search=lr_wd",
        )


def _first_job(cfg: Optional[DictConfig]) -> int:
    """The number of a sweep's first job: after the sweep dir's last one for a resumable search
    (``app.search.ResumableOptunaSweeper`` numbers them so), else 0."""
    if cfg is None or cfg.hydra.sweeper.get("_target_") != SEARCH_SWEEPER:
        return 0
    try:
        return next_job(str(cfg.hydra.sweep.dir))
    except Exception:  # a sweep dir that does not resolve: its own problem (check_config)
        return 0


# ------------------------------------------------------------ one run dir for many processes
def launched_elsewhere(command: Command) -> bool:
    """A sweep whose jobs a launcher other than Hydra's basic one starts (in other processes,
    on other machines), each of which may resolve the sweep dir again."""
    launcher = next((o.partition("=")[2] for o in command.overrides if key_of(o) == "hydra.launcher"), "basic")
    return command.multirun and not command.prints_only and launcher != "basic"


def pinned_dirs(command: Command) -> list[str]:
    """The command's overrides with ``hydra.run.dir=DIR`` (``hydra.sweep.dir=DIR`` for a sweep)
    resolved once, here, for processes that would each resolve ``${now:...}`` at their own start
    and so get a dir each: torchrun's ranks, and the tasks of a submitit job (Hydra's submitit
    launcher resolves the sweep dir again in every task). A dir that cannot be resolved before
    the job (it names the job's own values) is left to Hydra."""
    from hydra import compose

    key = "hydra.sweep.dir" if command.multirun else "hydra.run.dir"
    try:
        with app_hydra(command.config_dir):
            points, _ = sweep_points(command.overrides, command.multirun)  # a sweep's dir is every point's
            cfg = compose(config_name=command.config_name, overrides=points[0], return_hydra_config=True)
            resolved = os.path.abspath(str(OmegaConf.select(cfg, key)))
    except Exception:  # e.g. ${hydra.job.num} in the dir: unknown until the job runs
        return list(command.overrides)
    return [*(o for o in command.overrides if key_of(o) != key), f"{key}={as_override(resolved)}"]
