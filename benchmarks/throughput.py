"""Training throughput: the app's step and loop against a minimal hand-written PyTorch loop.

Both run in this process, alternated round by round after a warm-up round, on the same model,
head, data, batch size, thread count and precision:

* app   — ``app.training.engine.run_pass`` on the job ``app.training.build.build`` makes from
          ``app.launch.compose_config``'s config: what ``fit`` trains (model, optimizer, schedule,
          loader; the frozen extractor without its feature cache);
* plain — ``benchmarks/plain_loop.py``: torchvision + ``DataLoader(TensorDataset)`` + Adam.

Full fine-tuning and the frozen extractor are reported separately, then the app's data loader
alone (it must outrun the model by 3x so it never starves it), then the peak memory (max RSS)
of a whole default-style run of each as its own process. Sizes, repeats and device are flags.

    python benchmarks/throughput.py                       # the app's defaults vs fp32 by hand, ~2.5 min
    python benchmarks/throughput.py --smoke               # tiny sizes: checks the script, not speed (a test runs it)
    python benchmarks/throughput.py --precision fp32      # parity: the same precision on both sides
    python benchmarks/throughput.py --device cuda --precision bf16 --plain-precision bf16 --channels-last
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, cast

import plain_loop
import torch
from launch import app_env, cpu_model
from torch.utils.data import DataLoader

from app import data
from app.launch import compose_config
from app.training import engine
from app.training.build import Job, build
from app.training.distributed import Ranks

HERE = Path(__file__).resolve().parent
Batches = DataLoader[tuple[torch.Tensor, torch.Tensor]]


# --smoke: AlexNet's smallest input (63 px) rounded up, 2 batches of 4, one timed round; the
# whole runs of the memory phase on 16 + 8 images, still two of each (each into its own run dir)
SMOKE = {"size": 64, "batch_size": 4, "batches": 2, "repeats": 1, "memory_train_size": 16, "memory_val_size": 8}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--smoke", action="store_true", help=f"tiny sizes, checks the script, not speed: {SMOKE} over the others"
    )
    parser.add_argument("--extractor", choices=["alexnet", "resnet18"], default="alexnet")
    parser.add_argument("--size", type=int, default=124, help="image side in px (default 124)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20, help="batches per timed pass (digits has 44 of 32)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per implementation")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="the app's trainer.precision (default auto, the app's default)",
    )
    parser.add_argument(
        "--plain-precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="the hand-written loop's (default fp32: what one writes by hand)",
    )
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--modes", type=modes, default="full,frozen", help="comma list of full, frozen")
    parser.add_argument("--memory-repeats", type=int, default=2, help="whole-process runs each; 0 skips")
    parser.add_argument("--memory-epochs", type=int, default=1)
    parser.add_argument("--memory-train-size", type=int, help="training images of a whole run (default: all)")
    parser.add_argument("--memory-val-size", type=int, help="validation images of a whole run (default: all)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "throughput.json")
    return parser


def modes(text: str) -> list[str]:
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    if not chosen or set(chosen) - {"full", "frozen"}:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma list of full and frozen, e.g. full,frozen")
    return chosen


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    args = get_args_parser().parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def app_overrides(args: argparse.Namespace, frozen: bool) -> list[str]:
    return [
        f"feature_extractor={args.extractor}",
        f"dataset.image.size={args.size}",
        f"trainer.batch_size={args.batch_size}",
        f"trainer.device={args.device}",
        f"trainer.precision={args.precision}",
        f"trainer.channels_last={str(args.channels_last).lower()}",
        f"trainer.freeze_extractor={str(frozen).lower()}",
        f"trainer.threads={args.threads}",  # build sets it: both sides run at --threads
    ]


def build_app(args: argparse.Namespace, frozen: bool) -> Job:
    """The job the app runs for these overrides, built by ``app.training.build`` as ``fit`` gets
    it; the frozen extractor without the feature cache, so both sides run it every step."""
    overrides = app_overrides(args, frozen) + [
        f"dataset.train_size={args.batches * args.batch_size}",
        "trainer.feature_cache=false",
    ]
    cfg = compose_config(overrides)
    return build(cfg, Ranks(), engine.resolve_device(cfg.trainer.device.value))


def build_plain(
    args: argparse.Namespace, frozen: bool
) -> tuple[plain_loop.Plain, plain_loop.Batches, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)  # the app's trainer.seed: both start from the same weights
    train_x, train_y, _, _ = plain_loop.load_digits(args.size, train_size=args.batches * args.batch_size)
    device = torch.device(args.device)
    batches = plain_loop.loader(train_x, train_y, args.batch_size, True, device.type == "cuda")
    plain = plain_loop.Plain(args.extractor, device, args.plain_precision, args.channels_last, frozen)
    return plain, batches, (train_x, train_y)


def same_start(app: Job, plain: plain_loop.Plain, plain_data: tuple[torch.Tensor, torch.Tensor]) -> bool:
    """That the comparison is fair: identical initial weights, and identical training images and
    labels (bit for bit: the same split, resize and standardisation)."""
    plain_params = [*plain.body.parameters(), *plain.head.parameters()]
    weights = all(torch.equal(a, b) for a, b in zip(app.model.parameters(), plain_params, strict=True))
    train = cast(data.ImageTensorDataset, app.splits.train)
    return weights and torch.equal(train.images, plain_data[0]) and torch.equal(train.labels, plain_data[1])


def timed(run: Callable[[], int], device: torch.device) -> tuple[float, float]:
    """``(images/s, peak device MiB)`` of one pass; ``run`` returns images seen, after syncing."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    images = run()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
    return images / seconds, peak


