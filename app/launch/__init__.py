"""How a command line gets to checked configs, for ``app-train``, ``app-check`` and Python.

One parser (Hydra's own) reads both commands; a ``-m`` sweep is expanded into its points as
Hydra's sweepers will run them; each point is composed exactly as Hydra will compose it, with
Hydra's composition errors told as ``Problem``s, and checked by ``app.checks``. Hydra's own
settings for the app (the job name, the ``--help`` text) are registered here, beside the entry
point. No torch is imported.
"""

import contextlib
import dataclasses
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, Optional

from hydra.conf import HelpConf, HydraConf, JobConf, RunDir, SweepDir
from hydra_zen import ZenStore
from omegaconf import DictConfig, OmegaConf, open_dict

from app.checks import (
    ConfigError,
    Problem,
    Targets,
    check_config,
    example,
    group_options,
    render,
    rules_help,
    schema_rules,
    suggest,
    unknown_key,
)
from app.configs import CONFIG_NAME, EVALUATE_NAME, JOB_NAME, SEARCH_SWEEPER, VERSION_BASE, MainConfig
from app.files import checkpoint_config, next_job

HELP_HEADER = """== app-train ==
Fine-tune a classification head on a torchvision CNN. Every config is typed Python.

  app-train classifier=large optimizer.lr=3e-4 trainer.epochs=8
  app-train -m classifier=small,large        # one run dir per point
  app-train --cfg job                        # print the composed config
"""
# Hydra's own config for this app: the job is called ``train`` (so the log is ``train.log``)
# whatever module or script launched it; default run dirs end in microseconds, so that two
# runs started in the same second get a dir each; --help ends with every rule; a sweep ends
# with its summary (app.summary, loaded by Hydra by its name: no import here).
STARTED = "${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"
hydra_store = ZenStore(name="app.hydra")
hydra_store(
    HydraConf(
        job=JobConf(name=JOB_NAME),
        run=RunDir(dir=f"outputs/{STARTED}"),
        sweep=SweepDir(dir=f"multirun/{STARTED}", subdir="${hydra.job.num}"),
        help=HelpConf(app_name="app-train", header=HELP_HEADER, footer=rules_help()),
        # summary.csv/.md/.png in the sweep dir when a multirun ends, whatever the sweeper and launcher
        callbacks={"summary": {"_target_": "app.summary.SweepSummary"}},
    ),
    group="hydra",
    name="config",
)
hydra_store.add_to_hydra_store(overwrite_ok=True)


