"""mypy --strict passes on the project; and for a user who installs the package (a wheel, into a
fresh environment, checked from a folder outside the checkout) it accepts every correct program
(``tests/typing/must_pass/`` and the README's Python blocks) and flags every mistake of
``tests/typing/must_fail/`` for the reason its first line states."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_docs import code_blocks

TYPING = ROOT / "tests" / "typing"
MUST_FAIL = sorted((TYPING / "must_fail").glob("*.py"))
MUST_PASS = sorted((TYPING / "must_pass").glob("*.py"))
README_BLOCKS = {f"readme_block_{index}.py": block for index, block in enumerate(code_blocks("python"))}
CHECKPOINT = next(
    (ROOT / "tests" / "data").glob("checkpoint-*.pt")
)  # AlexNet on digits, as an earlier release wrote it
EXPECT = re.compile(r"# expect: \[([\w-]+)\] (.*)")


def mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.cli
@pytest.mark.extended
def test_mypy_strict_passes_on_app_tests_and_benchmarks() -> None:
    result = mypy("--config-file", "mypy.ini")  # files = app, hydra_plugins, tests, benchmarks
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def installed(base: Path) -> Path:
    """A fresh environment with the package installed from its wheel, as a user installs it, and
    the dependencies of this one on its path (not the checkout): its python."""
    source = base / "source"
    for part in ("app", "hydra_plugins"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", base / "dist", source], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", base / "env"], check=True)
    python = base / "env" / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    # torch, hydra, ... from this environment: its directory only, none of its .pth files (the
    # editable install's, which would put the checkout on the path)
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((base / "dist").glob("app-*.whl"))
    subprocess.run([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], check=True)
    return python


@pytest.fixture(scope="module")
def user_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy --strict's errors, by file, for every snippet checked as a user's code: one run."""
    base = tmp_path_factory.mktemp("user")
    python = installed(base)
    code = base / "code"  # outside the checkout: nothing of it on mypy's path
    code.mkdir()
    where = subprocess.run([python, "-c", "import app; print(app.__file__)"], cwd=code, capture_output=True, text=True)
    package = Path(where.stdout.strip()).parent
    assert package.is_relative_to(base / "env") and (package / "py.typed").exists(), where
    for snippet in [*MUST_FAIL, *MUST_PASS]:
        shutil.copy(snippet, code / snippet.name)
    for name, block in README_BLOCKS.items():
        (code / name).write_text(block)
    names = sorted(path.name for path in code.glob("*.py"))
    result = mypy("--strict", "--python-executable", str(python), "--cache-dir", str(base / "cache"), *names, cwd=code)
    assert result.returncode in (0, 1) and "note: " not in result.stderr, result.stdout + result.stderr
    errors: dict[str, list[str]] = {name: [] for name in names}
    for line in result.stdout.splitlines():
        match = re.match(r"(\w+\.py):\d+: error: (.*)", line)
        if match:
            errors[match.group(1)].append(match.group(2))
    assert sum(map(len, errors.values())) > 0, result.stdout  # mypy did check them
    return errors


def test_the_sets_are_broad() -> None:
    assert len(MUST_FAIL) >= 40 and len(MUST_PASS) + len(README_BLOCKS) >= 15
    assert all(EXPECT.match(path.read_text().splitlines()[0]) for path in MUST_FAIL)


@pytest.mark.cli
@pytest.mark.extended  # one mypy run over an installed wheel: 12-17 s
@pytest.mark.parametrize("snippet", MUST_FAIL, ids=lambda path: path.stem)
def test_a_users_mistake_is_flagged_for_its_reason(snippet: Path, user_errors: dict[str, list[str]]) -> None:
    match = EXPECT.match(snippet.read_text().splitlines()[0])
    assert match is not None
    code, message = match.groups()
    found = user_errors[snippet.name]
    assert any(message in error and error.endswith(f"[{code}]") for error in found), found
    assert all(error.endswith(f"[{code}]") for error in found), found  # nothing else is wrong in it


@pytest.mark.cli
@pytest.mark.extended  # one mypy run over an installed wheel: 12-17 s
@pytest.mark.parametrize("name", [p.name for p in MUST_PASS] + list(README_BLOCKS))
def test_a_correct_program_type_checks(name: str, user_errors: dict[str, list[str]]) -> None:
    assert user_errors[name] == []


@pytest.mark.usefixtures("own_registrations")
@pytest.mark.parametrize("snippet", MUST_PASS, ids=lambda path: path.stem)
def test_a_correct_program_runs(snippet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What mypy accepts works: each must-pass program runs (in-process, in an empty folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_EXAMPLE_CHECKPOINT", os.fspath(CHECKPOINT))
    exec(compile(snippet.read_text(), str(snippet), "exec"), {"__name__": "__main__"})


@pytest.mark.cli
def test_the_readmes_install_is_typed_to_mypy_from_any_folder(tmp_path: Path) -> None:
    """This environment's install (the README's editable one, pip install -e: a plain .pth file,
    pyproject.toml's package-dir) is found by mypy outside the checkout, with its annotations."""
    (tmp_path / "mine.py").write_text("from app.configs import TrainerConfig\n\nTrainerConfig(epoch=3)\n")
    result = mypy("--strict", "--cache-dir", str(tmp_path / "cache"), "mine.py", cwd=tmp_path)
    assert 'Unexpected keyword argument "epoch" for "TrainerConfig"' in result.stdout, result.stdout + result.stderr
