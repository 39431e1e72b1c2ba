"""Fine-tuning recipes: class balance by the loss or by a sampler, mixup and cutmix, staged fine-tuning."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from app import data, errors, factories, models
from app.checks import ConfigError
from app.launch import compose_config
from app.train import train
from app.training import engine, inference, loaders
from app.training.build import build
from app.training.distributed import Ranks
from app.training.fit import fit
from app.training.loaders import EpochOrder
from app.training.mixing import Mixing
from app.training.run_files import RunFiles
from tests.test_engine import resumed_ends_as_straight, weights


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits 0 and 6 as PNG folders: 150 training images of 0 for 15 of 6 (10:1), 25 of each to validate."""
    root = tmp_path_factory.mktemp("imbalanced")
    digits = load_digits()
    for name, digit, trained in (("zero", 0, 150), ("six", 6, 15)):
        images = digits.images[digits.target == digit]
        for split, chosen in (("train", images[:trained]), ("val", images[trained : trained + 25])):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, pixels in enumerate(chosen):
                Image.fromarray((pixels * 255 / 16).round().astype(np.uint8)).save(folder / f"{i}.png")
    return root


def recipe(root: Path, balance: str) -> list[str]:
    return [
        "+debug=fast",
        "dataset=folder",
        f"dataset.root={root / 'train'}",
        f"dataset.val_root={root / 'val'}",
        "dataset.classes=2",
        "dataset.image.size=124",  # at 64 px a random AlexNet's features hardly tell a 0 from a 6
        "classifier=large",
        "dataset.train_size=null",
        "dataset.val_size=null",
        "trainer.freeze_extractor=true",
        f"trainer.feature_cache_dir={root / 'cache'}",
        "trainer.epochs=8",
        "trainer.batch_size=16",
        "optimizer.lr=1e-3",
        f"trainer.class_balance={balance}",
    ]


def test_loss_weights_are_the_inverse_class_frequencies(imbalanced: Path) -> None:
    job = build(compose_config(recipe(imbalanced, "loss")), Ranks(), torch.device("cpu"))
    counts = torch.bincount(torch.tensor(data.labels_of(job.splits.train)), minlength=2)
    assert counts.tolist() == [15, 150]  # class folders in sorted order: six, zero
    weights = job.training.class_weights
    assert weights is not None and torch.allclose(weights * counts, torch.full((2,), 165 / 2))


def test_the_sampler_draws_classes_equally_and_the_same_again_for_the_same_epoch() -> None:
    labels = torch.tensor([0] * 1800 + [1] * 200)
    weights = (1.0 / torch.bincount(labels).double())[labels]
    order = EpochOrder(len(labels), 7, True, weights=weights)
    order.set_epoch(3)
    drawn = list(order)
    assert len(drawn) == 2000 and abs(labels[drawn].float().mean().item() - 0.5) < 0.05  # equal within 5 points
    assert list(order) == drawn  # the same seed and epoch: the same draw (exact resume)
    order.set_epoch(3, skip=500)
    assert list(order) == drawn[500:]  # a resumed epoch skips what it trained on
    order.set_epoch(4)
    assert list(order) != drawn
    ranks = [EpochOrder(len(labels), 7, True, rank, 2, weights=weights) for rank in (0, 1)]
    for shard in ranks:
        shard.set_epoch(3)
    assert sorted([*ranks[0], *ranks[1]]) == sorted(drawn)  # two processes share one draw


