"""Checked means checked: the allow-list holds against every input, every rule applies to the value
the job receives, runs never mix, and whatever goes wrong reads as one paragraph."""

import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import errors, files
from app.checks import ConfigError
from app.launch import check_command, check_overrides, compose_config, parse_command
from tests.conftest import TINY, run_cli

CANARY = "{_target_:os.makedirs,name:canary}"


class Canary:
    """Unpickling it makes the directory ``canary``: what a pickled config could do."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.makedirs, ("canary",)


def yaml_dir(base: Path) -> Path:
    """A config dir with a debug preset and a logging option that would each build the canary."""
    root = base / "conf"
    (root / "debug").mkdir(parents=True)
    (root / "debug" / "evil.yaml").write_text(
        "# @package _global_\nhydra:\n  callbacks:\n    evil:\n      _target_: os.makedirs\n      name: canary\n"
    )
    (root / "hydra" / "job_logging").mkdir(parents=True)
    (root / "hydra" / "job_logging" / "evil.yaml").write_text(
        "version: 1\nformatters:\n  simple:\n    (): os.makedirs\n    name: canary\n"
        "handlers:\n  console:\n    class: logging.StreamHandler\n    formatter: simple\n"
        "root:\n  handlers: [console]\n"
    )
    return root


# Every route found from a string in a config (or a flag) to an import or a call.
ROUTES: dict[str, list[str]] = {
    "typed node's _target_": ["classifier._target_=os.makedirs"],
    "layer written as a dict": [f"classifier._args_=[{CANARY}]"],
    "oc.create as a layer": [f"classifier._args_.1='${{oc.create:{CANARY}}}'"],
    "oc.create inside a layer": [f"classifier._args_=[{{_target_:torch.nn.ReLU,inplace:'${{oc.create:{CANARY}}}'}}]"],
    "oc.decode as a layer": ["classifier._args_.1='${oc.decode:\"{_target_: os.makedirs, name: canary}\"}'"],
    "Hydra callback": [f"+hydra.callbacks.evil={CANARY}"],
    "oc.create as a Hydra callback": [f"+hydra.callbacks.evil='${{oc.create:{CANARY}}}'"],
    "${hydra:} naming a callback's target": [
        "hydra.job.name=os.makedirs",
        "+hydra.callbacks.evil={_target_:'${hydra:job.name}',name:canary}",
    ],
    "launcher": ["hydra.launcher._target_=os.makedirs"],
    "-cd with a preset": ["-cd", "CONF", "+debug=evil"],
    "hydra.searchpath with a preset": ["hydra.searchpath=[file://CONF]", "+debug=evil"],
    "logging config with ()": ["-cd", "CONF", "hydra/job_logging=evil"],
    "logging handler class": [
        "+hydra.job_logging.handlers.evil={class:os.makedirs,name:canary}",
        "hydra.job_logging.root.handlers=[console,evil]",
    ],
    "--experimental-rerun": ["--experimental-rerun", "evil.pkl"],
}


def attempt(name: str, base: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    workdir = base / name.replace(" ", "_").replace("/", "_").replace("$", "").replace("{", "").replace("}", "")
    workdir.mkdir()
    conf = yaml_dir(workdir)
    (workdir / "evil.pkl").write_bytes(pickle.dumps(Canary()))
    argv = [arg.replace("CONF", str(conf)) for arg in ROUTES[name]]
    return run_cli(*argv, *TINY, "hydra.run.dir=out", cwd=workdir), workdir


@pytest.fixture(scope="module")
def attempts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    base = tmp_path_factory.mktemp("routes")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(ROUTES, pool.map(lambda name: attempt(name, base), ROUTES)))


@pytest.mark.cli
@pytest.mark.parametrize("route", ROUTES)
def test_no_route_builds_what_no_registered_config_builds(
    route: str, attempts: dict[str, tuple[subprocess.CompletedProcess[str], Path]]
) -> None:
    result, workdir = attempts[route]
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Refused:") and "Traceback" not in result.stderr
    assert not (workdir / "canary").exists() and not (workdir / "out").exists()


def test_the_canary_would_be_built_without_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The routes above are real: instantiate builds the canary from a resolved interpolation.
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    monkeypatch.chdir(tmp_path)
    instantiate(OmegaConf.create({"x": f"${{oc.create:{CANARY}}}"}).x)
    assert (tmp_path / "canary").is_dir()


IMPORT_ROUTES_IN_PROCESS = [
    (["hydra.job_logging.handlers.console.stream=ext://antigravity.fly"], "hydra.job_logging.handlers.console.stream"),
    (
        [
            "-m",
            "hydra/sweeper=optuna",
            "hydra.sweeper.custom_search_space=os.makedirs",
            "optimizer.lr=interval(1e-5,1e-3)",
        ],
        "hydra.sweeper.custom_search_space",
    ),
    (
        [
            "-m",
            "hydra/sweeper=optuna",
            "hydra.sweeper.sampler._target_=os.makedirs",
            "optimizer.lr=interval(1e-5,1e-3)",
        ],
        "hydra.sweeper.sampler._target_",
    ),
    (["-cp", "/tmp"], "--config-path"),
]


@pytest.mark.parametrize(("argv", "key"), IMPORT_ROUTES_IN_PROCESS)
def test_other_import_routes_are_refused(argv: list[str], key: str) -> None:
    _, problems = check_command(parse_command(argv))
    assert key in {p.key for p in problems}


# ---------------------------------------------------------------------------- values
VALUES = [
    (["dataset.image.size=100000"], "dataset.image.size", "fit in memory"),
    (["dataset.val_fraction=0.999", "dataset.classes=2"], "dataset.val_fraction", "leaves images for training"),
    (["optimizer._partial_=false"], "optimizer._partial_", "_partial_=true"),
    (["scheduler._partial_=false"], "scheduler._partial_", "_partial_=true"),
    (["trainer.seed=4294967296"], "trainer.seed", "< 4294967296"),
    (["hydra.run.dir="], "hydra.run.dir", "a directory for the run's files"),
    (
        ["trainer.epochs=${trainer.batch_size}", "trainer.batch_size=${trainer.epochs}"],
        "trainer.epochs",
        "interpolations that end in a value",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "rule"), VALUES, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_what_the_job_cannot_use_is_refused_with_its_reason(overrides: list[str], key: str, rule: str) -> None:
    _, problems = check_overrides(overrides)
    assert any(p.key == key and rule in p.rule for p in problems), [p.render() for p in problems]


SWEEPS = [
    (["hydra/sweeper=optuna", "optimizer.lr=interval(1e-3,1e-5)"], "optimizer.lr", "low < high"),
    (
        ["hydra/sweeper=optuna", "optimizer.weight_decay=tag(log,interval(0,0.1))"],
        "optimizer.weight_decay",
        "log-scale interval above 0",
    ),
    (["optimizer.lr=interval(1e-5,1e-3)"], "optimizer.lr", "needs a sweeper that samples"),
    (
        ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=0", "optimizer.lr=interval(1e-5,1e-3)"],
        "hydra.sweeper.n_trials",
        ">= 1",
    ),
    (
        ["hydra/sweeper=optuna", "hydra.sweeper.direction=maximise", "optimizer.lr=interval(1e-5,1e-3)"],
        "hydra.sweeper.direction",
        "one of minimize, maximize",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "rule"), SWEEPS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_search_the_sweeper_cannot_run_is_refused(overrides: list[str], key: str, rule: str) -> None:
    _, problems = check_overrides(overrides, multirun=True)
    assert any(p.key == key and rule in p.rule for p in problems), [p.render() for p in problems]


def test_hints_fit_the_case() -> None:
    _, cycle = check_overrides(["trainer.epochs=${trainer.batch_size}", "trainer.batch_size=${trainer.epochs}"])
    assert [p.key for p in cycle] == ["trainer.epochs", "trainer.batch_size"]  # not T_max as well
    assert all("a cycle" in p.hint for p in cycle)
    _, floats = check_overrides(
        ["hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "trainer.epochs=interval(1,5)"], multirun=True
    )
    assert floats and all("int(interval(" in p.hint for p in floats)
    _, resolver = check_overrides(["trainer.epochs=${oc.nev:EPOCHS}"])
    assert "did you mean oc.env?" in resolver[0].hint
    _, reference = check_overrides(["trainer.epochs=${trainer.epoch}"])
    assert "a key that exists" in reference[0].hint


def test_hydra_interpolations_resolve_as_in_the_job(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "images").symlink_to(image_folder)
    monkeypatch.chdir(tmp_path)
    overrides = ["dataset=folder", "dataset.root=${hydra:runtime.cwd}/images", "dataset.classes=3"]
    assert check_overrides(overrides) == (1, [])
    _, per_job = check_overrides(["dataset.train_size=${hydra:job.num}", "classifier=small,large"], multirun=True)
    assert [p.point for p in per_job] == [["dataset.train_size=$\\{hydra\\:job.num\\}", "classifier=small"]]


def test_one_mistake_over_a_large_sweep_is_one_paragraph() -> None:
    # 20 points (each one a composition, ~0.1 s): the report is one paragraph whatever their number
    points, problems = check_overrides(
        ["optimizer.lr=0", "trainer.epochs=range(1,11)", "classifier=small,large"], multirun=True
    )
    from app.checks import render

    report = render(problems, points)
    assert points == 20 and report.startswith("Refused: 1 problem in 20 of 20 sweep points")
    assert "[20 sweep points, the first:" in report and report.count("rule: ") == 1  # one paragraph


ANY_COMMAND = given(
    argv=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "classifier._args_.1='${oc.create:{_target_:os.makedirs,name:canary}}'",
                    "+hydra.callbacks.x={_target_:os.makedirs,name:canary}",
                    "hydra.job.name=os.makedirs",
                    "+hydra.callbacks.y={_target_:'${hydra:job.name}',name:canary}",
                    "hydra.run.dir=",
                    "hydra.run.dir=out",
                    "trainer.epochs=${trainer.seed}",
                    "dataset.classes=${oc.env:NOPE,3}",
                    "optimizer.lr=${oc.decode:'0.1'}",
                    "optimizer.lr=nan",
                    "hydra.job.chdir=true",
                    "hydra/sweeper=optuna",
                    "hydra.sweeper.n_trials=0",
                    "hydra/job_logging=stdout",
                    "hydra.job_logging.handlers.console.class=os.makedirs",
                    "-m",
                    "--cfg=job",
                    "trainer.overwrite=true",
                    "dataset.image.size=${trainer.batch_size}",
                    "+debug=fast",
                    "~scheduler",
                ]
            ),
            st.tuples(
                st.sampled_from(
                    [
                        "trainer.epochs",
                        "dataset.classes",
                        "classifier._args_.0.out_features",
                        "hydra.job.name",
                        "hydra.run.dir",
                        "optimizer.lr",
                    ]
                ),
                st.sampled_from(
                    [
                        "${trainer.seed}",
                        "${oc.create:{a:1}}",
                        "${hydra:job.num}",
                        "${now:%H}",
                        "${oc.select:nope,2}",
                        "${..x}",
                        "3",
                        "-1",
                        "1e9",
                    ]
                ),
            ).map(lambda kv: f"{kv[0]}={kv[1]}"),
        ),
        min_size=1,
        max_size=4,
    )
)
FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


# The default tier draws 20 commands (~0.25 s each); the slow tier (pytest -m slow) draws 200.
@settings(max_examples=20, deadline=None, suppress_health_check=FUZZ_HEALTH)
@ANY_COMMAND
def test_any_command_is_refused_cleanly_or_checked_clean(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused_cleanly_or_checked_clean(argv, tmp_path, monkeypatch)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=FUZZ_HEALTH)
@ANY_COMMAND
def test_any_command_is_refused_cleanly_or_checked_clean_thoroughly(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused_cleanly_or_checked_clean(argv, tmp_path, monkeypatch)


def refused_cleanly_or_checked_clean(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        command = parse_command(argv)
    except ConfigError as error:  # flags after overrides: Hydra's parser refuses them too
        assert [p.key for p in error.problems] == ["command line"]
        return
    points, problems = check_command(command)  # must not raise, whatever the input
    for problem in problems:
        assert problem.key and problem.rule and problem.hint and "Traceback" not in problem.render()
    assert not list(tmp_path.iterdir())  # a check creates nothing, accepted or refused
    if not problems and "-m" not in argv and "--cfg=job" not in argv:
        cfg = compose_config(argv)  # what Python callers get: the same verdict
        assert cfg.trainer.epochs >= 1


# ------------------------------------------------------------------------------ data
@pytest.mark.cli
@pytest.mark.extended
def test_a_run_dir_with_an_earlier_run_is_refused_unless_overwritten(tmp_path: Path, tiny_run: dict[str, Any]) -> None:
    shutil.copytree(tiny_run["dir"], tmp_path / "out")  # the earlier run: a finished 2-epoch CLI run
    metrics = (tmp_path / "out/metrics.csv").read_bytes()
    assert len(metrics.splitlines()) == 3
    again = run_cli(*TINY, "trainer.epochs=2", "hydra.run.dir=out", cwd=tmp_path)
    assert again.returncode == 1 and "trainer.overwrite=true" in again.stderr
    assert (tmp_path / "out/metrics.csv").read_bytes() == metrics  # nothing of the first run lost
    replaced = run_cli(*TINY, "trainer.epochs=1", "hydra.run.dir=out", "trainer.overwrite=true", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert len((tmp_path / "out/metrics.csv").read_text().splitlines()) == 2  # header + 1 epoch, nothing mixed


def test_a_run_dir_a_live_run_holds_is_refused(tmp_path: Path) -> None:
    with files.run_lock(str(tmp_path / "out")):
        _, problems = check_overrides([f"hydra.run.dir={tmp_path / 'out'}", "trainer.overwrite=true"])
        assert [p.key for p in problems] == ["hydra.run.dir"] and str(os.getpid()) in problems[0].hint
        with pytest.raises(errors.RunDirBusy):
            from app.train import run

            run(compose_config(["+debug=fast"]), tmp_path / "out")
    assert files.lock_holder(str(tmp_path / "out")) is None  # let go with the run


def test_default_run_dirs_differ_for_runs_started_in_the_same_second() -> None:
    from app.launch import app_hydra
    from app.launch.hydra_errors import _compose

    with app_hydra():
        first, second = (str(_compose([], "config")[0].hydra.run.dir) for _ in range(2))  # type: ignore[union-attr]
    assert first != second and re.fullmatch(r"outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-\d{6}", first)


def test_temporary_files_are_this_processs_own(tmp_path: Path) -> None:
    from app.files import write_atomically

    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_text("{}")

    write_atomically(tmp_path / "summary.json", write)
    assert str(os.getpid()) in seen[0].name and seen[0].parent == tmp_path
    assert (tmp_path / "summary.json").read_text() == "{}" and not seen[0].exists()


# --------------------------------------------------------------------------- messages
@pytest.mark.cli
@pytest.mark.extended
def test_an_error_inside_the_job_is_one_paragraph(tmp_path: Path) -> None:
    (tmp_path / "broken.pt").write_text("not a state dict")
    result = run_cli(*TINY, "feature_extractor.checkpoint=broken.pt", "hydra.run.dir=out", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert "The run failed: " in output and "hint: " in output


def test_app_check_takes_every_flag_app_train_takes(tmp_path: Path) -> None:
    conf = yaml_dir(tmp_path)
    for argv in (
        ["-cd", str(conf), "+debug=fast"],
        ["--cfg=job"],
        ["--info", "searchpath"],
        ["--resolve", "-c", "job"],
    ):
        assert check_command(parse_command(argv)) == (1, []), argv


@pytest.mark.cli
def test_a_command_line_the_parser_refuses_is_a_refusal_like_any_other(tmp_path: Path) -> None:
    for argv in (["--cfg", "jobs"], ["--bogus"], ["classifier=large", "--cfg", "job", "dataset.classes=3"]):
        result = run_cli(*argv, cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.startswith("Refused:"), argv
        assert "command line=" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.cli
def test_a_killed_run_keeps_every_finished_epoch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    child = subprocess.Popen(
        [sys.executable, "-m", "app.train", *TINY, "trainer.epochs=200", "hydra.run.dir=out"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "out" / "train.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and "epoch 3/200" in log.read_text()):
        time.sleep(0.05)
    child.kill()  # SIGKILL: no handler runs
    child.wait(timeout=60)
    logged = len(re.findall(r"epoch \d+/200  train loss", log.read_text()))
    rows = (tmp_path / "out/metrics.csv").read_text().splitlines()[1:]
    assert len(rows) >= 3 and len(rows) >= logged  # every epoch logged as done is in the file
    assert all(len(row.split(",")) == 8 for row in rows)  # and no row is cut short
    assert torch_load_ok(tmp_path / "out/checkpoints/last.pt")  # the last one written whole


def torch_load_ok(path: Path) -> bool:
    import torch

    return "model" in torch.load(path, weights_only=True)


CLI_PIECES = [
    "trainer.epochs=${trainer.seed}",
    "dataset.classes=${trainer.epochs}",
    "optimizer.lr=nan",
    "classifier._args_.1='${oc.create:{_target_:os.makedirs,name:canary}}'",
    "hydra.job.chdir=true",
    "+hydra.callbacks.x={_target_:os.makedirs,name:canary}",
    "hydra.run.dir=",
    "~scheduler",
    "optimizer=sgd",
    "trainer.overwrite=true",
    "dataset.train_size=${hydra:job.num}",
    "--cfg=job",
    "hydra/job_logging=stdout",
    "dataset.val_size=${oc.env:VAL_SIZE,8}",
]


CLI_COMMANDS = given(pieces=st.lists(st.sampled_from(CLI_PIECES), min_size=1, max_size=3, unique=True))


# A process a command (~0.6 s refused, ~6 s run): 3 in the default tier, 25 in the slow tier.
@pytest.mark.cli
@pytest.mark.extended
@settings(max_examples=3, deadline=None, suppress_health_check=FUZZ_HEALTH)
@CLI_COMMANDS
def test_the_real_cli_refuses_cleanly_or_runs_cleanly(
    pieces: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    refuses_cleanly_or_runs_cleanly(pieces, tmp_path_factory)


@pytest.mark.cli
@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=FUZZ_HEALTH)
@CLI_COMMANDS
def test_the_real_cli_refuses_cleanly_or_runs_cleanly_thoroughly(
    pieces: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    refuses_cleanly_or_runs_cleanly(pieces, tmp_path_factory)


def refuses_cleanly_or_runs_cleanly(pieces: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("fuzz")
    flags = [p for p in pieces if p.startswith("--")]
    result = run_cli(
        *flags, *TINY, "trainer.epochs=1", "hydra.run.dir=out", *[p for p in pieces if p not in flags], cwd=workdir
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not (workdir / "canary").exists()
    if result.returncode != 0:
        assert result.returncode == 1 and result.stderr.startswith("Refused:") and not (workdir / "out").exists()
    else:
        assert {p.name for p in workdir.iterdir()} <= {"out"}  # nothing written outside the run dir
