"""Nothing but a ``_target_`` the check passed runs code: a file the app reads (CIFAR-10's pickled
batches, torchvision's cached weights) is read as data and refused when it would run anything;
Hydra imports no module from a search path; no launcher string becomes a shell line of its
own; no logging handler reaches a socket or a file outside the run dir. Each route is tried
with a canary, a file or folder that running the smuggled code would make, and the canary
never appears."""

import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app import files
from app.configs import ImageConfig, Normalize
from app.errors import UnsafeDataFile


class MakesDir:
    """Unpickling it makes the directory ``path``: what a pickle in a data file could do."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.makedirs, (self.path,)


class Execs:
    """Unpickling it runs Python source that makes the directory ``path``."""

    def __init__(self, path: Path) -> None:
        self.source = f"import os; os.makedirs({str(path)!r})"

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (self.source,)


# ------------------------------------------------------------------------ CIFAR-10's batches
NAMES = [f"class{i}" for i in range(10)]


def cifar10_folder(root: Path, protocol: int = 2, numpy1: bool = False) -> Path:
    """A cifar-10-batches-py of 10 images a batch in CIFAR-10's own structure (bytes keys, as
    ``pickle.load(f, encoding="bytes")`` shows the real ones); ``numpy1``: numpy 1.x's module
    path for the array rebuilder, as in the files Toronto serves."""
    folder = root / files.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*files.CIFAR10_TRAIN, files.CIFAR10_TEST]:
        batch = {
            b"batch_label": b"training batch 1 of 5",
            b"labels": list(range(10)),
            b"data": rng.integers(0, 256, (10, 3 * 32 * 32), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(10)],
        }
        data = pickle.dumps(batch, protocol=protocol)
        if numpy1:
            data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        (folder / name).write_bytes(data)
    meta = {b"label_names": [n.encode() for n in NAMES], b"num_vis": 3072}
    (folder / files.CIFAR10_META).write_bytes(pickle.dumps(meta, protocol=protocol))
    return folder


def load_cifar10(root: Path) -> Any:
    from app.data import cifar10

    return cifar10(image=ImageConfig(size=32, channels=3, normalize=Normalize.dataset), root=str(root))


@pytest.mark.parametrize(("protocol", "numpy1"), [(2, True), (2, False), (5, False)])
def test_a_cifar_batch_in_cifars_own_format_still_loads(tmp_path: Path, protocol: int, numpy1: bool) -> None:
    folder = cifar10_folder(tmp_path, protocol, numpy1)
    if numpy1:
        assert b"numpy.core.multiarray" in (folder / files.CIFAR10_TEST).read_bytes()
    splits = load_cifar10(tmp_path)
    assert splits.names == NAMES and len(splits.train) == 50 and len(splits.val) == 10
    expected = pickle.loads((folder / files.CIFAR10_TEST).read_bytes())[b"data"]
    pixels = expected.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    assert {bytes(a) for a in splits.val.arrays} == {bytes(a) for a in pixels}


@pytest.mark.parametrize("payload", [MakesDir, Execs])
@pytest.mark.parametrize("name", [files.CIFAR10_TRAIN[0], files.CIFAR10_TEST, files.CIFAR10_META])
def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path: Path, payload: type, name: str) -> None:
    folder = cifar10_folder(tmp_path / "data")
    canary = tmp_path / "canary"
    key = b"label_names" if name == files.CIFAR10_META else b"data"
    (folder / name).write_bytes(pickle.dumps({key: payload(canary), b"labels": list(range(10))}, protocol=2))
    assert files.cifar10_present(str(tmp_path / "data"))  # the launch check's view: the files are there
    with pytest.raises(UnsafeDataFile) as refused:
        load_cifar10(tmp_path / "data")
    assert str(folder / name) in str(refused.value) and "cifar-10-batches-py" in refused.value.hint
    assert not canary.exists()


def test_a_cifar_batch_of_other_data_is_refused_by_name(tmp_path: Path) -> None:
    folder = cifar10_folder(tmp_path)
    (folder / files.CIFAR10_TEST).write_bytes(pickle.dumps({"data": np.zeros((10, 5)), "labels": [0] * 10}))
    with pytest.raises(UnsafeDataFile, match="test_batch is not a CIFAR-10 python batch"):
        load_cifar10(tmp_path)
    (folder / files.CIFAR10_TEST).write_bytes(b"\x80\x02}q\x00")  # cut short
    with pytest.raises(UnsafeDataFile, match="test_batch is not a CIFAR-10 python batch"):
        load_cifar10(tmp_path)


# ----------------------------------------------------------------- torchvision's cached weights
def planted_weights(torch_home: Path, url: str, content: object) -> Path:
    """``content`` saved where torch.hub caches the file of ``url`` under ``TORCH_HOME``."""
    import torch

    cached = torch_home / "hub" / "checkpoints" / os.path.basename(url)
    cached.parent.mkdir(parents=True)
    torch.save(content, cached)
    return cached


@pytest.mark.parametrize("payload", [MakesDir, Execs])
def test_a_cached_weights_file_that_would_run_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: type
) -> None:
    from torchvision.models import ResNet18_Weights

    from app.configs import ResNet18Weights
    from app.errors import WeightsUnreadable
    from app.models import resnet18

    # TORCH_HOME is the environment's (or hydra.job.env_set's): whatever sits in its cache is read
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    canary = tmp_path / "canary"
    cached = planted_weights(tmp_path / "torch", ResNet18_Weights.IMAGENET1K_V1.url, payload(canary))
    with pytest.raises(WeightsUnreadable) as refused:
        resnet18(512, ResNet18Weights.IMAGENET1K_V1)
    assert str(cached) in str(refused.value) and "delete that file" in refused.value.hint
    assert not canary.exists()


def test_cached_weights_that_are_a_state_dict_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torchvision.models import AlexNet_Weights, alexnet

    from app.configs import AlexNetWeights
    from app.models import alexnet as body

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no download: the cache holds the file
    state = alexnet().state_dict()
    planted_weights(tmp_path, AlexNet_Weights.IMAGENET1K_V1.url, state)
    built = body(9216, AlexNetWeights.IMAGENET1K_V1)
    assert torch.equal(built.state_dict()["features.0.weight"], state["features.0.weight"])


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    import torch

    from app.errors import CheckpointError
    from app.models import resnet18

    canary = tmp_path / "canary"
    torch.save({"fc.weight": MakesDir(canary)}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint"):
        resnet18(512, checkpoint=str(tmp_path / "state.pt"))
    assert not canary.exists()


# --------------------------------------------------------------------------- hydra.searchpath
def canary_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module on ``sys.path`` whose import makes the canary dir (a name of its own per test:
    an imported module is not imported again)."""
    name = f"canary_{tmp_path.name.replace('-', '_')}"
    canary = tmp_path / "canary"
    (tmp_path / f"{name}.py").write_text(f"import os\nos.makedirs({str(canary)!r}, exist_ok=True)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, canary


def test_a_pkg_searchpath_would_be_imported_while_composing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The route is real: Hydra imports the module before the composed config is anyone's to check.
    from app.launch import app_hydra
    from app.launch.hydra_errors import _compose

    name, canary = canary_module(tmp_path, monkeypatch)
    with app_hydra(), pytest.warns(UserWarning, match="is not available"):
        _compose([f"hydra.searchpath=[pkg://{name}]"], "config")
    assert canary.is_dir()


@pytest.mark.parametrize(
    "argv",
    [
        ["hydra.searchpath=[pkg://MODULE]"],
        ["+hydra.searchpath=[file:///tmp,pkg://MODULE]"],
        ["-m", "hydra.searchpath=[file:///tmp],[pkg://MODULE]"],
        ["hydra.searchpath=[structured://MODULE]"],
        ["-cd", "CONF", "-cn", "evil"],
        ["-m", "-cd", "CONF", "hydra/sweeper=optuna", "+search=evil"],
    ],
    ids=["override", "+override", "sweep", "another scheme", "primary config in --config-dir", "sweeper's params"],
)
def test_a_searchpath_that_imports_a_module_is_refused_before_composing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    from app.launch import check_command, parse_command

    name, canary = canary_module(tmp_path, monkeypatch)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "evil.yaml").write_text(
        "defaults:\n  - config\n  - _self_\nhydra:\n  searchpath: ['${oc.env:EVIL}']\n"
    )
    monkeypatch.setenv("EVIL", f"pkg://{name}")  # Hydra resolves a primary config's search path
    (tmp_path / "conf" / "search").mkdir()
    (tmp_path / "conf" / "search" / "evil.yaml").write_text(  # the sweeper adds its params to each job's overrides
        "# @package _global_\nhydra:\n  sweeper:\n    direction: maximize\n    params:\n"
        f"      hydra.searchpath: choice([pkg://{name}])\n      optimizer.lr: interval(1e-4,1e-3)\n"
    )
    argv = [arg.replace("MODULE", name).replace("CONF", str(tmp_path / "conf")) for arg in argv]
    _, problems = check_command(parse_command(argv))
    assert [p.key for p in problems] == ["hydra.searchpath"], problems
    assert "file://" in problems[0].rule and "--config-dir" in problems[0].hint
    assert not canary.exists()


