"""Launch latency: how long the commands that should never import torch take, as whole processes.

Each command is timed against ``python -c "import torch, torchvision"`` in the same run, the two
alternated (command, torch, torch, command, ...) so that a slower or faster spell of the machine
hits both; the ratio is median(command) / median(torch). Target: every ratio <= 0.15.

    python benchmarks/launch.py                  # about 2 minutes on 2 CPU cores
    python benchmarks/launch.py --smoke          # one pair each, no warm-up: checks the script (a test runs it)
    python benchmarks/launch.py --repeats 9 --device cuda --precision bf16 --channels-last
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # console scripts are installed beside the interpreter
TARGET = 0.15
TORCH = [sys.executable, "-c", "import torch, torchvision"]


@dataclass
class Command:
    name: str
    argv: list[str]
    expected_rc: int = 0
    env: Optional[dict[str, str]] = None
    missing: Optional[str] = None  # why it cannot run here, if it cannot


def commands(trainer: list[str]) -> list[Command]:
    """The five launches the issue names; ``trainer`` overrides ride along where they make sense."""
    train = [sys.executable, "-m", "app.train"]
    check = BIN / "app-check"
    return [
        Command("--help", [*train, "--help", *trainer]),
        Command("--cfg job", [*train, "--cfg", "job", *trainer]),
        Command("refused override (dataset.classes=0.5)", [*train, "dataset.classes=0.5", *trainer], 1),
        Command(
            "app-check -m classifier=small,large",
            [str(check), "-m", "classifier=small,large", *trainer],
            missing=None if check.exists() else f"not available ({check} is not installed)",
        ),
        Command(
            "completion query (app-train classifier=)",
            [str(BIN / "app-train"), "-sc", "query=bash"],
            env={"COMP_LINE": "app-train classifier="},
        ),
    ]


def app_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """This process's environment for a command a benchmark runs: the folder of the ``app`` this
    benchmark imports first on ``PYTHONPATH`` (found without importing it), so the command runs
    that app from any cwd, whichever checkout is installed; no full Hydra errors, as a user runs
    it; ``extra`` added."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    spec = importlib.util.find_spec("app")
    if spec is not None and spec.origin is not None:
        paths = [str(Path(spec.origin).parents[1]), *env.get("PYTHONPATH", "").split(os.pathsep)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    return {**env, **(extra or {})}


def run(argv: list[str], cwd: Path, extra_env: Optional[dict[str, str]] = None) -> tuple[float, float, int, str]:
    """``(wall seconds, max RSS MiB, exit status, stderr)`` of one whole process."""
    env = app_env(extra_env)
    start = time.perf_counter()
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    stderr = child.stderr.read().decode(errors="replace")
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in every earlier child).
    # Linux starts a child's max RSS at its parent's RSS at fork; this script stays far smaller
    # than the commands (it never imports torch or Hydra), so the figure is the command's own.
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, child.returncode, stderr


def spread(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "max": round(max(xs), 4)}


def measure(command: Command, repeats: int, warmup: int, cwd: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"command": command.name, "argv": command.argv[1:], "env": command.env}
    if command.missing:
        return {**row, "status": command.missing}
    times: dict[str, list[float]] = {"command": [], "torch": []}
    rss: list[float] = []
    for i in range(warmup + repeats):
        # alternate which goes first, so neither always runs on a cache the other just warmed
        pair = [("command", command.argv), ("torch", TORCH)]
        for which, argv in pair if i % 2 == 0 else pair[::-1]:
            seconds, mib, rc, stderr = run(argv, cwd, command.env if which == "command" else None)
            expected = command.expected_rc if which == "command" else 0
            if rc != expected:
                return {**row, "status": f"failed: exit {rc} (expected {expected}): {stderr.strip()[-300:]}"}
            if i >= warmup:
                times[which].append(seconds)
                if which == "command":
                    rss.append(mib)
    ratio = statistics.median(times["command"]) / statistics.median(times["torch"])
    paired = [c / t for c, t in zip(times["command"], times["torch"])]
    return {
        **row,
        "status": "ok",
        "seconds": spread(times["command"]),
        "torch_seconds": spread(times["torch"]),
        "max_rss_mib": round(statistics.median(rss), 1),
        "ratio": round(ratio, 3),
        "ratio_range": [round(min(paired), 3), round(max(paired), 3)],
        "met": ratio <= TARGET,
    }


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="--repeats 1 --warmup 0: checks the script, not speed")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command and of torch")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="adds trainer.device=...")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="adds trainer.precision=...")
    parser.add_argument("--channels-last", action="store_true", help="adds trainer.channels_last=true")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "launch.json")
    return parser


def main() -> None:
    args = get_args_parser().parse_args()
    if args.smoke:
        args.repeats, args.warmup = 1, 0

    trainer = [f"trainer.device={args.device}"] if args.device else []
    trainer += [f"trainer.precision={args.precision}"] if args.precision else []
    trainer += ["trainer.channels_last=true"] if args.channels_last else []
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:  # nothing a command writes lands in the repo
        rows = [measure(c, args.repeats, args.warmup, Path(tmp)) for c in commands(trainer)]
    report = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "repeats": args.repeats,
        "warmup": args.warmup,
        "baseline": " ".join(TORCH[1:]),
        "target": f"ratio <= {TARGET}",
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\n{report['machine']}, {report['repeats']} runs each, load average "
        f"{report['load_average_before']} -> {report['load_average_after']}\n"
    )
    print(
        f"{'command':<42}{'median s':>9}{'min-max s':>14}{'RSS MiB':>9}{'torch s':>9}"
        f"{'ratio':>7}  {'(range)':<12}target {TARGET}"
    )
    for r in report["rows"]:
        if r["status"] != "ok":
            print(f"{r['command']:<42}{r['status']}")
            continue
        s, t = r["seconds"], r["torch_seconds"]
        lo, hi = r["ratio_range"]
        print(
            f"{r['command']:<42}{s['median']:>9.3f}{s['min']:>7.3f}-{s['max']:<6.3f}{r['max_rss_mib']:>9.0f}"
            f"{t['median']:>9.2f}{r['ratio']:>7.3f}  {lo:.3f}-{hi:<6.3f}{'met' if r['met'] else 'MISSED'}"
        )
    print(f"\n{report['seconds']:.0f} s in all")


if __name__ == "__main__":
    main()
