"""The frozen extractor's feature cache: the head learns as it does from images, a second run
reuses the features, another key builds another folder, and resume stays exact."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from app.checks import ConfigError
from app.configs import feature_cache_unused_because as unused_because
from app.launch import compose_config
from app.train import train
from tests.test_engine import metrics, weights

# Three batches of 16, a head with dropout (the random state matters) and an EMA (its validation
# runs the head alone on the features too).
BASE = [
    "+debug=fast",
    "dataset.train_size=48",
    "trainer.epochs=2",
    "trainer.freeze_extractor=true",
    "classifier=large",
    "scheduler=constant",
    "trainer.ema_decay=0.9",
    "trainer.deterministic=true",
]


def run(tmp: Path, cache: Path, *overrides: str) -> str:
    """Train ``BASE`` + ``overrides`` in ``tmp`` with the cache under ``cache``; its ``train.log``."""
    train(compose_config([*BASE, f"trainer.feature_cache_dir={cache}", *overrides]), tmp)
    return (tmp / "train.log").read_text()


@pytest.fixture(scope="session")
def cached(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The run dir, cache dir and log of one run that built its cache."""
    root = tmp_path_factory.mktemp("cached")
    log = run(root / "run", root / "cache")
    return root / "run", root / "cache", log


def folders(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir())


def test_the_head_learns_from_cached_features_as_from_images(cached: tuple[Path, Path, str], tmp_path: Path) -> None:
    run_dir, cache, log = cached
    assert "feature cache: built" in log and "in memory" in log
    plain_log = run(tmp_path / "run", tmp_path / "cache", "trainer.feature_cache=false")
    assert "feature cache: not used (trainer.feature_cache=false)" in plain_log
    assert not (tmp_path / "cache").exists()  # nothing written
    ours, theirs = weights(run_dir / "checkpoints/last.pt"), weights(tmp_path / "run/checkpoints/last.pt")
    assert ours.keys() == theirs.keys()  # the extractor is saved too
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-3, atol=1e-4, msg=key)
    for row, other in zip(metrics(run_dir), metrics(tmp_path / "run"), strict=True):
        for name in ("train_loss", "val_loss", "ema_val_loss"):
            assert float(row[name]) == pytest.approx(float(other[name]), abs=1e-3), name


def test_a_second_run_reuses_the_features(cached: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, cache, _ = cached
    [folder] = folders(cache)
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    log = run(tmp_path, cache, "classifier=small")  # a sweep over heads shares the features
    assert f"feature cache: reused {folder}" in log
    assert folders(cache) == [folder] and {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written


def test_another_key_builds_another_folder(cached: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, cache, _ = cached
    first = folders(cache)[0]
    other = tmp_path / "cache"
    for name in first.iterdir():  # a copy of the cache: the shared one stays as the other tests expect
        (other / first.name).mkdir(parents=True, exist_ok=True)
        (other / first.name / name.name).write_bytes(name.read_bytes())
    assert "feature cache: built" in run(tmp_path / "seed", other, "trainer.seed=1", "trainer.channels_last=true")
    assert "feature cache: built" in run(tmp_path / "size", other, "dataset.image.size=72")
    assert len(folders(other)) == 3 and any("-72px-" in p.name for p in folders(other))
    key = json.loads((first / "key.json").read_text())
    (other / first.name / "key.json").write_text(json.dumps({**key, "format": "an older format"}))
    assert "feature cache: built" in run(tmp_path / "stale", other)  # never used when its key differs
    torn = other / first.name / "train.pt"
    torn.write_bytes(torn.read_bytes()[:1000])  # as a full disk or another tool might leave it
    log = run(tmp_path / "torn", other)
    assert "cannot be read" in log and "feature cache: built" in log


def test_a_resumed_run_with_the_cache_ends_as_a_straight_one(cached: tuple[Path, Path, str], tmp_path: Path) -> None:
    straight, cache, _ = cached
    run(tmp_path, cache, "trainer.epochs=1")
    assert "feature cache: reused" in run(tmp_path, cache, "trainer.resume=auto")
    for key in ("model", "ema"):
        ours, theirs = weights(tmp_path / "checkpoints/last.pt", key), weights(straight / "checkpoints/last.pt", key)
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), key
    assert metrics(tmp_path) == metrics(straight)


def test_features_over_the_memory_limit_are_memory_mapped(cached: tuple[Path, Path, str], tmp_path: Path) -> None:
    straight, cache, _ = cached
    log = run(tmp_path, cache, "trainer.feature_cache_memory_gib=0")
    assert "feature cache: reused" in log and "memory-mapped" in log
    ours, theirs = weights(tmp_path / "checkpoints/last.pt"), weights(straight / "checkpoints/last.pt")
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_the_cache_is_used_only_for_a_frozen_extractor_and_fixed_images() -> None:
    cfg = compose_config(["trainer.freeze_extractor=true"])
    assert unused_because(cfg) is None
    assert "freeze_extractor=false" in str(unused_because(compose_config([])))
    assert "feature_cache=false" in str(
        unused_because(compose_config(["trainer.freeze_extractor=true", "trainer.feature_cache=false"]))
    )
    # dataset.augment and random_erasing (folder and cifar10): new images every epoch
    for dataset, used in (
        ({"augment": "none", "random_erasing": 0.0}, True),
        ({"augment": "light", "random_erasing": 0.0}, False),
        ({"augment": "autoaugment", "random_erasing": 0.0}, False),
        ({"augment": "none", "random_erasing": 0.1}, False),
    ):
        node = OmegaConf.create({"trainer": {"freeze_extractor": True, "feature_cache": True}, "dataset": dataset})
        assert (unused_because(node) is None) == used, dataset


def test_a_cache_dir_that_cannot_be_made_is_refused_at_launch(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    blocked = f"trainer.feature_cache_dir={tmp_path / 'a_file' / 'features'}"
    with pytest.raises(ConfigError, match=r"trainer\.feature_cache_dir") as refused:
        compose_config(["trainer.freeze_extractor=true", blocked])
    assert "is not a directory" in str(refused.value)
    compose_config([blocked])  # a run that uses no cache does not care
