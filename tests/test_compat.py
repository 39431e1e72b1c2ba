"""Checkpoints written before the redesign (main at d5b8fb1, before app/training/ existed) still
load, evaluate and resume: the format, the keys and every ``_target_`` stored in them hold.

``tests/data/checkpoint-d5b8fb1.pt`` is that main's ``last.pt`` of this run (4.5 MB: the
smallest body, MobileNetV3-Small, frozen):

    app-train feature_extractor=mobilenet_v3_small dataset.classes=3 dataset.image.size=32 \
      trainer.freeze_extractor=true trainer.epochs=2 trainer.batch_size=16 dataset.train_size=32 \
      dataset.val_size=16 trainer.feature_cache=false
"""

import csv
import shutil
from pathlib import Path

import torch

from app import files, models
from app.configs import MobileNetV3SmallConfig
from app.launch import compose_config
from app.train import train

OLD = Path(__file__).parent / "data" / "checkpoint-d5b8fb1.pt"
RUN = [
    "feature_extractor=mobilenet_v3_small",
    "dataset.classes=3",
    "dataset.image.size=32",
    "trainer.freeze_extractor=true",
    "trainer.batch_size=16",
    "dataset.train_size=32",
    "dataset.val_size=16",
    "trainer.feature_cache=false",
]


def test_an_old_checkpoints_config_is_read_without_torch_as_it_was_written() -> None:
    config = files.checkpoint_config(str(OLD))
    assert config is not None
    assert config["feature_extractor"]["_target_"] == MobileNetV3SmallConfig._target_
    assert config["classifier"]["_args_"][0]["_target_"] == "torch.nn.Linear"
    assert config["dataset"]["_target_"] == "app.data.digits" and config["trainer"]["epochs"] == 2


def test_an_old_checkpoint_loads_as_a_ready_model() -> None:
    trained = models.load(str(OLD))
    assert isinstance(trained.config.feature_extractor, MobileNetV3SmallConfig)
    assert trained.classes == ["0", "1", "2"] and not trained.model.training
    with torch.no_grad():
        assert trained.model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_an_old_checkpoint_resumes_where_it_ended(tmp_path: Path) -> None:
    kept = tmp_path / "old" / "checkpoints" / "last.pt"
    kept.parent.mkdir(parents=True)
    shutil.copy(OLD, kept)
    best = train(compose_config([*RUN, "trainer.epochs=3", f"trainer.resume={kept}"]), tmp_path / "run")
    with (tmp_path / "run" / files.METRICS).open() as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [3]  # epochs 1-2 were the old run's (its metrics.csv is not beside it here)
    assert 0.0 <= best <= 1.0
    state = torch.load(tmp_path / "run" / files.LAST, weights_only=True)
    assert state["format"] == files.CHECKPOINT_FORMAT and state["epoch"] == 3 and state["steps"] == 6