@dataclass
class Series:
    """Per-round images/s of one implementation, and its summary."""

    images_per_s: list[float] = field(default_factory=list)
    cuda_peak_mib: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.images_per_s)

    def summary(self) -> dict[str, Any]:
        return {
            "median": round(self.median, 1),
            "min": round(min(self.images_per_s), 1),
            "max": round(max(self.images_per_s), 1),
            "runs": [round(x, 1) for x in self.images_per_s],
            "cuda_peak_mib": round(self.cuda_peak_mib, 1),
        }


def compare(args: argparse.Namespace, frozen: bool) -> dict[str, Any]:
    """App and plain passes alternated (ABBA order, so drift favours neither) after a warm-up round."""
    app = build_app(args, frozen)
    plain, plain_batches, plain_data = build_plain(args, frozen)
    fair = same_start(app, plain, plain_data)
    device = app.step.device

    def run_app() -> int:
        return engine.run_pass(app.forward, app.train_loader, app.step, app.training).images

    def run_plain() -> int:
        return plain.train_pass(plain_batches)

    results = {"app": Series(), "plain": Series()}
    runs = {"app": run_app, "plain": run_plain}
    for round_ in range(args.repeats + 1):  # round 0 warms up caches, allocators and autotuners
        order = ["app", "plain"] if round_ % 2 else ["plain", "app"]
        for name in order:
            ips, peak = timed(runs[name], device)
            if round_ > 0:
                results[name].images_per_s.append(ips)
                results[name].cuda_peak_mib = max(results[name].cuda_peak_mib, peak)
    paired = [a / p for a, p in zip(results["app"].images_per_s, results["plain"].images_per_s)]
    # The same precision: the app's loop must cost nothing (parity). Its default against fp32 by
    # hand: the speed the default gives for free.
    target = 0.95 if app.step.precision == args.plain_precision else 1.5
    return {
        "app_precision": app.step.precision,
        "plain_precision": args.plain_precision,
        "mode": "frozen extractor" if frozen else "full fine-tuning",
        "same_weights_and_data": fair,
        "app": results["app"].summary(),
        "plain": results["plain"].summary(),
        "ratio": round(results["app"].median / results["plain"].median, 3),
        "ratio_min": round(min(paired), 3),
        "ratio_max": round(max(paired), 3),
        "target": f">= {target}",
        "met": results["app"].median / results["plain"].median >= target,
    }