def _store_slurm_ddp() -> None:
    """``hydra/launcher=slurm_ddp``: the submitit plugin's typed SLURM config, set for one run of
    ``nodes x tasks_per_node`` DDP processes per job: a GPU per task, and srun ending a job's
    other tasks when one fails (else they wait for it until the process group times out).
    Registered where the plugin is installed (the ``submitit`` extra)."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        return
    from hydra.core.config_store import ConfigStore
    from omegaconf import II

    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

    @dataclasses.dataclass
    class SlurmDDPConf(SlurmQueueConf):  # type: ignore[misc]
        gpus_per_node: Optional[int] = II(".tasks_per_node")  # one GPU per task (process)
        # submitit's own srun flags (the plugin passes keys it does not know on to submitit)
        srun_args: list[str] = dataclasses.field(default_factory=lambda: ["--kill-on-bad-exit=1"])

    ConfigStore.instance().store(group="hydra/launcher", name="slurm_ddp", node=SlurmDDPConf, provider="app")


_store_slurm_ddp()


# ------------------------------------------------------------------------ the command line
class Command(NamedTuple):
    overrides: list[str]
    multirun: bool = False
    config_name: str = CONFIG_NAME
    prints_only: bool = False  # --help, --cfg, --info, ...: Hydra prints and runs nothing
    config_dir: Optional[str] = None  # -cd: a directory Hydra searches before the app's configs
    config_path: Optional[str] = None  # -cp: refused, the primary config is the app's own
    rerun: Optional[str] = None  # --experimental-rerun: refused, it unpickles a file unchecked
    processes: int = 1  # a torchrun command's --nproc_per_node x --nnodes: checked as its rank 0 checks it


PROGRAM = re.compile(r"^(app-train|python3?(?:\.\d+)?)$")
# Hydra flags after which Hydra only prints: nothing is launched, so nothing to check.
PRINT_ONLY = ("help", "hydra_help", "cfg", "info", "shell_completion", "version")


def parse_command(argv: Sequence[str]) -> Command:
    """An ``app-train`` command line (the program name may lead), read by Hydra's own parser.

    Raises ``ConfigError`` for what that parser refuses (an unknown flag, a flag after the
    overrides, a missing flag value), which Hydra would end with its usage text.
    """
    import argparse

    from hydra._internal.utils import get_args_parser

    tokens, processes = list(argv), 1
    if tokens[:1] == ["torchrun"]:  # torchrun [its flags] -m app.train ...: the processes it starts
        processes, tokens = _torchrun(tokens)
    if tokens[:1] == ["app-train"]:
        tokens = tokens[1:]
    elif len(tokens) >= 3 and PROGRAM.match(tokens[0]) and tokens[1:3] == ["-m", "app.train"]:
        tokens = tokens[3:]
    parser = get_args_parser()
    parser.exit_on_error = False

    def refuse(message: str) -> NoReturn:
        raise argparse.ArgumentError(None, message)

    parser.error = refuse  # type: ignore[method-assign]
    try:
        args = parser.parse_args(tokens)
    except argparse.ArgumentError as error:
        raise ConfigError(
            [
                Problem(
                    "command line",
                    " ".join(tokens),
                    f"what app-train's parser (Hydra's) takes: {error.message}",
                    "flags first, then overrides: app-train [-m] [--cfg job] key=value ...; --help lists the flags",
                )
            ]
        ) from None
    modes = [
        flag
        for flag, given in [
            ("--run", args.run),
            ("--multirun", args.multirun),
            ("--cfg", args.cfg),
            ("--info", args.info is not None),
            ("--shell-completion", args.shell_completion),
        ]
        if given
    ]
    if len(modes) > 1:  # Hydra raises a ValueError with a traceback
        raise ConfigError(
            [
                Problem(
                    "command line",
                    " ".join(modes),
                    "one of --run, --multirun (-m), --cfg, --info and --shell-completion",
                    f"keep one: {modes[0]} or {modes[1]} (--cfg job shows one point of a sweep without -m)",
                )
            ]
        )
    return Command(
        list(args.overrides),
        bool(args.multirun),
        args.config_name or CONFIG_NAME,
        any(getattr(args, flag, None) for flag in PRINT_ONLY),
        args.config_dir,
        args.config_path,
        args.experimental_rerun,
        processes,
    )


def _torchrun(tokens: list[str]) -> tuple[int, list[str]]:
    """(processes, the app's own tokens) of ``torchrun [flags] -m app.train ...`` (or of the
    ``app-train`` script instead of ``-m app.train``): processes per
    node (``--nproc_per_node``; ``gpu``/``auto`` count as 1 here) x nodes (the most of a range)."""
    end = next(
        (
            i
            for i in range(len(tokens))
            if tokens[i : i + 2] == ["-m", "app.train"] or os.path.basename(tokens[i]) == "app-train"
        ),
        len(tokens),
    )
    flags: dict[str, str] = {}
    words = iter(tokens[1:end])
    for word in words:
        name, equals, value = word.lstrip("-").replace("-", "_").partition("=")
        flags[name] = value if equals else (next(words, "") if name in ("nproc_per_node", "nnodes") else "")
    per_node = int(flags["nproc_per_node"]) if flags.get("nproc_per_node", "").isdigit() else 1
    nodes = flags.get("nnodes", "1").rpartition(":")[2]
    script = end < len(tokens) and tokens[end] != "-m"  # torchrun ... $(which app-train) ...
    return per_node * (int(nodes) if nodes.isdigit() else 1), [
        "app-train" if script else "python",
        *tokens[end + script :],
    ]


@contextlib.contextmanager
def shared_config_store() -> Iterator[None]:
    """For a CLI process: Hydra shares its ConfigStore instead of deep-copying it per query.

    Hydra 1.3's ``CachingConfigRepository`` deep-copies the whole repository, ConfigStore
    included, for every config-group query: about 90 of them for ``--help`` (0.6 s of its
    1.0 s), and one per composition. Nothing changes the store once the app has registered its
    configs, and ``ConfigStore.load`` copies each node it returns, so sharing it is safe inside
    our own commands. It is undone on exit, so Hydra's singleton snapshot and restore work as
    before. Drop it once Hydra stops copying the repository in that constructor (1.3.8 copies it).
    """
    import hydra
    from hydra.core.config_store import ConfigStore

    if not hydra.__version__.startswith("1.3.") or hasattr(ConfigStore, "__deepcopy__"):
        yield
        return
    ConfigStore.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del ConfigStore.__deepcopy__  # type: ignore[attr-defined]


@contextlib.contextmanager
def app_hydra(config_dir: Optional[str] = None) -> Iterator[None]:
    """Hydra initialised for the app's configs, searching ``config_dir`` first as ``-cd`` makes
    ``app-train`` do (the same search path Hydra builds for it); a caller's own Hydra context
    is left as found."""
    from hydra import version
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra

    search_path = create_config_search_path(None)  # what @hydra.main(config_path=None) uses
    if config_dir is not None:
        search_path.prepend("command-line", f"file://{os.path.abspath(config_dir)}", SearchPathQuery("schema"))
    previous = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    version.setbase(VERSION_BASE)
    try:
        Hydra.create_main_hydra2(JOB_NAME, search_path)  # initialises GlobalHydra with it
        yield
    finally:
        GlobalHydra.instance().hydra = previous


# ------------------------------------------------------------ Hydra's errors, as problems
def _override_value(overrides: Sequence[str], key: str) -> str:
    return next((text.partition("=")[2] for text in overrides if _key(text) == key), "?")


def composition_problem(error: Exception, overrides: Sequence[str]) -> Problem:
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
        close = suggest(option, options)
        hint = f"did you mean {' or '.join(f'{group}={c}' for c in close)}? " if close else ""
        return Problem(
            group.replace("/", "."),
            option,
            f"one of the options of group {group}: {', '.join(options)}",
            hint + "list them with --help",
            error=error,
        )
    key = re.sub(r"\[(\d+)\]", r".\1", str(getattr(cause, "full_key", "") or "?"))
    if isinstance(cause, ConfigIndexError):  # name the override, which reaches past the list
        key = next((_key(o) for o in overrides if _key(o).startswith(key + ".")), key)
        return Problem(
            key,
            _override_value(overrides, key),
            "an index inside the list",
            "count from 0; --cfg job shows the list",
            error=error,
        )
    if isinstance(cause, (ConfigKeyError, AttributeError)):
        schema = getattr(cause, "object_type", None)
        typed = schema if isinstance(schema, type) and dataclasses.is_dataclass(schema) else None
        problem = unknown_key(key, _override_value(overrides, key), typed)
        problem.error = error
        return problem
    if isinstance(cause, ConfigTypeError) and "deletion" in str(cause):
        return Problem(
            f"~{key}",
            "",
            "typed fields cannot be removed; ~ removes a group or a key added with +",
            f"set a value instead ({key}=...), or remove a group such as ~scheduler",
            error=error,
        )
    if isinstance(cause, ValidationError):
        detail = str(cause).splitlines()[0]
        schema, leaf = getattr(cause, "object_type", None), key.rpartition(".")[2]
        default = example(schema, leaf)
        hint = f"e.g. {key}={default} (the default)" if default is not None else f"--cfg job shows {key} and its type"
        return Problem(key, _override_value(overrides, key), detail, hint, error=error)
    if "An item is already at" in message:
        key = message.split("'")[1]
        return Problem(
            f"+{key}",
            _override_value(overrides, key),
            "+ adds a key that does not exist yet",
            f"drop the +: {key}=...",
            error=error,
        )
    if "Ambiguous value for argument" in message:
        given = first.split("'")[1] if "'" in first else "override="
        key, _, value = given.partition("=")
        return Problem(
            key,
            value,
            "a comma-separated value is a sweep, and sweeps need -m",
            "add -m (--multirun) to sweep, or write a list as key=[a,b]",
            error=error,
        )
    return Problem(
        "override",
        " ".join(overrides),
        first,
        "see python -m app.train --help for the keys and the override grammar",
        error=error,
    )


def _compose(overrides: Sequence[str], config_name: str) -> tuple[Optional[DictConfig], list[Problem]]:
    """The config (with Hydra's own) for ``overrides``. An override it cannot take becomes a
    problem and is left out, and composition goes on, so that one pass reports every mistake."""
    from hydra import compose
    from hydra.errors import MissingConfigException

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
            culprits = [o for o in remaining if _key(o) == key or (inside and _key(o).startswith(key + "."))]
            remaining = [o for o in remaining if o not in culprits]
            if not culprits or not remaining:  # stuck, or only the stored defaults are left
                return None, problems


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~").replace("/", ".")


# ---------------------------------------------------------------- overrides, sweep points
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


def _samples(cfg: DictConfig) -> bool:
    """True when the composed sweeper draws points from ranges (Hydra's basic one only lists)."""
    return not str(cfg.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper")


def sweeper_params(cfg: DictConfig, overrides: Sequence[str]) -> list[str]:
    """The search space that the sweeper's own config adds (``hydra.sweeper.params``), as
    overrides, less the keys the command line sets itself (the command line wins)."""
    params = cfg.hydra.sweeper.get("params") or {}
    given = {_key(o) for o in overrides}
    return [f"{key}={value}" for key, value in params.items() if str(key).replace("/", ".") not in given]


def _interval(text: str) -> Any:
    """The ``interval()`` sweep of an override (Optuna's search space), or None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(text)
    return override.value() if override.is_interval_sweep() else None


def _bounds_as_choice(text: str) -> str:
    sweep = _interval(text)
    return text if sweep is None else f"{text.partition('=')[0]}=choice({sweep.start},{sweep.end})"


def _interval_problems(texts: Sequence[str]) -> Iterator[Problem]:
    """An ``interval()`` a sampler can draw from: a low end below the high one, above 0 for log."""
    for text in texts:
        sweep = _interval(text)
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
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    parsed, problems = _parse_each(overrides)
    if problems:
        return [], problems
    if not multirun:
        return [list(overrides)], []
    try:
        problems = list(_interval_problems([*overrides, *params]))
        if problems:
            return [], problems
        parsed, problems = _parse_each([_bounds_as_choice(o) for o in [*overrides, *params]])
        if problems:
            return [], problems
        return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch], []
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
            )
        ]
    with app_hydra(config_dir):
        points, problems = sweep_points(overrides, multirun)
        if problems:
            return 1, problems
        first: Optional[tuple[Optional[DictConfig], list[Problem]]] = _compose(points[0], config_name)
        params, space, offset = [], [], 0
        base = first[0] if first is not None else None
        if multirun and first is not None and first[0] is not None:
            params = sweeper_params(first[0], overrides)
            space = [o for o in [*overrides, *params] if _interval(o) is not None]
            if space and not _samples(first[0]):
                return 1, [
                    Problem(
                        space[0].partition("=")[0],
                        space[0].partition("=")[2],
                        "interval() needs a sweeper that samples from a range",
                        "add hydra/sweeper=optuna, or sweep a list: key=a,b,c",
                    )
                ]
            if params:  # the sweeper adds keys to sweep: every point changes
                points, problems = sweep_points(overrides, multirun, params)
                first = None
            problems = list(_minimises(base, overrides)) + problems  # params change no sweeper setting
            offset = _first_job(base)
        targets: Optional[Targets] = None  # read from the store once, for the whole sweep
        for index, point in enumerate(points):
            cfg, found = first if index == 0 and first is not None else _compose(point, config_name)
            if cfg is not None:
                targets = targets or Targets.registered()
                with as_the_job_sees_it(cfg, offset + index if multirun else None):
                    found += check_config(cfg, targets)
            for problem in found:
                problem.point = point if multirun else None
                if any(_key(o) == problem.key for o in space) and "Integer" in problem.rule:
                    problem.hint = f"interval() draws floats: cast it, {problem.key}=int(interval(low,high))"
            problems.extend(found)
    return max(len(points), 1), problems


def _minimises(cfg: Optional[DictConfig], overrides: Sequence[str]) -> Iterator[Problem]:
    """Optuna's own default, minimize, refused unless the command line asks for it: the job
    returns the best validation accuracy, which a search must maximise."""
    if cfg is None or not str(cfg.hydra.sweeper.get("_target_", "")).endswith("OptunaSweeper"):
        return
    direction = cfg.hydra.sweeper.get("direction")
    if str(getattr(direction, "name", direction)) == "minimize" and not any(
        _key(o) == "hydra.sweeper.direction" for o in overrides
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


@contextlib.contextmanager
def as_the_job_sees_it(cfg: DictConfig, job: Optional[int]) -> Iterator[None]:
    """Hydra's runtime config set as Hydra sets it for a job (its number in a sweep, its output
    dir), so that ``${hydra:...}`` resolves in the check as it will in the job."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import read_write

    hydra = cfg.hydra
    with read_write(hydra), open_dict(hydra):
        if job is not None:
            hydra.job.num, hydra.job.id = job, str(job)
        try:
            output = str(hydra.sweep.dir if job is not None else hydra.run.dir)
            if job is not None:
                output = os.path.join(output, str(hydra.sweep.subdir))
            hydra.runtime.output_dir = os.path.abspath(output) if output else ""
        except Exception:  # a run dir that does not resolve: its own problem (check_config)
            pass
    config = HydraConfig.instance()
    previous = config.cfg
    config.set_config(cfg)
    try:
        yield
    finally:
        config.cfg = previous


def report(problems: Sequence[Problem], points: int) -> None:
    """Print the refusal to stderr; under HYDRA_FULL_ERROR=1 re-raise the first underlying error."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        for problem in problems:
            if problem.error is not None:
                raise problem.error
    sys.stderr.write(render(problems, points))


# ------------------------------------------------------------ one run dir for many processes
def launched_elsewhere(command: Command) -> bool:
    """A sweep whose jobs a launcher other than Hydra's basic one starts (in other processes,
    on other machines), each of which may resolve the sweep dir again."""
    launcher = next((o.partition("=")[2] for o in command.overrides if _key(o) == "hydra.launcher"), "basic")
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
    return [*(o for o in command.overrides if _key(o) != key), f"{key}={_as_override(resolved)}"]


# ------------------------------------------------------------------------ use from Python
def compose_config(overrides: Sequence[str] = (), validate: bool = True) -> DictConfig:
    """The config ``python -m app.train OVERRIDES`` would run, checked as the launch checks it.

    Raises ``app.checks.ConfigError`` (its ``.problems`` hold key, value, rule and hint) for
    whatever ``app-train`` would refuse; ``validate=False`` skips all but composition. For
    notebooks and tests: it needs no Hydra app, and leaves a caller's Hydra context alone.
    """
    if isinstance(overrides, str):
        raise TypeError(f"overrides is a list of strings, e.g. [{overrides!r}], not one string")
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
    return config


# ------------------------------------------------------------- app-evaluate, app-predict
def _as_override(value: Any) -> str:
    """``value`` in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_as_override(v) for v in value) + "]"
    return "'" + str(value).replace("'", "\\'") + "'"  # Hydra's quoted string: only a quote is escaped


