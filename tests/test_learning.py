"""The default recipe learns for real: digits, random-init AlexNet, small head, Adam."""

import json
from pathlib import Path

from tests.conftest import run_cli


def test_default_recipe_learns_digits(tmp_path: Path) -> None:
    # The default run at half the image size and three epochs instead of four (~13 s on 2 cores).
    result = run_cli("dataset.image.size=64", "trainer.epochs=3", "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["best"]["val_acc"] > 0.6  # ten classes: chance is 0.1
    assert summary["final"]["train_loss"] < 1.0  # from ln(10) = 2.3 at the start
