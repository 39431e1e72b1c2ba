"""Learning-rate schedules, stepped after every optimizer step, with lengths given in epochs.

Each factory takes the optimizer and its steps per epoch (known only once the data is loaded;
positional-only, as the job passes them) and returns a torch scheduler whose ``state_dict``
resumes it exactly. A warm-up is torch's
``LinearLR`` chained before the main schedule with ``SequentialLR``, as in torchvision's
reference trainer.
"""

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    SequentialLR,
    StepLR,
)

from app.configs import Anneal


def steps(epochs: float, steps_per_epoch: int) -> int:
    """Optimizer steps in ``epochs`` (rounded; at least one for any positive length)."""
    return max(1, round(epochs * steps_per_epoch)) if epochs > 0 else 0


def _after_warmup(optimizer: Optimizer, main: LRScheduler, warmup: int, start_factor: float) -> LRScheduler:
    if warmup == 0:
        return main
    ramp = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def constant(
    optimizer: Optimizer, steps_per_epoch: int, /, warmup_epochs: float = 0.0, warmup_start_factor: float = 0.01
) -> LRScheduler:
    """The optimizer's lr, after an optional linear warm-up."""
    main = ConstantLR(optimizer, factor=1.0, total_iters=0)
    return _after_warmup(optimizer, main, steps(warmup_epochs, steps_per_epoch), warmup_start_factor)


def cosine(
    optimizer: Optimizer,
    steps_per_epoch: int,
    /,
    epochs: int,
    eta_min: float = 0.0,
    warmup_epochs: float = 0.0,
    warmup_start_factor: float = 0.01,
) -> LRScheduler:
    """Cosine decay to ``eta_min`` by the end of ``epochs``, after an optional warm-up."""
    warmup = steps(warmup_epochs, steps_per_epoch)
    main = CosineAnnealingLR(optimizer, T_max=max(1, epochs * steps_per_epoch - warmup), eta_min=eta_min)
    return _after_warmup(optimizer, main, warmup, warmup_start_factor)


def step(
    optimizer: Optimizer,
    steps_per_epoch: int,
    /,
    step_size: float = 1.0,
    gamma: float = 0.5,
    warmup_epochs: float = 0.0,
    warmup_start_factor: float = 0.01,
) -> LRScheduler:
    """lr x ``gamma`` every ``step_size`` epochs, after an optional warm-up."""
    main = StepLR(optimizer, step_size=steps(step_size, steps_per_epoch), gamma=gamma)
    return _after_warmup(optimizer, main, steps(warmup_epochs, steps_per_epoch), warmup_start_factor)


def onecycle(
    optimizer: Optimizer,
    steps_per_epoch: int,
    /,
    epochs: int,
    warmup_epochs: float = 0.3,
    warmup_start_factor: float = 0.04,
    final_div_factor: float = 1e4,
    anneal_strategy: Anneal = Anneal.cos,
) -> LRScheduler:
    """torch's ``OneCycleLR`` peaking at the optimizer's lr after ``warmup_epochs``, from
    ``warmup_start_factor`` x lr, down to that / ``final_div_factor`` at the end of ``epochs``."""
    total = epochs * steps_per_epoch
    if total < 3:
        raise ValueError(f"scheduler=onecycle needs 3 optimizer steps or more; this run has {total}")
    peak = [group["lr"] for group in optimizer.param_groups]
    # OneCycleLR peaks at step pct_start x total - 1: a rise of at least one step, and one to fall.
    rise = min(max(steps(warmup_epochs, steps_per_epoch), 1), total - 2)
    return OneCycleLR(
        optimizer,
        max_lr=peak,
        total_steps=total,
        pct_start=(rise + 1) / total,
        anneal_strategy=anneal_strategy.value,
        div_factor=1 / warmup_start_factor,
        final_div_factor=final_div_factor,
    )
