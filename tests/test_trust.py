"""Whatever reaches ``instantiate`` is checked on the values it is built from: a checkpoint's
config (app-evaluate, app-predict, ``app.models.load``) and the job's own config resolved in the
job's environment; a run dir is held, marked and replaced only as this app's; a resumed run
continues the run it says it continues; evaluation preprocesses as the run did."""

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from app import files, launch, models
from app.checks import ConfigError
from app.checks.built import built_problems, resolved_as_built
from app.configs import EVALUATE_NAME, JOBLIB_LAUNCHER, PREDICT_NAME
from app.errors import AppError, ChangedInTheJob, ClassesDiffer, RunChanged, RunDirTaken, UntrustedCheckpoint
from app.train import train
from tests.conftest import TINY, run_cli


def saved_config(*overrides: str) -> dict[str, Any]:
    """A config as app-train saves it in a checkpoint: resolved, enums as strings."""
    cfg = launch.compose_config([*TINY, *overrides])
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def checkpoint_with(path: Path, values: dict[str, Any]) -> Path:
    """A file in app-train's checkpoint format whose config is ``values``."""
    classes = [str(i) for i in range(int(values["dataset"]["classes"]))]
    torch.save({"format": files.CHECKPOINT_FORMAT, "config": values, "model": {}, "classes": classes}, path)
    return path


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path, str]:
    """(a checkpoint whose head builds ``os.makedirs(canary)`` as its last layer, the canary,
    the key of that layer's ``_target_``)."""
    canary = tmp_path / "canary"
    values = saved_config()
    layers = values["classifier"]["_args_"]
    layers.append({"_target_": "os.makedirs", "name": str(canary)})
    return checkpoint_with(tmp_path / "best.pt", values), canary, f"classifier._args_.{len(layers) - 1}._target_"


# ------------------------------------------------------------------ a checkpoint's config
def test_models_load_refuses_a_checkpoint_whose_head_builds_what_no_config_builds(
    hostile: tuple[Path, Path, str],
) -> None:
    path, canary, key = hostile
    with pytest.raises(UntrustedCheckpoint, match=f"{key}=os.makedirs"):
        models.load(str(path))
    assert not canary.exists()


@pytest.mark.parametrize("config_name", [EVALUATE_NAME, PREDICT_NAME])
def test_evaluate_and_predict_refuse_that_checkpoint_at_launch_naming_the_key(
    config_name: str, hostile: tuple[Path, Path, str]
) -> None:
    path, canary, key = hostile
    given = [f"checkpoint={path}", *([f"input={path}"] if config_name == PREDICT_NAME else [])]
    _, problems = launch.check_overrides([*launch.from_checkpoint(config_name, given), *given], config_name=config_name)
    refused = {p.key: p for p in problems}
    assert f"checkpoint:{key}" in refused, refused
    assert refused[f"checkpoint:{key}"].hint == UntrustedCheckpoint.hint
    assert not canary.exists()


def test_a_checkpoint_that_does_not_name_its_classes_is_refused_without_a_crash(tmp_path: Path) -> None:
    values = saved_config()
    values["dataset"]["classes"] = "ten"
    path = tmp_path / "odd.pt"
    torch.save({"format": files.CHECKPOINT_FORMAT, "config": values, "model": {}}, path)
    given = [f"checkpoint={path}", f"input={path}"]
    _, problems = launch.check_overrides(given, config_name=PREDICT_NAME)
    assert [p.key for p in problems] == ["checkpoint"] and "classes the model scores" in problems[0].rule


