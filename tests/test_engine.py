"""Long runs a person can trust: exact resume, signals, non-finite losses, schedules, the
optimisation knobs, determinism, and what a run shows (curves, TensorBoard, profiles)."""

import csv
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from hydra.utils import instantiate

from app import errors, files
from app.checks import ConfigError, group_options
from app.configs import AlexNetConfig, ResNet18Config, Stages, add_option
from app.data import ImageTensorDataset
from app.launch import compose_config
from app.train import train
from app.training import checkpoints, engine
from app.training.loaders import EpochOrder, loader
from app.training.metrics import TIMING_FIELDS
from app.training.runtime import failure
from tests.conftest import run_cli

# Three batches of 16 per epoch, a head with dropout (so the random state matters), and every
# knob that carries state across a resume: a warmed-up step schedule, EMA, clipping, smoothing.
RECIPE = [
    "+debug=fast",
    "dataset.train_size=48",
    "classifier=large",
    "trainer.epochs=3",
    "scheduler=step",
    "scheduler.warmup_epochs=1",
    "trainer.ema_decay=0.9",
    "trainer.clip_grad_norm=1.0",
    "trainer.label_smoothing=0.1",
    "trainer.deterministic=true",
    "logger=tensorboard",
    "logger.every_n_steps=1",
]


def metrics(run_dir: Path, timing: bool = False) -> list[dict[str, str]]:
    """``metrics.csv``'s rows, without the timing columns unless asked."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return rows if timing else [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]


def weights(path: Path, key: str = "model") -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)[key]  # type: ignore[no-any-return]


def resumed_ends_as_straight(recipe: list[str], where: Path) -> dict[str, torch.Tensor]:
    """``recipe`` trained straight, and again stopped after its first epoch and resumed: both
    end with the same weights (asserted), which are returned."""
    train(compose_config(recipe), where / "straight")
    train(compose_config([*recipe, "trainer.epochs=1"]), where / "resumed")
    train(compose_config([*recipe, "trainer.resume=auto"]), where / "resumed")
    ours, theirs = weights(where / "resumed/checkpoints/last.pt"), weights(where / "straight/checkpoints/last.pt")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    return ours


@pytest.fixture(scope="session")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe run from start to end, from Python."""
    out = tmp_path_factory.mktemp("straight") / "run"
    train(compose_config(RECIPE), out)
    return out


# ---------------------------------------------------------------------------------- resume
def test_a_resumed_run_ends_with_the_weights_of_a_straight_one(straight: Path, tmp_path: Path) -> None:
    train(compose_config([*RECIPE, "trainer.epochs=2"]), tmp_path)  # then extended to 3 epochs
    train(compose_config([*RECIPE, "trainer.resume=auto"]), tmp_path)
    for key in ("model", "ema"):
        ours, theirs = weights(tmp_path / "checkpoints/last.pt", key), weights(straight / "checkpoints/last.pt", key)
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), key
    assert metrics(tmp_path) == metrics(straight)  # appended to the same metrics.csv
    assert json.loads((tmp_path / "summary.json").read_text())["final"]["epoch"] == 3


def test_the_same_seed_gives_the_same_metrics(straight: Path, tmp_path: Path) -> None:
    train(compose_config(RECIPE), tmp_path)
    assert metrics(tmp_path) == metrics(straight) and len(metrics(straight)) == 3
    assert torch.are_deterministic_algorithms_enabled() is False  # set for the run only


def test_a_checkpoint_holds_everything_a_resume_needs(straight: Path) -> None:
    state = checkpoints.load_checkpoint(str(straight / "checkpoints/last.pt"))
    assert {"model", "optimizer", "scaler", "ema", "rng", "steps", "best", "config"} <= set(state)
    assert state["epoch"] == 3 and state["steps"] == 9 and state["progress"]["batches"] == 0
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    best = checkpoints.load_checkpoint(str(straight / "checkpoints/best.pt"))
    assert best["epoch"] == best["best"]["epoch"]


