"""A job built from a checked config, ready to run: ``job = build(cfg, ranks, device)``.

``fit`` runs it, and every benchmark builds what it measures with the same function, so they
measure what the app runs.
"""

import datetime
import logging
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from app import data, factories
from app.errors import EmptyClass
from app.models import ImageClassifier
from app.training import distributed, engine, features
from app.training.loaders import Batches, EpochOrder, loader, lone_last_batch, release
from app.training.mixing import Mixing

log = logging.getLogger("app.train")
TORCH_OWN_THREADS = torch.get_num_threads()  # as the process started: what torch would use by itself


@dataclass
class Job:
    """Everything a run trains with, built and not yet run."""

    cfg: DictConfig
    config: dict[str, Any]  # the config resolved once, as checkpoints hold it
    ranks: distributed.Ranks
    step: engine.Step
    splits: data.Splits  # the images, or a frozen extractor's features standing in for them
    train_order: EpochOrder  # each epoch's order, drawn from the seed and the epoch
    val_order: EpochOrder
    train_loader: Batches
    val_loader: Batches
    model: ImageClassifier  # what checkpoints hold
    forward: nn.Module  # what trains: the model, wrapped by DDP among processes, compiled if asked
    validation: nn.Module  # what validates: each process's share, unwrapped
    training: engine.Training  # optimizer, schedule, accumulation, clipping, smoothing, EMA
    batches_per_epoch: int
    thaw: Optional["Thaw"] = None  # trainer.freeze_epochs: the second stage, while the first runs

    def sums(self, values: list[float]) -> list[float]:
        """A pass's sums over every process."""
        return distributed.sums(values, self.step.device)

    def loaders(self) -> list[Batches]:
        """Every loader the job holds: the second stage's too."""
        later = self.thaw.loaders if self.thaw is not None and self.thaw.loaders is not None else ()
        return [self.train_loader, self.val_loader, *later]

    def enter(self, epoch: int) -> None:
        """The stage ``epoch`` is in: past ``trainer.freeze_epochs``, the extractor trains from now on,
        on the images where the first stage had their cached features."""
        thaw = self.thaw
        if thaw is None or epoch <= self.cfg.trainer.freeze_epochs:
            return
        self.thaw = None
        self.model.freeze(False)
        if thaw.loaders is not None:
            release(self.train_loader, self.val_loader)  # the cached features' loaders: done
            self.splits, (self.train_loader, self.val_loader) = thaw.splits, thaw.loaders
        parallel = _parallel(self.model, self.ranks, self.step.device)  # over the extractor too, now
        self.forward = _compiled(self.cfg, parallel, self.step, self.train_loader)
        self.validation = self.model if self.ranks.many else self.forward
        trained = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        log.info(
            "epoch %d: the extractor trains from now on (trainer.freeze_epochs=%d)%s, %.2fM trainable parameters",
            epoch, self.cfg.trainer.freeze_epochs, ", on the images" if thaw.loaders else "", trained / 1e6,
        )  # fmt: skip


def default_threads(torch_own: int, environ: Mapping[str, str], cores: Optional[int] = None) -> int:
    """What ``trainer.threads`` null sets: torch's own count, but never every core this process
    may use (``cores``; default: ``os.sched_getaffinity``'s), at least 1; torch's own unchanged
    where ``OMP_NUM_THREADS`` is set (by hand, or by torchrun: 1 a process)."""
    # Measured with benchmarks/threads.py on 2 cores (docs/benchmarks.md#threads), the default job's
    # epoch: idle, 2 threads (torch's own) 3.12 s, 1 thread 5.57 s; beside one competing CPU-bound
    # process, 2 threads 28.4 s (each barrier waits for the descheduled thread) and 1 thread 6.42 s;
    # beside two, 10.6 s and 8.45 s. One thread fewer than the cores costs at most 1.8x here (on
    # more cores, about 1/cores) and saves up to 4.4x on a shared machine.
    if environ.get("OMP_NUM_THREADS"):
        return torch_own
    usable = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, min(torch_own, usable - 1))


class Thaw(NamedTuple):
    """A staged run's second stage: its images and loaders where the first stage had cached features."""

    splits: data.Splits
    loaders: Optional[tuple[Batches, Batches]]