class TinyModel(torch.nn.Module):
    """A linear layer on each image's top-left 2x2 corner: next to no compute per step."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(12, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(images[:, :, :2, :2].flatten(1))
        return out


def step_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """What the app's loop costs per step beyond the plain one, with a model so small that the
    loop is all there is, on the same pre-collated batches: the cost a fast GPU would expose."""
    job = build_app(args, frozen=False)
    device = job.step.device
    batches = list(job.train_loader) * max(1, 240 // len(job.train_loader))

    def tiny() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = TinyModel().to(device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-4)

    app_model, app_optimizer = tiny()
    plain_model, plain_optimizer = tiny()
    plain_scaler = job.step.scaler if job.step.scaler.is_enabled() else None

    def run_app() -> int:
        return engine.run_pass(app_model, cast(Batches, batches), job.step, engine.Training(app_optimizer)).images

    def run_plain() -> int:
        return plain_loop.train_pass(
            plain_model, plain_optimizer, batches, device, job.step.dtype, job.step.memory_format, plain_scaler
        )

    us: dict[str, list[float]] = {"app": [], "plain": []}
    for round_ in range(2 * args.repeats + 1):
        for name, run in [("app", run_app), ("plain", run_plain)][:: 1 if round_ % 2 else -1]:
            ips, _ = timed(run, device)
            if round_ > 0:
                us[name].append(1e6 * args.batch_size / ips)
    app_us, plain_us = statistics.median(us["app"]), statistics.median(us["plain"])
    return {
        "steps_per_pass": len(batches),
        "app_us_per_step": round(app_us, 1),
        "plain_us_per_step": round(plain_us, 1),
        "extra_us_per_step": round(app_us - plain_us, 1),
    }


def loader_alone(args: argparse.Namespace) -> Series:
    """The app's train loader with the copy to the device, and no model: images/s."""
    job = build_app(args, frozen=False)
    device = job.step.device

    def run() -> int:
        seen = 0
        for images, labels in job.train_loader:
            images = images.to(device, non_blocking=True, memory_format=job.step.memory_format)
            labels = labels.to(device, non_blocking=True)
            seen += len(labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return seen

    series = Series()
    for round_ in range(args.repeats + 1):
        ips, _ = timed(run, device)
        if round_ > 0:
            series.images_per_s.append(ips)
    return series


# Linux starts a child's max RSS at its parent's RSS when it forks (and keeps it through exec),
# so a child forked from this process (torch, models, data loaded) would report at least ours.
# This launcher is a fresh, small Python that runs the measured command as its only child and
# prints that child's max RSS (KiB) from RUSAGE_CHILDREN.
LAUNCHER = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)
"""


def peak_rss(command: list[str], cwd: Path, threads: int) -> tuple[float, float]:
    """``(max RSS MiB, seconds)`` of one whole run of ``command``, in a fresh process that runs
    this benchmark's ``app`` (``launch.app_env``) from ``cwd``."""
    env = app_env({"OMP_NUM_THREADS": str(threads)})
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    kib, rc = done.stdout.split()
    if done.returncode != 0 or rc != "0":
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return int(kib) / 1024, seconds  # Linux reports KiB


def whole_runs(args: argparse.Namespace) -> dict[str, Callable[[Path], list[str]]]:
    """The two whole runs, each a function of the fresh dir it writes to: the app refuses a run dir
    that holds an earlier run's artefacts, so no run may reuse another's."""
    sizes = [f"dataset.train_size={args.memory_train_size}"] if args.memory_train_size else []
    sizes += [f"dataset.val_size={args.memory_val_size}"] if args.memory_val_size else []
    app = [sys.executable, "-m", "app.train", *app_overrides(args, frozen=False), *sizes]
    app.append(f"trainer.epochs={args.memory_epochs}")
    plain = [sys.executable, str(HERE / "plain_loop.py"), "--extractor", args.extractor, "--size", str(args.size)]
    plain += ["--batch-size", str(args.batch_size), "--epochs", str(args.memory_epochs), "--device", args.device]
    plain += ["--precision", engine.resolve_precision(args.precision, torch.device(args.device))]
    plain += ["--channels-last"] if args.channels_last else []
    plain += ["--train-size", str(args.memory_train_size)] if args.memory_train_size else []
    plain += ["--val-size", str(args.memory_val_size)] if args.memory_val_size else []
    return {"app": lambda out: [*app, f"hydra.run.dir={out}"], "plain": lambda out: [*plain, "--out", str(out)]}


