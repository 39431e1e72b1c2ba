"""The learning-rate range test of Smith (2017) and fastai's ``lr_find`` on a built job: its
training steps, the lr growing exponentially each optimizer step, until the range ends or the
loss diverges; then the model, optimizer and random state put back as they were."""

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR

from app.errors import NonFiniteLoss, RangeTooShort
from app.training import engine
from app.training.build import Job
from app.training.checkpoints import rng_state, set_rng_state
from app.training.signals import GracefulStop


@dataclass
class RangeTest:
    lrs: list[float]  # the head's lr at each step (the extractor's groups keep their ratio to it)
    losses: list[float]  # each step's training loss
    smoothed: list[float]  # fastai's: an exponential average, bias-corrected
    suggested: float  # where the smoothed loss falls fastest against log lr
    stopped: str  # why the sweep ended


def lr_range(job: Job, start_lr: float, end_lr: float, steps: int, smoothing: float, diverge: float) -> RangeTest:
    """Up to ``steps`` optimizer steps of ``job``'s training (accumulation, clipping, precision,
    smoothing, mixing as configured; no schedule, no EMA), the head's lr from ``start_lr`` to
    ``end_lr`` by a constant factor; stopped once the smoothed loss is above ``diverge`` x its
    lowest or not finite. ``job``'s model, optimizer and random state are left as they were."""
    kept = copy.deepcopy(job.model.state_dict()), copy.deepcopy(job.training.optimizer.state_dict()), rng_state()
    optimizer = job.training.optimizer
    base = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]  # as configured
    for group, lr in zip(optimizer.param_groups, base):
        group["lr"] = group["initial_lr"] = start_lr * lr / base[0]
    growth = (end_lr / start_lr) ** (1 / (steps - 1))
    test = RangeTest([], [], [], math.nan, f"the range ended at {end_lr:g}")
    ended: list[str] = []  # why the loss ended the sweep early, once it did
    average = 0.0

    def record(n: int, loss: torch.Tensor, lr: float) -> None:
        nonlocal average
        value = loss.item()
        if not math.isfinite(value):
            ended.append(f"the loss was {value} at lr {lr:.3g}")
            return
        average = smoothing * average + (1 - smoothing) * value
        test.lrs.append(lr)
        test.losses.append(value)
        test.smoothed.append(average / (1 - smoothing ** len(test.lrs)))
        if test.smoothed[-1] > diverge * min(test.smoothed):
            ended.append(f"the loss diverged at lr {lr:.3g} ({diverge:g}x its lowest)")

    def done(asked: bool) -> bool:
        return asked or len(test.lrs) >= steps or bool(ended)

    sweeping = dataclasses.replace(
        job.training, scheduler=LambdaLR(optimizer, lambda i: growth**i), ema=None, profiler=None, on_step=record
    )
    stop, epoch = GracefulStop(done), 0
    try:
        with stop.installed():
            while not done(stop.requested is not None):
                epoch += 1
                job.train_order.set_epoch(epoch)
                if sweeping.mixing is not None:
                    sweeping.mixing.epoch = epoch
                engine.run_pass(job.forward, job.train_loader, job.step, sweeping, "lr range", stop=stop)
    except NonFiniteLoss:  # at a high lr: where the range test ends
        ended.append("the loss was not finite")
    finally:
        job.model.load_state_dict(kept[0])
        optimizer.load_state_dict(kept[1])
        set_rng_state(kept[2])
    if ended:
        test.stopped = ended[0]
    if stop.requested is not None:
        test.stopped = "stopped by a signal"
    test.suggested = suggestion(test.lrs, test.smoothed)
    return test


def suggestion(lrs: list[float], smoothed: list[float]) -> float:
    """The lr where the smoothed loss falls fastest against log lr, before its lowest point
    (fastai's ``steep``): a lr that still learns quickly, below where the loss turns."""
    if len(lrs) < 5:
        raise RangeTooShort(f"the range test has {len(lrs)} finite steps: too few to read a curve from")
    lowest = int(np.argmin(smoothed))
    slopes = np.gradient(np.asarray(smoothed), np.log(np.asarray(lrs)))
    return lrs[int(np.argmin(slopes[: max(lowest, 2)]))]
