"""Datasets: each factory returns a train and a validation split of ``(image, label)`` pairs,
and the class names.

Images come out as float tensors ``[channels, size, size]``, standardised, ready for the model:
validation images exactly as ``image_transform(cfg)`` makes them from a picture; training images
the same, or changed each epoch by the dataset's ``augment`` keys (``pixels.Augmentation``). Each
factory takes, first and positionally, the weights' ``Preset`` that ``preset_for(cfg)`` picks
(the job passes it); without one, images are standardised with the dataset's own statistics.
"""

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from app.configs import (
    Augment,
    Cifar10Config,
    Corrupt,
    DigitsConfig,
    FakeDataConfig,
    ImageConfig,
    ImageFolderConfig,
    Preset,
)
from app.errors import DownloadFailed
from app.files import (
    CIFAR10_FOLDER,
    CIFAR10_META,
    CIFAR10_TEST,
    CIFAR10_TRAIN,
    cifar10_batch,
    cifar10_names,
    cifar10_present,
    class_folders,
    held_out,
    image_files,
)
from app.images import open_image, screened
from app.pixels import UNCHANGED as UNCHANGED
from app.pixels import Augmentation as Augmentation
from app.pixels import Pixels as Pixels
from app.pixels import decoded as decoded
from app.pixels import image_transform as image_transform
from app.pixels import picture_transform as picture_transform
from app.pixels import pixels as pixels
from app.pixels import preset_for as preset_for
from app.pixels import resized as resized
from app.pixels import trained_preset as trained_preset

