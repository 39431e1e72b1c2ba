"""Training throughput of one run over 1, 2, ... processes (torchrun, DDP), same global batch.

Each count runs the app itself under ``torchrun --standalone`` for a few epochs and reads the last
epoch's ``images_per_s`` from its ``metrics.csv`` (training images of all processes a second, as
rank 0 times its epoch; the first epoch, which warms up, is left out).

    python benchmarks/ddp.py --device cpu --processes 1 2            # gloo; threads split over the processes
    python benchmarks/ddp.py --device cuda --processes 1 2 4 8       # nccl, a GPU per process
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from launch import app_env


def run(processes: int, device: str, overrides: list[str], where: Path) -> dict[str, float]:
    """One run with ``processes`` processes: its last epoch's throughput and the wall time."""
    threads = [] if device == "cuda" else [f"trainer.threads={max(1, (os.cpu_count() or 1) // processes)}"]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "app.train",
        *overrides,
        *threads,
        f"trainer.device={device}",
        f"hydra.run.dir={where}",
    ]
    began = time.perf_counter()
    # app_env: this benchmark's app first on PYTHONPATH, the rest kept (gpu.sh puts the app's
    # packages there: replacing PYTHONPATH with the checkout alone lost them)
    result = subprocess.run(command, cwd=where.parent, capture_output=True, text=True, env=app_env())
    if result.returncode != 0:
        sys.exit(f"{processes} processes failed:\n{result.stdout}{result.stderr}")
    with (where / "metrics.csv").open() as f:
        last = list(csv.DictReader(f))[-1]
    return {
        "processes": processes,
        "images_per_s": float(last["images_per_s"]),
        "epoch_seconds": float(last["seconds"]),
        "wall_seconds": round(time.perf_counter() - began, 1),
    }


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("overrides", nargs="*", help="app-train overrides (default: digits, AlexNet, 3 epochs)")
    return parser


def main() -> None:
    args = get_args_parser().parse_args()
    overrides = args.overrides or [
        "trainer.epochs=3",
        "trainer.batch_size=64",
        "trainer.num_workers=0",
        "trainer.feature_cache=false",
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.processes:
            rows.append(run(n, args.device, overrides, Path(tmp) / f"p{n}"))
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["images_per_s"] / rows[0]["processes"]
    print(f"\n{'processes':>9} {'images/s':>9} {'speed-up':>8} {'efficiency':>10}")
    for row in rows:
        speedup = row["images_per_s"] / rows[0]["images_per_s"]
        print(
            f"{row['processes']:>9} {row['images_per_s']:>9.1f} {speedup:>7.2f}x "
            f"{row['images_per_s'] / row['processes'] / base:>9.0%}"
        )
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "overrides": overrides, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
