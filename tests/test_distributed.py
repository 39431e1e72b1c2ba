"""More than one process: torchrun (and submitit's local launcher) with gloo on CPUs.

A 2-process run shares one run dir, writes its files from rank 0 and a log per rank, reduces
validation over both, and ends with the weights a single process reaches with the same global
batch; it resumes with one process; a bad override is refused once; a crash on one rank ends
the others; a signal to one rank stops both at one step. A submitit job of two tasks is one
run; SLURM's variables and the sbatch script ``slurm_ddp`` writes are checked without a cluster.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

from app import checks, launch
from app.train import train
from app.training import distributed, loaders

# Weights that a one-process and a two-process run can both reach up to float rounding: fp32, no
# dropout (the small head), SGD (Adam's step divides by the root of tiny second moments, which
# turns rounding into differences of the size of the lr), a constant lr (a longer resumed run
# keeps the same schedule), a global batch of 8 that divides the 32 training images, and 11
# validation images (6 + 5: no padding in the sums).
RUN = [
    "dataset=fake",
    "dataset.image.size=64",
    "dataset.train_size=32",
    "dataset.val_size=11",
    "trainer.epochs=2",
    "trainer.batch_size=8",
    "trainer.precision=fp32",
    "scheduler=constant",
    "optimizer=sgd",
    "optimizer.lr=0.05",
    "trainer.num_workers=0",
    # the engine's features, each of which must see the processes' batches as one
    "trainer.accumulate_batches=2",
    "trainer.clip_grad_norm=1.0",
    "trainer.ema_decay=0.9",
    # staged: DDP over the head alone for the first epoch, then over the whole model (made again)
    "trainer.freeze_epochs=1",
    "trainer.feature_cache=false",
]  # the weights move by ~0.1 over the run: a process training on its own half alone would show


def torchrun(*args: str, cwd: Path, module: str = "app.train", processes: int = 2) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node=N -m MODULE ARGS`` as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        module,
        *args,
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model's and its EMA's weights in the run's last checkpoint."""
    state: dict[str, Any] = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    return {**state["model"], **{f"ema.{k}": v for k, v in state["ema"].items()}}


