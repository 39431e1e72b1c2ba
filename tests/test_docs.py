"""The README stays true: CI runs its test command, and its Python examples run."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_quick_start_test_command() -> None:
    quick_start = README.split("## Quick start")[1].split("\n## ")[0]
    commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)]
    assert len(commands) == 2, "the Quick start is exactly two commands"
    assert "app.train" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
    assert ".venv/bin/python -m pytest -m extended" in ci, "the tier the default run leaves out runs in CI"


# One interpreter for all the blocks: it imports the heavy third-party packages once (torch,
# torchvision: ~3.5 s a process on 2 cores), then runs each block in a child forked from that
# state, one after the other in the same directory (a block may read what an earlier one wrote):
# each block starts from the same fresh state, with no module of the app imported yet and none
# of an earlier block's names or imports, as `python -c BLOCK` does.
RUN_BLOCKS = """
import json, logging, os, sys, traceback
import hydra, omegaconf, torch, torchvision  # noqa: F401

for index, block in enumerate(json.load(sys.stdin)):
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            exec(compile(block, f"<README python block {index}>", "exec"), {"__name__": "__main__"})
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:
            traceback.print_exc()
            status = 1
        logging.shutdown(); sys.stdout.flush(); sys.stderr.flush()
        os._exit(status)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status != 0:
        print(f"README_BLOCK_FAILED {index} {status}", file=sys.stderr)
        sys.exit(1)
"""


# A print in a README block whose line ends in a comment states what it prints: the comment, up
# to a ";" that starts prose about it. The blocks run with each such print checked against it.
PRINTED = re.compile(r"^(\s*)print\((.*)\)  # ([^;]+?)(;.*)?$", flags=re.M)
EXPECT = """
def __expect__(expected, *values):
    printed = " ".join(map(str, values))
    assert printed == expected, f"the README says this prints {expected!r}; it prints {printed!r}"
    print(printed)
"""


def with_printed_checked(block: str) -> str:
    return EXPECT + PRINTED.sub(lambda m: f"{m[1]}__expect__({m[3]!r}, {m[2]})", block)


def test_readme_prints_are_checked_where_they_say_what_they_print() -> None:
    printed = [m[3] for block in code_blocks("python") for m in PRINTED.finditer(block)]
    assert "['trainer.epoch', 'dataset.classes']" in printed and len(printed) >= 4, printed
    checked = with_printed_checked('print(1 + 1, "x")  # 2 x; prose\n')
    exec(compile(checked, "<check>", "exec"), {})
    with pytest.raises(AssertionError, match="the README says this prints '3'; it prints '2'"):
        exec(compile(with_printed_checked("print(1 + 1)  # 3\n"), "<check>", "exec"), {})


@pytest.mark.cli
@pytest.mark.extended  # every README block in one interpreter: 6-8 s
def test_python_examples_run(tmp_path: Path) -> None:
    blocks = [with_printed_checked(block) for block in code_blocks("python")]
    result = subprocess.run(
        [sys.executable, "-c", RUN_BLOCKS],
        input=json.dumps(blocks),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    failed = re.search(r"README_BLOCK_FAILED (\d+)", result.stderr)
    assert failed is None, f"{blocks[int(failed.group(1))]}\n{result.stderr}"
    assert result.returncode == 0, result.stderr
    logged = result.stderr
    run = tmp_path / "my_run"
    assert (run / "summary.json").exists() and (run / "config.yaml").exists()
    # train() from Python logs what the CLI logs, on the console and in train.log
    line = "[app.train][INFO] - epoch 1/1  train loss"
    assert line in logged and line in (run / "train.log").read_text()