def test_a_searchpath_of_directories_still_composes(tmp_path: Path) -> None:
    from app.launch import check_command, parse_command

    (tmp_path / "debug").mkdir()
    (tmp_path / "debug" / "mine.yaml").write_text("# @package _global_\ntrainer:\n  epochs: 3\n")
    for searchpath in [f"file://{tmp_path}", str(tmp_path)]:
        assert check_command(parse_command([f"hydra.searchpath=[{searchpath}]", "+debug=mine"]))[1] == []


@pytest.mark.cli
@pytest.mark.parametrize("program", ["app.train", "app.launch"], ids=["app-train", "app-check"])
def test_the_real_commands_refuse_a_pkg_searchpath_and_import_nothing(tmp_path: Path, program: str) -> None:
    (tmp_path / "canary_mod.py").write_text("import os\nos.makedirs('canary')\n")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run(
        [sys.executable, "-m", program, "hydra.searchpath=[pkg://canary_mod]", "hydra.run.dir=out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and result.stderr.startswith("Refused:"), result.stdout + result.stderr
    assert "hydra.searchpath=pkg://canary_mod" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "canary").exists() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------- submitit's shell script
def launched(overrides: list[str], extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Any]]:
    """The launcher's values of a sweep's first job under ``overrides`` (``extra``: keys set
    under ``hydra.launcher.additional_parameters`` after composing, as a YAML config could), as
    the plugin passes them to submitit (resolved), and the problems the launch check finds."""
    from omegaconf import OmegaConf, open_dict

    from app.checks import check_config
    from app.launch import app_hydra, as_the_job_sees_it
    from app.launch.hydra_errors import _compose

    with app_hydra():
        cfg, problems = _compose(overrides, "config")
    assert cfg is not None and problems == []
    if extra:
        with open_dict(cfg):
            cfg.hydra.launcher.additional_parameters.update(extra)
    with as_the_job_sees_it(cfg, 0):  # ${hydra:...} resolves as in the launcher; undone after
        launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        assert isinstance(launcher, dict)
        return {str(k): v for k, v in launcher.items()}, check_config(cfg)


