"""The command line as users type it: real subprocesses, real run dirs."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import ROOT, TINY, console_script, run_cli

CAPTURE: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 120}

EPOCH_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.cli
def test_tiny_run_writes_every_artefact(tiny_run: dict[str, Any]) -> None:
    run_dir: Path = tiny_run["dir"]
    hydra_dir = run_dir / ".hydra"
    composed = yaml.safe_load((hydra_dir / "config.yaml").read_text())
    assert composed["dataset"]["image"]["size"] == 64
    assert yaml.safe_load((hydra_dir / "overrides.yaml").read_text())[0] == TINY[0]
    assert (hydra_dir / "hydra.yaml").exists()

    log = (run_dir / "train.log").read_text()  # named after the job, not _implementations
    assert log.count("epoch ") >= 2 and "best val acc" in log

    rows = read_metrics(run_dir)
    assert list(rows[0]) == EPOCH_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["val_acc"]) <= 1.0 and float(r["images_per_s"]) > 0 for r in rows)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"]["epoch"] == 2
    assert summary["best"]["val_acc"] == max(float(r["val_acc"]) for r in rows)

    for name in ["last.pt", "best.pt"]:
        checkpoint = torch.load(run_dir / "checkpoints" / name, weights_only=True)
        assert {"format", "model", "optimizer", "scaler", "epoch", "steps", "rng", "config"} <= set(checkpoint)
        assert checkpoint["config"]["dataset"]["image"]["size"] == 64
        assert checkpoint["config"]["trainer"]["device"] == "auto"
        assert any(key.startswith("head.") for key in checkpoint["model"])
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2
    assert not list(run_dir.rglob("*.tmp"))
    assert (run_dir / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["epochs"] == 2


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One basic sweep over the two heads, its jobs in sweep/0 (small) and sweep/1 (large)."""
    cwd = tmp_path_factory.mktemp("heads")
    result = run_cli("-m", "classifier=small,large", *TINY, "trainer.epochs=1", "hydra.sweep.dir=sweep", cwd=cwd)
    return cwd / "sweep", result


