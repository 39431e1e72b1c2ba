"""Shared helpers: the CLI run as a user runs it (a real subprocess), and tiny-run overrides."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
STRICT = "APP_CHECKS_STRICT"  # app.checks.walk.STRICT (this module imports nothing of the app)
_MADE = pytest.StashKey[str]()  # the file this session made for it


def pytest_configure(config: pytest.Config) -> None:
    """A cross-field rule that raises is a bug of the launch check, never a pass: with
    ``APP_CHECKS_STRICT`` naming a file, ``check_config`` writes the rule's error there and
    re-raises it, in this process and in every process a test starts (they inherit it)."""
    if not os.environ.get(STRICT):
        handle, path = tempfile.mkstemp(prefix="app-checks-strict-", suffix=".log")
        os.close(handle)
        os.environ[STRICT] = path
        config.stash[_MADE] = path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session fails when a rule raised anywhere, whatever the test that met it asserted."""
    path = Path(os.environ.get(STRICT, ""))
    raised = path.read_text() if path.is_file() else ""
    if raised:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", f"a cross-field rule of the launch check raised (kept in {path})", red=True)
            reporter.write_line(raised)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.config.stash.get(_MADE, None) == str(path):
        path.unlink()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``cuda`` tests need a GPU that torch sees: skipped without one (``pytest -m cuda`` on a GPU machine)."""
    cuda = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda:
        return
    import torch

    if not torch.cuda.is_available():
        for item in cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch sees none)"))


# A run of a few seconds: tiny fake images (AlexNet needs at least 63 px), two epochs.
TINY = [
    "dataset=fake",
    "dataset.image.size=64",
    "dataset.train_size=16",
    "dataset.val_size=8",
    "trainer.epochs=2",
    "trainer.batch_size=8",
]


def run_cli(
    *args: str, cwd: Path, program: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m app.train ARGS`` in ``cwd``, as a user would type it (no full Hydra errors),
    with ``env`` added to this process's environment."""
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, **(env or {})}
    command = program or [sys.executable, "-m", "app.train"]
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def refused_in_process(
    *args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[object, str, str]:
    """``app.train.main()``, the function ``python -m app.train`` runs, in this process with
    ``sys.argv = ["app-train", *ARGS]`` in ``cwd``: a refusal without starting an interpreter
    (and importing torch) again. A command the check lets through does not run here: Hydra's
    entry point is replaced by a failure. Returns (exit status, stdout, stderr)."""
    import app.train

    def accepted() -> None:
        pytest.fail(f"accepted by the launch check, Hydra would start a job: {args}")

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["app-train", *args])
    monkeypatch.setattr(app.train, "hydra_main", accepted)
    capsys.readouterr()  # drop what came before
    with pytest.raises(SystemExit) as exited:
        app.train.main()
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def console_script(name: str) -> str:
    """The installed console script beside this interpreter (``pip install -e .`` puts it there)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}; run pip install -e .")
    return str(path)


@pytest.fixture
def slurm_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for SLURM's sbatch and srun first on PATH (a SLURM launcher is refused at launch
    where they are missing); this sbatch keeps the script it is given as ``job.sh`` beside
    them and refuses it, so no cluster is reached. The folder they are in."""
    bin_dir = tmp_path / "slurm-bin"
    bin_dir.mkdir()
    for name, text in [("srun", "exit 0"), ("sbatch", f'cp "$1" {bin_dir}/job.sh\nexit 1')]:
        (bin_dir / name).write_text(f"#!/bin/sh\n{text}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ImageFolder dataset on disk: 3 classes of 6 PNG images, one colour per class."""
    from PIL import Image

    root = tmp_path_factory.mktemp("folder")
    for name, colour in [("cat", (200, 30, 30)), ("dog", (30, 200, 30)), ("emu", (30, 30, 200))]:
        (root / name).mkdir()
        for i in range(6):
            shade = tuple(min(255, c + 8 * i) for c in colour)
            Image.new("RGB", (24, 24), shade).save(root / name / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="session")
def cifar10_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cifar-10-batches-py as torchvision extracts it: pickled batches of 10 random
    images (labels 0-9) and their meta, so nothing is downloaded."""
    import pickle

    import numpy as np

    from app import files

    root = tmp_path_factory.mktemp("cifar10")
    (root / files.CIFAR10_FOLDER).mkdir()
    rng = np.random.default_rng(0)
    for name in [*files.CIFAR10_TRAIN, files.CIFAR10_TEST]:
        batch = {"data": rng.integers(0, 256, (10, 3 * 32 * 32), dtype=np.uint8), "labels": list(range(10))}
        (root / files.CIFAR10_FOLDER / name).write_bytes(pickle.dumps(batch))
    (root / files.CIFAR10_FOLDER / files.CIFAR10_META).write_bytes(pickle.dumps({"label_names": CIFAR10_NAMES}))
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One complete tiny CLI run, shared by the tests that inspect its artefacts."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    result = run_cli(*TINY, f"hydra.run.dir={out}", cwd=out.parent)
    assert result.returncode == 0, result.stderr
    return {"dir": out, "result": result}


@pytest.fixture
def own_registrations() -> Iterator[None]:
    """What a test registers as a user would (``app.configs.add_option``, ``add_experiment``,
    ``store(...)``) is gone after it, from the app's store and from Hydra's."""
    from hydra.core.config_store import ConfigStore

    from app.configs import store

    def entries() -> set[tuple[Any, str]]:
        return {(e["group"], e["name"]) for e in store}

    before = entries()
    yield
    for group, name in entries() - before:
        store.delete_entry(group, name)  # also from its queue, if not yet added to Hydra's
        folder = ConfigStore.instance().repo
        for part in (group or "").split("/") if group else []:
            folder = folder[part]
        folder.pop(f"{name}.yaml", None)