@pytest.mark.cli
def test_app_evaluate_on_that_checkpoint_exits_1_and_builds_nothing(
    hostile: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path, canary, key = hostile
    result = run_cli(
        f"checkpoint={path}", "hydra.run.dir=eval", cwd=tmp_path, program=[sys.executable, "-m", "app.evaluate"]
    )
    assert result.returncode == 1, result.stderr
    assert f"checkpoint:{key}=os.makedirs" in result.stderr
    assert "Traceback" not in result.stderr and not canary.exists() and not (tmp_path / "eval").exists()


# ------------------------------------------------------- the job's config, resolved in the job
def test_a_value_the_jobs_environment_changes_cannot_build_another_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = tmp_path / "canary"
    monkeypatch.setenv("APP_HEAD", "[{_target_:torch.nn.Linear,in_features:9216,out_features:10}]")
    cfg = launch.compose_config([*TINY, "classifier._args_='${oc.decode:${oc.env:APP_HEAD}}'"])  # checked: passes
    monkeypatch.setenv("APP_HEAD", f"[{{_target_:os.makedirs,name:{canary}}}]")  # as hydra.job.env_set does
    with pytest.raises(ChangedInTheJob, match=r"classifier\._args_\.0\._target_=os\.makedirs"):
        resolved_as_built(cfg)
    assert not canary.exists()


def test_the_job_builds_the_values_it_checked_once_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = launch.compose_config([*TINY, "trainer.seed=${oc.env:APP_SEED,3}"])
    resolved = resolved_as_built(cfg)
    monkeypatch.setenv("APP_SEED", "4")  # a later read of the job's config sees what was checked
    assert resolved.trainer.seed == 3 and not OmegaConf.is_interpolation(resolved.trainer, "seed")
    assert OmegaConf.is_interpolation(cfg.trainer, "seed")  # the caller's config is left as it was


@pytest.mark.cli
@pytest.mark.extended
def test_hydra_job_env_set_cannot_make_a_checked_run_build_a_canary(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    env_head = "[{_target_:torch.nn.Linear,in_features:9216,out_features:10}]"
    result = run_cli(
        *TINY,
        "hydra.run.dir=run",
        f'+hydra.job.env_set.APP_HEAD="[{{_target_:os.makedirs,name:{canary}}}]"',
        "classifier._args_='${oc.decode:${oc.env:APP_HEAD}}'",
        cwd=tmp_path,
        env={"APP_HEAD": env_head},
    )
    told = result.stdout + result.stderr  # the job's log is on stdout
    assert "ChangedInTheJob" in told and "classifier._args_.0._target_=os.makedirs" in told
    assert not canary.exists() and result.returncode == 1


def test_what_hydra_builds_is_written_out_not_interpolated() -> None:
    given = ["hydra/launcher=joblib", f"hydra.launcher._target_=${{oc.env:APP_LAUNCHER,{JOBLIB_LAUNCHER}}}"]
    _, problems = launch.check_overrides([*TINY, *given], multirun=True)
    assert any(p.key == "hydra.launcher._target_" and "written out" in p.rule for p in problems), problems


# ------------------------------------------------------------------------------- run dirs
def test_sweep_points_that_share_a_run_dir_are_refused(tmp_path: Path) -> None:
    given = [*TINY, "optimizer.lr=1e-3,1e-2", f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=same"]
    _, problems = launch.check_overrides(given, multirun=True)
    assert [p.key for p in problems] == ["hydra.sweep.subdir"], problems
    assert str(tmp_path / "same") in problems[0].rule
    assert launch.check_overrides([*given[:-1], "hydra.sweep.subdir=${optimizer.lr}"], multirun=True)[1] == []


def foreign_dir(path: Path) -> dict[Path, bytes]:
    """A dir another program wrote, with names a run of this app also writes: {file: bytes}."""
    (path / "checkpoints").mkdir(parents=True)
    made = {path / "config.yaml": b"mine: 1\n", path / "checkpoints" / "model.bin": b"\x00" * 8}
    for file, data in made.items():
        file.write_bytes(data)
    return made


def test_overwrite_refuses_a_dir_no_run_of_this_app_wrote_and_leaves_its_files(tmp_path: Path) -> None:
    made = foreign_dir(tmp_path / "theirs")
    _, problems = launch.check_overrides([*TINY, f"hydra.run.dir={tmp_path / 'theirs'}", "trainer.overwrite=true"])
    assert [p.key for p in problems] == ["trainer.overwrite"] and files.MARKER in problems[0].rule
    with pytest.raises(RunDirTaken):  # and the job, had the check been passed over
        train(launch.compose_config([*TINY, "trainer.overwrite=true"]), tmp_path / "theirs")
    assert {file: file.read_bytes() for file in made} == made


def test_overwrite_replaces_a_run_of_this_app(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(launch.compose_config([*TINY, "trainer.epochs=1"]), out)
    assert files.written_by_app(str(out))
    first = (out / files.METRICS).read_text()
    train(launch.compose_config([*TINY, "trainer.overwrite=true"]), out)
    assert len((out / files.METRICS).read_text().splitlines()) == len(first.splitlines()) + 1


@pytest.mark.cli
@pytest.mark.extended
def test_a_job_that_finds_its_dir_held_leaves_the_live_runs_hydra_files_alone(tmp_path: Path) -> None:
    live = tmp_path / "live"
    (live / files.HYDRA).mkdir(parents=True)
    (live / files.HYDRA / "config.yaml").write_text("the live run's\n")
    (live / "train.log").write_text("the live run's log\n")
    job = "import sys; from app.train import hydra_main; sys.argv[0] = 'app-train'; hydra_main()"
    with files.run_lock(str(live)):  # the live run; the job starts past the launch check, as in a race
        result = run_cli(job, *TINY, f"hydra.run.dir={live}", cwd=tmp_path, program=[sys.executable, "-c"])
    assert result.returncode == 1 and "RunDirBusy" in result.stdout + result.stderr
    assert (live / files.HYDRA / "config.yaml").read_text() == "the live run's\n"
    assert sorted(p.name for p in (live / files.HYDRA).iterdir()) == ["config.yaml"]
    assert not (live / files.STATUS).exists() and (live / "train.log").read_text() == "the live run's log\n"


# ------------------------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run dir of a finished 2-epoch run (TINY), with its checkpoints/last.pt."""
    out = tmp_path_factory.mktemp("earlier") / "run"
    train(launch.compose_config(TINY), out)
    return out


@pytest.mark.parametrize(
    ("changed", "keys"),
    [
        (["trainer.batch_size=4"], ["trainer.batch_size"]),  # would skip images
        (["~scheduler", "optimizer.lr=1e-2"], ["optimizer.lr", "scheduler"]),  # the old lr would stay
        (["trainer.seed=1"], ["dataset.seed", "trainer.seed"]),  # another val split: trained-on images
    ],
)
def test_a_resumed_run_that_changes_what_it_trains_is_refused_naming_both_values(
    earlier_run: Path, changed: list[str], keys: list[str]
) -> None:
    given = [*TINY, f"hydra.run.dir={earlier_run}", "trainer.resume=auto", *changed]
    _, problems = launch.check_overrides(given)
    assert sorted(p.key for p in problems) == keys, problems
    saved = files.checkpoint_config(str(earlier_run / files.LAST))
    assert saved is not None
    for problem in problems:
        section, _, name = problem.key.partition(".")
        assert f"({saved[section][name] if name else saved[section]})" in problem.rule.replace("None", "null")


def test_a_resumed_run_may_go_on_longer_elsewhere_and_report_otherwise(earlier_run: Path) -> None:
    given = [*TINY, f"hydra.run.dir={earlier_run}", "trainer.resume=auto", "trainer.epochs=5"]
    assert launch.check_overrides([*given, "trainer.device=cpu", "trainer.num_workers=0", "tags=[again]"])[1] == []


def test_the_job_refuses_a_changed_resume_that_no_launch_check_saw(earlier_run: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(earlier_run, out)
    before = (out / files.METRICS).read_text()
    with pytest.raises(RunChanged, match=r"trainer\.batch_size=8 \(now 4\)"):  # train(): resume=auto is the job's
        train(launch.compose_config([*TINY, "trainer.resume=auto", "trainer.batch_size=4", "trainer.epochs=3"]), out)
    assert (out / files.METRICS).read_text() == before


# ------------------------------------------------------------------------ evaluation
def picture_folder(root: Path, names: list[str]) -> Path:
    """A class folder per name, with two 64-px photos of random pixels each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def evaluation_config(checkpoint: Path, folder: Path) -> DictConfig:
    given = [f"checkpoint={checkpoint}", "dataset=folder", f"dataset.root={folder}", "dataset.val_fraction=0.5"]
    with launch.app_hydra():
        from hydra import compose

        return compose(EVALUATE_NAME, [*launch.from_checkpoint(EVALUATE_NAME, given), *given])


def test_evaluation_on_another_dataset_option_prepares_images_as_the_run_did(earlier_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    from app import data
    from app.evaluate import evaluated_splits

    checkpoint = earlier_run / "checkpoints/best.pt"
    trained = models.load(str(checkpoint))
    splits = evaluated_splits(evaluation_config(checkpoint, picture_folder(tmp_path, trained.classes)), trained)
    as_run = data.image_transform(OmegaConf.structured(trained.config))  # what app-predict applies
    val = splits.val
    assert isinstance(val, data.ImageFiles) and len(val) == 10
    for index, path in enumerate(val.files):
        with Image.open(path) as picture:
            assert torch.equal(val[index][0], as_run(picture)), path  # fake's [0, 1], not ImageNet's statistics


def test_evaluation_on_classes_named_otherwise_is_refused_with_the_names(earlier_run: Path, tmp_path: Path) -> None:
    from app.evaluate import evaluated_splits

    checkpoint = earlier_run / "checkpoints/best.pt"
    trained = models.load(str(checkpoint))
    names = [f"c{name}" for name in trained.classes]  # as many, named otherwise
    with pytest.raises(ClassesDiffer, match="c0, c1, c2.* against 0, 1, 2"):
        evaluated_splits(evaluation_config(checkpoint, picture_folder(tmp_path, names)), trained)


# ------------------------------------------------------------------------------ fuzz
HOSTILE_VALUES = [
    "os.makedirs",
    "${oc.create:{_target_:os.makedirs,name:CANARY}}",
    "${oc.decode:'{_target_:os.makedirs,name:CANARY}'}",
    "${oc.env:APP_TARGET,torch.nn.Linear}",
    {"_target_": "os.makedirs", "name": "CANARY"},
    {"_target_": "builtins.exec", "_args_": ["import os; os.makedirs('CANARY')"]},
    [{"_target_": "os.makedirs", "name": "CANARY"}],
    None,
    -1,
    "x",
]


def leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value under a plain container (its nodes too)."""
    found = [path] if path else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found += leaves(child, (*path, key))
    return found


def with_value(values: dict[str, Any], path: tuple[Any, ...], value: Any, canary: Path) -> dict[str, Any]:
    import copy
    import json

    changed = copy.deepcopy(values)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = json.loads(json.dumps(value).replace("CANARY", str(canary)))
    return changed


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_checkpoint_config_is_refused_cleanly_or_builds_only_what_the_configs_build(
    data: st.DataObject, tmp_path: Path
) -> None:
    values = saved_config()
    built = {k: values[k] for k in ("feature_extractor", "classifier", "trainer", "dataset")}
    path = data.draw(st.sampled_from(leaves(built)))
    canary = tmp_path / f"canary-{len(list(tmp_path.iterdir()))}"
    changed = with_value(values, path, data.draw(st.sampled_from(HOSTILE_VALUES)), canary)
    checkpoint = tmp_path / f"{canary.name}.pt"
    torch.save({"format": files.CHECKPOINT_FORMAT, "config": changed, "model": {}, "classes": []}, checkpoint)
    given = [f"checkpoint={checkpoint}", f"input={checkpoint}"]
    _, problems = launch.check_overrides(given, config_name=PREDICT_NAME)  # never raises
    assert all(p.key and p.rule and p.hint for p in problems)
    try:
        models.load(str(checkpoint))
    except AppError:
        pass  # refused, with its hint; any other exception fails the test
    assert not canary.exists()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    at_launch=st.sampled_from(["torch.nn.Linear", "torch.nn.ReLU"]),
    in_the_job=st.sampled_from(["torch.nn.Linear", "torch.nn.ReLU", "os.makedirs", "builtins.exec", "", "${now:%S}"]),
    where=st.sampled_from(["classifier._args_.1._target_", "classifier._args_.0._target_"]),
)
def test_whatever_the_jobs_environment_holds_the_job_builds_only_what_the_check_allows(
    at_launch: str, in_the_job: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_TARGET", at_launch)
    try:
        cfg = launch.compose_config([*TINY, f"{where}=${{oc.env:APP_TARGET}}"])
    except ConfigError:
        return  # refused at launch already
    monkeypatch.setenv("APP_TARGET", in_the_job)
    try:
        resolved = resolved_as_built(cfg)
    except ChangedInTheJob:
        return
    assert built_problems(resolved) == [] and OmegaConf.select(resolved, where) == at_launch


@pytest.mark.parametrize("name", ["PYTHONPATH", "LD_PRELOAD", "TORCHINDUCTOR_CACHE_DIR", "DYLD_INSERT_LIBRARIES"])
def test_env_set_cannot_make_the_jobs_processes_load_code(name: str, tmp_path: Path) -> None:
    _, problems = launch.check_overrides([*TINY, f"+hydra.job.env_set.{name}={tmp_path}"])
    assert [p.key for p in problems] == [f"hydra.job.env_set.{name}"], problems
    assert launch.check_overrides([*TINY, "+hydra.job.env_set.OMP_NUM_THREADS=1"])[1] == []