def rows(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 2-process torchrun run of ``RUN``, and the same run in one process (in-process)."""
    root = tmp_path_factory.mktemp("ddp")
    result = torchrun(*RUN, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    single = root / "single"
    train(launch.compose_config(RUN), single)
    (run_dir,) = (root / "outputs").glob("*/*")
    return {"root": root, "dir": run_dir, "single": single, "result": result}


@pytest.mark.cli
def test_a_two_process_run_writes_one_run_dir_from_rank_0_and_a_log_per_rank(two_processes: dict[str, Any]) -> None:
    run_dir = two_processes["dir"]
    assert len(list((two_processes["root"] / "outputs").glob("*/*"))) == 1  # not a dir per rank
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "metrics.csv",
        "summary.json",
        "config.yaml",
        "curves.png",
        "checkpoints",
        ".hydra",
        "train.log",
        "train.rank1.log",
        "status.json",
    } <= names
    assert not {"train.rank0.log", ".lock"} & names
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"last.pt", "best.pt"}
    assert len(rows(run_dir)) == 2  # one line per epoch: rank 0 alone writes it
    main_log, rank1_log = (run_dir / "train.log").read_text(), (run_dir / "train.rank1.log").read_text()
    assert "rank 0 of 2 processes, 4 images of each batch" in main_log and "rank 1 of 2" not in main_log
    assert "rank 1 of 2 processes" in rank1_log and "epoch 2/2" in rank1_log
    assert "epoch 2: the extractor trains from now on" in rank1_log
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])  # the unwrapped model
    assert state["steps"] == 4  # 32 images, a global batch of 8, 2 batches a step, 2 epochs
    assert len(state["rng_ranks"]) == 2


@pytest.mark.cli
def test_two_processes_reach_the_weights_and_figures_of_one_with_the_same_global_batch(
    two_processes: dict[str, Any],
) -> None:
    ddp, single = weights(two_processes["dir"]), weights(two_processes["single"])
    assert ddp.keys() == single.keys()
    for name in ddp:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-5, atol=1e-6, msg=name)
    for two, one in zip(rows(two_processes["dir"]), rows(two_processes["single"])):
        # validation over both processes' shares is validation over the whole split
        assert two["val_acc"] == one["val_acc"] and two["train_acc"] == one["train_acc"]
        assert two["ema_val_acc"] == one["ema_val_acc"]
        assert float(two["val_loss"]) == pytest.approx(float(one["val_loss"]), abs=1e-4)
        assert float(two["train_loss"]) == pytest.approx(float(one["train_loss"]), abs=1e-4)


@pytest.mark.cli
@pytest.mark.extended
def test_a_two_process_run_resumes_with_one_process(two_processes: dict[str, Any], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(two_processes["dir"], run_dir)
    longer = [o for o in RUN if not o.startswith("trainer.epochs=")] + ["trainer.epochs=3"]
    result = subprocess.run(
        [sys.executable, "-m", "app.train", *longer, "trainer.resume=auto", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert [int(r["epoch"]) for r in rows(run_dir)] == [1, 2, 3]
    single = tmp_path / "single"
    shutil.copytree(two_processes["single"], single)
    train(launch.compose_config([*longer, "trainer.resume=auto"]), single)  # the one-process run, resumed
    resumed, reference = weights(run_dir), weights(single)
    for name in resumed:
        torch.testing.assert_close(resumed[name], reference[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.cli
@pytest.mark.extended
def test_a_bad_override_is_refused_once_before_any_process_group(tmp_path: Path) -> None:
    result = torchrun("trainer.batch_size=15", "trainer.epochs=0", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert output.count("Refused: 2 problems; nothing was run.") == 1  # rank 0's check, not one per rank
    assert output.partition("ChildFailedError")[0].count("trainer.batch_size=15") == 1
    assert "a multiple of the 2 processes" in output
    assert not (tmp_path / "outputs").exists()  # no run dir, no process group
    assert "init_process_group" not in output
    # What a user sees: the refusal first, then torchrun's own report (it reports any non-zero exit
    # and cannot be silenced), whose root cause is the refusal, in one line, not a link.
    report = result.stderr.partition("ChildFailedError")[2]
    assert result.stderr.index("Refused: 2 problems") < result.stderr.index("ChildFailedError")
    root = report.partition("Root Cause")[2]
    assert "traceback : app-train refused the command line, nothing was run (the report above): " in root
    assert "trainer.batch_size=15" in root and "trainer.epochs=0" in root and "<N/A>" not in report


@pytest.mark.cli
@pytest.mark.extended
def test_a_rank_that_raises_ends_the_run_with_its_error(tmp_path: Path) -> None:
    began = time.monotonic()
    # rank 0 waits for rank 1 at the first step; a 30-minute collective timeout rules out that
    # the test passes by waiting for it: only torchrun and gloo ending rank 0 get it done in time
    result = torchrun(*RUN, "trainer.process_group_timeout_min=30", cwd=tmp_path, module="tests.raising_rank")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert time.monotonic() - began < 200  # the subprocess timeout (240 s) would raise instead
    assert "[rank 1]" in output and "The run failed: RuntimeError: a failure on rank 1, raised by the test" in output
    (run_dir,) = (tmp_path / "outputs").glob("*/*")
    assert "a failure on rank 1" in (run_dir / "train.rank1.log").read_text()
    root = output.partition("Root Cause")[2]  # torchrun's report names the error, not a link
    assert "traceback : the run failed: RuntimeError: a failure on rank 1, raised by the test" in root


@pytest.mark.cli
@pytest.mark.extended
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    args = [*RUN, "dataset.train_size=400", "trainer.ema_decay=null", "hydra.run.dir=out"]  # 50 steps an epoch
    child = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "app.train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = tmp_path / "out" / "train.rank1.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and "epoch 1/2" in log.read_text()):
        time.sleep(0.05)
    workers = [
        int(pid)
        for task in Path(f"/proc/{child.pid}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    (rank1,) = [pid for pid in workers if b"\0RANK=1\0" in b"\0" + Path(f"/proc/{pid}/environ").read_bytes()]
    os.kill(rank1, signal.SIGTERM)  # rank 0 gets no signal: it learns from rank 1 at the next step
    output, _ = child.communicate(timeout=120)
    stops = [line.partition("stopped at ")[2].partition(";")[0] for line in output.splitlines() if "stopped at" in line]
    assert len(stops) == 2 and stops[0] == stops[1] and stops[0].startswith("epoch 2, batch "), output
    state = torch.load(tmp_path / "out/checkpoints/last.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and f"batch {state['progress']['batches']}/" in stops[0]


@pytest.mark.cli
@pytest.mark.extended
def test_a_submitit_job_of_two_tasks_is_one_run_and_rank_0_fills_the_feature_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.train",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.tasks_per_node=2",
            "dataset=fake",
            "dataset.image.size=64",
            "dataset.train_size=32",
            "dataset.val_size=11",
            "trainer.epochs=3",
            "trainer.batch_size=8",
            "trainer.freeze_extractor=true",
            f"trainer.feature_cache_dir={cache}",
            "trainer.early_stopping_patience=1",
            "trainer.precision=bf16",
            "optimizer.lr=1e-6",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = (tmp_path / "multirun").glob("*/*/0")  # both tasks in the sweep dir resolved at launch
    main_log, rank1_log = (job / "train.log").read_text(), (job / "train.rank1.log").read_text()
    assert "rank 0 of 2 processes" in main_log and "rank 1 of 2 processes" in rank1_log
    assert "feature cache: built" in main_log and "feature cache: reused" in rank1_log
    assert len(list(cache.iterdir())) == 1
    assert [int(r["epoch"]) for r in rows(job)] == [1, 2]  # a lr too small to improve: both stop early together
    assert '"stopped_early": 2' in (job / "summary.json").read_text()


# ------------------------------------------------------------------------ in-process parts
@pytest.mark.parametrize("size,world,shuffle", [(10, 2, True), (11, 3, True), (7, 4, False), (2, 3, True)])
def test_each_process_takes_what_distributed_sampler_gives_it(size: int, world: int, shuffle: bool) -> None:
    for epoch in (0, 3):
        for rank in range(world):
            ours = loaders.EpochOrder(size, 5, shuffle, rank, world)
            ours.set_epoch(epoch)
            torchs: DistributedSampler[int] = DistributedSampler(range(size), world, rank, shuffle=shuffle, seed=5)  # type: ignore[arg-type]
            torchs.set_epoch(epoch)
            assert list(ours) == list(torchs) and len(ours) == len(torchs)


def test_the_processes_batches_together_are_one_process_batch_and_resume_skips_in_global_images() -> None:
    one = loaders.EpochOrder(32, 1, True)
    one.set_epoch(2, skip=16)
    shares = []
    for rank in range(2):
        order = loaders.EpochOrder(32, 1, True, rank, 2)
        order.set_epoch(2, skip=16)  # two steps of a global batch of 8 done
        shares.append(list(order))
        assert len(order) == 8
    batches = [sorted(shares[0][i : i + 4] + shares[1][i : i + 4]) for i in range(0, 8, 4)]
    assert batches == [sorted(list(one)[i : i + 8]) for i in range(0, 16, 8)]
    unpadded = [list(loaders.EpochOrder(11, 0, False, rank, 2, pad=False)) for rank in range(2)]
    assert sorted(unpadded[0] + unpadded[1]) == list(range(11))  # validation counts each image once


def test_the_global_batch_must_divide_over_the_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    _, problems = launch.check_overrides(["trainer.batch_size=30"])
    assert [(p.key, p.hint) for p in problems] == [
        ("trainer.batch_size", "e.g. trainer.batch_size=32 (8 images a process)")
    ]
    assert launch.check_overrides(["trainer.batch_size=32"])[1] == []
    _, problems = launch.check_overrides(["trainer.batch_size=32", "trainer.epochs=1,2"], multirun=True)
    assert {p.key for p in problems} == {"hydra.mode"}  # every torchrun process would run the whole sweep


@pytest.mark.cli
def test_app_check_reads_a_torchrun_command_as_its_processes_will_check_it() -> None:
    command = launch.parse_command(
        [
            "torchrun",
            "--standalone",
            "--nnodes=1:2",
            "--nproc-per-node",
            "4",
            "-m",
            "app.train",
            "trainer.batch_size=60",
        ]
    )
    assert command.processes == 8 and command.overrides == ["trainer.batch_size=60"]
    assert [p.key for p in launch.check_command(command)[1]] == ["trainer.batch_size"]
    assert "WORLD_SIZE" not in os.environ  # never set: the check is told (app.checks.torchrun_processes)
    assert launch.check_command(command._replace(overrides=["trainer.batch_size=64"]))[1] == []


def test_a_submitit_job_of_many_tasks_is_checked_as_one_run_of_many_processes() -> None:
    base = ["hydra/launcher=submitit_local", "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=2"]
    _, problems = launch.check_overrides([*base, "trainer.batch_size=30"], multirun=True)
    assert [p.key for p in problems] == ["trainer.batch_size"] and "4 processes" in problems[0].rule
    _, problems = launch.check_overrides([*base, "hydra.launcher.gpus_per_node=1"], multirun=True)
    assert [p.key for p in problems] == ["hydra.launcher.gpus_per_node"]
    assert launch.check_overrides([*base, "hydra.launcher.gpus_per_node=2"], multirun=True)[1] == []


def test_a_slurm_task_exports_its_place_from_slurm_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    wired = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    for name in wired:  # absent again after the test, whatever export() sets
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # what srun gives task 5 of a job of 2 nodes x 4 tasks (submitit reads SUBMITIT_EXECUTOR)
    for name, value in {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "8",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NODEID": "1",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
    }.items():
        monkeypatch.setenv(name, value)
    distributed.from_submitit("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher")
    assert distributed.ranks() == distributed.Ranks(5, 1, 8)
    assert os.environ["MASTER_ADDR"] == "gpu07" and 20000 <= int(os.environ["MASTER_PORT"]) <= 60000


@pytest.mark.cli
def test_slurm_ddp_submits_one_job_of_nodes_x_tasks_with_a_gpu_each(tmp_path: Path, slurm_on_path: Path) -> None:
    # slurm_on_path: an sbatch that keeps the script submitit writes and refuses it (no cluster)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "app.train",
            "-m",
            "hydra/launcher=slurm_ddp",
            "hydra.launcher.nodes=2",
            "hydra.launcher.tasks_per_node=4",
            "hydra.launcher.partition=gpu",
            "trainer.batch_size=64",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    script = (slurm_on_path / "job.sh").read_text()
    for line in [
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu",
    ]:
        assert line in script
    assert "--kill-on-bad-exit=1" in next(line for line in script.splitlines() if line.startswith("srun"))


@pytest.mark.cli
@pytest.mark.parametrize("launcher", ["submitit_slurm", "slurm_ddp"])
def test_a_slurm_sweep_where_there_is_no_slurm_is_refused_at_launch_naming_submitit_local(
    tmp_path: Path, launcher: str
) -> None:
    if shutil.which("srun") and shutil.which("sbatch"):
        pytest.skip("SLURM is here: the sweep would be submitted")
    argv = [sys.executable, "-m", "app.train", "-m", f"hydra/launcher={launcher}", "optimizer.lr=1e-4,1e-3"]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "RuntimeError" not in result.stderr
    assert "Refused: 1 problem in 2 of 2 sweep points" in result.stderr
    assert f"hydra/launcher={launcher}" in result.stderr and "sbatch and srun are not on PATH" in result.stderr
    assert "hydra/launcher=submitit_local runs its jobs here" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no multirun dir, no submitit folder


def test_processes_read_their_place_from_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert distributed.ranks() == distributed.Ranks() and not distributed.ranks().many
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.ranks() == distributed.Ranks(3, 1, 4)
    assert distributed.backend("cuda") == "nccl" and distributed.backend("cpu") == "gloo"
    assert checks.processes(launch.compose_config([], validate=False)) == 4


def test_the_run_dir_is_resolved_once_for_every_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    command = launch.parse_command(["trainer.epochs=1", "hydra.run.dir=runs/${now:%H-%M-%S-%f}"])
    pinned = launch.pinned_dirs(command)
    assert pinned[0] == "trainer.epochs=1" and pinned[1].startswith(f"hydra.run.dir='{tmp_path}/runs/")
    assert "${now" not in pinned[1] and len(pinned) == 2
    sweep = launch.parse_command(["-m", "hydra/launcher=slurm_ddp", "trainer.epochs=1,2"])
    assert launch.pinned_dirs(sweep)[-1].startswith(f"hydra.sweep.dir='{tmp_path}/multirun/")
    assert launch.launched_elsewhere(sweep) and not launch.launched_elsewhere(command)
    assert not launch.launched_elsewhere(launch.parse_command(["-m", "trainer.epochs=1,2"]))  # in this process
    per_job = launch.parse_command(["trainer.epochs=1", "hydra.run.dir=runs/${hydra.job.num}"])
    assert launch.pinned_dirs(per_job) == per_job.overrides  # left to Hydra: known in the job only
