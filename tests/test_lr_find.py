"""The learning-rate range test: app-lr-find sweeps the lr of any app-train run, writes the curve
and a suggestion inside the range, and leaves the model as it found it."""

import csv
import math
import sys
from pathlib import Path

import pytest
import torch

from app import errors, lr_find
from app.launch import compose_config
from app.training.build import build
from app.training.distributed import Ranks
from app.training.lr_range import lr_range, suggestion
from tests.conftest import console_script, run_cli

# the frozen extractor's head on cached features: a range test of a second or two
RUN = ["+debug=fast", "trainer.freeze_extractor=true", "classifier=large", "trainer.batch_size=8"]


def test_the_range_test_sweeps_the_lr_exponentially_and_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    job = build(compose_config([*RUN, f"trainer.feature_cache_dir={tmp_path}", "trainer.extractor_lr_scale=1"]),
                Ranks(), torch.device("cpu"))  # fmt: skip
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    lrs_before = [g["lr"] for g in job.training.optimizer.param_groups]
    rng = torch.get_rng_state()
    test = lr_range(job, 1e-6, 10.0, 40, smoothing=0.9, diverge=4.0)
    assert 5 <= len(test.lrs) <= 40 and test.lrs[0] == pytest.approx(1e-6)
    ratios = [b / a for a, b in zip(test.lrs, test.lrs[1:])]
    assert all(r == pytest.approx(ratios[0]) and r > 1 for r in ratios)  # a constant factor: (1e7)^(1/39)
    assert test.lrs[0] <= test.suggested <= test.lrs[-1]
    assert min(test.smoothed) < test.smoothed[0]  # it learned somewhere in the range
    after = job.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [g["lr"] for g in job.training.optimizer.param_groups] == lrs_before and not job.training.optimizer.state
    assert torch.equal(torch.get_rng_state(), rng) and job.training.steps == 0


def test_the_suggestion_is_the_steepest_fall_before_the_lowest_loss() -> None:
    lrs = [10.0**p for p in range(-6, 3)]
    losses = [2.3, 2.29, 2.2, 1.6, 1.0, 0.9, 0.95, 3.0, 9.0]  # falls fastest from 1e-4 to 1e-2
    assert suggestion(lrs, losses) in (1e-3, 1e-4)
    with pytest.raises(errors.RangeTooShort):
        suggestion(lrs[:3], losses[:3])


@pytest.mark.cli
def test_app_lr_find_writes_the_curve_and_prints_the_override_then_refuses_bad_options(tmp_path: Path) -> None:
    program = [sys.executable, "-m", "app.lr_find"]  # the refusals: torch-free, a fraction of a second each
    overrides = [*RUN, f"trainer.feature_cache_dir={tmp_path / 'cache'}"]
    result = run_cli(
        "--steps", "30", "--out", "found", *overrides, cwd=tmp_path, program=[console_script("app-lr-find")]
    )
    assert result.returncode == 0, result.stderr
    with (tmp_path / "found" / lr_find.CSV).open() as f:
        rows = list(csv.DictReader(f))
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == sorted(lrs) and len(set(lrs)) == len(lrs) and all(math.isfinite(float(r["loss"])) for r in rows)
    assert (tmp_path / "found" / lr_find.PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    line = next(line for line in result.stdout.splitlines() if line.startswith("optimizer.lr="))
    assert lrs[0] <= float(line.partition("=")[2]) <= lrs[-1]
    assert "to train with it: app-train +debug=fast" in result.stdout
    # refused before anything is built or created: a bad option, a bad override, a used run dir
    for args, words in (
        (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr 1 is not below --end-lr 0.1"),
        (["--steps", "3"], "'3': int, 10 <= value <= 10000"),
        (["--out", "found"], "holds files already"),
        (["hydra.run.dir=there"], "app-lr-find writes its files to --out DIR, not to hydra.run.dir; use --out there"),
    ):
        refused = run_cli(*args, *overrides, cwd=tmp_path, program=program)
        assert refused.returncode == 2 and words in refused.stderr and "Traceback" not in refused.stderr
    bad = run_cli("--out", "new", "trainer.epochs=0", cwd=tmp_path, program=program)
    assert bad.returncode == 1 and "trainer.epochs" in bad.stderr and not (tmp_path / "new").exists()