def _leaves(node: dict[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{name}.")
        elif not name.startswith("_"):
            yield f"{prefix}{name}", value


def from_checkpoint(config_name: str, overrides: Sequence[str]) -> list[str]:
    """What ``app-evaluate`` and ``app-predict`` put before their command line's overrides: the
    job's name and, for evaluate, the checkpoint's dataset (its option and values), which the
    command line's own ``dataset`` overrides then change. A dataset option given on the command
    line keeps only the checkpoint's image settings (what the model was trained on), classes
    and seed."""
    prefix = [f"hydra.job.name={config_name}"]
    if config_name != EVALUATE_NAME:
        return prefix
    path = next((o.partition("=")[2] for o in overrides if _key(o) == "checkpoint"), None)
    values = checkpoint_config(path) if path else None
    if values is None or not isinstance(values.get("dataset"), dict):  # refused: the checkpoint says so
        return [*prefix, "dataset.seed=0"]  # and not the seed's interpolation, to a trainer it lacks
    dataset = values["dataset"]
    option = next(
        (
            name
            for group, name, node in group_options()
            if group == "dataset" and getattr(node, "_target_", None) == dataset.get("_target_")
        ),
        None,
    )
    chosen = any(_key(o) == "dataset" for o in overrides)
    if option is None and not chosen:
        return prefix
    keep = ("image", "classes", "seed") if chosen else tuple(dataset)
    prefix += [] if chosen else [f"dataset={option}"]
    # not the run's augmentation: a split is evaluated as the run validated, image for image
    return prefix + [
        f"{key}={_as_override(value)}"
        for key, value in _leaves(dataset, "dataset.")
        if key.split(".")[1] in keep and key != "dataset.augment"
    ]


def entry_main(config_name: str, schema: type, usage: str, hydra_main: Callable[[], Any], argv: Sequence[str]) -> None:
    """``main()`` of ``app-evaluate`` and ``app-predict``: check the command as the job will
    see it (the checkpoint's settings first), then hand it to ``hydra_main``."""
    if list(argv[:1]) in (["-h"], ["--help"]):
        rules = "".join(f"  {key:<12}{text}\n" for key, text in schema_rules(schema))
        print(f"{usage}\n== Rules (checked before anything runs) ==\n{rules}")
        sys.exit(0)
    with shared_config_store():
        try:
            command = parse_command(argv)
            prefix = from_checkpoint(config_name, command.overrides)
            points, problems = check_command(
                command._replace(config_name=config_name, overrides=[*prefix, *command.overrides])
            )
        except ConfigError as error:
            points, problems, prefix = error.points, error.problems, []
        if problems:
            report(problems, points)
            sys.exit(1)
        start = len(argv) - len(command.overrides)  # the overrides end the command line
        sys.argv = [sys.argv[0], *argv[:start], *prefix, *argv[start:]]
        hydra_main()


# ------------------------------------------------------------------------------ app-check
CHECK_USAGE = """app-check: validate a run, a whole -m sweep, or every command in a file, running nothing.

    app-check classifier=large dataset.classes=5
    app-check -m classifier=small,large optimizer.lr=1e-4,1e-3
    app-check python -m app.train -m classifier=small,large    # a pasted command works too
    app-check torchrun --nproc_per_node=4 -m app.train trainer.batch_size=64   # as its 4 processes run it
    app-check --lint README.md scripts/sweeps.sh               # each app-train command in them

It reads the same command line as app-train and exits 0 when everything is valid, 1 otherwise.
"""
LINE = re.compile(r"^\s*(?:\$\s*)?(app-train|python3?(?:\.\d+)? -m app\.train|torchrun\s.*-m app\.train)(\s|$)")


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
    with _world_of(command.processes):
        return check_overrides(command.overrides, command.multirun, command.config_name, command.config_dir)


@contextlib.contextmanager
def _world_of(processes: int) -> Iterator[None]:
    """``WORLD_SIZE`` as torchrun sets it for the check of a torchrun command (``checks.processes``)."""
    if processes == 1:
        yield
        return
    before = os.environ.get("WORLD_SIZE")
    os.environ["WORLD_SIZE"] = str(processes)
    try:
        yield
    finally:
        if before is None:
            del os.environ["WORLD_SIZE"]
        else:
            os.environ["WORLD_SIZE"] = before


def lint(paths: Sequence[str]) -> int:
    """Check each ``app-train`` / ``python -m app.train`` / ``torchrun ... -m app.train`` line; one
    marked ``# refused`` must fail."""
    failures = 0
    for path in paths:
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if not LINE.match(line):
                continue
            expect_refusal = "# refused" in line
            try:
                points, problems = check_command(
                    parse_command(shlex.split(line.strip().removeprefix("$"), comments=True))
                )
                result = render(problems, points) if problems else None
            except ConfigError as error:  # a command line Hydra's parser refuses
                result = str(error)
            if (result is not None) != expect_refusal:
                failures += 1
                verdict = "accepted, but marked # refused" if expect_refusal else "refused"
                print(f"{path}:{number}: {verdict}: {line.strip()}\n{result or ''}", file=sys.stderr)
            else:
                print(f"{path}:{number}: ok ({'refused as marked' if expect_refusal else 'valid'})")
    return 1 if failures else 0


def check_main(argv: Optional[Sequence[str]] = None) -> int:
    """``app-check [--lint FILE...] [app-train command line]``: see ``CHECK_USAGE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(CHECK_USAGE)
        return 0
    with shared_config_store():
        if args[:1] == ["--lint"]:
            return lint(args[1:])
        try:
            points, problems = check_command(parse_command(args))
        except ConfigError as error:
            points, problems = error.points, error.problems
    if problems:
        report(problems, points)
        return 1
    print(f"OK: {points} configuration{'s' if points != 1 else ''} valid.")
    return 0