@pytest.fixture(scope="module")
def console_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One run through the installed console script, with a + and a ~ override and a relative
    hydra.run.dir; returns (the launch dir, the result)."""
    cwd = tmp_path_factory.mktemp("console")
    result = run_cli(
        "+debug=fast",
        "~scheduler",
        "dataset=fake",
        "hydra.run.dir=outputs/custom_folder",
        cwd=cwd,
        program=[console_script("app-train")],
    )
    return cwd, result


@pytest.mark.cli
@pytest.mark.extended
def test_large_head_trains(sweep: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    sweep_dir, result = sweep
    assert result.returncode == 0, result.stderr
    checkpoint = torch.load(sweep_dir / "1/checkpoints/last.pt", weights_only=True)  # job 1: classifier=large
    assert checkpoint["config"]["classifier"]["_args_"][2]["_target_"] == "torch.nn.Dropout"
    assert "head.6.weight" in checkpoint["model"]  # seven layers: Linear ReLU Dropout x2 + Linear


@pytest.mark.cli
@pytest.mark.extended
def test_multirun_writes_one_complete_run_dir_per_point(sweep: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    sweep_dir, result = sweep
    assert result.returncode == 0, result.stderr
    for index, head in enumerate(["small", "large"]):
        run_dir = sweep_dir / str(index)
        assert yaml.safe_load((run_dir / ".hydra/overrides.yaml").read_text())[0] == f"classifier={head}"
        for artefact in ["train.log", "metrics.csv", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"]:
            assert (run_dir / artefact).exists(), f"{run_dir / artefact} missing"


@pytest.mark.cli
def test_run_dir_is_chosen_with_hydra_run_dir(console_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    cwd, result = console_run
    assert result.returncode == 0, result.stderr
    assert (cwd / "outputs/custom_folder/summary.json").exists()
    assert [p.name for p in (cwd / "outputs").iterdir()] == ["custom_folder"]  # no dated run dir beside it


@pytest.mark.cli
def test_plus_adds_a_group_and_tilde_removes_one(console_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    cwd, result = console_run
    assert result.returncode == 0, result.stderr
    out = cwd / "outputs/custom_folder"
    composed = yaml.safe_load((out / ".hydra/config.yaml").read_text())
    assert composed["trainer"]["epochs"] == 1  # from +debug=fast
    assert composed["scheduler"] is None
    lrs = {row["lr"] for row in read_metrics(out)}
    assert lrs == {"0.0001"}


@pytest.mark.cli
def test_cfg_job_prints_the_composed_config_without_running(tmp_path: Path) -> None:
    result = run_cli("--cfg", "job", "--resolve", "classifier=large", "dataset.classes=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["classifier"]["_args_"][-1]["out_features"] == 3
    assert cfg["classifier"]["_args_"][0]["in_features"] == 9216
    assert not (tmp_path / "outputs").exists()


@pytest.mark.cli
def test_help_lists_groups_and_their_options(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for line in [
        "classifier: large, small",
        "dataset: cifar10, digits, fake, folder",
        "feature_extractor: alexnet, convnext_tiny, efficientnet_b0, mobilenet_v3_small, resnet18, resnet50, vgg11_bn,",
        "optimizer: adam, adamw, sgd",
        "scheduler: constant, cosine, onecycle, step",
        "trainer: default",
        "logger: csv, tensorboard",
        "debug: fast, overfit, profile",
    ]:
        assert line in result.stdout


# Lines that each need one optional extra, and the extra's name
NEED_EXTRAS = [
    ("app-train -m hydra/launcher=joblib optimizer.lr=1e-4,1e-3", "joblib"),
    ("app-train -m hydra/launcher=slurm_ddp optimizer.lr=1e-4,1e-3", "submitit"),
    ("app-train -m hydra/sweeper=optuna 'optimizer.lr=interval(1e-4,1e-2)'", "optuna"),  # not: add hydra/sweeper=
    ("app-train -m +hparams_search=lr_wd", "optuna"),
    ("app-train logger=tensorboard", "tensorboard"),
]


@pytest.mark.cli
def test_without_the_extras_each_option_that_needs_one_names_its_install_command(tmp_path: Path) -> None:
    from app.configs import OPTIONS_OF_EXTRAS

    def without_extras(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tests.without_extras", *args]
        return subprocess.run(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, **CAPTURE)

    help_text = without_extras("app-train", "--help").stdout
    assert "submitit_local, submitit_slurm, slurm_ddp [submitit: not installed]" in help_text
    for group, options in OPTIONS_OF_EXTRAS.items():
        line = next(line for line in help_text.splitlines() if line.startswith(f"{group}: "))
        assert all(option in line for option in options), (group, line)
    (tmp_path / "needs.sh").write_text("\n".join(line for line, _ in NEED_EXTRAS) + "\n")
    lint = without_extras("app-check", "--lint", "needs.sh")
    assert lint.returncode == 0 and "Traceback" not in lint.stderr, lint.stderr
    assert lint.stdout.count("not checked here: it needs an optional package that is not installed") == 5
    strict = without_extras("app-check", "--strict", "--lint", "needs.sh")
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    reports = strict.stderr.split("needs.sh:")[1:]
    assert len(reports) == len(NEED_EXTRAS)
    for report, (_, extra) in zip(reports, NEED_EXTRAS, strict=True):
        assert f"pip install -e '.[{extra}]'" in report and "Refused: 1 problem" in report, report
        assert "add hydra/sweeper=optuna" not in report


def test_the_options_of_extras_are_the_projects_extras_and_registered_where_installed() -> None:
    import tomllib

    from hydra.core.config_store import ConfigStore

    import app.launch  # noqa: F401  (Hydra's own and the plugins' options registered)
    from app.configs import OPTIONS_OF_EXTRAS, SEARCHES

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(OPTIONS_OF_EXTRAS["hparams_search"]) == set(SEARCHES)
    for group, options in OPTIONS_OF_EXTRAS.items():
        for option, extra in options.items():
            assert any(dep.startswith(extra.package) for dep in extras[extra.name]), (extra, extras[extra.name])
            assert extra.installed()  # the test extras hold them all
            if group.startswith("hydra/"):
                from hydra.core.plugins import Plugins

                Plugins.instance()  # the plugins' scan registers their options
                assert f"{option}.yaml" in ConfigStore.instance().list(group), (group, option)


REFUSED = [
    ("dataset.classes=0.5", "dataset.classes"),
    ("dataset.image.size=abc", "dataset.image.size"),
    ("dataset.clases=3", "dataset.clases"),
    ("classifier=medium", "classifier"),
    ("trainer.device=gpu", "trainer.device"),
]


@pytest.mark.cli
@pytest.mark.parametrize(("override", "key"), REFUSED)
def test_bad_override_is_refused_before_anything_runs(tmp_path: Path, override: str, key: str) -> None:
    result = run_cli(override, "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert key in result.stderr
    assert not (tmp_path / "out").exists()  # no run dir, so no checkpoint or metrics


@pytest.mark.cli
def test_console_script_runs_the_same_app(console_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    cwd, result = console_run  # app-train, the installed console script
    assert result.returncode == 0, result.stderr
    out = cwd / "outputs/custom_folder"
    assert (out / "train.log").exists() and (out / "summary.json").exists()


@pytest.mark.cli
def test_shell_completion_suggests_group_options(tmp_path: Path) -> None:
    app_train = console_script("app-train")
    env = {**os.environ, "COMP_LINE": "app-train classifier="}
    result = subprocess.run([app_train, "-sc", "query=bash"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"classifier=large", "classifier=small"}


@pytest.mark.cli
@pytest.mark.extended
def test_folder_dataset_trains_from_disk(tmp_path: Path, image_folder: Path) -> None:
    result = run_cli(
        "dataset=folder",
        f"dataset.root={image_folder}",
        "dataset.classes=3",
        "dataset.image.size=64",
        "trainer.epochs=1",
        "trainer.batch_size=4",
        "hydra.run.dir=out",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = read_metrics(tmp_path / "out")
    assert len(rows) == 1 and float(rows[0]["images_per_s"]) > 0