def sbatch_script(launcher: dict[str, Any]) -> str:
    """The script submitit's SLURM executor writes for the job (submitit's own function)."""
    from submitit.slurm.slurm import _make_sbatch_string

    return _make_sbatch_string(
        command="python -u -m submitit.core._submit /folder",
        folder="/folder",
        job_name=launcher["name"],
        comment=launcher.get("comment"),
        setup=launcher.get("setup"),
        srun_args=launcher.get("srun_args"),
        additional_parameters=launcher.get("additional_parameters"),
    )


def commands(script: str) -> list[list[str]]:
    """The lines bash runs as commands, as words: neither blank nor a comment (#SBATCH lines are)."""
    lines = [shlex.split(line, comments=True) for line in script.splitlines()]
    return [words for words in lines if words]


SHELL_ROUTES = {
    "setup": (["hydra.launcher.setup=['touch canary']"], {}, "hydra.launcher.setup"),
    "a line break in a string": (
        ["hydra.launcher.comment='nightly\ntouch canary #'"],
        {},
        "hydra.launcher.comment",
    ),
    "a line break in the job's name": (["hydra.job.name='train\ntouch canary #'"], {}, "hydra.launcher.name"),
    "a line break in an sbatch option's name": (
        [],
        {"mail-type\ntouch canary #": "END"},
        "hydra.launcher.additional_parameters.mail-type\\ntouch canary #",
    ),
}


