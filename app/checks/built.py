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
import os
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from app.checks.problems import Problem
from app.checks.walk import _told_once, walked
from app.configs import MainConfig, TrainerConfig
from app.errors import ChangedInTheJob, UntrustedCheckpoint

# What a checkpoint's config builds when its model is loaded (app.models.load)
CHECKPOINT_BUILDS = ("feature_extractor", "classifier")


def built_problems(cfg: DictConfig, where: str = "") -> list[Problem]:
    """What the walk and the ``_target_`` allow-list refuse in ``cfg``, each key after ``where``."""
    return [dataclasses.replace(p, key=f"{where}{p.key}") for p in _told_once(walked(cfg))]


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


def _built_by(values: Mapping[str, Any], where: str) -> tuple[DictConfig, list[Problem]]:
    """(the nodes of a checkpoint's config that build its model, resolved; what the allow-list
    refuses in them); ``values``: the config saved in it, as ``app.files.checkpoint_config`` or
    ``torch.load`` reads it."""
    try:
        cfg = OmegaConf.create({name: values.get(name) for name in CHECKPOINT_BUILDS})
        OmegaConf.resolve(cfg)  # a checkpoint holds resolved values: any interpolation was put there
    except (OmegaConfBaseException, ValueError, TypeError) as error:
        told = " ".join(str(error).split())
        return OmegaConf.create(), [
            Problem(where.rstrip(":") or "checkpoint", "(its config)", "a config app-train saved", told)
        ]
    return cfg, built_problems(cfg, where)


def checkpoint_problems(values: Mapping[str, Any], where: str = "checkpoint:") -> list[Problem]:
    """What the allow-list refuses in what a checkpoint's config builds."""
    return _built_by(values, where)[1]


def checked_checkpoint(values: Mapping[str, Any], path: str) -> DictConfig:
    """The part of a checkpoint's config that ``app.models.load`` builds, resolved and checked;
    ``UntrustedCheckpoint`` naming what it would build otherwise."""
    cfg, problems = _built_by(values, "")
    if problems:
        raise UntrustedCheckpoint(f"{path}: its config builds what no config of the app builds: {_listed(problems)}")
    return cfg


def changed_since(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, saved value, value now) of each leaf that a resumed run may not change
    (``TrainerConfig.resume_may_change``, ``MainConfig.resume_may_change``), between the config
    saved in its checkpoint and the one it runs with, both resolved plain containers. A key only
    one of them has (a checkpoint of an older version) is left alone; paths compare as absolute."""
    allowed = {*MainConfig.resume_may_change, *(f"trainer.{k}" for k in TrainerConfig.resume_may_change)}
    changes: list[tuple[str, Any, Any]] = []

    def compare(was: Any, is_: Any, key: str) -> None:
        if key in allowed:
            return
        if isinstance(was, dict) and isinstance(is_, dict):
            for name in sorted(set(was) & set(is_), key=str):
                compare(was[name], is_[name], f"{key}.{name}" if key else str(name))
        elif isinstance(was, list) and isinstance(is_, list) and len(was) == len(is_):
            for index, (a, b) in enumerate(zip(was, is_)):
                compare(a, b, f"{key}.{index}")
        elif was != is_ and not (isinstance(was, str) and isinstance(is_, str) and _same_path(was, is_)):
            changes.append((key, was, is_))

    compare(dict(saved), dict(now), "")
    return changes


def _same_path(a: str, b: str) -> bool:
    return os.path.abspath(os.path.expanduser(a)) == os.path.abspath(os.path.expanduser(b))


def _listed(problems: list[Problem]) -> str:
    return "; ".join(f"{p.key}={p.value} ({p.rule})" for p in problems[:5])
