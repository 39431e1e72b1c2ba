"""The data layer: ImageFolder semantics, val_root, augmentation that resumes exactly, the scan
for corrupt files, CIFAR-10 offline, the weights' preset, and the interfaces other modules use
(``Splits.names``, ``data.image_transform``)."""

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from app import files
from app.checks import ConfigError, group_options
from app.data import ImageFiles, Splits, image_transform, preset_for
from app.errors import UnreadableImage
from app.launch import compose_config
from app.train import train
from app.training.loaders import EpochOrder, loader, workers_released
from app.training.runtime import failure
from tests.conftest import CIFAR10_NAMES
from tests.test_engine import resumed_ends_as_straight


def write_pngs(root: Path, counts: dict[str, int], size: int = 12) -> list[Path]:
    """``counts[path]`` PNGs of ``size`` px under ``root/path`` (a class folder, or one inside it),
    each class a colour of its own plus noise."""
    rng = np.random.default_rng(len(counts))
    written = []
    for where, n in counts.items():
        folder = root / where
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array([(hash(where.split("/")[0]) >> shift) % 200 for shift in (0, 8, 16)])
        for i in range(n):
            pixels = np.clip(colour + rng.integers(0, 56, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
            written.append(folder / f"{i}.png")
    return written


def folder_splits(root: Path, *overrides: str) -> Splits:
    cfg = compose_config(["dataset=folder", f"dataset.root={root}", "dataset.image.size=64", *overrides])
    return instantiate(cfg.dataset, preset_for(cfg))  # type: ignore[no-any-return]


def files_and_labels(split: Any) -> list[tuple[str, int]]:
    return list(zip(split.files, split.labels))


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes, their images partly in sub-folders, with files and folders to leave out."""
    root = tmp_path_factory.mktemp("nested")
    write_pngs(root, {"ant": 3, "ant/more/deeper": 2, "bee": 4, "cow": 2, "cow/x": 3})
    (root / "bee" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()  # a notebook's .ipynb_checkpoints, say: no class
    Image.new("RGB", (8, 8)).save(root / "bee" / "upper.JPEG")  # extensions match in any case
    return root


# ------------------------------------------------------------------ ImageFolder semantics
def test_the_extensions_are_torchvisions() -> None:
    assert files.IMG_EXTENSIONS == torchvision.datasets.folder.IMG_EXTENSIONS


def test_folder_reads_what_torchvisions_imagefolder_reads(nested: Path) -> None:
    splits = folder_splits(nested, "dataset.classes=3")
    ours = sorted(
        (path, splits.names[label]) for path, label in files_and_labels(splits.train) + files_and_labels(splits.val)
    )
    theirs = torchvision.datasets.ImageFolder(str(nested), allow_empty=True)
    # the same files and classes; a hidden folder is no class here (torchvision's would be class 0)
    assert ours == sorted((path, theirs.classes[label]) for path, label in theirs.samples if ".hidden" not in path)
    assert splits.names == ["ant", "bee", "cow"] and len(ours) == 15
    assert any("deeper" in path for path, _ in ours)  # found recursively
    assert splits.train[0][0].shape == (3, 64, 64)


def test_val_root_replaces_the_seeded_split(nested: Path, tmp_path: Path) -> None:
    val_files = write_pngs(tmp_path, {"ant": 1, "bee/sub": 2, "cow": 1})
    splits = folder_splits(nested, "dataset.classes=3", f"dataset.val_root={tmp_path}")
    assert sorted(splits.val.files) == sorted(map(str, val_files))  # type: ignore[attr-defined]
    assert splits.val.labels == [0, 1, 1, 2] and len(splits.train) == 15  # type: ignore[attr-defined]


def test_a_val_root_with_other_classes_is_refused_naming_them(nested: Path, tmp_path: Path) -> None:
    write_pngs(tmp_path, {"ant": 1, "bee": 1, "dog": 1})
    (tmp_path / "cow").mkdir()  # there, but empty
    with pytest.raises(ConfigError) as refused:
        compose_config(
            ["dataset=folder", f"dataset.root={nested}", "dataset.classes=3", f"dataset.val_root={tmp_path}"]
        )
    [problem] = refused.value.problems
    assert problem.key == "dataset.val_root" and "ant, bee, cow" in problem.rule
    assert "dog is not in dataset.root" in problem.hint
    (tmp_path / "dog" / "0.png").unlink()
    (tmp_path / "dog").rmdir()
    with pytest.raises(ConfigError) as empty:
        compose_config(
            ["dataset=folder", f"dataset.root={nested}", "dataset.classes=3", f"dataset.val_root={tmp_path}"]
        )
    assert [(p.key, p.hint) for p in empty.value.problems] == [("dataset.val_root", "add images to, or remove: cow")]


# --------------------------------------------------------------------- corrupt files
@pytest.fixture()
def with_corrupt(tmp_path: Path) -> tuple[Path, list[Path]]:
    written = write_pngs(tmp_path / "data", {"a": 4, "b": 4})
    cut, junk = tmp_path / "data" / "a" / "cut.png", tmp_path / "data" / "b" / "junk.png"
    cut.write_bytes(written[0].read_bytes()[:60])  # a download cut short
    junk.write_bytes(b"<html>not found</html>")  # a web page saved under an image's name
    return tmp_path / "data", [cut, junk]


def test_corrupt_files_are_skipped_with_a_warning(
    with_corrupt: tuple[Path, list[Path]], caplog: pytest.LogCaptureFixture
) -> None:
    root, bad = with_corrupt
    with caplog.at_level(logging.WARNING, logger="app.data"):
        splits = folder_splits(root, "dataset.classes=2", "dataset.corrupt=skip")
    kept = splits.train.files + splits.val.files  # type: ignore[attr-defined]
    assert len(kept) == 8 and not {str(path) for path in bad} & set(kept)
    assert "2 of 10 image files cannot be read" in caplog.text and str(bad[0]) in caplog.text
    assert all(splits.train[i][0].shape == (3, 64, 64) for i in range(len(splits.train)))


def test_corrupt_files_fail_the_run_naming_them(with_corrupt: tuple[Path, list[Path]], tmp_path: Path) -> None:
    root, bad = with_corrupt
    cfg = compose_config(["dataset=folder", f"dataset.root={root}", "dataset.classes=2", "dataset.image.size=64"])
    with pytest.raises(Exception) as refused:  # CorruptImages, in Hydra's InstantiationException
        train(cfg, tmp_path / "run")
    text = failure(refused.value)
    assert all(str(path) in text for path in bad) and "2 of 10 image files cannot be read" in text
    assert "dataset.corrupt=skip" in text and "\n" not in text.split("\n  hint:")[0]  # one paragraph
    assert not (tmp_path / "run" / "checkpoints").exists()  # before any training


def test_a_file_broken_after_the_scan_is_named_not_a_worker_traceback(with_corrupt: tuple[Path, list[Path]]) -> None:
    root, bad = with_corrupt
    train_split = folder_splits(root, "dataset.classes=2", "dataset.corrupt=skip").train
    broken = train_split.files[0]  # type: ignore[attr-defined]
    Path(broken).write_bytes(b"")  # overwritten while the run reads its folder
    with (
        pytest.raises(OSError) as failed,
        workers_released(batches := loader(train_split, 2, EpochOrder(len(train_split), 0, False), 1, False)),
    ):
        list(batches)
    text = failure(failed.value)
    assert text.startswith(f"The run failed: UnreadableImage: {broken}: ") and "Traceback" not in text
    assert f"hint: {UnreadableImage.hint}" in text  # the file changed since the scan: its type says what to do


# --------------------------------------------------------------------------- augment
# Every way a training image can change: each policy (after light's crop and flip), and random
# erasing alone (on the centre crop) and on top of a policy.
AUGMENTATIONS = [
    ["dataset.augment=light"],
    ["dataset.augment=trivialaugment"],
    ["dataset.augment=randaugment", "dataset.randaugment_ops=3", "dataset.randaugment_magnitude=20"],
    ["dataset.augment=autoaugment"],
    ["dataset.augment=augmix"],
    ["dataset.random_erasing=1"],
    ["dataset.augment=trivialaugment", "dataset.random_erasing=0.5"],
]


@pytest.mark.parametrize("augmentation", AUGMENTATIONS, ids=" ".join)
def test_augmentation_changes_training_images_by_epoch_only(nested: Path, augmentation: list[str]) -> None:
    splits = folder_splits(nested, "dataset.classes=3", *augmentation, "trainer.seed=3")
    n = len(splits.train)
    first, again, later = ([splits.train[(epoch, i)][0] for i in range(n)] for epoch in (1, 1, 2))
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # the same (seed, epoch, index), the same pixels
    moved = [not torch.equal(a, b) for a, b in zip(first, later)]  # another epoch, other pixels
    assert sum(moved) >= 0.75 * n, moved  # a 12-px picture's crop can repeat: most change, not all
    assert torch.equal(splits.val[(1, 0)][0], splits.val[(2, 0)][0])  # validation images never change
    plain = folder_splits(nested, "dataset.classes=3")
    assert torch.equal(plain.train[0][0], plain.train[0][0])  # augment=none: the same tensor every time


@pytest.mark.parametrize("augmentation", AUGMENTATIONS[1:5], ids=" ".join)
def test_each_policy_changes_what_lights_crop_and_flip_gave(nested: Path, augmentation: list[str]) -> None:
    light = folder_splits(nested, "dataset.classes=3", "dataset.augment=light").train
    policy = folder_splits(nested, "dataset.classes=3", *augmentation).train
    changed = [not torch.equal(light[(1, i)][0], policy[(1, i)][0]) for i in range(len(light))]
    assert sum(changed) >= len(changed) // 2, changed  # a policy may draw its identity op for a picture


def test_randaugments_keys_without_randaugment_are_refused(nested: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        folder_splits(nested, "dataset.classes=3", "dataset.augment=light", "dataset.randaugment_magnitude=20")
    [problem] = refused.value.problems
    assert problem.key == "dataset.randaugment_magnitude" and "dataset.augment=randaugment" in problem.hint


def test_an_epoch_skipped_into_gives_the_same_augmented_batches_in_any_worker(nested: Path) -> None:
    # A resumed epoch skips the batches done before the stop: the rest must come out unchanged,
    # whichever worker decodes them.
    train_split = folder_splits(nested, "dataset.classes=3", "dataset.augment=light").train

    def batches(skip: int, workers: int) -> list[torch.Tensor]:
        order = EpochOrder(len(train_split), 0, True)
        order.set_epoch(2, skip=skip)
        with workers_released(batches := loader(train_split, 3, order, workers, False)):
            return [images for images, _ in batches]

    whole, resumed = batches(0, 0), batches(6, 2)
    assert len(resumed) == len(whole) - 2 and all(torch.equal(a, b) for a, b in zip(whole[2:], resumed))


# Every knob on at once in the default run (the seeding is the same for every policy: the test
# above); each other policy in the slow tier.
RESUMED = [
    ["dataset.augment=light"],
    [*AUGMENTATIONS[2], "dataset.random_erasing=0.5"],
    *(pytest.param(a, marks=pytest.mark.slow) for a in [AUGMENTATIONS[1], *AUGMENTATIONS[3:5], AUGMENTATIONS[6]]),
]


@pytest.mark.parametrize("augmentation", RESUMED, ids=lambda a: " ".join(a))
def test_a_resumed_augmented_folder_run_ends_as_a_straight_one(
    image_folder: Path, tmp_path: Path, augmentation: list[str]
) -> None:
    # In-process decoding (the workers' case is the test above): the augmentation must leave
    # torch's global generator, which the dropout of the large head draws from, as it was.
    recipe = [
        "dataset=folder",
        f"dataset.root={image_folder}",
        "dataset.classes=3",
        "dataset.image.size=64",
        *augmentation,
        "trainer.batch_size=8",
        "trainer.epochs=2",
        "trainer.num_workers=0",
        "trainer.deterministic=true",
        "trainer.freeze_extractor=true",
        "classifier=large",
        "scheduler=step",
    ]
    resumed_ends_as_straight(recipe, tmp_path)


def test_digits_do_not_offer_augmentation() -> None:
    with pytest.raises(ConfigError) as refused:  # a flipped 2 is no digit
        compose_config(["dataset.augment=light"])
    assert [p.key for p in refused.value.problems] == ["dataset.augment"]


# ---------------------------------------------------------------------------- cifar10
def test_cifar10_absent_offline_is_refused_at_launch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        compose_config(["dataset=cifar10", f"dataset.root={tmp_path}", "dataset.image.size=64"])
    [problem] = refused.value.problems
    assert problem.key == "dataset.root" and "dataset.download=true" in problem.hint
    assert "cifar-10-batches-py" in problem.hint
    compose_config(["dataset=cifar10", f"dataset.root={tmp_path}", "dataset.image.size=64", "dataset.download=true"])


def test_cifar10_reads_its_batches(cifar10_root: Path) -> None:
    cfg = compose_config(
        [
            "dataset=cifar10",
            f"dataset.root={cifar10_root}",
            "dataset.image.size=64",
            "dataset.classes=3",
            "dataset.augment=light",
        ]
    )
    splits: Splits = instantiate(cfg.dataset, preset_for(cfg))
    assert splits.names == CIFAR10_NAMES[:3] and splits.classes == 3
    assert (len(splits.train), len(splits.val)) == (15, 3)  # 3 of each batch's 10 images are classes 0-2
    assert splits.train[(1, 0)][0].shape == (3, 64, 64)
    assert sorted(splits.val.labels) == [0, 1, 2]  # type: ignore[attr-defined]


def test_cifar10_download_offline_fails_in_one_paragraph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.error import URLError

    def offline(*args: Any, **kwargs: Any) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    cfg = compose_config(
        ["dataset=cifar10", f"dataset.root={tmp_path}", "dataset.image.size=64", "dataset.download=true"]
    )
    with pytest.raises(Exception) as failed:  # DownloadFailed, in Hydra's InstantiationException
        train(cfg, tmp_path / "run")
    text = failure(failed.value)
    assert text.startswith("The run failed: DownloadFailed: CIFAR-10 could not be downloaded into")
    assert "copy the cifar-10-batches-py folder into dataset.root" in text and "Traceback" not in text


# ------------------------------------------------------------------ the weights' preset
def extractor_options() -> list[tuple[str, Any]]:
    return [(option, node) for group, option, node in group_options() if group == "feature_extractor"]


@pytest.mark.parametrize(("option", "node"), extractor_options(), ids=lambda v: str(v)[:20])
def test_each_recorded_preset_is_torchvisions(option: str, node: Any) -> None:
    names = torchvision.models.get_model_weights(option)
    recorded = type(node).presets
    assert set(recorded) == {field.name for field in type(node).__dataclass_fields__["weights"].type.__args__[0]}
    for name, preset in recorded.items():
        real = names[name].transforms()
        assert (preset.resize, preset.crop) == (real.resize_size[0], real.crop_size[0]), name
        assert (list(preset.mean), list(preset.std)) == (real.mean, real.std), name
        assert preset.interpolation == real.interpolation.value, name


def test_weights_set_the_images_to_their_preset(nested: Path) -> None:
    # At 224 px the run's images are exactly what torchvision's own preset makes of them.
    picture = Image.open(next((nested / "bee").glob("*.png"))).convert("RGB").resize((300, 260))
    for extractor, name in [
        ("efficientnet_b0", "IMAGENET1K_V1"),
        ("resnet50", "IMAGENET1K_V2"),
        ("vit_b_16", "IMAGENET1K_SWAG_LINEAR_V1"),
    ]:
        cfg = compose_config(
            [
                "dataset=folder",
                f"dataset.root={nested}",
                "dataset.classes=3",
                "dataset.image.size=224",
                f"feature_extractor={extractor}",
                f"feature_extractor.weights={name}",
            ]
        )
        expected = torchvision.models.get_model_weights(extractor)[name].transforms()(picture)
        assert torch.allclose(image_transform(cfg)(picture), expected, atol=1e-6), extractor


def test_normalize_chooses_whose_statistics() -> None:
    def resize(*overrides: str) -> Optional[int]:
        preset = preset_for(compose_config(["feature_extractor=resnet50", *overrides], validate=False))
        return None if preset is None else preset.resize

    assert resize() is None  # no weights: the dataset's own statistics
    assert resize("feature_extractor.weights=IMAGENET1K_V1") == 256
    assert resize("feature_extractor.weights=IMAGENET1K_V1", "dataset.image.normalize=dataset") is None
    assert resize("dataset.image.normalize=weights") == 232  # a state dict's run: the DEFAULT preset (V2)
    saved = compose_config(["feature_extractor=resnet50", "feature_extractor.weights=IMAGENET1K_V2"], validate=False)
    plain = OmegaConf.create(OmegaConf.to_container(saved, resolve=True, enum_to_str=True))  # as config.yaml holds it
    assert isinstance(plain, DictConfig) and preset_for(plain) == preset_for(saved)


# ------------------------------------------------------------- interfaces: names, transform
def test_splits_name_their_classes(tmp_path: Path) -> None:
    digits = compose_config(["dataset.classes=3", "dataset.image.size=64"])
    assert instantiate(digits.dataset).names == ["0", "1", "2"]
    fake = compose_config(["dataset=fake", "dataset.classes=4", "dataset.image.size=64"])
    assert instantiate(fake.dataset).names == ["0", "1", "2", "3"]


def test_image_transform_is_the_folder_runs_validation_transform(nested: Path) -> None:
    for channels in ("3", "1"):
        cfg = compose_config(
            [
                "dataset=folder",
                f"dataset.root={nested}",
                "dataset.classes=3",
                "dataset.image.size=64",
                f"dataset.image.channels={channels}",
            ]
        )
        val: ImageFiles = instantiate(cfg.dataset, preset_for(cfg)).val
        saved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))  # a checkpoint's config
        assert isinstance(saved, DictConfig)
        for transform in (image_transform(cfg), image_transform(saved)):
            for index in range(len(val)):
                assert torch.equal(transform(Image.open(val.files[index])), val[index][0])


def test_image_transform_is_the_digits_runs_validation_transform(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    cfg = compose_config(["dataset.classes=2", "dataset.image.size=32", "feature_extractor=resnet18"])
    val = instantiate(cfg.dataset, preset_for(cfg)).val
    transform = image_transform(cfg)
    pictures = []  # every digit 0 or 1 as an 8x8 PNG, grey = value x 255 / 16
    for index, values in enumerate(load_digits(n_class=2).images):
        Image.fromarray(np.round(values * 255 / 16).astype(np.uint8)).save(tmp_path / f"{index}.png")
        pictures.append(transform(Image.open(tmp_path / f"{index}.png")))
    candidates = torch.stack(pictures).flatten(1)
    tensors, _ = val[list(range(len(val)))]
    assert tensors.shape[1:] == pictures[0].shape == (3, 32, 32)
    # each validation image is one of the digits' PNGs, up to the PNG's rounding (0.5/255 / std)
    nearest = (tensors.flatten(1)[:, None] - candidates[None]).abs().amax(dim=2).amin(dim=1)
    assert nearest.max() < 0.01


def test_image_transform_is_the_cifar10_runs_validation_transform(cifar10_root: Path) -> None:
    cfg = compose_config(["dataset=cifar10", f"dataset.root={cifar10_root}", "dataset.image.size=64"])
    val = instantiate(cfg.dataset, preset_for(cfg)).val
    assert torch.equal(image_transform(cfg)(Image.fromarray(val.arrays[0])), val[0][0])


def test_a_jpeg_is_decoded_at_the_scale_its_resize_needs_in_training_and_for_a_picture(tmp_path: Path) -> None:
    from app.data import Pixels, decoded

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for index in range(3):
            pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{index}.jpg", quality=90)
    first = tmp_path / "a" / "0.jpg"
    p = Pixels(size=64, channels=3, resize=64, interpolation="bilinear", mean=None, std=None)
    assert decoded(Image.open(first), "RGB", p).size == (125, 94)  # 1/4 scale: the shorter side 375 // 4 >= 64
    assert decoded(Image.open(first), "RGB", p, random_crop=True).size == (500, 375)  # a random crop may need them all
    cfg = compose_config(["dataset=folder", f"dataset.root={tmp_path}", "dataset.classes=2", "dataset.image.size=64"])
    val: ImageFiles = instantiate(cfg.dataset, preset_for(cfg)).val
    for index in range(len(val)):  # the run's validation images are what image_transform makes of the file
        assert torch.equal(image_transform(cfg)(Image.open(val.files[index])), val[index][0])