@pytest.mark.usefixtures("slurm_on_path")  # sbatch and srun: a SLURM launcher needs them
@pytest.mark.parametrize("route", SHELL_ROUTES)
def test_a_launcher_string_that_would_become_a_shell_line_is_refused(route: str) -> None:
    overrides, extra, key = SHELL_ROUTES[route]
    launcher, problems = launched(["hydra/launcher=submitit_slurm", *overrides], extra)
    assert ["touch", "canary"] in commands(sbatch_script(launcher))  # submitit 1.5.4 writes a command of it
    assert key in [p.key for p in problems], problems


@pytest.mark.usefixtures("slurm_on_path")  # sbatch and srun: a SLURM launcher needs them
@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["'--kill-on-bad-exit=1'", "'--cpu-bind=cores'", "'--mpi=pmix'"], []),
        (["'--kill-on-bad-exit=1'", "'--mem-bind=local;touch canary'"], [1]),
        (["'$(touch canary)'", "'--task-prolog=/tmp/evil.sh'", "'--export=ALL'"], [0, 1]),
        (["'--x=a b'", "'--prolog=./evil'", "'--bcast'"], [0, 1, 2]),
    ],
)
def test_srun_args_are_plain_options_that_run_no_program(args: list[str], refused: list[int]) -> None:
    _, problems = launched(["hydra/launcher=slurm_ddp", f"hydra.launcher.srun_args=[{','.join(args)}]"])
    assert [p.key for p in problems] == [f"hydra.launcher.srun_args.{i}" for i in refused]


@pytest.mark.usefixtures("slurm_on_path")  # sbatch and srun: a SLURM launcher needs them
def test_an_sbatch_option_name_is_letters_digits_and_dashes() -> None:
    _, problems = launched(["hydra/launcher=submitit_slurm", "+hydra.launcher.additional_parameters.mail-type=END"])
    assert problems == []
    _, problems = launched(["hydra/launcher=submitit_slurm"], {"mail-type=END --wrap": "x"})
    assert [p.key for p in problems] == ["hydra.launcher.additional_parameters.mail-type=END --wrap"]


@pytest.mark.usefixtures("slurm_on_path")  # sbatch and srun: a SLURM launcher needs them
@pytest.mark.parametrize("launcher", ["submitit_slurm", "submitit_local", "slurm_ddp"])
def test_the_stored_submitit_launchers_still_pass(launcher: str) -> None:
    assert launched([f"hydra/launcher={launcher}"])[1] == []


@pytest.mark.usefixtures("slurm_on_path")  # sbatch and srun: a SLURM launcher needs them
@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.setup=['touch canary']"],
        ["-m", "hydra/launcher=submitit_slurm", "+hydra.launcher.teardown=['touch canary']"],
        ["-m", "hydra/launcher=submitit_local", "+hydra.launcher.setup=['touch canary']"],  # run with a shell
    ],
)
def test_the_launch_refuses_shell_lines_for_any_submitit_launcher(argv: list[str]) -> None:
    from app.launch import check_command, parse_command

    _, problems = check_command(parse_command(argv))
    assert [p.key for p in problems] == [argv[-1].partition("=")[0].lstrip("+")]
    assert "wrapper script" in problems[0].hint


# ------------------------------------------------------------------------- logging's handlers
def logging_dir(base: Path, handler: str) -> Path:
    """A config dir with ``hydra/job_logging=evil``: Hydra's default, its file handler as ``handler``."""
    root = base / "conf"
    (root / "hydra" / "job_logging").mkdir(parents=True)
    (root / "hydra" / "job_logging" / "evil.yaml").write_text(
        "version: 1\nformatters:\n  simple:\n    format: '%(message)s'\n"
        f"handlers:\n  console:\n    class: logging.StreamHandler\n    stream: ext://sys.stdout\n  file:\n{handler}"
        "root:\n  handlers: [console, file]\ndisable_existing_loggers: false\n"
    )
    return root


