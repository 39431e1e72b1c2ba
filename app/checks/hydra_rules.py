"""The cross-field rules on Hydra's node: the run dir, the sweeper and the launcher, the
processes under torchrun. Written and registered as those of ``app.checks.rules`` are (its
docstring says how); every one asks for ``cfg.get("hydra")`` first, which ``compose_config``
and Python callers of ``train()`` drop.
"""

import re
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from app.checks.facts import launcher_target, torchrun_world, unwritable
from app.checks.problems import Absent, Problem
from app.checks.rules import cross_rule
from app.configs import JOBLIB_LAUNCHER, OPTUNA_SWEEPERS, RESUME_AUTO, SLURM_LAUNCHER, SUBMITIT_LAUNCHERS


@cross_rule(
    "the run dir (hydra.run.dir, or each sweep job's dir under hydra.sweep.dir) is named, can be made, "
    "no live run writes in it, and it holds no earlier run unless trainer.overwrite=true or trainer.resume "
    "continues it"
)
def _run_dir_is_free(cfg: DictConfig) -> Iterator[Problem]:
    hydra = cfg.get("hydra")
    if hydra is None or OmegaConf.is_missing(hydra.runtime, "output_dir"):
        return  # no launch: compose_config's config has no run dir yet (train() is given one)
    from app.files import MARKER, checkpoint_to_resume, lock_holder, run_artefacts, written_by_app

    sweep = not OmegaConf.is_missing(hydra.job, "num")  # set for a sweep's jobs only
    key, run_dir = ("hydra.sweep.dir" if sweep else "hydra.run.dir"), str(hydra.runtime.output_dir)
    if not run_dir:
        yield Problem(
            key,
            "",
            "a directory for the run's files (empty: they would land in the launch dir)",
            f"leave {key} out for a new dated one, or name a directory",
        )
        return
    blocked = unwritable(run_dir)
    if blocked:
        yield Problem(key, run_dir, "a directory this user can create and write in", f"{blocked}: choose another {key}")
        return
    trainer = cfg.get("trainer")  # app-evaluate and app-predict have none: they never continue a run
    continued = trainer is not None and checkpoint_to_resume(run_dir, trainer.resume) is not None
    holder, left = lock_holder(run_dir), run_artefacts(run_dir)
    if holder is not None:
        yield Problem(
            key,
            run_dir,
            "a run dir no live run is writing in",
            f"a run (pid {holder}) is still writing there: wait for it, or choose another {key}",
        )
    elif left and trainer is not None and trainer.overwrite and not continued and not written_by_app(run_dir):
        yield Problem(
            "trainer.overwrite",
            "true",
            f"replaces only a run of this app: {run_dir} holds {', '.join(left)}, but no {MARKER} of a run here",
            f"choose another {key}; delete those files yourself if they are yours to delete",
        )
    elif left and not continued and not (trainer is not None and trainer.overwrite):
        ways = (
            "or leave it out for a new dated one"
            if trainer is None
            else "add trainer.resume=auto to continue that run, or trainer.overwrite=true to replace it"
        )
        yield Problem(
            key,
            run_dir,
            f"a new run dir: this one holds an earlier run ({', '.join(left)})",
            f"choose another {key}, {ways}",
        )


@cross_rule(
    "trainer.resume continues the run its checkpoint holds: only what TrainerConfig.resume_may_change "
    "and MainConfig.resume_may_change name (epochs, device, workers, logging...) may differ"
)
def _resume_continues_that_run(cfg: DictConfig) -> Iterator[Problem]:
    trainer, hydra = cfg.get("trainer"), cfg.get("hydra")
    if trainer is None or trainer.resume is None:
        return
    from app.checks.built import changed_since
    from app.files import checkpoint_config, checkpoint_to_resume

    launched = hydra is not None and not OmegaConf.is_missing(hydra.runtime, "output_dir")
    if trainer.resume == RESUME_AUTO and not launched:
        return  # train() from Python: the job compares, in the dir it is given
    path = checkpoint_to_resume(str(hydra.runtime.output_dir) if launched else "", trainer.resume)
    saved = checkpoint_config(path) if path is not None else None
    if saved is None:
        return  # a new run (auto, no last.pt yet), or no checkpoint of this app: the job says which
    now = OmegaConf.to_container(
        OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"]), resolve=True, enum_to_str=True
    )
    for key, was, is_ in changed_since(saved, now):  # type: ignore[arg-type]
        yield Problem(
            key,
            _written(is_),
            f"as in the run trainer.resume continues ({_written(was)}): a resumed run is that run, going on",
            f"leave {key} as it was to continue that run, or start a new one in another hydra.run.dir",
        )


