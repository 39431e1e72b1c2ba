"""Named experiments, Optuna search presets with a resumable study, and parallel launchers."""

from pathlib import Path

import pytest

from app.configs import EXPERIMENTS
from app.launch import check_overrides, compose_config
from tests.conftest import image_folder  # noqa: F401  (a fixture)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_each_experiment_composes_and_runs_fast(name: str, tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    from app.train import train

    extra = [f"dataset.root={image_folder}", "dataset.classes=3", "feature_extractor.weights=null"] if name.startswith("folder") else []
    cfg = compose_config([f"+experiment={name}", "+debug=fast", *extra, "dataset.train_size=16", "dataset.val_size=8", f"trainer.feature_cache_dir={tmp_path / 'cache'}"])
    assert cfg.trainer.epochs == 1  # +debug=fast, after the experiment, wins
    assert 0.0 <= train(cfg, tmp_path / "run") <= 1.0
    assert (tmp_path / "run" / "summary.json").exists()


def test_experiments_pick_group_options() -> None:
    frozen = compose_config(["+experiment=digits_resnet18_frozen"])
    assert frozen.feature_extractor._target_ == "app.models.resnet18" and frozen.trainer.freeze_extractor
    finetune = compose_config(["+experiment=digits_alexnet_finetune", "optimizer.lr=1e-3"])
    assert finetune.scheduler._target_ == "app.schedules.onecycle" and finetune.optimizer.lr == 1e-3


def test_glob_runs_every_experiment_but_the_folder_one_needs_its_root() -> None:
    points, problems = check_overrides(["+experiment=glob(*)"], multirun=True)
    assert points == 3
    assert [(p.key, p.point) for p in problems] == [("dataset.root", ["+experiment=folder_transfer"])]
    assert check_overrides(["+experiment=glob(*,exclude=folder_*)", "+debug=fast"], multirun=True) == (2, [])