def peak_memory(args: argparse.Namespace) -> dict[str, Any]:
    """A whole default-style run of each (full digits, checkpoints), alternated; median max RSS."""
    runs = whole_runs(args)
    rss: dict[str, list[float]] = {"app": [], "plain": []}
    seconds: dict[str, list[float]] = {"app": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:  # run from and into it: nothing lands in the checkout
        for round_ in range(args.memory_repeats):
            for name in ["app", "plain"] if round_ % 2 == 0 else ["plain", "app"]:
                mib, secs = peak_rss(runs[name](Path(tmp) / f"{name}-{round_}"), Path(tmp), args.threads)
                rss[name].append(mib)
                seconds[name].append(secs)
    ratio = statistics.median(rss["app"]) / statistics.median(rss["plain"])
    return {
        "epochs": args.memory_epochs,
        "app_command": " ".join(runs["app"](Path("RUN_DIR"))[1:]),
        "plain_command": " ".join(runs["plain"](Path("RUN_DIR"))[1:]),
        "app_max_rss_mib": [round(x) for x in rss["app"]],
        "plain_max_rss_mib": [round(x) for x in rss["plain"]],
        "app_seconds": [round(x, 1) for x in seconds["app"]],
        "plain_seconds": [round(x, 1) for x in seconds["plain"]],
        "ratio": round(ratio, 3),
        "target": "<= 1.1",
        "met": ratio <= 1.1,
    }


def machine(device: str) -> dict[str, Any]:
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}, "machine": machine(args.device)}
    # anything else running on the cores skews absolute figures (alternation protects the ratios)
    report["load_average_before"] = round(os.getloadavg()[0], 2)
    started = time.perf_counter()

    report["comparisons"] = [compare(args, frozen=(m == "frozen")) for m in args.modes]
    loader = loader_alone(args)
    report["loader"] = {
        **loader.summary(),
        # against the fastest model pass measured: the one that needs the most data per second
        "vs_model": round(loader.median / max(c["app"]["median"] for c in report["comparisons"]), 1),
        "target": ">= 3",
    }
    report["loader"]["met"] = report["loader"]["vs_model"] >= 3
    report["step_overhead"] = overhead = step_overhead(args)
    # the extra per-step cost as a share of one real (full fine-tuning) step on this device
    full_step_us = 1e6 * args.batch_size / report["comparisons"][0]["app"]["median"]
    overhead["share_of_model_step"] = round(overhead["extra_us_per_step"] / full_step_us, 4)
    if args.memory_repeats > 0:
        report["memory"] = peak_memory(args)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_after"] = round(os.getloadavg()[0], 2)

    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    unfair = [c["mode"] for c in report["comparisons"] if not c["same_weights_and_data"]]
    if unfair:  # a ratio of two different jobs is no result
        raise SystemExit(f"throughput.py: the app and the plain loop did not start alike in {', '.join(unfair)}")


def print_table(report: dict[str, Any]) -> None:
    s = report["settings"]
    print(f"\n{report['machine']}, load average {report['load_average_before']} -> {report['load_average_after']}")
    print(
        f"{s['extractor']}, {s['size']} px, batch {s['batch_size']}, {s['batches']} batches/pass, "
        f"{s['repeats']} rounds, {s['device']}, app {report['comparisons'][0]['app_precision']} "
        f"vs plain {s['plain_precision']}"
        f"{' channels_last' if s['channels_last'] == 'True' else ''}, {s['threads']} threads\n"
    )
    print(f"{'':28}{'app img/s':>11}{'plain img/s':>13}{'app/plain':>11}  {'(range)':<14}target")
    for c in report["comparisons"]:
        verdict = "met" if c["met"] else "MISSED"
        fair = "" if c["same_weights_and_data"] else "  (weights or data differ!)"
        print(
            f"{c['mode']:<28}{c['app']['median']:>11.1f}{c['plain']['median']:>13.1f}{c['ratio']:>11.3f}"
            f"  {c['ratio_min']:.2f}-{c['ratio_max']:.2f}{'':4}{c['target']} {verdict}{fair}"
        )
    same = all(c["same_weights_and_data"] for c in report["comparisons"])
    print(f"{'same start':<28}{'identical' if same else 'DIFFERENT':>11}  initial weights, training images and labels")
    lo = report["loader"]
    print(
        f"{'data loader alone':<28}{lo['median']:>11.1f}{'':13}{lo['vs_model']:>10.1f}x"
        f"  {'vs fastest':<14}{lo['target']} {'met' if lo['met'] else 'MISSED'}"
    )
    o = report["step_overhead"]
    print(
        f"{'loop only, tiny model, us':<28}{o['app_us_per_step']:>11.1f}{o['plain_us_per_step']:>13.1f}"
        f"{o['extra_us_per_step']:>+11.1f}  per step = {100 * o['share_of_model_step']:.2f}% of a "
        f"{report['comparisons'][0]['mode']} step"
    )
    if "memory" in report:
        m = report["memory"]
        app_rss, plain_rss = statistics.median(m["app_max_rss_mib"]), statistics.median(m["plain_max_rss_mib"])
        print(
            f"{'peak RSS, whole run (MiB)':<28}{app_rss:>11.0f}{plain_rss:>13.0f}{m['ratio']:>11.3f}"
            f"  {'':<14}{m['target']} {'met' if m['met'] else 'MISSED'}"
        )
    print(f"\n{report['seconds']:.0f} s in all")


if __name__ == "__main__":
    main()
