"""The GPU tier's script runs to its table: on this CPU at tiny sizes (the same code a GPU runs),
and ``benchmarks/gpu.sh`` says in one line that it needs a GPU where torch sees none."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.cli
@pytest.mark.extended
def test_the_gpu_benchmark_runs_to_its_table_at_tiny_sizes_on_a_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    command = [sys.executable, "benchmarks/gpu.py", "--device", "cpu", "--smoke", "--json", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    measured = {(r["what"], r["setting"]) for r in rows if r.get("images_per_s", 0) > 0}
    assert {("default job", "fp32"), ("default job", "bf16"), ("resnet50", "bf16")} <= measured
    assert {what for what, _ in measured} == {"default job", "resnet50", "loader"}
    assert [r["setting"] for r in rows if r["what"] == "ddp"] == ["nccl: needs 2 GPUs, has 0"]
    table = result.stdout.split("images/s", 1)[1]
    assert all(r["setting"] in table for r in rows)  # one table, a line per row


@pytest.mark.cli
def test_the_gpu_script_says_it_needs_a_gpu_where_torch_sees_none(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: benchmarks/gpu.sh runs, it does not refuse")
    result = subprocess.run(
        ["bash", "benchmarks/gpu.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "OUT": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "benchmarks/gpu.sh: torch sees no CUDA GPU here; on a CPU, python benchmarks/gpu.py --device cpu --smoke"
        " checks the script"
    ]
    assert not list(tmp_path.iterdir())  # nothing written
