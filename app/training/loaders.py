"""Loading: each epoch's order of a split (drawn again on resume, dealt out over processes) and
the loader that batches it, whose workers leave signals to the run and are shut down however it
ends."""

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from typing import Optional, Protocol

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Sampler

from app.data import DecodedImages, ImageDataset, ImageTensorDataset

log = logging.getLogger("app.train")


class EpochOrder(Sampler[int]):
    """Indices ``0..size-1``: a permutation drawn from ``seed + epoch`` when shuffled, so that any
    epoch's order can be drawn again on resume; ``skip`` leaves out the first images of that
    order, already trained on before a stop. With ``weights`` (one per index), an epoch instead
    draws ``size`` indices by them, with replacement, from the same seed.

    Among ``world`` processes, process ``rank`` takes every ``world``-th index from its rank on,
    as torch's ``DistributedSampler`` does (a test compares them); ``pad`` repeats the first
    indices, as it does, so that every process gets as many batches (training needs that;
    validation leaves it out, so that its sums are those of the whole split). The processes'
    batches at one step together hold the batch one process would take with the same global
    batch size, and ``skip`` counts images of the whole order: a run stopped with N processes
    resumes with M where it stopped.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        shuffle: bool,
        rank: int = 0,
        world: int = 1,
        pad: bool = True,
        weights: Optional[torch.Tensor] = None,
    ) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world, self.pad = rank, world, pad
        self.weights = weights  # per index: an epoch draws size indices by them, with replacement
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if not self.shuffle:
            order = list(range(self.size))
        elif self.weights is not None:  # trainer.class_balance=sampler
            order = torch.multinomial(self.weights, self.size, replacement=True, generator=generator).tolist()
        else:
            order = torch.randperm(self.size, generator=generator).tolist()
        padding = self._total() - self.size
        if padding:  # DistributedSampler's padding, as it writes it
            order += order[:padding] if padding <= len(order) else (order * math.ceil(padding / len(order)))[:padding]
        return order

    def _total(self) -> int:
        return math.ceil(self.size / self.world) * self.world if self.pad and self.world > 1 else self.size

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[self.skip :][self.rank :: self.world])

    def __len__(self) -> int:
        return max(0, math.ceil((self._total() - self.skip - self.rank) / self.world))


class Batches(Protocol):
    """What a pass iterates: ``(images, labels)`` batches, as many as its length says."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...


class TensorBatches:
    """Batches of tensors held whole (digits in memory, the frozen extractor's cached features),
    each one gathered by one indexing op on the epoch's order, made a tensor once per epoch: no
    DataLoader, no Python per image. Per step, that is all a small head's training waits on
    besides its own arithmetic (docs/benchmarks.md, the feature cache)."""

    def __init__(
        self, dataset: ImageTensorDataset, batch_size: int, order: EpochOrder, pin_memory: bool, drop_last: bool
    ) -> None:
        self.dataset, self.batch_size, self.order = dataset, batch_size, order
        self.pin_memory, self.drop_last = pin_memory, drop_last

    def __len__(self) -> int:
        n = len(self.order)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index = torch.tensor(list(self.order), dtype=torch.long)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            images, labels = self.dataset[index[start : start + self.batch_size]]
            if self.pin_memory:  # page-locked: copied to the GPU asynchronously
                images, labels = images.pin_memory(), labels.pin_memory()
            yield images, labels


def loader(
    dataset: ImageDataset,
    batch_size: int,
    order: EpochOrder,
    num_workers: int | None,
    pin_memory: bool,
    drop_last: bool = False,
) -> Batches:
    """Batches of ``dataset`` in ``order``; ``num_workers`` None: chosen here; ``drop_last``:
    without a last batch smaller than the others (``lone_last_batch`` says when).

    In-memory tensors are gathered a batch at a time, in the process (``TensorBatches``), or
    with a sampler of index lists and no collation where workers are asked for: one indexing op
    instead of ``batch_size`` item calls and a stack, which keeps the loader far ahead of a GPU.
    The loader draws its workers' seeds from a generator of its own, never from torch's global
    one, which a resumed run restores exactly.
    """
    workers = default_num_workers(dataset) if num_workers is None else num_workers
    own = torch.Generator().manual_seed(order.seed)
    if isinstance(dataset, ImageTensorDataset) and workers == 0:
        return TensorBatches(dataset, batch_size, order, pin_memory, drop_last)
    if isinstance(dataset, ImageTensorDataset):
        batches = BatchSampler(order, batch_size, drop_last=drop_last)
        return DataLoader(
            dataset, sampler=batches, batch_size=None, num_workers=workers, pin_memory=pin_memory, generator=own
        )
    keys = EpochKeys(order) if isinstance(dataset, DecodedImages) else order
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=keys,
        drop_last=drop_last,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        generator=own,
        worker_init_fn=leave_signals_to_the_run,
    )


def lone_last_batch(model: nn.Module, images: int, batch_size: int) -> bool:
    """Whether an epoch's last batch, of ``images`` in batches of ``batch_size``, would hold one
    image only, and ``model`` trains batch norm on it: in training mode batch norm needs 2 values
    a channel ("Expected more than 1 value per channel"), so that batch is dropped (said here,
    once). It is the same batch whatever the epoch's order, and on resume: the run stays exact."""
    model.train()  # as a training pass sets it: a frozen extractor's batch norm stays in eval mode
    norms = any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())
    if not norms or images % batch_size != 1 or images < batch_size:
        return False
    log.warning(
        "the last batch of 1 image is dropped in each epoch: batch norm needs 2 (%d training images, a "
        "process's share, in batches of %d)", images, batch_size,
    )  # fmt: skip
    return True


class EpochKeys(Sampler[tuple[int, int]]):
    """``(epoch, index)`` for each index ``order`` gives: what a ``DecodedImages`` seeds a
    picture's augmentation with."""

    def __init__(self, order: EpochOrder) -> None:
        self.order = order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.order.epoch
        return ((epoch, index) for index in self.order)

    def __len__(self) -> int:
        return len(self.order)


def leave_signals_to_the_run(worker_id: int) -> None:
    """A loader worker ignores SIGINT and SIGTERM: Ctrl-C and a cluster's scancel reach the whole
    process group, and the run, not its workers, decides how to stop (after the current step);
    ``workers_released`` then shuts them down."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def workers_released(*loaders: Batches) -> Iterator[None]:
    """Shut the loaders' worker processes down however the block ends. Workers ignore SIGTERM, so
    multiprocessing's exit handler (SIGTERM, then a join with no timeout) would wait on them
    forever; a stopped or failed run's traceback keeps its loaders, and their workers, alive."""
    try:
        yield
    finally:
        release(*loaders)


def release(*loaders: Batches) -> None:
    """Shut the loaders' persistent worker processes down now."""
    for loader in loaders:
        iterator = getattr(loader, "_iterator", None)  # persistent workers' iterator (torch's own)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()


def default_num_workers(dataset: ImageDataset) -> int:
    """In-memory tensors load fastest in-process; decoded datasets get a worker per spare core."""
    if isinstance(dataset, ImageTensorDataset):
        return 0
    return max(1, min(4, (os.cpu_count() or 1) - 1))
