"""Named experiments, Optuna search presets with a resumable study, and parallel launchers."""

from pathlib import Path

import pytest

from app.configs import EXPERIMENTS, as_untyped
from app.launch import check_overrides, compose_config
from tests.conftest import TINY, image_folder, run_cli  # noqa: F401  (image_folder: a fixture)


def on_images(name: str, folder: Path) -> list[str]:
    """The dataset an experiment runs on here: digits, or a folder for one that changes the images."""
    changes_images = "augment" in as_untyped(EXPERIMENTS[name]).get("dataset", {})
    return ["dataset=folder", f"dataset.root={folder}", "dataset.classes=3"] if changes_images else []


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_each_experiment_composes_and_runs_fast(name: str, tmp_path: Path, image_folder: Path) -> None:  # noqa: F811
    from app.train import train

    cfg = compose_config(
        [
            *on_images(name, image_folder),
            f"+experiment={name}",
            "+debug=fast",
            "dataset.train_size=24",
            "dataset.val_size=8",
            "trainer.batch_size=8",
            f"trainer.feature_cache_dir={tmp_path / 'cache'}",
        ]
    )
    assert cfg.trainer.epochs == 1  # +debug=fast, after the experiment, wins
    assert 0.0 <= train(cfg, tmp_path / "run") <= 1.0
    assert (tmp_path / "run" / "summary.json").exists()


def test_experiments_pick_group_options(image_folder: Path) -> None:  # noqa: F811
    frozen = compose_config(["+experiment=digits_resnet18_frozen"])
    assert frozen.feature_extractor._target_ == "app.models.resnet18" and frozen.trainer.freeze_extractor
    finetune = compose_config(["+experiment=digits_alexnet_finetune", "optimizer.lr=1e-3"])
    assert finetune.scheduler._target_ == "app.schedules.onecycle" and finetune.optimizer.lr == 1e-3
    # on your own images: a dataset option after the experiment wins, its other settings stay
    folder = compose_config(
        ["+experiment=digits_resnet18_finetune", "dataset=folder", f"dataset.root={image_folder}", "dataset.classes=3"]
    )
    assert folder.dataset._target_ == "app.data.image_folder" and folder.dataset.image.size == 64
    assert folder.trainer.ema_decay == 0.99 and folder.trainer.extractor_lr_scale == 0.1


def test_glob_runs_every_experiment(image_folder: Path) -> None:  # noqa: F811
    on_a_folder = ["dataset=folder", f"dataset.root={image_folder}", "dataset.classes=3"]
    # 14 training images in batches of 4: the 3 optimizer steps an experiment's onecycle needs
    smoke = ["+experiment=glob(*)", "+debug=fast", "trainer.batch_size=4"]
    assert check_overrides([*on_a_folder, *smoke], multirun=True) == (
        len(EXPERIMENTS),
        [],
    )


def test_the_torchvision_recipe_is_the_published_one_and_the_staged_one_freezes_first(image_folder: Path) -> None:  # noqa: F811
    recipe = compose_config(["dataset=folder", f"dataset.root={image_folder}", "dataset.classes=3",
                             "+experiment=torchvision_recipe"])  # fmt: skip
    d, t, o = recipe.dataset, recipe.trainer, recipe.optimizer
    assert (d.augment.name, d.random_erasing, t.mixup_alpha, t.cutmix_alpha, t.label_smoothing) == (
        "trivialaugment", 0.1, 0.2, 1.0, 0.1)  # fmt: skip
    assert o._target_ == "torch.optim.SGD" and (o.momentum, o.weight_decay) == (0.9, 2e-5)
    assert o.lr == 0.5 * t.batch_size / 1024  # 0.5 per 1024 images
    assert recipe.scheduler._target_ == "app.schedules.cosine" and recipe.scheduler.warmup_epochs > 0
    assert t.ema_decay is not None and recipe.feature_extractor._target_ == "app.models.resnet50"
    staged = compose_config(["+experiment=staged_finetune"])
    assert (
        staged.trainer.freeze_epochs == 3 < staged.trainer.epochs and staged.optimizer._target_ == "torch.optim.AdamW"
    )
    assert staged.trainer.extractor_lr_scale == 0.1 and not staged.trainer.freeze_extractor


def test_search_preset_space_is_checked_like_the_command_line() -> None:
    assert check_overrides(["+hparams_search=lr_wd", "+debug=fast"], multirun=True) == (4, [])  # 2 bounds x 2 bounds
    points, problems = check_overrides(
        ["+hparams_search=lr_wd", "optimizer.weight_decay=interval(-1,0.1)"], multirun=True
    )
    assert points == 4 and {(p.key, p.value, p.rule) for p in problems} == {("optimizer.weight_decay", "-1.0", ">= 0")}
    _, reversed_bounds = check_overrides(["+hparams_search=lr_wd", "optimizer.lr=interval(1e-2,1e-5)"], multirun=True)
    assert [p.rule for p in reversed_bounds] == ["interval(low, high) with low < high"]