def test_a_checkpoint_cut_short_or_foreign_is_refused(straight: Path, tmp_path: Path) -> None:
    whole = (straight / "checkpoints/last.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ConfigError, match=r"trainer\.resume") as refused:  # at launch, without torch
        compose_config([*RECIPE, f"trainer.resume={cut}"])
    assert "written by torch.save" in str(refused.value)
    with pytest.raises(errors.CheckpointError, match="cannot be read as a checkpoint"):  # in the job
        checkpoints.load_checkpoint(str(cut))
    foreign = tmp_path / "state_dict.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), foreign)
    with pytest.raises(errors.CheckpointError, match="not written by app-train"):
        train(compose_config([*RECIPE, f"trainer.resume={foreign}"]), tmp_path / "run")
    assert checkpoints.load_checkpoint(str(straight / "checkpoints/last.pt"))["epoch"] == 3  # the whole one loads


def test_resuming_into_another_model_names_the_mismatch(straight: Path, tmp_path: Path) -> None:
    small = [o for o in RECIPE if o != "classifier=large"]
    with pytest.raises(ConfigError) as refused:
        compose_config([*small, f"trainer.resume={straight / 'checkpoints/last.pt'}"])
    [problem] = refused.value.problems
    assert problem.key == "classifier._args_" and "512" in problem.rule and "100" in problem.value
    assert not (tmp_path / "metrics.csv").exists()  # refused before anything was written


def test_resume_and_overwrite_are_not_both_given(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.overwrite"):
        compose_config(["trainer.resume=auto", "trainer.overwrite=true"])


# ------------------------------------------------------------------------------- signals
def started(args: list[str], cwd: Path, logged: str, new_session: bool = False) -> "subprocess.Popen[str]":
    """``python -m app.train ARGS hydra.run.dir=out`` in ``cwd``, once its ``train.log`` holds ``logged``."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    child = subprocess.Popen(
        [sys.executable, "-m", "app.train", *args, "hydra.run.dir=out"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )
    log = cwd / "out" / "train.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and logged in log.read_text()):
        time.sleep(0.02)
    return child


@pytest.mark.cli
@pytest.mark.extended
def test_sigterm_mid_epoch_then_resume_auto_ends_as_a_straight_run(tmp_path: Path) -> None:
    # 20 batches an epoch: a signal sent as epoch 1 ends lands inside epoch 2.
    args = ["+debug=fast", "dataset.train_size=320", "trainer.epochs=2", "trainer.batch_size=16"]
    child = started(args, tmp_path, "epoch 1/2")
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=120)
    assert child.returncode == 143 and "Traceback" not in output, output
    assert "SIGTERM: stopped at epoch 2, batch " in output
    command = output.split("To resume: ")[1].splitlines()[0]
    assert command.endswith("trainer.resume=auto") and f"hydra.run.dir={tmp_path / 'out'}" in command
    assert checkpoints.load_checkpoint(str(tmp_path / "out/checkpoints/last.pt"))["progress"]["batches"] > 0

    resumed = run_cli(*command.split()[3:], cwd=tmp_path)  # the logged command, after "python -m app.train"
    assert resumed.returncode == 0, resumed.stderr
    train(compose_config(args), tmp_path / "straight")  # the same computation in this process
    ours, theirs = weights(tmp_path / "out/checkpoints/last.pt"), weights(tmp_path / "straight/checkpoints/last.pt")
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert [r["train_loss"] for r in metrics(tmp_path / "out")] == [
        r["train_loss"] for r in metrics(tmp_path / "straight")
    ]


@pytest.mark.cli
@pytest.mark.extended
def test_sigterm_to_the_whole_process_group_stops_a_run_with_loader_workers(tmp_path: Path, image_folder: Path) -> None:
    # scancel and a terminal's Ctrl-C signal every process of the group: the loader workers
    # leave the stop to the run, which shuts them down (no worker error, no hang at exit).
    child = started(
        [
            "dataset=folder",
            f"dataset.root={image_folder}",
            "dataset.classes=3",
            "dataset.image.size=64",
            "trainer.batch_size=2",
            "trainer.num_workers=2",
            "trainer.epochs=100",
        ],
        tmp_path,
        "epoch 1/100",
        new_session=True,
    )
    os.killpg(child.pid, signal.SIGTERM)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 143 and "Traceback" not in output and "DataLoader worker" not in output, output
    assert "SIGTERM: stopped" in output and checkpoints.load_checkpoint(str(tmp_path / "out/checkpoints/last.pt"))
    with pytest.raises(ProcessLookupError):  # no worker outlived the run
        os.killpg(child.pid, 0)


@pytest.mark.cli
def test_ctrl_c_during_setup_says_nothing_was_saved_and_writes_the_status(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    argv = [sys.executable, "-m", "app.train", "+debug=fast", "hydra.run.dir=out"]
    child = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock, deadline = tmp_path / "out" / files.LOCK, time.monotonic() + 120
    while time.monotonic() < deadline and not lock.exists():  # the job takes its run dir: setup begins
        time.sleep(0.005)
    child.send_signal(signal.SIGINT)
    output, _ = child.communicate(timeout=120)
    assert "epoch 1/1" not in output, "the signal came after setup: the test did not test setup"
    assert child.returncode == 130 and "Traceback" not in output, output
    assert "before it saved any state (no checkpoints/last.pt in" in output and "holds its last" not in output
    assert not (tmp_path / "out" / files.LAST).exists()
    status = json.loads((tmp_path / "out" / files.STATUS).read_text())
    assert status["status"] == "stopped" and "before it saved any state" in status["error"]


@pytest.mark.cli
@pytest.mark.extended
def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    child = started(["+debug=fast", "trainer.epochs=200"], tmp_path, "epoch 1/200")
    child.send_signal(signal.SIGINT)  # two signals before the step ends: Python runs both handlers
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=120)
    assert child.returncode in (130, 143) and "Traceback" not in output
    assert "the run stopped at once" in output
    assert checkpoints.load_checkpoint(str(tmp_path / "out/checkpoints/last.pt"))["epoch"] == 1


# ---------------------------------------------------------------------- non-finite losses
def test_a_nan_loss_stops_the_run_with_its_epoch_and_batch(tmp_path: Path) -> None:
    # SGD at 0.01 for epoch 1, then a million times that: the loss blows up after epoch 1.
    absurd = [
        "+debug=fast",
        "trainer.epochs=3",
        "optimizer=sgd",
        "optimizer.lr=0.01",
        "scheduler=step",
        "scheduler.gamma=1e6",
    ]
    with pytest.raises(
        errors.NonFiniteLoss, match=r"epoch [23]: the training loss is (nan|inf) at batch \d+/4"
    ) as stop:
        train(compose_config(absurd), tmp_path)
    assert "lower optimizer.lr" in failure(stop.value)
    kept = checkpoints.load_checkpoint(str(tmp_path / "checkpoints/last.pt"))
    assert kept["epoch"] >= 1 and all(torch.isfinite(w).all() for w in kept["model"].values())


# ------------------------------------------------------------------------------- schedules
def optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def trace(option: str, steps_per_epoch: int, *overrides: str) -> list[float]:
    """The lr of every optimizer step of a run of ``trainer.epochs`` with ``scheduler=option``."""
    cfg = compose_config([f"scheduler={option}", *overrides])
    opt = optimizer()
    scheduler = instantiate(cfg.scheduler)(opt, steps_per_epoch)
    lrs = []
    for _ in range(cfg.trainer.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


def test_each_schedule_warms_up_then_follows_its_shape() -> None:
    ramp = [0.1 * (0.01 + 0.99 * k / 4) for k in range(4)]  # one epoch of 4 steps, linear from 1%

    constant = trace("constant", 4, "trainer.epochs=3", "scheduler.warmup_epochs=1")
    assert constant == pytest.approx(ramp + [0.1] * 8)

    cosine = trace("cosine", 4, "trainer.epochs=3", "scheduler.warmup_epochs=1", "scheduler.eta_min=0.001")
    decay = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)]
    assert cosine == pytest.approx(ramp + decay)

    step = trace(
        "step", 4, "trainer.epochs=3", "scheduler.warmup_epochs=1", "scheduler.step_size=1", "scheduler.gamma=0.5"
    )
    assert step == pytest.approx(ramp + [0.1] * 4 + [0.05] * 4)

    one = trace("onecycle", 5, "trainer.epochs=2", "scheduler.warmup_epochs=0.4")
    assert one[0] == pytest.approx(0.1 * 0.04) and one[2] == pytest.approx(0.1)  # the peak, after 2 steps
    assert one == sorted(one[:3]) + sorted(one[3:], reverse=True) and one[-1] < 0.1 * 0.04


def test_a_run_logs_each_epochs_starting_lr(straight: Path) -> None:
    # step, warmed up over epoch 1 (3 steps from 1% of 1e-4), halved every epoch after it
    assert [float(r["lr"]) for r in metrics(straight)] == pytest.approx([1e-6, 1e-4, 5e-5])


# ----------------------------------------------------------------------- optimisation knobs
class Net(torch.nn.Module):
    """A tiny CNN with no batch statistics, so a batch's gradient is the mean of its parts'."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # type: ignore[no-any-return]


def test_two_accumulated_batches_of_16_step_as_one_of_32() -> None:
    data = ImageTensorDataset(
        torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 10, 3
    )
    results = []
    for batch, accumulate in [(32, 1), (16, 2)]:
        torch.manual_seed(0)
        net = Net()
        training = engine.Training(torch.optim.SGD(net.parameters(), lr=0.5), accumulate_batches=accumulate)
        engine.run_pass(
            net, loader(data, batch, EpochOrder(64, 0, True), 0, False), engine.Step(torch.device("cpu")), training
        )
        results.append((training.steps, net.state_dict()))
    (steps_one, one), (steps_two, two) = results
    assert steps_one == steps_two == 2
    assert all(torch.allclose(one[k], two[k], atol=1e-6) for k in one)
    assert not torch.equal(one["body.0.weight"], Net().state_dict()["body.0.weight"])  # it trained


def test_early_stopping_stops_when_val_acc_stalls(tmp_path: Path) -> None:
    train(
        compose_config(["+debug=fast", "trainer.epochs=6", "optimizer.lr=1e-12", "trainer.early_stopping_patience=2"]),
        tmp_path,
    )
    assert len(metrics(tmp_path)) == 3  # epoch 1 is the best; two more without a better val acc
    assert json.loads((tmp_path / "summary.json").read_text())["stopped_early"] == 3


def test_ema_weights_are_evaluated_and_kept(straight: Path) -> None:
    assert all(r["ema_val_acc"] != "" for r in metrics(straight))
    raw, ema = weights(straight / "checkpoints/last.pt"), weights(straight / "checkpoints/last.pt", "ema")
    assert not torch.equal(raw["head.0.weight"], ema["module.head.0.weight"])


def test_the_extractor_can_learn_more_slowly_than_the_head(tmp_path: Path) -> None:
    train(compose_config(["+debug=fast", "trainer.extractor_lr_scale=0.1"]), tmp_path)
    head, body = checkpoints.load_checkpoint(str(tmp_path / "checkpoints/last.pt"))["optimizer"]["param_groups"]
    assert body["lr"] == pytest.approx(head["lr"] * 0.1) and head["initial_lr"] == 1e-4  # scheduled alike
    assert float(metrics(tmp_path)[0]["lr"]) == 1e-4  # the head's
    with pytest.raises(ConfigError, match=r"trainer\.extractor_lr_scale"):
        compose_config(["trainer.extractor_lr_scale=0.1", "trainer.freeze_extractor=true"])


def test_layer_decay_lowers_each_stages_lr_by_its_power_below_the_head(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    decay, scale = 0.5, 0.8
    with caplog.at_level(logging.INFO, logger="app.train"):
        train(
            compose_config(["+debug=fast", f"trainer.layer_decay={decay}", f"trainer.extractor_lr_scale={scale}"]),
            tmp_path,
        )
    head, *stages = checkpoints.load_checkpoint(str(tmp_path / "checkpoints/last.pt"))["optimizer"]["param_groups"]
    assert len(stages) == len(AlexNetConfig.stages)  # the top stage first
    assert [g["lr"] for g in stages] == pytest.approx([head["lr"] * scale * decay**k for k in range(1, 6)])
    assert [g["initial_lr"] for g in stages] == pytest.approx([1e-4 * scale * decay**k for k in range(1, 6)])
    assert float(metrics(tmp_path)[0]["lr"]) == 1e-4  # metrics.csv: the head's
    [line] = [r.getMessage() for r in caplog.records if "lr by parameter group" in r.getMessage()]
    assert line.endswith(", ".join(f"{1e-4 * scale * decay**k if k else 1e-4:.3g}" for k in range(6)))


@dataclass(kw_only=True)
class StagelessConfig(ResNet18Config):
    """A user's backbone whose config says nothing of its depth."""

    stages: ClassVar[Stages] = ()


@pytest.mark.usefixtures("own_registrations")
def test_layer_decay_is_refused_where_there_is_nothing_to_decay() -> None:
    add_option("feature_extractor", "stageless", StagelessConfig())
    for refused, why in (
        ("trainer.freeze_extractor=true", "a frozen extractor is not trained"),
        ("feature_extractor=stageless", "StagelessConfig: its config defines no stages"),
    ):
        with pytest.raises(ConfigError) as error:
            compose_config(["trainer.layer_decay=0.7", refused])
        [problem] = error.value.problems
        assert problem.key == "trainer.layer_decay" and why in problem.rule
    compose_config(["feature_extractor=stageless"])  # without the decay it trains as one stage


def test_compile_falls_back_to_eager_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:  # where torch.compile fails: on a call
            raise RuntimeError("no C++ compiler found")

    def broken(model: torch.nn.Module) -> torch.nn.Module:
        return Broken()

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="app"):
        train(compose_config(["+debug=fast", "trainer.compile=true"]), tmp_path)
    assert "torch.compile failed (no C++ compiler found); training without it" in caplog.text
    assert len(metrics(tmp_path)) == 1


@pytest.mark.slow
def test_compile_compiles_for_real(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="app"):
        train(compose_config(["+debug=fast", "trainer.epochs=2", "trainer.compile=true"]), tmp_path)
    assert "torch.compile failed" not in caplog.text
    assert all(math.isfinite(float(r["train_loss"])) for r in metrics(tmp_path)) and len(metrics(tmp_path)) == 2


def test_auto_precision_is_bf16_where_the_hardware_has_it() -> None:
    cpu = torch.device("cpu")
    assert engine.resolve_precision("auto", cpu) == ("bf16" if engine.native_bf16(cpu) else "fp32")
    assert engine.resolve_precision("fp16", cpu) == "fp16"
    assert compose_config().trainer.precision.value == "auto"


# -------------------------------------------------------------------- what people look at
def test_curves_png_is_a_png_of_the_run(straight: Path) -> None:
    from PIL import Image

    with Image.open(straight / "curves.png") as image:
        assert image.format == "PNG" and image.size[0] > image.size[1] > 100


def test_tensorboard_holds_the_scalars(straight: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(straight / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/train_loss", "step/lr", "epoch/val_acc", "epoch/train_loss", "epoch/images_per_s"} <= tags
    assert [e.step for e in events.Scalars("epoch/val_acc")] == [3, 6, 9]
    assert [e.value for e in events.Scalars("epoch/val_acc")] == pytest.approx(
        [float(r["val_acc"]) for r in metrics(straight)]
    )
    assert len(events.Scalars("step/train_loss")) == 9  # every_n_steps=1


def test_train_from_python_logs_and_keeps_its_config(straight: Path) -> None:
    log = (straight / "train.log").read_text()
    assert "epoch 3/3  train loss" in log and "[app.train][INFO]" in log
    assert "trainer:\n" in (straight / "config.yaml").read_text()


def test_profile_preset_writes_a_trace(tmp_path: Path) -> None:
    train(compose_config(["+debug=profile", "dataset.train_size=96", "trainer.profile_steps=2"]), tmp_path)
    trace = json.loads((tmp_path / "profile/trace.json").read_text())
    assert trace["traceEvents"] and "aten::" in (tmp_path / "profile/ops.txt").read_text()


@pytest.mark.extended  # a learning curve: seconds, run by CI after the default tier
def test_overfit_preset_drives_the_training_loss_to_about_zero(tmp_path: Path) -> None:
    train(compose_config(["+debug=overfit"]), tmp_path)
    assert float(metrics(tmp_path)[-1]["train_loss"]) < 0.05  # from ln(10) = 2.3


SLOW_BACKBONES = {"resnet50", "vgg11_bn", "convnext_tiny", "vit_b_16"}  # seconds a step on 2 cores: the slow tier
NEEDS = {"vit_b_16": ["dataset.image.size=224", "dataset.train_size=4", "dataset.val_size=2", "trainer.batch_size=2"]}


@pytest.mark.parametrize(
    ("group", "option"),
    [
        pytest.param(g, o, marks=[pytest.mark.slow] if o in SLOW_BACKBONES else [])
        for g, o, _ in group_options()
        if g not in ("debug", "experiment", "hparams_search")  # those: test_experiments
    ],
)
def test_fast_preset_runs_every_group_option(
    group: str, option: str, tmp_path: Path, image_folder: Path, cifar10_root: Path
) -> None:
    roots = {
        "folder": [f"dataset.root={image_folder}", "dataset.classes=3"],
        "cifar10": [f"dataset.root={cifar10_root}"],
    }
    needs = roots.get(option, NEEDS.get(option, []))
    assert 0 <= train(compose_config(["+debug=fast", f"{group}={option}", *needs]), tmp_path) <= 1
    assert len(metrics(tmp_path)) == 1


# ----------------------------------------------------------------- tensors held whole
@pytest.mark.parametrize(("world", "drop_last"), [(1, False), (1, True), (2, False)])
def test_tensors_held_whole_are_batched_in_the_process_as_a_dataloader_batches_them(
    world: int, drop_last: bool
) -> None:
    from torch.utils.data import BatchSampler, DataLoader

    from app.data import ImageTensorDataset
    from app.training.loaders import TensorBatches

    data = ImageTensorDataset(torch.randn(37, 1, 4, 4), torch.arange(37), channels=3)
    for rank in range(world):
        order = EpochOrder(37, seed=5, shuffle=True, rank=rank, world=world)
        order.set_epoch(3, skip=8)  # a resumed epoch: its first images skipped
        ours = loader(data, 8, order, 0, False, drop_last=drop_last)
        assert isinstance(ours, TensorBatches)  # no DataLoader for tensors in memory without workers
        sampler = BatchSampler(order, 8, drop_last=drop_last)
        theirs = list(DataLoader(data, sampler=sampler, batch_size=None))
        assert len(ours) == len(theirs) == len(list(ours))
        for (images, labels), (their_images, their_labels) in zip(ours, theirs):
            assert torch.equal(images, their_images) and torch.equal(labels, their_labels)
            assert images.shape[1] == 3 and images.is_contiguous()  # grey repeated for RGB, owning its memory


def test_the_optimizer_is_fused_where_torch_has_a_kernel_unless_the_config_says_no() -> None:
    from app import factories

    params = [torch.nn.Parameter(torch.zeros(3))]
    for option in ("adam", "adamw", "sgd"):
        assert factories.optimizer(compose_config([f"optimizer={option}"]), params).defaults["fused"] is True
    chosen = factories.optimizer(compose_config(["optimizer.fused=false"]), [{"params": iter(params)}])
    assert chosen.defaults["fused"] is False and chosen.param_groups[0]["params"] == params  # a generator is read once


def test_threads_null_leaves_one_core_to_the_rest_of_the_machine() -> None:
    from app.training.build import default_threads

    assert default_threads(2, {}, cores=2) == 1  # this project's 2 cores: 6.4 s an epoch beside a busy loop, not 28
    assert default_threads(16, {}, cores=16) == 15
    assert default_threads(8, {}, cores=16) == 8  # torch's own (a thread a physical core) leaves cores already
    assert default_threads(1, {}, cores=1) == 1  # never none
    assert default_threads(4, {"OMP_NUM_THREADS": "4"}, cores=4) == 4  # set by hand: torch's own follows it
    assert default_threads(1, {"OMP_NUM_THREADS": "1"}, cores=16) == 1  # torchrun's, a process


def test_a_job_trains_on_the_default_thread_count_unless_told_and_logs_which(caplog: pytest.LogCaptureFixture) -> None:
    from app.training.build import TORCH_OWN_THREADS, build, default_threads
    from app.training.distributed import Ranks

    before = torch.get_num_threads()
    tiny = ["dataset=fake", "dataset.image.size=64", "dataset.train_size=8", "dataset.val_size=4", "trainer.device=cpu"]
    try:
        with caplog.at_level(logging.INFO, logger="app.train"):
            build(compose_config(tiny), Ranks(), torch.device("cpu"))
            default = default_threads(TORCH_OWN_THREADS, os.environ)
            assert torch.get_num_threads() == default
            assert f"{default} torch thread{'s' if default > 1 else ''} (trainer.threads null)" in caplog.messages
            caplog.clear()
            build(compose_config([*tiny, f"trainer.threads={default + 1}"]), Ranks(), torch.device("cpu"))
            assert torch.get_num_threads() == default + 1
            assert f"{default + 1} torch threads" in caplog.messages
    finally:
        torch.set_num_threads(before)
