"""mypy --strict passes on the project, and flags the config mistakes it exists to catch."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MUST_FAIL = sorted((ROOT / "tests" / "typing_must_fail").glob("*.py"))


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.cli
def test_mypy_strict_passes_on_app_and_tests() -> None:
    result = mypy()  # files = app, tests (mypy.ini)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


@pytest.fixture(scope="module")
def must_fail_errors() -> dict[str, str]:
    """mypy's errors for every must-fail snippet, checked in one run, keyed by file name."""
    result = mypy(*[str(path.relative_to(ROOT)) for path in MUST_FAIL])
    errors: dict[str, str] = {path.name: "" for path in MUST_FAIL}
    for line in result.stdout.splitlines():
        match = re.match(r"tests/typing_must_fail/(\w+\.py):\d+: error: (.*)", line)
        if match:
            errors[match.group(1)] += match.group(2) + "\n"
    return errors


def test_there_are_snippets_that_must_fail() -> None:
    assert len(MUST_FAIL) >= 5


@pytest.mark.cli
@pytest.mark.parametrize("snippet", MUST_FAIL, ids=lambda path: path.stem)
def test_snippet_fails_for_the_expected_reason(snippet: Path, must_fail_errors: dict[str, str]) -> None:
    expected = snippet.read_text().splitlines()[0].removeprefix("# expect: ")
    assert expected in must_fail_errors[snippet.name], must_fail_errors[snippet.name]