def test_bare_optuna_sweeper_must_say_minimize_to_minimise() -> None:
    space = ["hydra/sweeper=optuna", "optimizer.lr=tag(log,interval(1e-5,1e-3))"]
    _, problems = check_overrides(space, multirun=True)
    assert [(p.key, p.hint) for p in problems] == [
        ("hydra.sweeper.direction", "add hydra.sweeper.direction=maximize, or use a preset: +hparams_search=lr_wd")
    ]
    _, both = check_overrides([*space, "optimizer.weight_decay=-1"], multirun=True)  # every problem at once
    assert {p.key for p in both} == {"hydra.sweeper.direction", "optimizer.weight_decay"}
    assert check_overrides([*space, "hydra.sweeper.direction=minimize"], multirun=True) == (2, [])
    assert check_overrides([*space, "hydra.sweeper.direction=maximize"], multirun=True) == (2, [])


@pytest.mark.cli
@pytest.mark.extended
def test_interrupted_search_resumes_with_the_same_command(tmp_path: Path) -> None:
    import optuna

    # one trial, then the rest: each trial is a tiny run, and the resume is what is tested
    search = ["-m", "+hparams_search=lr_wd", *TINY, "trainer.epochs=1", "hydra.sweep.dir=sweep"]
    first = run_cli(*search, "hydra.sweeper.n_trials=1", cwd=tmp_path)  # stopped after 1 of 2 trials
    assert first.returncode == 0, first.stderr
    again = run_cli(*search, "hydra.sweeper.n_trials=2", cwd=tmp_path)  # the same search, resumed
    assert again.returncode == 0, again.stderr
    assert "Resuming study lr_wd: 1 of 2 trials finished" in again.stdout
    study = optuna.load_study(study_name="lr_wd", storage=f"sqlite:///{tmp_path / 'sweep/optuna.db'}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert len({t.params["optimizer.lr"] for t in trials}) == 2  # the resumed sampler draws a new point
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()) == ["0", "1"]
    assert all((tmp_path / f"sweep/{n}/summary.json").exists() for n in range(2))
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE


@pytest.mark.cli
@pytest.mark.extended
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launcher_sweep_leaves_complete_run_dirs(launcher: str, tmp_path: Path) -> None:
    result = run_cli(
        "-m",
        f"hydra/launcher={launcher}",
        "classifier=small,large",
        *TINY,
        "trainer.epochs=1",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for job in ("0", "1"):
        run = tmp_path / "sweep" / job
        assert {"summary.json", "metrics.csv", "curves.png", "config.yaml"} <= {p.name for p in run.iterdir()}
        assert (
            "1 torch thread" in (run / "train.log").read_text()
        )  # 2 cores: joblib's 2 jobs, or submitit's 1 cpu a task


@pytest.mark.cli
@pytest.mark.usefixtures("slurm_on_path")  # sbatch and srun: a SLURM launcher needs them
def test_launcher_settings_are_checked_before_any_job(tmp_path: Path) -> None:
    slurm = ["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=1", "hydra.launcher.timeout_min=120"]
    assert check_overrides([*slurm, "classifier=small,large"], multirun=True) == (2, [])  # its _target_ allowed
    _, problems = check_overrides([*slurm, "hydra.launcher.gpus_per_nod=1", "classifier=small,large"], multirun=True)
    assert {p.key for p in problems} == {"hydra.launcher.gpus_per_nod"}
    _, limits = check_overrides([*slurm, "hydra.launcher.timeout_min=0", "hydra.launcher.gpus_per_node=-1"])
    assert {(p.key, p.rule) for p in limits} == {
        ("hydra.launcher.timeout_min", ">= 1"),
        ("hydra.launcher.gpus_per_node", ">= 0"),
    }
    _, joblib = check_overrides(["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"])
    assert [p.key for p in joblib] == ["hydra.launcher.n_jobs"]
    result = run_cli(
        "-m", "hydra/launcher=joblib", "optimizer.lr=1e-3,-1", *TINY, "hydra.sweep.dir=sweep", cwd=tmp_path
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "1 problem in 1 of 2 sweep points" in result.stderr and not (tmp_path / "sweep").exists()


def test_cores_per_job_follows_the_launcher() -> None:
    from omegaconf import OmegaConf

    from app.training.runtime import cores_per_job

    def launcher(**values: object) -> object:
        return OmegaConf.create(values)

    assert cores_per_job(launcher(_target_="hydra._internal.core_plugins.basic_launcher.BasicLauncher"), 8) is None
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert cores_per_job(launcher(_target_=joblib, n_jobs=-1), 8) == 1  # a job a core
    assert cores_per_job(launcher(_target_=joblib, n_jobs=2), 8) == 4
    assert cores_per_job(launcher(_target_=joblib, n_jobs=-3), 8) == 1  # joblib: 6 jobs
    assert cores_per_job(launcher(_target_=joblib, n_jobs=16), 8) == 1
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert cores_per_job(launcher(_target_=slurm, cpus_per_task=6), 8) == 6
    assert cores_per_job(launcher(_target_=slurm, cpus_per_task=None), 8) == 1


def test_a_bad_bound_in_a_preset_itself_is_refused() -> None:
    from hydra.core.config_store import ConfigStore

    from app.configs import as_untyped, search_preset

    bad = search_preset("bad_lr", {"optimizer.lr": "interval(0, 1e-3)"})
    ConfigStore.instance().store(group="hparams_search", name="bad_lr", node=as_untyped(bad), package="_global_")
    try:
        points, problems = check_overrides(["+hparams_search=bad_lr"], multirun=True)
    finally:
        del ConfigStore.instance().repo["hparams_search"]["bad_lr.yaml"]
    assert points == 2 and {(p.key, p.value, p.rule) for p in problems} == {("optimizer.lr", "0.0", "> 0")}