def build(cfg: DictConfig, ranks: distributed.Ranks, device: torch.device) -> Job:
    """Data, each epoch's order, the model (DDP among processes), parameter groups, optimizer,
    schedule and EMA, the feature cache and the loaders, from a checked ``cfg``."""
    t = cfg.trainer
    threads = t.threads if t.threads is not None else default_threads(TORCH_OWN_THREADS, os.environ)
    torch.set_num_threads(threads)
    log.info("%d torch thread%s%s", threads, "s" if threads > 1 else "", "" if t.threads else " (trainer.threads null)")
    # Each process draws its own dropout; they all start from rank 0's weights (DDP copies them)
    for seed in (torch.manual_seed, random.seed, np.random.seed):
        seed(t.seed + ranks.rank)
    step = engine.Step(device, engine.resolve_precision(t.precision.value, device), t.channels_last)
    splits = factories.splits(cfg)
    balance = _balance(cfg, splits)
    train_order, val_order = _orders(cfg, splits, ranks, balance.sampler)
    batch_size = t.batch_size // ranks.world  # the global batch, shared out: the launch check keeps it whole
    model = factories.model(cfg)
    drop = lone_last_batch(model, len(train_order), batch_size)  # each process's share: the same size on each
    batches_per_epoch = len(train_order) // batch_size if drop else math.ceil(len(train_order) / batch_size)
    model.to(device).to(memory_format=step.memory_format)
    weights = None if balance.loss is None else balance.loss.to(device)
    mixed = t.mixup_alpha > 0 or t.cutmix_alpha > 0
    mixing = (
        Mixing(t.mixup_alpha, t.cutmix_alpha, t.mix_switch_prob, splits.classes, t.seed, ranks.rank) if mixed else None
    )
    # the optimizer's groups hold the extractor of a staged run (trainer.freeze_epochs) from the start
    training = _training(cfg, model, math.ceil(batches_per_epoch / t.accumulate_batches), weights, mixing)
    model.freeze(t.freeze_extractor or t.freeze_epochs > 0)  # no gradient: the optimizer leaves it as it is
    # A frozen extractor's features, computed once (or read from trainer.feature_cache_dir), stand in
    # for the images, and the model runs its head alone on them. Rank 0 fills the cache, the others read it.
    waited_for = datetime.timedelta(minutes=t.process_group_timeout_min)
    images = splits
    parallel = _parallel(model, ranks, device)  # DDP gives every process rank 0's weights: the cache's too
    splits = distributed.rank0_first("features", lambda: features.cached(cfg, images, model, step), waited_for)
    train_loader, val_loader = _loaders(cfg, splits, train_order, val_order, batch_size, drop, device)
    forward = _compiled(cfg, parallel, step, train_loader)
    thaw = None
    if t.freeze_epochs:  # the second stage, on images
        image_loaders = (
            _loaders(cfg, images, train_order, val_order, batch_size, drop, device) if splits is not images else None
        )
        thaw = Thaw(images, image_loaders)
    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[assignment]
    job = Job(cfg, config, ranks, step, splits, train_order, val_order, train_loader, val_loader, model, forward,
              model if ranks.many else forward, training, batches_per_epoch, thaw)  # fmt: skip
    _describe(job, batch_size)
    return job


def _loaders(
    cfg: DictConfig,
    splits: data.Splits,
    train_order: EpochOrder,
    val_order: EpochOrder,
    batch_size: int,
    drop: bool,
    device: torch.device,
) -> tuple[Batches, Batches]:
    t = cfg.trainer
    pin = device.type == "cuda"  # page-locked batches copy to the GPU asynchronously
    train_loader = loader(splits.train, batch_size, train_order, t.num_workers, pin, drop_last=drop)
    val_split = splits.train if t.overfit_batches else splits.val
    return train_loader, loader(val_split, batch_size, val_order, t.num_workers, pin)


def _compiled(cfg: DictConfig, model: nn.Module, step: engine.Step, batches: Batches) -> nn.Module:
    """``model`` compiled, tried on the first batch of ``batches``, where ``trainer.compile`` asks."""
    return engine.compiled(model, next(iter(batches))[0], step) if cfg.trainer.compile else model


def _parallel(model: ImageClassifier, ranks: distributed.Ranks, device: torch.device) -> nn.Module:
    """Among processes, DDP over the parameters that train now: it copies rank 0's weights to
    every process and averages their gradients; ``model`` stays the one checkpoints hold."""
    return DistributedDataParallel(model, [device] if device.type == "cuda" else None) if ranks.many else model