log = logging.getLogger(__name__)  # under "app": in the run's train.log


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``(image, label)`` pairs with a length (torch's ``Dataset`` does not promise one)."""

    def __len__(self) -> int:
        raise NotImplementedError


def labels_of(dataset: ImageDataset) -> list[int]:
    """Each image's label, by index: from the labels the dataset holds, else image by image
    (torchvision's ``FakeData`` draws each with its image)."""
    if isinstance(dataset, (ImageTensorDataset, DecodedImages)):
        return [int(label) for label in dataset.labels]
    return [int(dataset[i][1]) for i in range(len(dataset))]


class Splits(NamedTuple):
    train: ImageDataset
    val: ImageDataset
    classes: int
    names: list[str]  # the class names, by label: digits "0".."9", folder names, CIFAR-10's


# ------------------------------------------------------------------ in-memory digits
class ImageTensorDataset(ImageDataset):
    """Images held in memory as one ``[N, 1, H, W]`` tensor; channels are expanded on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, channels: int) -> None:
        self.images, self.labels, self.channels = images, labels, channels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One image, or a whole batch when ``index`` is a list or a tensor of indices (one
        gather, no stacking)."""
        images = self.images[index]
        if images.shape[-3] != self.channels:
            images = images.expand(*images.shape[:-3], self.channels, -1, -1)
            if not isinstance(index, int):  # a batch may be pinned: it must own its memory
                images = images.contiguous()
        return images, self.labels[index]


def digits(
    preset: Optional[Preset] = None,
    /,
    *,
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
    values = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
    labels = torch.tensor(bunch.target, dtype=torch.long)
    keep = labels < classes
    values, labels = values[keep], labels[keep]

    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val = held_out(len(order), val_fraction)
    val_idx, train_idx = order[:n_val][:val_size], order[n_val:][:train_size]

    # Resized once up front (grey; channels are expanded on access), each split on its own so
    # that the peak memory stays about twice the data; the fixed statistics need no training split.
    grey = pixels(ImageConfig(size=image.size, channels=1, normalize=image.normalize), DigitsConfig, preset)
    return Splits(
        ImageTensorDataset(resized(values[train_idx], grey), labels[train_idx], image.channels),
        ImageTensorDataset(resized(values[val_idx], grey), labels[val_idx], image.channels),
        classes,
        [str(digit) for digit in range(classes)],
    )


def fake(
    preset: Optional[Preset] = None,
    /,
    *,
    image: ImageConfig,
    classes: int = 10,
    train_size: int | None = 256,
    val_size: int | None = 64,
    seed: int = 0,
) -> Splits:
    """torchvision ``FakeData``: random images and labels, the same for the same seed."""
    from torchvision.datasets import FakeData

    shape = (image.channels, image.size, image.size)
    train_n = 1000 if train_size is None else train_size
    val_n = 200 if val_size is None else val_size
    # FakeData seeds image i with ``i + random_offset``: offsets keep the splits disjoint.
    offset = seed * (train_n + val_n)
    transform = picture_transform(pixels(image, FakeDataConfig, preset))

    def split(n: int, start: int) -> ImageDataset:
        return FakeData(  # type: ignore[no-any-return]
            size=n, image_size=shape, num_classes=classes, transform=transform, random_offset=start
        )

    return Splits(split(train_n, offset), split(val_n, offset + train_n), classes, [str(c) for c in range(classes)])


# ------------------------------------------------------------------- decoded pictures
class DecodedImages(ImageDataset):
    """Pictures decoded on access (in loader workers) and transformed by ``Pixels``.

    With ``augment``, each picture's random crop and flip are drawn from its own seed, made of
    the run's seed, the epoch and its index (the loader gives ``(epoch, index)`` keys): so an
    epoch's augmentations are the same whichever worker decodes a picture, however many workers
    there are, and when a resumed epoch skips the batches it trained on before a stop.
    """

    def __init__(self, labels: list[int], p: Pixels, augmentation: Augmentation, seed: int) -> None:
        self.labels, self.augmentation, self.seed, self.pixels = labels, augmentation, seed, p
        self.mode = "RGB" if p.channels == 3 else "L"
        self.transform = picture_transform(p, augmentation)

    def picture(self, index: int) -> Any:
        """Picture ``index``, decoded in ``self.mode`` (a ``PIL.Image.Image``)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        picture = self.picture(index)
        if self.augmentation.random:
            with torch.random.fork_rng(devices=[]):  # torchvision draws from torch's global generator
                # one well-mixed 64-bit seed per (seed, epoch, index), the same in any process or Python
                torch.manual_seed(
                    int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, np.uint64)[0])
                )
                image: torch.Tensor = self.transform(picture)
        else:
            image = self.transform(picture)
        return image, torch.tensor(self.labels[index])


class ImageFiles(DecodedImages):
    """Image files (``files``, a list of paths) decoded from disk on access."""

    def __init__(
        self, files: list[str], labels: list[int], p: Pixels, augmentation: Augmentation = UNCHANGED, seed: int = 0
    ) -> None:
        super().__init__(labels, p, augmentation, seed)
        self.files = files

    def picture(self, index: int) -> Any:
        # bounded as the scan was (an UnreadableImage naming the file): a file replaced since it is refused too
        with open_image(self.files[index]) as opened:
            return decoded(opened, self.mode, self.pixels, self.augmentation.crops)


class ImageArrays(DecodedImages):
    """Pictures held in memory as one ``[N, H, W, 3]`` uint8 array (CIFAR-10's 32x32 images)."""

    def __init__(
        self, arrays: np.ndarray, labels: list[int], p: Pixels, augmentation: Augmentation = UNCHANGED, seed: int = 0
    ) -> None:
        super().__init__(labels, p, augmentation, seed)
        self.arrays = arrays

    def picture(self, index: int) -> Any:
        from PIL import Image

        return Image.fromarray(self.arrays[index]).convert(self.mode)


def _labelled_files(root: str, names: list[str]) -> tuple[list[str], list[int]]:
    files, labels = [], []
    for label, name in enumerate(names):
        found = image_files(root, name)
        files += found
        labels += [label] * len(found)
    return files, labels


class ImageList(ImageDataset):
    """Image files without labels, for prediction: ``(image, index)`` pairs through ``transform``."""

    def __init__(self, files: list[str], transform: Callable[[Any], torch.Tensor]) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with open_image(self.files[index]) as image:  # bounded as the scan before it was
            return self.transform(image), torch.tensor(index)


def image_folder(
    preset: Optional[Preset] = None,
    /,
    *,
    image: ImageConfig,
    root: str,
    classes: int,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    val_root: str | None = None,
    augment: Augment = Augment.none,
    randaugment_ops: int = 2,
    randaugment_magnitude: int = 9,
    random_erasing: float = 0.0,
    corrupt: Corrupt = Corrupt.fail,
) -> Splits:
    """``root/<class>/**/<image>``: a seeded split of every image into train and validation, or
    ``val_root``'s images (the same class folders) for validation."""
    names = class_folders(root)
    if len(names) != classes:  # the launch check says so first; this guards direct calls
        raise ValueError(f"dataset.classes={classes}, but {root} has {len(names)} class folders")
    if val_root is not None and class_folders(val_root) != names:
        raise ValueError(f"{val_root} has other class folders than {root}: {class_folders(val_root)} != {names}")
    files, labels = screened(*_labelled_files(root, names), corrupt)
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    if val_root is None:
        n_val = held_out(len(order), val_fraction)
        val_files, val_labels = files, labels
        val_idx, train_idx = order[:n_val][:val_size], order[n_val:][:train_size]
    else:
        val_files, val_labels = screened(*_labelled_files(val_root, names), corrupt)
        val_order = torch.randperm(len(val_files), generator=torch.Generator().manual_seed(seed)).tolist()
        val_idx, train_idx = val_order[:val_size], order[:train_size]

    def split(files: list[str], labels: list[int], indices: list[int], augmentation: Augmentation) -> ImageFiles:
        kept = sorted(indices)  # a seeded choice, in the folder's order
        p = pixels(image, ImageFolderConfig, preset)
        return ImageFiles([files[i] for i in kept], [labels[i] for i in kept], p, augmentation, seed)

    changed = Augmentation(augment.name, randaugment_ops, randaugment_magnitude, random_erasing)
    return Splits(
        split(files, labels, train_idx, changed),
        split(val_files, val_labels, val_idx, UNCHANGED),
        classes,
        names,
    )


def cifar10(
    preset: Optional[Preset] = None,
    /,
    *,
    image: ImageConfig,
    root: str,
    classes: int = 10,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    augment: Augment = Augment.none,
    randaugment_ops: int = 2,
    randaugment_magnitude: int = 9,
    random_erasing: float = 0.0,
) -> Splits:
    """torchvision's CIFAR-10 in ``root`` (downloaded there with ``download``): its training
    batches for training, its test batch for validation, classes ``0..classes-1``."""
    root = os.path.expanduser(root)
    if download and not cifar10_present(root):
        from torchvision.datasets import cifar

        try:  # CIFAR10.download() alone: its archive, checked by its md5 (CIFAR10() would unpickle it all)
            cifar.download_and_extract_archive(
                cifar.CIFAR10.url, root, filename=cifar.CIFAR10.filename, md5=cifar.CIFAR10.tgz_md5
            )
        except (OSError, RuntimeError) as error:  # urllib's URLError is one; RuntimeError: a wrong md5
            raise DownloadFailed(f"CIFAR-10 could not be downloaded into {root}: {error}") from None
    folder = os.path.join(root, CIFAR10_FOLDER)
    if not cifar10_present(root):  # the launch check says so first; this guards direct calls
        raise FileNotFoundError(f"{folder} is missing (dataset.download=true fetches it)")
    # Pickles, read by an unpickler that takes arrays and lists only (nothing in them runs),
    # without torchvision's md5 check of every file, which costs a second at each start.
    names = cifar10_names(os.path.join(folder, CIFAR10_META))[:classes]
    generator = torch.Generator().manual_seed(seed)

    def split(batches: Sequence[str], size: int | None, augmentation: Augmentation) -> ImageArrays:
        arrays, labels = [], []
        for name in batches:
            images, batch_labels = cifar10_batch(os.path.join(folder, name))
            arrays.append(images)
            labels += batch_labels
        kept = [i for i, label in enumerate(labels) if label < classes]
        kept = [kept[i] for i in torch.randperm(len(kept), generator=generator).tolist()][:size]
        return ImageArrays(
            np.concatenate(arrays)[kept],
            [labels[i] for i in kept],
            pixels(image, Cifar10Config, preset),
            augmentation,
            seed,
        )

    changed = Augmentation(augment.name, randaugment_ops, randaugment_magnitude, random_erasing)
    return Splits(
        split(CIFAR10_TRAIN, train_size, changed),
        split([CIFAR10_TEST], val_size, UNCHANGED),
        classes,
        names,
    )
