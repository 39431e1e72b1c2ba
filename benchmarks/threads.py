"""Torch's thread count (``trainer.threads``) for the default job, on an idle machine and beside
competing CPU-bound processes.

The settings:

* *torch's own*: the count torch picks by itself, what ``trainer.threads`` null meant before
  this benchmark (now ``app.training.build.default_threads``: torch's own, less one if it took
  every core; the table says which row that is here);
* *physical cores*: one thread per physical core this process may run on (``/proc/cpuinfo``'s
  core ids over ``os.sched_getaffinity``);
* *cores - 1*: the cores this process may run on, less one (at least one).

Each is the job ``app.training.build.build`` makes for ``fit`` from ``app.launch.compose_config``
with no overrides but ``trainer.device=cpu`` (what ``python -m app.train`` runs: AlexNet on
digits at 124 px, batch 32, the whole model trained, precision auto); the jobs are built once and
each epoch (its training pass and its validation pass with ``engine.run_pass``, as ``fit`` runs
them) starts by setting its thread count, torch's own being the count torch had when this
process started (a fresh process's). For each condition, *idle* and *busy* (``--busy``
processes running ``while True: pass`` the whole time), one untimed warm-up round, then
``--repeats`` rounds of an epoch of each setting, the order reversed every other round; the
figure is the median epoch, and ``speed`` is median(torch's own) / median(setting).

    python benchmarks/threads.py                      # idle, then one competing process: ~4 minutes on 2 cores
    python benchmarks/threads.py --busy 0 1 2         # idle, one and two competing processes
    python benchmarks/threads.py --smoke              # tiny sizes: checks the script (a test runs it)
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from feature_cache import epoch
from throughput import machine

from app.launch import compose_config
from app.training.build import Job, build, default_threads
from app.training.distributed import Ranks

HERE = Path(__file__).resolve().parent
TORCH_OWN = torch.get_num_threads()  # before anything sets it: what a fresh process's torch uses
SPIN = "while True: pass"
# --smoke: AlexNet's smallest input (63 px) rounded up, 8 + 4 images in batches of 4, one round
SMOKE = ["dataset.image.size=64", "dataset.train_size=8", "dataset.val_size=4", "trainer.batch_size=4"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: checks the script, not speed")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each setting, per condition")
    parser.add_argument(
        "--busy", type=int, nargs="+", default=[0, 1], help="competing processes of each condition (default: 0 1)"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "threads.json")
    parser.add_argument("overrides", nargs="*", help="app-train overrides of the default job")
    return parser


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (``/proc/cpuinfo``'s distinct
    ``physical id`` / ``core id`` pairs); the CPU count where that file says nothing."""
    allowed, cores, cpu, package = os.sched_getaffinity(0), set(), -1, "0"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "processor":
                cpu = int(value)
            elif key == "physical id":
                package = value
            elif key == "core id" and cpu in allowed:
                cores.add((package, value))
    return len(cores) or len(allowed)


def settings() -> dict[str, int]:
    """Each setting's thread count."""
    return {
        "torch's own": TORCH_OWN,
        "physical cores": physical_cores(),
        "cores - 1": max(1, len(os.sched_getaffinity(0)) - 1),
    }


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since it started (``/proc/stat``), and this
    process's own with its reaped children's: their difference over a span is everyone else's."""
    with contextlib.suppress(OSError, ValueError), open("/proc/stat") as stat:
        user, nice, system, _, _, irq, softirq = (int(x) for x in stat.readline().split()[1:8])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    return 0.0


def own_busy_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@contextlib.contextmanager
def competing(count: int) -> Iterator[list[int]]:
    """``count`` CPU-bound processes running until the block ends (stopped however it ends)."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        yield [p.pid for p in spinners]
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def condition(jobs: dict[str, Job], threads: dict[str, int], busy: int, repeats: int) -> dict[str, Any]:
    """Epoch seconds of each setting beside ``busy`` competing processes, alternated round by round."""
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    load_before, began = round(os.getloadavg()[0], 2), time.perf_counter()
    machine_before, own_before = machine_busy_seconds(), own_busy_seconds()
    with competing(busy) as pids:
        for round_ in range(repeats + 1):  # round 0 warms up oneDNN's kernels at each count
            for name in list(jobs)[:: 1 if round_ % 2 else -1]:
                torch.set_num_threads(threads[name])
                taken = epoch(jobs[name], round_)
                if round_:
                    seconds[name].append(taken)
    others = machine_busy_seconds() - machine_before - (own_busy_seconds() - own_before)
    others /= (time.perf_counter() - began) * len(os.sched_getaffinity(0))
    own = statistics.median(seconds["torch's own"])
    rows = [
        {
            "setting": name,
            "threads": threads[name],
            "epoch_seconds": [round(s, 3) for s in xs],
            "median": round(statistics.median(xs), 3),
            "speed": round(own / statistics.median(xs), 2),
        }
        for name, xs in seconds.items()
    ]
    return {
        "busy": busy,
        "competing_pids": pids,
        "load_average_before": load_before,
        "load_average_after": round(os.getloadavg()[0], 2),
        # the cores' time that neither this process nor its competing ones used: another user's
        "others_cpu_share": round(max(0.0, others), 3),
        "rows": rows,
    }


def main() -> None:
    args = get_args_parser().parse_args()
    overrides = [*(SMOKE if args.smoke else []), *args.overrides, "trainer.device=cpu"]
    repeats = 1 if args.smoke else args.repeats
    if any(count < 0 for count in args.busy) or repeats < 1:
        raise SystemExit("threads.py: --busy counts are 0 or more, --repeats 1 or more")
    threads = settings()
    jobs = {name: build(compose_config(overrides), Ranks(), torch.device("cpu")) for name in threads}
    began = time.perf_counter()
    conditions = [condition(jobs, threads, busy, repeats) for busy in args.busy]
    job = next(iter(jobs.values()))
    report = {
        "machine": {**machine("cpu"), "threads": TORCH_OWN, "physical_cores": physical_cores()},
        "app_default_threads": default_threads(TORCH_OWN, os.environ),  # trainer.threads null, here
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "overrides": overrides,
        "train_images": len(job.splits.train),
        "val_images": len(job.splits.val),
        "precision": job.step.precision,
        "repeats": repeats,
        "seconds": round(time.perf_counter() - began, 1),
        "conditions": conditions,
    }
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"\n{m['cpu']}, {m['cores']} cores ({m['physical_cores']} physical), torch {m['torch']}; "
        f"{report['train_images']} train + {report['val_images']} val images, {report['precision']}, "
        f"{report['repeats']} epochs each\n"
    )
    print(f"{'condition':<32}{'setting':<20}{'threads':>7}{'epoch s':>9}  {'(range)':<15}{'speed':>6}")
    for c in report["conditions"]:
        label = "idle" if c["busy"] == 0 else f"busy ({c['busy']} competing)"
        label += f", others {100 * c['others_cpu_share']:.0f}%"
        for r in c["rows"]:
            xs = r["epoch_seconds"]
            print(
                f"{label:<32}{r['setting']:<20}{r['threads']:>7}{r['median']:>9.3f}  "
                f"{min(xs):.3f}-{max(xs):<9.3f}{r['speed']:>5.2f}x"
            )
            label = ""
    print(
        f"\n{report['seconds']:.0f} s in all; speed: median epoch of torch's own / of the setting; others: the "
        "cores' time used by neither this benchmark nor its competing processes"
    )
    n = report["app_default_threads"]
    print(f"trainer.threads null (the app's default) is {n} thread{'s' if n > 1 else ''} here")


if __name__ == "__main__":
    main()
