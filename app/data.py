"""Datasets: each factory returns a train and a validation split of ``(image, label)`` pairs.

Images come out as float tensors ``[channels, size, size]``, standardised, ready for the model.
"""

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Callable, NamedTuple

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from app.configs import ImageConfig
from app.folders import class_folders, held_out, image_files


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``(image, label)`` pairs with a length (torch's ``Dataset`` does not promise one)."""

    def __len__(self) -> int:
        raise NotImplementedError


class ImageTensorDataset(ImageDataset):
    """Images held in memory as one ``[N, 1, H, W]`` tensor; channels are expanded on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, channels: int) -> None:
        self.images, self.labels, self.channels = images, labels, channels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """One image, or a whole batch when ``index`` is a list (one gather, no stacking)."""
        images = self.images[index]
        if images.shape[-3] != self.channels:
            images = images.expand(*images.shape[:-3], self.channels, -1, -1)
            if isinstance(index, list):  # a batch may be pinned: it must own its memory
                images = images.contiguous()
        return images, self.labels[index]


class Splits(NamedTuple):
    train: ImageDataset
    val: ImageDataset
    classes: int
    names: list[str]  # each class's name, in label order


def digits(
    image: ImageConfig,
    classes: int = 10,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
) -> Splits:
    """scikit-learn's handwritten digits (offline), digits ``0..classes-1``, resized to ``image.size``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
    labels = torch.tensor(bunch.target, dtype=torch.long)
    keep = labels < classes
    pixels, labels = pixels[keep], labels[keep]

    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val = held_out(len(order), val_fraction)
    val_idx, train_idx = order[:n_val][:val_size], order[n_val:][:train_size]

    # Resize once up front: bilinear upsampling of 8x8 glyphs, then standardise with the
    # training split's statistics so the validation images see the same transform. In place on
    # each split's own copy: no full-size temporaries, so the peak memory stays twice the data.
    resized = torch.nn.functional.interpolate(
        pixels, size=(image.size, image.size), mode="bilinear", align_corners=False
    )
    train_images, val_images = resized[train_idx], resized[val_idx]
    del resized
    mean, std = train_images.mean(), train_images.std()
    for split in (train_images, val_images):
        split.sub_(mean).div_(std)
    return Splits(
        ImageTensorDataset(train_images, labels[train_idx], image.channels),
        ImageTensorDataset(val_images, labels[val_idx], image.channels),
        classes,
        [str(digit) for digit in range(classes)],
    )


def fake(
    image: ImageConfig,
    classes: int = 10,
    train_size: int | None = 256,
    val_size: int | None = 64,
    seed: int = 0,
) -> Splits:
    """torchvision ``FakeData``: random images and labels, the same for the same seed."""
    from torchvision.datasets import FakeData
    from torchvision.transforms import ToTensor

    shape = (image.channels, image.size, image.size)
    train_n = 1000 if train_size is None else train_size
    val_n = 200 if val_size is None else val_size
    # FakeData seeds image i with ``i + random_offset``: offsets keep the splits disjoint.
    offset = seed * (train_n + val_n)

    def split(n: int, start: int) -> ImageDataset:
        return FakeData(  # type: ignore[no-any-return]
            size=n, image_size=shape, num_classes=classes, transform=ToTensor(), random_offset=start
        )

    return Splits(split(train_n, offset), split(val_n, offset + train_n), classes, [str(i) for i in range(classes)])


# ImageNet statistics: what pretrained torchvision weights expect of RGB input.
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageFiles(ImageDataset):
    """Images decoded from disk on access (in loader workers), resized and standardised."""

    def __init__(self, files: list[str], labels: list[int], size: int, channels: int) -> None:
        from torchvision import transforms

        self.files, self.labels = files, labels
        mean, std = (RGB_MEAN, RGB_STD) if channels == 3 else ((0.5,), (0.5,))
        self.mode = "RGB" if channels == 3 else "L"
        self.transform = transforms.Compose([
            transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(mean, std)
        ])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            pixels: torch.Tensor = self.transform(image.convert(self.mode))
        return pixels, torch.tensor(self.labels[index])


class ImageList(ImageDataset):
    """Image files without labels, for prediction: ``(image, index)`` pairs through ``transform``."""

    def __init__(self, files: list[str], transform: Callable[[Any], torch.Tensor]) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            return self.transform(image), torch.tensor(index)


def readable(files: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The files PIL reads as images, and the others with the reason (``verify`` reads a PNG's
    every chunk and checks its CRC, other formats' headers)."""
    from PIL import Image

    good, bad = [], []
    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
            good.append(path)
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, ... by format
            bad.append((path, f"{type(error).__name__}: {error}"))
    return good, bad


def image_transform(cfg: Any) -> Callable[[Any], torch.Tensor]:
    """The validation transform of the run ``cfg`` describes, for one PIL image."""
    from torchvision import transforms

    image = cfg.dataset.image
    mean, std = (RGB_MEAN, RGB_STD) if image.channels == 3 else ((0.5,), (0.5,))
    mode = "RGB" if image.channels == 3 else "L"
    steps = transforms.Compose([
        transforms.Resize((image.size, image.size)), transforms.ToTensor(), transforms.Normalize(mean, std)
    ])
    return lambda picture: steps(picture.convert(mode))


def image_folder(
    image: ImageConfig,
    root: str,
    classes: int,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
) -> Splits:
    """``root/<class>/<image>``: a seeded split of every image into train and validation."""
    names = class_folders(root)
    if len(names) != classes:  # the launch check says so first; this guards direct calls
        raise ValueError(f"dataset.classes={classes}, but {root} has {len(names)} class folders")
    files, labels = [], []
    for label, name in enumerate(names):
        found = image_files(root, name)
        files += found
        labels += [label] * len(found)
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = held_out(len(order), val_fraction)
    val_idx, train_idx = order[:n_val][:val_size], order[n_val:][:train_size]

    def split(indices: list[int]) -> ImageFiles:
        return ImageFiles([files[i] for i in indices], [labels[i] for i in indices], image.size, image.channels)

    return Splits(split(train_idx), split(val_idx), classes, names)


class EpochOrder(Sampler[int]):
    """Indices ``0..size-1``: a permutation drawn from ``seed + epoch`` when shuffled (as torch's
    ``DistributedSampler`` draws them), so that any epoch's order can be drawn again on resume;
    ``skip`` leaves out the first images, already trained on before a stop."""

    def __init__(self, size: int, seed: int, shuffle: bool) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.skip, self.size))
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter(order[self.skip:].tolist())

    def __len__(self) -> int:
        return max(0, self.size - self.skip)


def loader(
    dataset: ImageDataset, batch_size: int, order: EpochOrder, num_workers: int | None, pin_memory: bool,
) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``dataset`` in ``order``; ``num_workers`` None: chosen here.

    In-memory tensors are gathered a batch at a time (a sampler of index lists, and no
    collation): one indexing op instead of ``batch_size`` item calls and a stack, which keeps the
    loader far ahead of a GPU. The loader draws its workers' seeds from a generator of its own,
    never from torch's global one, which a resumed run restores exactly.
    """
    workers = default_num_workers(dataset) if num_workers is None else num_workers
    own = torch.Generator().manual_seed(order.seed)
    if isinstance(dataset, ImageTensorDataset):
        batches = BatchSampler(order, batch_size, drop_last=False)
        return DataLoader(
            dataset, sampler=batches, batch_size=None, num_workers=workers, pin_memory=pin_memory, generator=own
        )
    return DataLoader(
        dataset, batch_size=batch_size, sampler=order, num_workers=workers, pin_memory=pin_memory,
        persistent_workers=workers > 0, generator=own, worker_init_fn=leave_signals_to_the_run,
    )


def leave_signals_to_the_run(worker_id: int) -> None:
    """A loader worker ignores SIGINT and SIGTERM: Ctrl-C and a cluster's scancel reach the whole
    process group, and the run, not its workers, decides how to stop (after the current step);
    ``workers_released`` then shuts them down."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def workers_released(*loaders: DataLoader[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[None]:
    """Shut the loaders' worker processes down however the block ends. Workers ignore SIGTERM, so
    multiprocessing's exit handler (SIGTERM, then a join with no timeout) would wait on them
    forever; a stopped or failed run's traceback keeps its loaders, and their workers, alive."""
    try:
        yield
    finally:
        for loader in loaders:
            iterator = getattr(loader, "_iterator", None)  # persistent workers' iterator (torch's own)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()


def default_num_workers(dataset: ImageDataset) -> int:
    """In-memory tensors load fastest in-process; decoded datasets get a worker per spare core."""
    if isinstance(dataset, ImageTensorDataset):
        return 0
    return max(1, min(4, (os.cpu_count() or 1) - 1))
