"""How a command line gets to checked configs, for ``app-train``, ``app-check`` and Python. No torch
is imported, nor anything of ``app.training``.

- ``hydra_setup``: Hydra's own settings for the app (stored on import), ``app_hydra``, ``shared_config_store``,
  Hydra's runtime config as a job sees it
- ``argv``: the ``app-train`` command line (``Command``, ``parse_command``, a pasted torchrun command)
- ``overrides``: an override's key and value, a value written as an override
- ``hydra_errors``: Hydra's composition and grammar errors as ``Problem``s; ``_compose``
- ``sweeps``: sweep points, ``interval()`` bounds, an Optuna search's direction and first job,
  the run or sweep dir pinned for processes that would each resolve it
- ``check``: ``check_overrides``, ``check_command``, ``report``; ``compose_config``, ``load_config``
- ``entry``: the checkpoint-driven entry of ``app-evaluate`` and ``app-predict``
- ``cli``: the ``app-check`` command

This package is the only one of the app that imports ``hydra._internal``: each use names its
public replacement where it is made, and ``tests/test_hydra_internals.py`` pins the behaviour it
relies on, and every Hydra or OmegaConf message text matched here, so that an upgrade that
changes one fails there.
"""

from app.checks import ConfigError, Problem
from app.launch.argv import Command, parse_command
from app.launch.check import check_command, check_overrides, compose_config, load_config, report
from app.launch.cli import check_main, get_args_parser, lint
from app.launch.entry import entry_main, from_checkpoint
from app.launch.hydra_errors import composition_problem
from app.launch.hydra_setup import app_hydra, as_the_job_sees_it, hydra_store, shared_config_store
from app.launch.sweeps import launched_elsewhere, pinned_dirs, sweep_points, sweeper_params

__all__ = [
    "Command",
    "ConfigError",
    "Problem",
    "app_hydra",
    "as_the_job_sees_it",
    "check_command",
    "check_main",
    "check_overrides",
    "compose_config",
    "composition_problem",
    "entry_main",
    "from_checkpoint",
    "get_args_parser",
    "hydra_store",
    "launched_elsewhere",
    "lint",
    "load_config",
    "parse_command",
    "pinned_dirs",
    "report",
    "shared_config_store",
    "sweep_points",
    "sweeper_params",
]
