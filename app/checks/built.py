"""What is about to be built is checked where it is built, on the values it is built from.

The launch check runs on values resolved at launch, in the launch's environment; a job may see
others (``${oc.env:X}`` under ``hydra.job.env_set``, ``${now:...}``, a resolver of the user's),
and a checkpoint carries a config no command line gave. So every config that reaches
``instantiate`` first goes through ``built_problems``, the walk and the ``_target_`` allow-list
of ``check_config`` (its cross-field rules ran at launch): the job's own config resolved once,
in the job (``resolved_as_built``: what was checked is what is built), and a checkpoint's
(``checkpoint_problems``: app-evaluate and app-predict at launch, ``app.models.load`` before it
builds anything). Torch-free, about 5 ms a config.
"""

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from app.checks.problems import Problem
from app.checks.walk import Targets, _builds_only_registered, _told_once, _Walk
from app.errors import ChangedInTheJob, UntrustedCheckpoint

# What a checkpoint's config builds when its model is loaded (app.models.load)
CHECKPOINT_BUILDS = ("feature_extractor", "classifier")


def built_problems(cfg: DictConfig, where: str = "") -> list[Problem]:
    """What the walk and the ``_target_`` allow-list refuse in ``cfg``, each key after ``where``."""
    walk = _Walk(Targets.registered())
    walk.node(cfg, "")
    problems = walk.problems
    problems += _builds_only_registered(cfg, walk.targets, {p.key for p in problems})
    return [dataclasses.replace(p, key=f"{where}{p.key}") for p in _told_once(problems)]


def resolved_as_built(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` with every interpolation resolved, here, in the job's environment, once;
    ``ChangedInTheJob`` if it now builds what the launch check would refuse."""
    resolved = copy.deepcopy(cfg)
    try:
        OmegaConf.resolve(resolved)
    except OmegaConfBaseException as error:
        raise ChangedInTheJob(f"the config does not resolve in the job: {' '.join(str(error).split())}") from None
    problems = built_problems(resolved)
    if problems:
        raise ChangedInTheJob(
            f"resolved in the job, the config builds what the launch check refuses: {_listed(problems)}"
        )
    return resolved


def checkpoint_problems(values: Mapping[str, Any], where: str = "checkpoint:") -> list[Problem]:
    """What the allow-list refuses in what a checkpoint's config builds (``values``: the config
    saved in it, as ``app.files.checkpoint_config`` or ``torch.load`` reads it)."""
    nodes = {name: values.get(name) for name in CHECKPOINT_BUILDS}
    try:
        cfg = OmegaConf.create(nodes)
        OmegaConf.resolve(cfg)  # a checkpoint holds resolved values: any interpolation was put there
    except (OmegaConfBaseException, ValueError, TypeError) as error:
        return [Problem(where.rstrip(":"), "(its config)", "a config app-train saved", " ".join(str(error).split()))]
    return built_problems(cfg, where)


def checked_checkpoint(values: Mapping[str, Any], path: str) -> DictConfig:
    """The part of a checkpoint's config that ``app.models.load`` builds, resolved and checked;
    ``UntrustedCheckpoint`` naming what it would build otherwise."""
    problems = checkpoint_problems(values, "")
    if problems:
        raise UntrustedCheckpoint(f"{path}: its config builds what no config of the app builds: {_listed(problems)}")
    cfg = OmegaConf.create({name: values.get(name) for name in CHECKPOINT_BUILDS})
    OmegaConf.resolve(cfg)
    return cfg


def _listed(problems: list[Problem]) -> str:
    return "; ".join(f"{p.key}={p.value} ({p.rule})" for p in problems[:5])
