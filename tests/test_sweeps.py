"""Sweeps: one summary per sweep dir, failed points that stop nothing, tags, app-summary."""

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import summary
from tests.conftest import TINY, run_cli

ONE_EPOCH = [*TINY, "trainer.epochs=1"]
ONE_BATCH = [*ONE_EPOCH, "dataset.train_size=8"]  # about 3 s a point on 2 cores


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def markdown_rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split(" | ")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split(" | ")))) for line in lines[1:]]


def app_summary(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.summary", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 2x2 basic sweep of tiny runs, tagged."""
    cwd = tmp_path_factory.mktemp("grid")
    result = run_cli(
        "-m",
        "optimizer.lr=1e-4,1e-3",
        "trainer.seed=0,1",
        *ONE_BATCH,
        "tags=[grid,tiny]",
        "hydra.sweep.dir=sweep",
        cwd=cwd,
    )
    return {"cwd": cwd, "dir": cwd / "sweep", "result": result}


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A sweep whose first point's loss turns NaN at its second batch (lr 1e30), inside the job."""
    cwd = tmp_path_factory.mktemp("failing")
    result = run_cli("-m", "optimizer.lr=1e30,1e-4", *ONE_EPOCH, "hydra.sweep.dir=sweep", cwd=cwd)
    return {"cwd": cwd, "dir": cwd / "sweep", "result": result}


@pytest.mark.cli
def test_a_2x2_sweep_writes_its_summary(grid: dict[str, Any]) -> None:
    assert grid["result"].returncode == 0, grid["result"].stderr
    sweep: Path = grid["dir"]
    rows = read_csv(sweep / "summary.csv")
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]  # in job order
    assert [(r["optimizer.lr"], r["trainer.seed"]) for r in rows] == [
        ("0.0001", "0"),
        ("0.0001", "1"),
        ("0.001", "0"),
        ("0.001", "1"),
    ]
    for row in rows:
        assert row["status"] == "completed" and row["error"] == ""
        run = json.loads((sweep / row["run_dir"] / "summary.json").read_text())
        assert float(row["best_val_acc"]) == pytest.approx(run["best"]["val_acc"], abs=1e-4)
        assert float(row["final_val_acc"]) == pytest.approx(run["final"]["val_acc"], abs=1e-4)
        assert int(row["best_epoch"]) == run["best"]["epoch"] and float(row["seconds"]) > 0
        overrides = yaml.safe_load((sweep / row["run_dir"] / ".hydra/overrides.yaml").read_text())
        assert row["overrides"] == " ".join(overrides)

    ranked = markdown_rows(sweep / "summary.md")
    accs = [float(r["best_val_acc"]) for r in ranked]
    assert len(ranked) == 4 and accs == sorted(accs, reverse=True)  # best first
    winner = next(r for r in rows if r["job"] == ranked[0]["job"])
    text = (sweep / "summary.md").read_text()
    # the winner's whole override line, a command to paste, above the table
    assert f"```bash\n{shlex.join(['app-train', *winner['overrides'].split()])}\n```" in text
    assert text.index("app-train ") < text.index("| job |")
    assert (sweep / "summary.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.cli
def test_tags_are_kept_in_summary_json_and_summary_csv(grid: dict[str, Any]) -> None:
    sweep: Path = grid["dir"]
    assert json.loads((sweep / "0/summary.json").read_text())["tags"] == ["grid", "tiny"]
    assert {r["tags"] for r in read_csv(sweep / "summary.csv")} == {"grid,tiny"}


@pytest.mark.cli
def test_a_tag_with_a_space_is_refused(tmp_path: Path) -> None:
    result = run_cli("tags=['two words']", "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "tags" in result.stderr and "without spaces or commas" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.cli
@pytest.mark.extended
def test_a_failing_point_stops_no_other_and_the_sweep_exits_1(failing: dict[str, Any]) -> None:
    result, sweep = failing["result"], failing["dir"]
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "1 of 2 sweep jobs did not complete (job 0)" in result.stderr
    rows = read_csv(sweep / "summary.csv")
    assert [r["status"] for r in rows] == ["failed", "completed"]  # job 1 ran after the failure
    assert rows[0]["error"].startswith("NonFiniteLoss: epoch 1: the training loss is")
    assert rows[0]["best_val_acc"] == ""
    status = json.loads((sweep / "0/status.json").read_text())
    assert status["status"] == "failed" and status["error"] == rows[0]["error"] and "optimizer.lr" in status["hint"]
    assert "The run failed: NonFiniteLoss" in (sweep / "0/train.log").read_text()  # its log keeps the paragraph
    assert json.loads((sweep / "1/status.json").read_text())["status"] == "completed"
    ranked = markdown_rows(sweep / "summary.md")
    assert [r["job"] for r in ranked] == ["1", "0"]  # a failed job after every completed one
    assert "app-train optimizer.lr=0.0001" in (sweep / "summary.md").read_text().split("| job |")[0]


@pytest.mark.cli
@pytest.mark.extended
def test_optuna_records_a_failed_trial_and_searches_on(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    # seed 0 draws 1e-4, then 1e30. (Not the grid sampler: hydra-optuna-sweeper 1.3 crashes when
    # the grid's last trial fails, raised or not: GridSampler calls Study.stop() outside a trial.)
    result = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.direction=maximize",
        "optimizer.lr=choice(1e30,1e-4)",
        *ONE_EPOCH,
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Failed experiment: Return value must be float-castable. Got 'None'." in result.stdout  # a FAIL trial
    rows = read_csv(tmp_path / "sweep/summary.csv")
    assert sorted((r["optimizer.lr"], r["status"]) for r in rows) == [("0.0001", "completed"), ("1e+30", "failed")]
    found = yaml.safe_load((tmp_path / "sweep/optimization_results.yaml").read_text())  # the search ended normally
    done = next(r for r in rows if r["status"] == "completed")
    assert found["best_value"] == pytest.approx(float(done["best_val_acc"]), abs=1e-4)


@pytest.mark.cli
@pytest.mark.extended
def test_ctrl_c_in_a_sweep_job_stops_the_whole_sweep(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.train",
            "-m",
            "trainer.seed=0,1",
            *[o for o in TINY if not o.startswith("trainer.epochs=")],
            "trainer.epochs=200",
            "hydra.sweep.dir=sweep",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log, deadline = tmp_path / "sweep/0/train.log", time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and "epoch 1/200" in log.read_text()):
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)  # a person pressed Ctrl-C: not a failed point to skip
    output, _ = child.communicate(timeout=120)
    assert child.returncode == 130 and "Traceback" not in output, output
    assert not (tmp_path / "sweep/1").exists()  # the next point never started
    status = json.loads((tmp_path / "sweep/0/status.json").read_text())
    assert status["status"] == "stopped" and status["error"].startswith("SIGINT: stopped")
    assert app_summary("sweep", cwd=tmp_path).returncode == 1  # rebuilt after the stop: not completed
    assert read_csv(tmp_path / "sweep/summary.csv")[0]["status"] == "stopped"


@pytest.mark.cli
def test_app_summary_rebuilds_a_sweep(grid: dict[str, Any]) -> None:
    sweep: Path = grid["dir"]
    written = {name: (sweep / name).read_bytes() for name in ["summary.csv", "summary.md", "summary.png"]}
    for name in written:
        (sweep / name).unlink()
    result = app_summary(str(sweep), cwd=grid["cwd"])
    assert result.returncode == 0, result.stderr
    assert {name: (sweep / name).read_bytes() for name in written} == written  # the same files again


@pytest.mark.cli
@pytest.mark.extended
def test_app_summary_merges_two_sweeps(grid: dict[str, Any], failing: dict[str, Any], tmp_path: Path) -> None:
    sweep: Path = grid["dir"]
    merged = tmp_path / "merged"
    result = app_summary(str(sweep), str(failing["dir"]), "--out", str(merged), cwd=tmp_path)
    assert result.returncode == 1  # one of them failed
    rows = read_csv(merged / "summary.csv")
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "0", "1"]
    assert [r["status"] for r in rows].count("failed") == 1
    assert (merged / "summary.png").exists() and (merged / "summary.md").exists()


def test_app_summary_refuses_in_one_paragraph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert summary.main([str(tmp_path / "a"), "--out", str(tmp_path)]) == 1
    assert summary.main([str(tmp_path), str(tmp_path)]) == 1
    assert summary.main([str(tmp_path)]) == 1  # no run dir in it
    err = capsys.readouterr().err
    assert "not a directory" in err and "--out DIR" in err and "no run dir" in err
    assert not (tmp_path / "summary.csv").exists()
