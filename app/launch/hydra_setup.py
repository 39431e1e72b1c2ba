"""Hydra set up for the app: its own settings (the stored ``HydraConf``, ``hydra/launcher=slurm_ddp``),
Hydra initialised on the app's configs (``app_hydra``), the CLI-only ConfigStore sharing
(``shared_config_store``) and Hydra's runtime config as a job sees it (``as_the_job_sees_it``).

Importing this module stores Hydra's settings; ``app.launch`` imports it first.
"""

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Optional

from hydra.conf import HelpConf, HydraConf, JobConf, RunDir, SweepDir
from hydra_zen import ZenStore
from omegaconf import DictConfig, open_dict

from app.checks import rules_help
from app.configs import JOB_NAME, OPTIONS_OF_EXTRAS, VERSION_BASE, Extra

HELP_HEADER = """== app-train ==
Fine-tune a classification head on a torchvision CNN. Every config is typed Python.

  app-train classifier=large optimizer.lr=3e-4 trainer.epochs=8
  app-train -m classifier=small,large        # one run dir per point
  app-train --cfg job                        # print the composed config
"""


def extras_help() -> str:
    """--help's list of what the optional extras add, each marked as installed here or not."""
    lines = ["== Options that need an extra (pip install -e '.[EXTRA]') =="]
    built_in = {"hydra/launcher": "basic (built in, one job at a time), ", "hydra/sweeper": "basic (built in), "}
    for group, options in OPTIONS_OF_EXTRAS.items():
        by_extra: dict[Extra, list[str]] = {}
        for option, extra in options.items():
            by_extra.setdefault(extra, []).append(option)
        listed = "; ".join(
            f"{', '.join(names)} [{extra.name}: {'installed' if extra.installed() else 'not installed'}]"
            for extra, names in by_extra.items()
        )
        lines.append(f"{group}: {built_in.get(group, '')}{listed}")
    return "\n".join(lines) + "\n"


# Hydra's own config for this app: the job is called ``train`` (so the log is ``train.log``)
# whatever module or script launched it; default run dirs end in microseconds, so that two
# runs started in the same second get a dir each; --help ends with every rule; a sweep ends
# with its summary (app.summary, loaded by Hydra by its name: no import here).
STARTED = "${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"
hydra_store = ZenStore(name="app.hydra")
hydra_store(
    HydraConf(
        job=JobConf(name=JOB_NAME),
        output_subdir=None,  # .hydra/ is written by the job once it holds the run dir (app.training.runtime)
        run=RunDir(dir=f"outputs/{STARTED}"),
        sweep=SweepDir(dir=f"multirun/{STARTED}", subdir="${hydra.job.num}"),
        help=HelpConf(app_name="app-train", header=f"{HELP_HEADER}\n{extras_help()}", footer=rules_help()),
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

    # hydra._internal's CachingConfigRepository deep-copies the store; public replacement: none yet (1.4.0.dev9 too)
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

    # hydra._internal Hydra.create_main_hydra2; public replacement: hydra.initialize, with a search path of its own
    from hydra._internal.hydra import Hydra

    # hydra._internal create_config_search_path; public replacement: none yet that takes a -cd dir (1.4.0.dev9)
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