class Balance(NamedTuple):
    """``trainer.class_balance``: the training order's weight per image, or the loss's per class."""

    sampler: Optional[torch.Tensor] = None
    loss: Optional[torch.Tensor] = None


def _balance(cfg: DictConfig, splits: data.Splits) -> Balance:
    """Inverse class frequencies of the training split, as ``trainer.class_balance`` uses them:
    N / (classes x count) per class for the loss (sklearn's "balanced"), 1 / count per image for
    the sampler (each class then drawn equally often). A class with no image is an error."""
    how = cfg.trainer.class_balance.value
    if how == "none":
        return Balance()
    labels = torch.tensor(data.labels_of(splits.train))
    counts = torch.bincount(labels, minlength=splits.classes)
    shown = ", ".join(f"{name} {int(n)}" for name, n in zip(splits.names, counts))
    empty = [name for name, n in zip(splits.names, counts) if n == 0]
    if empty:
        raise EmptyClass(f"trainer.class_balance={how}: no training image of class {', '.join(empty)} ({shown})")
    log.info("training images by class (trainer.class_balance=%s): %s", how, shown)
    if how == "loss":
        return Balance(loss=(len(labels) / (splits.classes * counts.double())).float())
    return Balance(sampler=(1.0 / counts.double())[labels])


def _orders(
    cfg: DictConfig, splits: data.Splits, ranks: distributed.Ranks, weights: Optional[torch.Tensor] = None
) -> tuple[EpochOrder, EpochOrder]:
    """Each split's epoch order (the training one drawn by ``weights`` when given);
    ``trainer.overfit_batches``: the first batches, in one order, for training and validation
    alike. Each process takes its share of every batch."""
    t, r = cfg.trainer, ranks
    if t.overfit_batches:
        overfit = min(len(splits.train), t.overfit_batches * t.batch_size)
        return (EpochOrder(overfit, t.seed, False, r.rank, r.world),
                EpochOrder(overfit, t.seed, False, r.rank, r.world, pad=False))  # fmt: skip
    return (EpochOrder(len(splits.train), t.seed, True, r.rank, r.world, weights=weights),
            EpochOrder(len(splits.val), t.seed, False, r.rank, r.world, pad=False))  # fmt: skip


def _training(
    cfg: DictConfig,
    model: ImageClassifier,
    steps_per_epoch: int,
    class_weights: Optional[torch.Tensor],
    mixing: Optional[Mixing],
) -> engine.Training:
    """The optimizer over the head and, unless frozen, the body (``factories.parameter_groups``);
    the schedule, stepped per optimizer step; the EMA; the loss's class weights; the mixing."""
    t = cfg.trainer
    groups = factories.parameter_groups(cfg, model)
    if len(groups) > 2:  # layer-wise decay: each group's lr, once
        lrs = ", ".join(f"{g.get('lr', cfg.optimizer.lr):.3g}" for g in groups)
        log.info("lr by parameter group, the head's first, then the extractor's stages from the top: %s", lrs)
    optimizer = factories.optimizer(cfg, groups)
    scheduler = factories.scheduler(cfg, optimizer, steps_per_epoch)
    ema = engine.exponential_average(model, t.ema_decay) if t.ema_decay is not None else None
    return engine.Training(
        optimizer,
        scheduler,
        t.accumulate_batches,
        t.clip_grad_norm,
        t.label_smoothing,
        ema,
        class_weights=class_weights,
        mixing=mixing,
    )


def _describe(job: Job, batch_size: int) -> None:
    cfg, r = job.cfg, job.ranks
    trainable = sum(p.numel() for p in job.model.parameters() if p.requires_grad)
    log.info(
        "%d train / %d val images%s, %d classes, %s px x %d ch | %.2fM trainable parameters | %s, %s%s",
        job.train_order.size, job.val_order.size,
        " (the same: trainer.overfit_batches)" if cfg.trainer.overfit_batches else "",
        job.splits.classes, cfg.dataset.image.size, cfg.dataset.image.channels, trainable / 1e6,
        job.step.device, job.step.precision,
        f" | rank {r.rank} of {r.world} processes, {batch_size} images of each batch" if r.many else "",
    )  # fmt: skip