def _written(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


# Variables that make the job's processes (Python, its loader workers, torch.compile's compiler,
# anything a launcher starts) load code from a path of the variable's choosing. hydra.job.env_set
# sets them for the job only, where no check runs first; each is refused there.
CODE_LOADING_VARIABLES = {
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONSAFEPATH", "PYTHONEXECUTABLE",
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "PATH",
    "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TORCH_EXTENSIONS_DIR", "CUDA_CACHE_PATH",
}  # fmt: skip


@cross_rule(
    "hydra.job.env_set sets no variable that makes a process load code from a path (PYTHONPATH, "
    "LD_PRELOAD, LD_*, DYLD_*, PATH, TORCHINDUCTOR_CACHE_DIR, ...)"
)
def _env_set_loads_no_code(cfg: DictConfig) -> Iterator[Problem]:
    hydra = cfg.get("hydra")
    env_set = hydra.job.get("env_set") if hydra is not None else None
    for name in map(str, env_set or {}):
        if name in CODE_LOADING_VARIABLES or name.startswith(("LD_", "DYLD_")):
            yield Problem(
                f"hydra.job.env_set.{name}",
                str(env_set._get_node(name)._value()),  # type: ignore[union-attr]
                "a variable that loads no code: this one makes the job's processes load it from a path",
                f"set {name} in the environment you launch from, where you see it, not for the job only",
            )


@cross_rule("hydra.output_subdir is null: the job writes .hydra/ itself, once it holds the run dir's lock")
def _hydra_files_after_the_lock(cfg: DictConfig) -> Iterator[Problem]:
    hydra = cfg.get("hydra")
    if hydra is not None and hydra.get("output_subdir") is not None:
        yield Problem(
            "hydra.output_subdir",
            str(hydra.output_subdir),
            "null: Hydra would write it before the job holds the run dir, over a live run's own",
            "leave hydra.output_subdir out: config.yaml, hydra.yaml and overrides.yaml go to .hydra/",
        )


@cross_rule(
    "hydra/sweeper=optuna: n_trials >= 1, n_jobs >= 1, 0 <= max_failure_rate <= 1, direction minimize or "
    "maximize (the job returns one value), and no custom_search_space (it imports and calls the function it names)"
)
def _optuna_can_run(cfg: DictConfig) -> Iterator[Problem]:
    sweeper = cfg.hydra.get("sweeper") if cfg.get("hydra") is not None else None
    if sweeper is None or sweeper.get("_target_") not in OPTUNA_SWEEPERS:
        return
    from hydra_plugins.hydra_optuna_sweeper.config import Direction

    for key, ok, rule, fix in [
        ("n_trials", sweeper.n_trials >= 1, ">= 1: the trials to run", 20),
        ("n_jobs", sweeper.n_jobs >= 1, ">= 1: the trials drawn at a time", 1),
        ("max_failure_rate", 0 <= sweeper.max_failure_rate <= 1, "0 <= value <= 1: a fraction of a batch", 0.0),
    ]:
        if not ok:
            yield Problem(f"hydra.sweeper.{key}", str(sweeper[key]), rule, f"e.g. hydra.sweeper.{key}={fix}")
    direction = sweeper.direction
    name = direction.name if isinstance(direction, Direction) else str(direction)
    if name not in Direction.__members__:
        yield Problem(
            "hydra.sweeper.direction",
            name,
            f"one of {', '.join(Direction.__members__)}: the job returns one value, the best validation accuracy",
            "hydra.sweeper.direction=maximize",
        )
    if sweeper.get("custom_search_space") is not None:
        yield Problem(
            "hydra.sweeper.custom_search_space",
            str(sweeper.custom_search_space),
            "null: Optuna would import and call the function it names, which no check covers",
            "declare the search space with hydra.sweeper.params or on the command line",
        )


# The least of each number a submitit launcher takes as it is: 0 minutes or -1 GPUs fail only on the cluster.
SUBMITIT_LEAST = {
    "timeout_min": 1,
    "nodes": 1,
    "tasks_per_node": 1,
    "cpus_per_task": 1,
    "gpus_per_node": 0,
    "gpus_per_task": 0,
}


@cross_rule(
    "hydra/launcher=joblib or submitit_*: joblib's n_jobs is not 0; submitit's timeout_min, nodes, tasks_per_node "
    "and cpus_per_task are >= 1, gpus_per_node and gpus_per_task >= 0"
)
def _launcher_can_run(cfg: DictConfig) -> Iterator[Problem]:
    target = launcher_target(cfg)
    if target == JOBLIB_LAUNCHER and cfg.hydra.launcher.get("n_jobs") == 0:
        yield Problem(
            "hydra.launcher.n_jobs", "0", "not 0: the jobs run at once (-1: one per core)", "hydra.launcher.n_jobs=2"
        )
    if target not in SUBMITIT_LAUNCHERS:
        return
    for key, low in SUBMITIT_LEAST.items():
        value = cfg.hydra.launcher.get(key)
        if value is not None and value < low:
            yield Problem(f"hydra.launcher.{key}", str(value), f">= {low}", f"e.g. hydra.launcher.{key}={max(low, 1)}")


@cross_rule(
    "hydra/launcher=submitit_slurm or slurm_ddp: a -m sweep on a machine with SLURM (sbatch submits the jobs, "
    "srun starts their tasks)"
)
def _slurm_is_here(cfg: DictConfig) -> Iterator[Problem]:
    import shutil

    hydra = cfg.get("hydra")
    if launcher_target(cfg) != SLURM_LAUNCHER or OmegaConf.is_missing(hydra.job, "num"):
        return  # not SLURM's launcher, or not a sweep: a single run ignores hydra/launcher
    lacking = [program for program in ("sbatch", "srun") if shutil.which(program) is None]
    if lacking:
        yield Problem(
            "hydra/launcher",
            str(hydra.runtime.choices.get("hydra/launcher", "submitit_slurm")),
            f"a machine with SLURM: {' and '.join(lacking)} {'is' if len(lacking) == 1 else 'are'} not on PATH "
            "(submitit submits each job with sbatch and starts its tasks with srun)",
            "launch it from the cluster's login node; to try the sweep on this machine, hydra/launcher=submitit_local "
            "runs its jobs here as local processes (its SLURM-only keys, such as hydra.launcher.partition, left out)",
            absent=Absent.PROGRAM,
        )


@cross_rule("under torchrun: one run per launch, not a -m sweep (every process would run the whole sweep)")
def _one_run_under_torchrun(cfg: DictConfig) -> Iterator[Problem]:
    hydra = cfg.get("hydra")
    if hydra is not None and torchrun_world() > 1 and not OmegaConf.is_missing(hydra.job, "num"):
        yield Problem(
            "hydra.mode",
            "MULTIRUN",
            "one run per torchrun launch (no -m): every process would run the whole sweep",
            "sweep with hydra/launcher=submitit_slurm (tasks_per_node=GPUs), or launch torchrun once per point",
        )


@cross_rule("hydra/launcher=submitit_*: with more than one task per node, gpus_per_node is 0 (CPUs) or one per task")
def _one_gpu_per_task(cfg: DictConfig) -> Iterator[Problem]:
    if launcher_target(cfg) not in SUBMITIT_LAUNCHERS:
        return
    launcher = cfg.hydra.launcher
    tasks, gpus = launcher.get("tasks_per_node") or 1, launcher.get("gpus_per_node") or 0
    if tasks > 1 and gpus and gpus != tasks:
        yield Problem(
            "hydra.launcher.gpus_per_node",
            str(gpus),
            f"equal to tasks_per_node ({tasks}): each task trains on one GPU of its node",
            f"hydra.launcher.gpus_per_node={tasks}, or hydra.launcher.tasks_per_node={gpus}",
        )


# submitit writes a SLURM job as a bash script (submitit 1.5.4, slurm._make_sbatch_string): each
# launcher string becomes a quoted "#SBATCH --key=value" line, additional_parameters' keys
# unquoted, setup and teardown lines verbatim, srun_args quoted into the srun line; the local
# executor runs setup with a shell. A line break in any string starts a shell line of its own.
SHELL_LINES = ("setup", "teardown")
SRUN_ARG = re.compile(r"^[A-Za-z0-9_=:,./@%+-]+$")  # a conservative charset: no quote, space, $, ;, |, &, `
# srun options that run a program of their own (on every node, before or after each task)
SRUN_RUNS = ("--prolog", "--epilog", "--task-prolog", "--task-epilog", "--bcast")
SBATCH_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _shown(text: str) -> str:
    return text.encode("unicode_escape").decode()  # a newline shown as \n, not as a line break


@cross_rule(
    "hydra/launcher=submitit_*: no setup or teardown lines (submitit runs them as shell lines), no line break or "
    "other control character in any launcher string or key, additional_parameters keys of letters, digits, _ and "
    "-, srun_args of letters, digits and _=:,./@%+- that name no program for srun to run (--prolog, --epilog, ...)"
)
def _launcher_writes_no_shell_lines(cfg: DictConfig) -> Iterator[Problem]:
    if launcher_target(cfg) not in SUBMITIT_LAUNCHERS:
        return
    from app.checks.walk import resolved_leaves  # walk imports this module: read at call time

    launcher = cfg.hydra.launcher
    for key in SHELL_LINES:
        lines = launcher._get_node(key) if key in launcher else None  # read as written, never resolved
        if lines is not None and not lines._is_none() and (not isinstance(lines, ListConfig) or len(lines)):
            yield Problem(
                f"hydra.launcher.{key}",
                _shown(str(lines)),
                "empty: submitit writes each line into the job's shell script (the local executor runs it with a "
                "shell), where no check reads it",
                "set the environment up before app-train (your shell, a module load), or in a wrapper script "
                "that runs app-train",
            )
    srun_args: list[tuple[str, str]] = []
    for full, _, value, text in resolved_leaves(launcher, "hydra.launcher"):
        if text is not None:
            yield Problem(
                _shown(full),
                _shown(text),
                "a value the launch check can resolve: submitit writes it into the job's shell script",
                "write the value out",
            )
        elif CONTROL.search(full) or CONTROL.search(str(value)):
            yield Problem(
                _shown(full),
                _shown(str(value)),
                "one line: submitit writes it into the job's shell script, where a line break starts a command",
                "write it without line breaks, tabs or other control characters",
            )
        elif full.rpartition(".")[0] == "hydra.launcher.srun_args":
            srun_args.append((full, str(value)))
    yield from _sbatch_words(launcher, srun_args)


def _sbatch_words(launcher: DictConfig, srun_args: list[tuple[str, str]]) -> Iterator[Problem]:
    """additional_parameters' keys (written unquoted) and srun_args (options srun runs with)."""
    options = launcher._get_node("additional_parameters") if "additional_parameters" in launcher else None
    for name in map(str, options.keys() if isinstance(options, DictConfig) and not options._is_none() else []):
        if not SBATCH_KEY.match(name) and not CONTROL.search(name):  # a control character: told already
            yield Problem(
                f"hydra.launcher.additional_parameters.{name}",
                name,
                "an sbatch option's name: letters, digits, _ and - (written unquoted after #SBATCH --)",
                "e.g. +hydra.launcher.additional_parameters.mail-type=END",
            )
    for full, arg in srun_args:
        if not SRUN_ARG.match(arg) or arg.partition("=")[0] in SRUN_RUNS:
            yield Problem(
                full,
                arg,
                "an srun option of letters, digits and _=:,./@%+- (no quote, space or shell character), "
                f"not one that runs a program ({', '.join(SRUN_RUNS)})",
                "e.g. hydra.launcher.srun_args=['--kill-on-bad-exit=1','--cpu-bind=cores']",
            )
