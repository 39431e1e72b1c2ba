"""The README stays true: CI runs its test command, and its Python examples run."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_quick_start_test_command() -> None:
    quick_start = README.split("## Quick start")[1].split("\n## ")[0]
    commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)]
    assert len(commands) == 2, "the Quick start is exactly two commands"
    assert "app.train" in commands[0] and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_python_examples_run(tmp_path: Path) -> None:
    logged = ""
    for block in code_blocks("python"):
        result = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{block}\n{result.stderr}"
        logged += result.stderr
    run = tmp_path / "my_run"
    assert (run / "summary.json").exists() and (run / "config.yaml").exists()
    # train() from Python logs what the CLI logs, on the console and in train.log
    line = "[app.train][INFO] - epoch 1/1  train loss"
    assert line in logged and line in (run / "train.log").read_text()


def test_python_examples_type_check(tmp_path: Path) -> None:
    # mypy --strict, as on the app: what the README shows a Python user is typed, not only run.
    files = []
    for index, block in enumerate(code_blocks("python")):
        path = tmp_path / f"readme_example_{index}.py"
        path.write_text(block)
        files.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