def test_a_log_file_outside_the_run_dir_would_be_made_by_logging(tmp_path: Path) -> None:
    # The route is real: dictConfig opens a FileHandler's file as it builds it (its configurator
    # alone here, so that this process's logging stays as it is).
    import logging.config

    configurator = logging.config.DictConfigurator({"version": 1})
    handler = configurator.configure_handler({"class": "logging.FileHandler", "filename": str(tmp_path / "x.log")})
    handler.close()
    assert (tmp_path / "x.log").is_file()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["hydra.job_logging.handlers.file.filename=CANARY"], "hydra.job_logging.handlers.file.filename"),
        (["hydra.job_logging.handlers.file.filename=canary.log"], "hydra.job_logging.handlers.file.filename"),
        (
            ["hydra.job_logging.handlers.file.filename=${hydra.runtime.output_dir}/../canary.log"],
            "hydra.job_logging.handlers.file.filename",
        ),
        (
            ["hydra.job_logging.handlers.file.filename=../canary.log", "hydra.job.chdir=true"],
            "hydra.job_logging.handlers.file.filename",
        ),
        (
            ["+hydra.job_logging.handlers.rotating={class:logging.handlers.RotatingFileHandler,filename:CANARY}"],
            "hydra.job_logging.handlers.rotating.filename",
        ),
        (["hydra/hydra_logging=hydra_debug"], "hydra.hydra_logging.handlers.file.filename"),  # the launch dir's
        (
            ["+hydra.job_logging.handlers.net={class:logging.handlers.SocketHandler,host:localhost,port:9}"],
            "hydra.job_logging.handlers.net.class",
        ),
        (
            ["hydra.job_logging.handlers.console.class=logging.handlers.SysLogHandler"],
            "hydra.job_logging.handlers.console.class",
        ),
        (
            ["+hydra.job_logging.handlers.buffer={class:logging.handlers.MemoryHandler,capacity:1,target:file}"],
            "hydra.job_logging.handlers.buffer.class",
        ),
        (
            ["+hydra.hydra_logging.formatters.simple.class=logging.handlers.DatagramHandler"],
            "hydra.hydra_logging.formatters.simple.class",
        ),
        (["hydra.output_subdir=CANARY"], "hydra.output_subdir"),
        (["hydra.output_subdir=../canary"], "hydra.output_subdir"),
    ],
)
def test_a_logging_handler_that_writes_outside_the_run_dir_or_connects_is_refused(
    tmp_path: Path, overrides: list[str], key: str
) -> None:
    from app.launch import check_overrides

    canary = tmp_path / "canary"
    given = [o.replace("CANARY", str(canary)) for o in overrides]
    _, problems = check_overrides([*given, f"hydra.run.dir={tmp_path / 'run'}"])
    assert [p.key for p in problems] == [key], problems
    assert not canary.exists() and not (tmp_path / "run").exists()


def test_attributes_set_on_a_handler_are_refused(tmp_path: Path) -> None:
    from app.launch import check_overrides

    handler = "    class: logging.FileHandler\n    filename: ${hydra.runtime.output_dir}/a.log\n    delay: true\n"
    handler += f"    .:\n      baseFilename: {tmp_path / 'canary.log'}\n"
    _, problems = check_overrides(["hydra/job_logging=evil"], config_dir=str(logging_dir(tmp_path, handler)))
    assert [p.key for p in problems] == ["hydra.job_logging.handlers.file.."]


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["hydra/job_logging=disabled"],
        ["hydra/job_logging=none"],
        ["hydra/job_logging=stdout"],
        ["hydra/hydra_logging=disabled"],
        ["hydra/hydra_logging=none"],
        ["hydra.job_logging.handlers.file.filename=train.log", "hydra.job.chdir=true"],
        ["hydra.job_logging.handlers.file.filename=${hydra.runtime.output_dir}/logs/train.log"],
        ["hydra.output_subdir=null"],
        ["-m", "trainer.epochs=1,2"],
    ],
)
def test_hydras_logging_options_and_a_log_in_the_run_dir_still_pass(overrides: list[str]) -> None:
    from app.launch import check_overrides

    multirun = overrides[:1] == ["-m"]
    assert check_overrides(overrides[multirun:], multirun=multirun)[1] == []


@pytest.mark.cli
def test_the_real_launch_refuses_a_log_file_outside_the_run_dir(tmp_path: Path) -> None:
    from tests.conftest import TINY, run_cli

    handler = f"    class: logging.FileHandler\n    filename: {tmp_path / 'canary.log'}\n"
    conf = logging_dir(tmp_path, handler)
    result = run_cli("-cd", str(conf), "hydra/job_logging=evil", *TINY, "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("Refused:"), result.stdout + result.stderr
    assert "hydra.job_logging.handlers.file.filename" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "canary.log").exists() and not (tmp_path / "out").exists()
