"""The CUDA paths, on a machine with a GPU (``pytest -m cuda``; skipped without one): a tiny run
in each autocast precision with channels_last and pinned batches, and a resume on the GPU that
ends as the straight run does."""

from pathlib import Path

import pytest
import torch

from app.launch import compose_config
from app.train import train
from app.training import checkpoints

pytestmark = pytest.mark.cuda

TINY_CUDA = ["+debug=fast", "trainer.device=cuda", "trainer.channels_last=true", "trainer.epochs=2"]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_tiny_run_trains_on_the_gpu_in_each_precision(precision: str, tmp_path: Path) -> None:
    best = train(compose_config([*TINY_CUDA, f"trainer.precision={precision}"]), tmp_path)
    state = checkpoints.load_checkpoint(str(tmp_path / "checkpoints/last.pt"))
    assert 0.0 <= best <= 1.0 and state["epoch"] == 2
    assert all(t.device.type == "cpu" for t in state["model"].values())  # loadable anywhere
    assert bool(state["scaler"]) == (precision == "fp16")  # only fp16 scales its gradients
    assert state["rng"]["cuda"], "the GPU's random state is saved, so a resume draws as the run would"


def test_a_resumed_gpu_run_ends_as_the_straight_one(tmp_path: Path) -> None:
    recipe = [*TINY_CUDA, "trainer.precision=bf16", "trainer.deterministic=true"]
    train(compose_config(recipe), tmp_path / "straight")
    train(compose_config([*recipe, "trainer.epochs=1"]), tmp_path / "resumed")
    train(compose_config([*recipe, "trainer.resume=auto"]), tmp_path / "resumed")
    straight, resumed = (
        checkpoints.load_checkpoint(str(tmp_path / name / "checkpoints/last.pt"))["model"]
        for name in ("straight", "resumed")
    )
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
