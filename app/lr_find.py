"""The learning-rate range test: ``app-lr-find [options] [app-train overrides]`` or ``python -m app.lr_find``.

The run the overrides describe is checked as app-train checks it and built as app-train builds
it; then its training steps sweep the lr (``app.training.lr_range``). The run dir gets
``lr_find.csv`` and ``lr_find.png``; the model and its weights are thrown away, and nothing is
written anywhere else (the feature cache aside, which a frozen extractor's run fills as
app-train would).
"""

import argparse
import csv
import datetime
import io
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

from annotated_types import Interval
from omegaconf import DictConfig

from app import files, launch

log = logging.getLogger("app.lr_find")

CSV, PNG = "lr_find.csv", "lr_find.png"
EXAMPLES = """examples:
  app-lr-find                                            # the default run's lr range
  app-lr-find feature_extractor=resnet18 trainer.freeze_extractor=true
  app-lr-find --steps 200 --end-lr 1 optimizer=sgd optimizer.momentum=0.9

It prints the suggested optimizer.lr=... override (the head's lr: the extractor's groups keep
their ratio to it, trainer.extractor_lr_scale and trainer.layer_decay) and the command to train
with it.
"""


# Each option's type and bounds, as a config field's: checked and worded by app.checks.constraints
LR = Annotated[float, Interval(gt=0, le=1e3)]
STEPS = Annotated[int, Interval(ge=10, le=10_000)]
SMOOTHING = Annotated[float, Interval(ge=0, lt=1)]  # the share of the average kept each step
DIVERGE = Annotated[float, Interval(gt=1, le=100)]


def _typed(hint: Any) -> Callable[[str], Any]:
    """An argparse type: the text as ``hint``'s type, within its bounds (a refusal names them)."""
    from pydantic_core import ValidationError

    from app.checks.constraints import describe, unwrap, validator

    kind = unwrap(hint)[0]

    def parse(text: str) -> Any:
        try:
            return validator(hint).validate_python(kind(text))
        except (ValueError, ValidationError):  # not a number of its type, or out of bounds
            raise argparse.ArgumentTypeError(f"{text!r}: {kind.__name__}, {describe(hint)}") from None

    return parse


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app-lr-find",
        description="The learning-rate range test (Smith 2017; fastai's lr_find) on an app-train run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--start-lr", type=_typed(LR), default=1e-7)
    parser.add_argument("--end-lr", type=_typed(LR), default=10.0)
    parser.add_argument("--steps", type=_typed(STEPS), default=100)
    parser.add_argument(
        "--smoothing", type=_typed(SMOOTHING), default=0.98, help="the share of the average kept each step"
    )
    parser.add_argument(
        "--diverge", type=_typed(DIVERGE), default=4.0,
        help="stop once the smoothed loss is this many times its lowest (default 4)",
    )  # fmt: skip
    parser.add_argument("--out", help="its run dir, new or empty (default: outputs/lr_find/DATE/TIME)")
    parser.add_argument("overrides", nargs="*", help="app-train's overrides: the run whose lr range is tested")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``app-lr-find``: check the run, then sweep its lr and write the curve."""
    parser = get_args_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.start_lr >= args.end_lr:
        parser.error(f"--start-lr {args.start_lr:g} is not below --end-lr {args.end_lr:g}")
    for override in args.overrides:  # app-train's run dir keys: this tool runs no Hydra job of its own
        key, _, value = override.lstrip("+~").partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir"):
            parser.error(f"{key}={value}: app-lr-find writes its files to --out DIR, not to {key}; use --out {value}")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    out = Path(args.out or os.path.join("outputs", "lr_find", stamp)).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"--out {out} holds files already: choose a new or empty folder")
    with launch.shared_config_store():
        try:
            cfg = launch.compose_config(args.overrides)
        except launch.ConfigError as error:
            launch.report(error.problems, error.points)
            sys.exit(1)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    from app.training import runtime

    try:
        suggested = find(cfg, out, args)
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", runtime.failure(error))
        sys.exit(1)
    print(f"optimizer.lr={suggested:.2g}")
    print("to train with it: app-train " + shlex.join([*args.overrides, f"optimizer.lr={suggested:.2g}"]))


def find(cfg: DictConfig, out: Path, args: argparse.Namespace) -> float:
    """The range test of the checked run ``cfg``; ``lr_find.csv`` and ``lr_find.png`` in ``out``.
    Returns the suggested lr."""
    from app import plots
    from app.checks.built import resolved_as_built
    from app.training import distributed, engine, lr_range
    from app.training.build import build
    from app.training.loaders import workers_released

    cfg = resolved_as_built(cfg)
    device = engine.resolve_device(cfg.trainer.device.value)
    job = build(cfg, distributed.Ranks(), device)
    with workers_released(*job.loaders()):
        test = lr_range.lr_range(job, args.start_lr, args.end_lr, args.steps, args.smoothing, args.diverge)
    log.info("%d steps, lr %.3g to %.3g; %s; suggested lr %.3g", len(test.lrs), test.lrs[0], test.lrs[-1],
             test.stopped, test.suggested)  # fmt: skip
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["step", "lr", "loss", "smoothed_loss"])
    writer.writerows((i, f"{lr:.6g}", f"{loss:.6g}", f"{s:.6g}") for i, (lr, loss, s) in
                     enumerate(zip(test.lrs, test.losses, test.smoothed), 1))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    files.write_atomically(out / CSV, lambda tmp: tmp.write_text(text.getvalue()))
    plots.lr_range(test.lrs, test.smoothed, test.suggested, out / PNG)
    log.info("%s and %s in %s", CSV, PNG, out)
    return test.suggested


if __name__ == "__main__":
    main()
