"""The default recipe learns for real: digits, random-init AlexNet, small head, Adam."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.cli
@pytest.mark.extended
def test_default_recipe_learns_digits(tmp_path: Path) -> None:
    # The default run at half the image size and three epochs instead of four (~13 s on 2 cores).
    result = run_cli("dataset.image.size=64", "trainer.epochs=3", "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["best"]["val_acc"] > 0.6  # ten classes: chance is 0.1
    assert summary["final"]["train_loss"] < 1.0  # from ln(10) = 2.3 at the start


@pytest.mark.extended  # a learning curve: seconds, run by CI after the default tier
def test_a_folder_of_digit_pngs_learns(tmp_path: Path) -> None:
    # Three classes of scikit-learn's digits written as 8x8 grey PNGs (537), read back through
    # dataset=folder: random-init AlexNet and the small head at 64 px, two epochs: 860 training
    # images, a few seconds at the default run's 310 img/s (30-50 s measured on a busy machine).
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from app.launch import compose_config
    from app.train import train

    digits = load_digits(n_class=3)
    for index, (values, label) in enumerate(zip(digits.images, digits.target)):
        (tmp_path / "images" / f"digit_{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(values * 255 / 16).astype(np.uint8)).save(
            tmp_path / "images" / f"digit_{label}" / f"{index}.png"
        )
    cfg = compose_config(
        [
            "dataset=folder",
            f"dataset.root={tmp_path / 'images'}",
            "dataset.classes=3",
            "dataset.image.size=64",
            "optimizer.lr=3e-4",
            "trainer.batch_size=16",
            "trainer.epochs=2",  # 0.88-0.98 after one epoch, seeds 0 and 1
        ]
    )
    best = train(cfg, tmp_path / "run")
    assert best > 0.8, best  # three classes: chance is 0.33