def test_class_balance_is_refused_where_it_cannot_work(imbalanced: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        compose_config(["trainer.class_balance=sampler", "trainer.overfit_batches=2"])
    assert [p.key for p in refused.value.problems] == ["trainer.class_balance"]
    # a training split where a class has no image: named, with its count
    cfg = compose_config([*recipe(imbalanced, "loss"), "dataset.train_size=3", "trainer.freeze_extractor=false"])
    with pytest.raises(errors.EmptyClass, match="no training image of class six"):
        build(cfg, Ranks(), torch.device("cpu"))


def recall(run: Path, root: Path) -> list[float]:
    trained = models.load(run / "checkpoints/last.pt")
    val = factories.splits(compose_config(recipe(root, "none"))).val
    batches = loaders.loader(val, 32, EpochOrder(len(val), 0, False), 0, False)
    logits, labels, _ = inference.predictions(trained.model, batches, engine.Step(torch.device("cpu"), "fp32"))
    return [row["recall"] for row in inference.classification_metrics(logits, labels, trained.classes)["per_class"]]


@pytest.mark.extended  # a learning curve: seconds, run by CI after the default tier
def test_class_balanced_loss_raises_the_rare_class_recall(imbalanced: Path, tmp_path: Path) -> None:
    train(compose_config(recipe(imbalanced, "none")), tmp_path / "none")
    train(compose_config(recipe(imbalanced, "loss")), tmp_path / "loss")
    plain, balanced = recall(tmp_path / "none", imbalanced), recall(tmp_path / "loss", imbalanced)
    assert min(balanced) > min(plain) + 0.3, (plain, balanced)  # measured: 0.0 -> 0.68 for the 6s


def test_mixup_targets_sum_to_one_and_are_the_images_mixing_coefficient() -> None:
    images, labels = torch.rand(4, 3, 8, 8), torch.arange(4)
    mixed, targets = Mixing(0.2, 0.0, 0.5, 4, seed=1)(images, labels, 1)
    assert torch.allclose(targets.sum(1), torch.ones(4))
    share = targets[0, 0]  # image 0 is mixed with the batch rolled by one: image 3
    assert torch.allclose(targets[0, 3], 1 - share) and 0 < share < 1
    assert torch.allclose(mixed[0], share * images[0] + (1 - share) * images[3], atol=1e-6)


def test_cutmix_targets_are_the_share_of_pixels_each_image_keeps() -> None:
    images, labels = torch.rand(4, 3, 16, 16), torch.arange(4)
    mixed, targets = Mixing(0.0, 1.0, 0.5, 4, seed=2)(images, labels, 1)
    kept = (mixed[0] == images[0]).all(0).float().mean()  # pixels of image 0 left where they were
    assert torch.allclose(targets.sum(1), torch.ones(4)) and torch.isclose(targets[0, 0], kept)


def test_a_batchs_mix_is_drawn_again_from_its_epoch_and_number_only() -> None:
    images, labels = torch.rand(6, 3, 8, 8), torch.arange(6) % 3
    mixing = Mixing(0.2, 1.0, 0.5, 3, seed=5, epoch=2)
    first = mixing(images, labels, 3)
    torch.rand(10)  # whatever the global generator did in between
    again = mixing(images, labels, 3)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    mixing.epoch = 3
    assert not torch.equal(mixing(images, labels, 3)[1], first[1])


def test_a_resumed_mixed_run_ends_as_a_straight_one(tmp_path: Path) -> None:
    mixed = ["+debug=fast", "trainer.epochs=2", "trainer.mixup_alpha=0.2", "trainer.cutmix_alpha=1.0"]
    # the step schedule: its lr does not follow trainer.epochs, which the first half of the resumed run stops at
    recipe = [
        *mixed,
        "scheduler=step",
        "trainer.label_smoothing=0.1",
        "trainer.accumulate_batches=2",
        "trainer.deterministic=true",
    ]
    ours = resumed_ends_as_straight(recipe, tmp_path)
    train(compose_config([*recipe[:2], *recipe[4:]]), tmp_path / "unmixed")
    unmixed = weights(tmp_path / "unmixed/checkpoints/last.pt")
    assert not all(torch.equal(ours[k], unmixed[k]) for k in ours)  # the mixing did train otherwise


def test_mixing_is_refused_where_it_cannot_work() -> None:
    for overrides, key in (
        (["trainer.freeze_extractor=true", "trainer.mixup_alpha=0.2"], "trainer.mixup_alpha"),
        (["trainer.cutmix_alpha=1", "trainer.mix_switch_prob=0.9"], "trainer.mix_switch_prob"),
    ):
        with pytest.raises(ConfigError) as refused:
            compose_config(overrides)
        assert [p.key for p in refused.value.problems] == [key]
    compose_config(["trainer.freeze_extractor=true", "trainer.feature_cache=false", "trainer.mixup_alpha=0.2"])


# ------------------------------------------------------------------------ staged fine-tuning
def staged(cache: Path, *overrides: str) -> list[str]:
    return [
        "+debug=fast",
        "trainer.epochs=3",
        "trainer.freeze_epochs=2",
        f"trainer.feature_cache_dir={cache}",
        "scheduler=step",  # its lr does not follow trainer.epochs, which a resumed run's first part stops at
        "trainer.deterministic=true",
        *overrides,
    ]


def test_a_staged_run_keeps_the_extractor_through_its_frozen_epochs_on_cached_features_and_trains_it_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    job = build(compose_config(staged(tmp_path / "cache")), Ranks(), torch.device("cpu"))
    start = {k: v.clone() for k, v in job.model.extractor.state_dict().items()}
    moved: list[bool] = []  # after each optimizer step: whether the extractor differs from the start
    job.training.optimizer.register_step_post_hook(
        lambda *_: moved.append(any(not torch.equal(v, start[k]) for k, v in job.model.extractor.state_dict().items()))
    )
    assert job.train_loader.dataset.images.dim() == 2  # type: ignore[attr-defined]  # the cached features
    fit(job, RunFiles(tmp_path / "run", write=True))
    assert moved == [False] * 8 + [True] * 4  # 64 images in batches of 16: 2 frozen epochs, then one trained
    assert job.train_loader.dataset.images.dim() == 4  # type: ignore[attr-defined]  # the images, from epoch 3
    log = caplog.text
    assert "feature cache: built" in log and "epoch 3: the extractor trains from now on" in log
    # the extractor's lr in the second stage: the head's x extractor_lr_scale, as the optimizer held it all along
    assert len(job.training.optimizer.param_groups) == 2


def test_a_staged_run_resumed_in_its_frozen_stage_ends_as_a_straight_one(tmp_path: Path) -> None:
    resumed_ends_as_straight(staged(tmp_path / "cache", "trainer.extractor_lr_scale=0.1"), tmp_path)


@pytest.mark.slow
def test_a_staged_run_resumed_at_its_second_stage_on_images_ends_as_a_straight_one(tmp_path: Path) -> None:
    resumed_ends_as_straight(staged(tmp_path / "cache", "trainer.freeze_epochs=1"), tmp_path)


def test_freeze_epochs_is_refused_with_a_whole_frozen_run() -> None:
    with pytest.raises(ConfigError) as refused:
        compose_config(["trainer.freeze_extractor=true", "trainer.freeze_epochs=2"])
    assert [p.key for p in refused.value.problems] == ["trainer.freeze_epochs"]
    assert "freezes the extractor for the whole run" in str(refused.value)


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        (["dataset=fake", "dataset.train_size=40", "trainer.batch_size=32"], 2),  # 2 batches an epoch
        (["+debug=fast", "trainer.accumulate_batches=16"], 1),  # 64 digits in 4 batches: one optimizer step
    ],
)
def test_onecycle_with_too_few_optimizer_steps_is_refused_at_launch_with_the_count(
    overrides: list[str], steps: int
) -> None:
    base = ["scheduler=onecycle", "trainer.epochs=1", "trainer.num_workers=0", *overrides]
    with pytest.raises(ConfigError) as refused:
        compose_config(base)
    (problem,) = refused.value.problems
    assert problem.key == "scheduler" and f"this one has {steps} (1 epoch x {steps}:" in problem.rule
    # the fewest epochs that reach 3 steps pass, and the job builds a schedule of that many steps
    epochs = -(-3 // steps)
    job = build(compose_config([*base, f"trainer.epochs={epochs}"]), Ranks(), torch.device("cpu"))
    assert job.training.scheduler is not None and job.training.scheduler.total_steps == epochs * steps  # type: ignore[attr-defined]
