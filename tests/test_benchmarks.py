"""The benchmarks the README names run to their tables at tiny sizes (``--smoke``: the same code
a full run runs), each from a folder that is not the checkout and writing nothing there but the
JSON it is told to write; throughput's two sides start alike, and its check of that tells a
difference apart; ``benchmarks/gpu.sh`` says in one line that it needs a GPU where torch sees
none; and the benchmarks stay as short as the app's modules."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def run_benchmark(script: str, *args: str, cwd: Path) -> tuple[str, dict[str, Any]]:
    """``python benchmarks/SCRIPT ARGS --json RESULT`` from ``cwd``: its stdout and its JSON,
    after checking it exited 0 and left nothing in ``cwd`` but that JSON."""
    out = cwd / "result.json"
    command = [sys.executable, str(BENCHMARKS / script), *args, "--json", str(out)]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert [p.name for p in cwd.iterdir()] == ["result.json"]  # no run dir, checkpoint or cache where it ran
    return result.stdout, json.loads(out.read_text())


def table_line(stdout: str, starts: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith(starts)]
    assert len(lines) == 1, f"one line starting {starts!r} in:\n{stdout}"
    return lines[0]


@pytest.mark.cli
@pytest.mark.extended
def test_the_launch_benchmark_times_all_five_launches_at_tiny_sizes(tmp_path: Path) -> None:
    stdout, report = run_benchmark("launch.py", "--smoke", cwd=tmp_path)
    assert report["repeats"] == 1 and report["warmup"] == 0
    assert [r["status"] for r in report["rows"]] == ["ok"] * 5  # each exited as expected
    for row in report["rows"]:
        assert 0 < row["seconds"]["median"] < row["torch_seconds"]["median"]
        line = table_line(stdout, row["command"])
        assert line.endswith(("met", "MISSED")) and f"{row['ratio']:.3f}" in line


@pytest.mark.cli
@pytest.mark.extended
def test_the_throughput_benchmark_runs_every_phase_twice_over_from_identical_starts(tmp_path: Path) -> None:
    stdout, report = run_benchmark("throughput.py", "--smoke", cwd=tmp_path)
    assert [c["mode"] for c in report["comparisons"]] == ["full fine-tuning", "frozen extractor"]
    assert all(c["same_weights_and_data"] for c in report["comparisons"])
    assert "identical" in table_line(stdout, "same start") and "differ" not in stdout
    for c in report["comparisons"]:
        assert c["app"]["median"] > 0 and c["plain"]["median"] > 0
        assert f"{c['ratio']:.3f}" in table_line(stdout, c["mode"])
    # the memory phase: two whole runs of each side, each into its own run dir (the second app
    # run into the first's was refused by the app's run-dir guard)
    memory = report["memory"]
    assert len(memory["app_max_rss_mib"]) == len(memory["plain_max_rss_mib"]) == 2
    assert min(memory["app_max_rss_mib"] + memory["plain_max_rss_mib"]) > 100  # torch alone is more
    assert f"{memory['ratio']:.3f}" in table_line(stdout, "peak RSS, whole run")
    assert report["loader"]["median"] > 0 and table_line(stdout, "data loader alone")
    assert table_line(stdout, "loop only, tiny model")


@pytest.mark.extended
def test_the_throughput_fairness_check_tells_a_changed_image_label_or_weight_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import throughput

    args = throughput.parse_args(["--smoke"])
    app = throughput.build_app(args, frozen=False)
    plain, _, (images, labels) = throughput.build_plain(args, frozen=False)
    assert throughput.same_start(app, plain, (images, labels))
    nudged = images.clone()
    nudged[0, 0, 0, 0] += 1e-6
    assert not throughput.same_start(app, plain, (nudged, labels))
    assert not throughput.same_start(app, plain, (images, labels.roll(1)))
    with torch.no_grad():
        next(plain.head.parameters()).view(-1)[0] += 1e-6
    assert not throughput.same_start(app, plain, (images, labels))


@pytest.mark.cli
@pytest.mark.extended
def test_the_feature_cache_benchmark_runs_to_its_table_at_tiny_sizes(tmp_path: Path) -> None:
    stdout, report = run_benchmark("feature_cache.py", "--smoke", cwd=tmp_path)
    assert (report["train_images"], report["val_images"]) == (16, 8)
    for key in ("recomputed_epoch_seconds", "cached_epoch_seconds", "head_alone_seconds"):
        assert len(report[key]) == 1 and report[key][0] > 0
    assert f"{report['ratio']:.1f} x" in table_line(stdout, "recomputed / cached")
    assert f"{report['over_head_alone']:.2f} x" in table_line(stdout, "cached / head alone")
    assert table_line(stdout, "building the cache (once)") and table_line(stdout, "reading it back")


@pytest.mark.cli
@pytest.mark.extended
def test_the_data_benchmark_runs_to_its_table_at_tiny_sizes(tmp_path: Path) -> None:
    stdout, report = run_benchmark("data.py", "--smoke", cwd=tmp_path)
    assert report["images"] == 16 and report["size"] == 64
    assert report["decode_limit_one_process"] > 0 and report["torchvision_decode_one_process"] > 0
    loaders = [f"augment={a} workers={w}" for a in ("none", "light") for w in (0, 1, 2)]
    assert list(report["loader"]) == loaders
    for name, row in report["loader"].items():
        assert row["images_per_s"] > 0 and f"{row['of_limit']:.2f} of the limit" in table_line(
            stdout, f"loader, {name}"
        )


@pytest.mark.cli
@pytest.mark.extended
def test_the_threads_benchmark_times_each_setting_idle_and_busy_and_stops_its_competitors(tmp_path: Path) -> None:
    stdout, report = run_benchmark("threads.py", "--smoke", cwd=tmp_path)
    own = report["machine"]["threads"]
    assert [c["busy"] for c in report["conditions"]] == [0, 1]
    for c in report["conditions"]:
        assert [r["setting"] for r in c["rows"]] == ["torch's own", "physical cores", "cores - 1"]
        cores_less_one = max(1, len(os.sched_getaffinity(0)) - 1)
        assert [r["threads"] for r in c["rows"]] == [own, report["machine"]["physical_cores"], cores_less_one]
        assert all(r["median"] > 0 for r in c["rows"]) and c["rows"][0]["speed"] == 1.0
        assert len(c["competing_pids"]) == c["busy"]
        for pid in c["competing_pids"]:  # the competing process is gone, not left spinning
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    assert table_line(stdout, "idle, others") and table_line(stdout, "busy (1 competing), others")
    assert stdout.count("cores - 1") == 2
    default = report["app_default_threads"]
    assert default == (own if report["omp_num_threads"] else max(1, min(own, len(os.sched_getaffinity(0)) - 1)))
    assert f"trainer.threads null (the app's default) is {default} thread" in stdout


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


def test_no_benchmark_module_or_function_outgrows_a_reading() -> None:
    too_long = []  # the app's limits (tests/test_layers.py): 450 lines a module, 60 a function
    for path in sorted(BENCHMARKS.glob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 450:
            too_long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > 60:
                    too_long.append(f"{path.name}:{node.lineno} {node.name}()")
    assert not too_long, f"over 450 lines a module or 60 a function: {too_long}"
