"""Every bad configuration is refused at launch: key, value, rule, hint; no traceback, no run."""

import dataclasses
import os
import shlex
import subprocess
import sys
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Optional

import pytest
from annotated_types import Ge, Gt, Interval, Le, Len, Lt, Timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from app.checks import ConfigError, check_config, field_hints, group_options, rules_table, unwrap, validator
from app.checks.constraints import _has_schema
from app.configs import AlexNetWeights, Device, Precision, ResNet18Weights
from app.launch import check_main, check_overrides, compose_config
from app.train import train
from tests.conftest import ROOT, TINY, console_script, refused_in_process, run_cli

EXISTING_FILE = str(ROOT / "pyproject.toml")

# (overrides, the key the message must name)
BAD = [
    # types
    (["dataset.classes=0.5"], "dataset.classes"),
    (["dataset.image.size=abc"], "dataset.image.size"),
    (["dataset.image.channels=three"], "dataset.image.channels"),
    (["trainer.epochs=1.5"], "trainer.epochs"),
    (["trainer.freeze_extractor=maybe"], "trainer.freeze_extractor"),
    (["trainer.device=gpu"], "trainer.device"),
    (["trainer.precision=fp8"], "trainer.precision"),
    (["optimizer.lr=fast"], "optimizer.lr"),
    (["dataset.image=3"], "dataset.image"),
    (["classifier._args_.0.out_features=wide"], "classifier._args_.0.out_features"),
    # value ranges
    (["dataset.classes=-5"], "dataset.classes"),
    (["dataset.classes=1"], "dataset.classes"),
    (["dataset.classes=11"], "dataset.classes"),
    (["dataset=fake", "dataset.classes=0"], "dataset.classes"),
    (["optimizer.lr=-1"], "optimizer.lr"),
    (["optimizer.lr=0"], "optimizer.lr"),
    (["dataset.image.channels=2"], "dataset.image.channels"),
    (["dataset.image.size=0"], "dataset.image.size"),
    (["trainer.batch_size=0"], "trainer.batch_size"),
    (["trainer.epochs=0"], "trainer.epochs"),
    (["trainer.num_workers=-1"], "trainer.num_workers"),
    (["trainer.seed=-1"], "trainer.seed"),
    (["dataset.train_size=0"], "dataset.train_size"),
    (["dataset.val_size=-3"], "dataset.val_size"),
    (["dataset.val_fraction=1.5"], "dataset.val_fraction"),
    (["optimizer=sgd", "optimizer.momentum=-0.5"], "optimizer.momentum"),
    (["optimizer.weight_decay=-0.1"], "optimizer.weight_decay"),
    (["optimizer.betas=[0.9,1.5]"], "optimizer.betas"),
    (["optimizer.eps=0"], "optimizer.eps"),
    (["classifier=large", "classifier._args_.2.p=1.0"], "classifier._args_.2.p"),
    (["scheduler=step", "scheduler.gamma=0"], "scheduler.gamma"),
    (["feature_extractor.checkpoint=missing.pt"], "feature_extractor.checkpoint"),
    (["feature_extractor.weights=IMAGENET"], "feature_extractor.weights"),
    (["feature_extractor.out_features=100"], "feature_extractor.out_features"),
    (["feature_extractor=resnet18", "feature_extractor.weights=IMAGENET1K_V2"], "feature_extractor.weights"),
    (["optimizer.lr=nan"], "optimizer.lr"),
    (["optimizer.lr=inf"], "optimizer.lr"),
    (["optimizer=sgd", "optimizer.momentum=-inf"], "optimizer.momentum"),
    (["optimizer.betas=[nan,nan]"], "optimizer.betas"),
    (["optimizer.betas=[0.9]"], "optimizer.betas"),
    # interpolated values, checked as the job receives them
    (["dataset.classes=${trainer.epochs}", "trainer.epochs=1"], "dataset.classes"),
    (["trainer.epochs=${trainer.seed}"], "trainer.epochs"),
    # cross-field rules
    (["dataset.image.size=8"], "dataset.image.size"),
    (["dataset.image.size=62"], "dataset.image.size"),
    (["feature_extractor=resnet18", "dataset.image.size=16"], "dataset.image.size"),
    (["classifier._args_.0.in_features=100"], "classifier._args_.0.in_features"),
    (["classifier._args_.2.in_features=5"], "classifier._args_.2.in_features"),
    (["classifier._args_.2.out_features=3"], "classifier._args_.2.out_features"),
    (["classifier._args_=[]"], "classifier._args_"),
    (["optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0"], "optimizer.nesterov"),
    (
        ["feature_extractor.weights=DEFAULT", f"feature_extractor.checkpoint={EXISTING_FILE}"],
        "feature_extractor.checkpoint",
    ),
    (["dataset.classes=${nope}"], "dataset.classes"),
    (["dataset=folder", "dataset.root=no/such/dir", "dataset.classes=3"], "dataset.root"),
    (
        ["dataset=folder", f"dataset.root={ROOT / 'tests' / 'typing' / 'must_fail'}", "dataset.classes=3"],
        "dataset.classes",
    ),  # no class folders there: 0 != 3
    # unknown keys
    (["dataset.clases=3"], "did you mean dataset.classes"),
    (["trainer.epoch=3"], "did you mean trainer.epochs"),
    (["+trainer.foo=1"], "trainer.foo"),
    (["optimizer.learning_rate=0.1"], "optimizer.learning_rate"),
    (["classifier._args_.9.p=0.1"], "classifier._args_.9"),
    (
        ["classifier._args_=[{_target_:torch.nn.Linear,in_features:9216,out_features:10,bogus:1}]"],
        "classifier._args_.0.bogus",
    ),
    # group options
    (["classifier=medium"], "classifier"),
    (["dataset=cifar"], "dataset"),
    (["optimizer=adamm"], "did you mean optimizer=adam"),
    (["+debug=slow"], "debug"),
    # targets
    (["classifier._target_=os.system"], "classifier._target_"),
    (["feature_extractor._target_=builtins.eval"], "feature_extractor._target_"),
    (["+classifier._args_.0._target_=subprocess.call"], "classifier._args_.0._target_"),
    (["++classifier._args_.0._target_=subprocess.call"], "classifier._args_.0._target_"),
    (["classifier._args_=[{_target_:os.system}]"], "classifier._args_.0._target_"),
    (["+hydra.callbacks.evil._target_=os.system"], "hydra.callbacks.evil._target_"),
    (["dataset._target_=app.data.fake"], "dataset._target_"),
    # override grammar
    (["dataset.classes=[1,2"], "dataset.classes"),
    (["dataset..classes=3"], "dataset..classes"),
    (["dataset.classes='unterminated"], "dataset.classes"),
    (["classifier=small,large"], "classifier"),
    (["~dataset.classes"], "~dataset.classes"),
]


# One of each kind above goes through the real CLI, a process of its own as a user starts it;
# every case (these too) goes through app.train.main(), the function that process runs, in this
# one (~0.1 s a case instead of ~0.6 s of interpreter start-up and imports).
REAL_CLI = [
    (["dataset.classes=0.5"], "dataset.classes"),  # types
    (["optimizer.lr=-1"], "optimizer.lr"),  # value ranges
    (["trainer.epochs=${trainer.seed}"], "trainer.epochs"),  # interpolated values
    (["dataset.image.size=8"], "dataset.image.size"),  # cross-field rules
    (["dataset.clases=3"], "did you mean dataset.classes"),  # unknown keys
    (["optimizer=adamm"], "did you mean optimizer=adam"),  # group options
    (["classifier._target_=os.system"], "classifier._target_"),  # targets
    (["dataset.classes=[1,2"], "dataset.classes"),  # override grammar
]


def refuse(case: tuple[list[str], str], base: Path) -> tuple[list[str], str, subprocess.CompletedProcess[str], Path]:
    overrides, key = case
    workdir = base / str(abs(hash(tuple(overrides))))
    workdir.mkdir()
    return overrides, key, run_cli(*overrides, "hydra.run.dir=out", cwd=workdir), workdir


@pytest.fixture(scope="module")
def refusals(
    tmp_path_factory: pytest.TempPathFactory,
) -> list[tuple[list[str], str, subprocess.CompletedProcess[str], Path]]:
    """The REAL_CLI cases through the real CLI, two at a time (each process refuses in ~0.5 s)."""
    base = tmp_path_factory.mktemp("refused")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda case: refuse(case, base), REAL_CLI))


def test_there_are_at_least_forty_cases() -> None:
    assert len(BAD) >= 40
    assert all(case in BAD for case in REAL_CLI)


def assert_refused(code: object, stdout: str, stderr: str, key: str, workdir: Path) -> None:
    output = stdout + stderr
    assert code == 1, output
    assert "Traceback" not in output
    assert stderr.startswith("Refused:"), output
    assert key in stderr
    assert "rule: " in stderr and "hint: " in stderr
    assert not list(workdir.rglob("*.pt")) and not list(workdir.rglob("metrics.csv"))
    assert not (workdir / "out").exists()


@pytest.mark.cli
@pytest.mark.parametrize("index", range(len(REAL_CLI)), ids=[" ".join(o) for o, _ in REAL_CLI])
def test_bad_override_is_refused_by_the_real_cli(
    index: int, refusals: list[tuple[list[str], str, subprocess.CompletedProcess[str], Path]]
) -> None:
    overrides, key, result, workdir = refusals[index]
    assert_refused(result.returncode, result.stdout, result.stderr, key, workdir)


@pytest.mark.parametrize("index", range(len(BAD)), ids=[" ".join(o) for o, _ in BAD])
def test_bad_override_is_refused_at_launch(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides, key = BAD[index]
    code, stdout, stderr = refused_in_process(
        *overrides, "hydra.run.dir=out", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert_refused(code, stdout, stderr, key, tmp_path)


@pytest.mark.cli
def test_full_error_shows_the_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "app.train", "dataset.classes=0.5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" in result.stderr


# ------------------------------------------------------------------------------- sweeps
@pytest.mark.cli
def test_one_bad_point_stops_the_whole_sweep(tmp_path: Path) -> None:
    result = run_cli(
        "-m",
        "classifier=small,large",
        "dataset.classes=5,-5",
        *TINY[1:],
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "1 problem in 2 of 4 sweep points" in result.stderr
    assert "dataset.classes=-5   [2 sweep points, the first: classifier=small dataset.classes=-5" in result.stderr
    assert not (tmp_path / "sweep").exists()  # not one job ran


def test_optuna_search_space_bounds_follow_the_same_rules() -> None:
    points, problems = check_overrides(
        [
            "hydra/sweeper=optuna",
            "hydra.sweeper.direction=maximize",
            "optimizer.lr=interval(0,1e-3)",
            "classifier=choice(small,large)",
        ],
        multirun=True,
    )
    assert points == 4  # each bound with each choice
    assert {(p.key, p.value, p.rule) for p in problems} == {("optimizer.lr", "0.0", "> 0")}
    ok = check_overrides(
        ["hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "optimizer.lr=tag(log,interval(1e-5,1e-3))"],
        multirun=True,
    )
    assert ok == (2, [])


@pytest.mark.cli
@pytest.mark.extended
def test_real_optuna_sweep_runs_after_its_check(tmp_path: Path) -> None:
    result = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.direction=maximize",
        "optimizer.lr=tag(log,interval(1e-5,1e-3))",
        *TINY,
        "trainer.epochs=1",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "best_value" in (tmp_path / "sweep/optimization_results.yaml").read_text()
    assert (tmp_path / "sweep/1/summary.json").exists()


@pytest.mark.cli
def test_check_validates_a_sweep_without_running_or_importing_torch() -> None:
    code = (
        "import sys\n"
        "from app.launch import check_main as main\n"
        "good = main(['-m', 'classifier=small,large', 'optimizer.lr=1e-4,1e-3'])\n"
        "bad = main(['python', '-m', 'app.train', '-m', 'optimizer.lr=1e-4,-1'])\n"
        "print(good, bad, any(m.split('.')[0] == 'torch' for m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "0 1 False"
    assert "OK: 4 configurations valid." in result.stdout
    assert "optimizer.lr=-1.0" in result.stderr and "1 of 2 sweep points" in result.stderr


@pytest.mark.cli
def test_check_console_script_exit_status(tmp_path: Path) -> None:
    app_check = console_script("app-check")
    ok = subprocess.run([app_check, "classifier=large"], cwd=tmp_path, capture_output=True, text=True)
    bad = subprocess.run(
        [app_check, "dataset.classes=-5", "optimizer.lr=0"], cwd=tmp_path, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "OK: 1 configuration valid." in ok.stdout
    assert bad.returncode == 1 and "Refused: 2 problems" in bad.stderr  # every problem at once


@pytest.mark.cli
@pytest.mark.extended
@pytest.mark.usefixtures("slurm_on_path")  # its SLURM lines need sbatch and srun on PATH
def test_readme_commands_pass_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every app-train command in the README is valid, except those marked "# refused", with all
    # it needs here (--strict: the test extras, SLURM's programs); the folder examples read the
    # image folder the README's own command writes first.
    readme = (ROOT / "README.md").read_text().splitlines()
    writes_folder = next(line for line in readme if line.startswith("python -c") and "digits_png" in line)
    subprocess.run([sys.executable, *shlex.split(writes_folder)[1:]], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    assert check_main(["--strict", "--lint", str(ROOT / "README.md")]) == 0


@pytest.mark.cli
def test_rules_are_documented_in_help_and_readme(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    help_text = run_cli("--help", cwd=tmp_path).stdout
    for key, text in rules_table():
        assert text in help_text
        assert (key if key != "cross-field" else text) in readme, key


# ------------------------------------------------------------------- good configs pass
@pytest.mark.parametrize(("group", "option", "node"), group_options(), ids=lambda v: str(v)[:20])
def test_every_stored_option_is_valid(group: str, option: str, node: object, image_folder: Path) -> None:
    plus = "+" if group in ("debug", "experiment", "hparams_search") else ""  # groups not in the defaults
    needs = {
        "folder": [f"dataset.root={image_folder}", "dataset.classes=3"],
        "vit_b_16": ["dataset.image.size=224"],
        "cifar10": ["dataset.download=true"],
        # it changes the training images: on a dataset that can
        "torchvision_recipe": ["dataset=folder", f"dataset.root={image_folder}", "dataset.classes=3"],
    }
    search = group == "hparams_search"  # a search preset is a sweep: its space's bounds are its points
    points, problems = check_overrides([f"{plus}{group}={option}", *needs.get(option, [])], multirun=search)
    assert problems == [] and (points > 1 if search else points == 1)


def test_a_config_broken_after_composition_is_refused_by_the_job(tmp_path: Path) -> None:
    cfg = compose_config(["+debug=fast"])
    cfg.dataset.classes = -5  # bypasses the launch check, as a notebook might
    with pytest.raises(ConfigError, match="dataset.classes"):
        train(cfg, tmp_path)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------- property: never a traceback
LEAF_KEYS = [
    "dataset.classes",
    "dataset.image.size",
    "dataset.image.channels",
    "dataset.train_size",
    "dataset.val_size",
    "dataset.val_fraction",
    "feature_extractor.out_features",
    "feature_extractor.checkpoint",
    "feature_extractor.weights",
    "classifier._args_.0.out_features",
    "classifier._args_.2.in_features",
    "classifier._target_",
    "optimizer.lr",
    "optimizer.betas",
    "optimizer.weight_decay",
    "scheduler.T_max",
    "trainer.epochs",
    "trainer.batch_size",
    "trainer.seed",
    "trainer.device",
    "trainer.num_workers",
    "trainer.freeze_extractor",
    "trainer.precision",
    "dataset.clases",
    "dataset",
    "classifier",
    "optimizer",
    "scheduler",
]
VALUES = st.one_of(
    st.integers(-20, 20000).map(str),
    st.floats(-10, 10, allow_nan=False).map(repr),
    st.sampled_from(
        [
            "null",
            "true",
            "maybe",
            "[0.9,0.999]",
            "[]",
            "small",
            "large",
            "fake",
            "sgd",
            "cosine",
            "auto",
            "cuda",
            "bf16",
            "os.system",
            "${trainer.seed}",
            "${nope}",
            "'a b'",
            "[1,2",
            "IMAGENET1K_V1",
        ]
    ),
    st.text(alphabet="abc019._-=,[]{}$~+' ", max_size=8),
)
OVERRIDE = st.tuples(st.sampled_from(["", "+", "~", "++"]), st.sampled_from(LEAF_KEYS), VALUES).map(
    lambda t: f"{t[0]}{t[1]}" if t[0] == "~" else f"{t[0]}{t[1]}={t[2]}"
)


# The default tier draws 40 examples (~0.15 s each); the slow tier (pytest -m slow) draws 500.
RANDOM_OVERRIDES = given(st.lists(OVERRIDE, min_size=1, max_size=3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@RANDOM_OVERRIDES
def test_random_overrides_are_either_valid_or_refused_in_format(overrides: list[str]) -> None:
    valid_or_refused_in_format(overrides)


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@RANDOM_OVERRIDES
def test_random_overrides_are_either_valid_or_refused_in_format_thoroughly(overrides: list[str]) -> None:
    valid_or_refused_in_format(overrides)


def valid_or_refused_in_format(overrides: list[str]) -> None:
    points, problems = check_overrides(overrides)  # must not raise, whatever the input
    assert points == 1
    for problem in problems:
        assert problem.key and problem.rule and problem.hint
        assert "Traceback" not in problem.render()
    if not problems:  # accepted: it composes, and the job's own check agrees
        cfg = compose_config(overrides)
        assert check_config(cfg) == []
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_folder_classes_must_match_the_class_folders(image_folder: Path) -> None:
    points, problems = check_overrides(["dataset=folder", f"dataset.root={image_folder}", "dataset.classes=4"])
    assert [(p.key, p.hint) for p in problems] == [("dataset.classes", "set dataset.classes=3")]
    assert "cat, dog, emu" in problems[0].rule
    assert check_overrides(["dataset=folder", f"dataset.root={image_folder}", "dataset.classes=3"]) == (1, [])


# ------------------------------------------------- every annotated bound is enforced
def outside(hint: object) -> Optional[str]:
    """A value just outside the numeric bounds a field's annotations state, if they state any."""
    bare, metadata = unwrap(hint)
    if bare not in (int, float):
        return None
    step = 1 if bare is int else 0.5
    for item in metadata:
        for part in item if isinstance(item, Interval) else [item]:
            if isinstance(part, Ge):
                return repr(bare(part.ge) - step)
            if isinstance(part, Gt):
                return repr(part.gt)
            if isinstance(part, Le):
                return repr(bare(part.le) + step)
            if isinstance(part, Lt):
                return repr(part.lt)
    return None


def bound_cases() -> list[tuple[list[str], str]]:
    """For every stored option, each bounded field set just outside its bounds."""
    cases: list[tuple[list[str], str]] = []

    def walk(obj: object, path: str, select: list[str]) -> None:
        if isinstance(obj, list):
            for index, item in enumerate(obj):
                walk(item, f"{path}.{index}", select)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for name, hint in field_hints(type(obj)).items():
                bad = outside(hint) if not name.startswith("_") else None
                if bad is not None:
                    cases.append(([*select, f"{path}.{name}={bad}"], f"{path}.{name}"))
                walk(getattr(obj, name), f"{path}.{name}", select)

    for group, option, node in group_options():
        needs = ["dataset.root=FOLDER", "dataset.classes=3"] if option == "folder" else []
        walk(node, group, [f"{group}={option}", *needs])
    return cases


@pytest.mark.parametrize(("overrides", "key"), bound_cases(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_bound_in_the_annotations_is_enforced(overrides: list[str], key: str, image_folder: Path) -> None:
    overrides = [o.replace("FOLDER", str(image_folder)) for o in overrides]
    _, problems = check_overrides(overrides)
    assert key in {p.key for p in problems}, overrides


def test_bounds_are_tested_for_every_group() -> None:
    assert {key.split(".")[0] for _, key in bound_cases()} == {
        "dataset",
        "feature_extractor",
        "classifier",
        "optimizer",
        "scheduler",
        "trainer",
        "logger",
    }


# ------------------------------------- the launch validator agrees with pydantic's TypeAdapter
def every_field_hint() -> list[Any]:
    hints: dict[Any, None] = {}

    def walk(obj: object) -> None:
        if isinstance(obj, list):
            for item in obj:
                walk(item)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for name, hint in field_hints(type(obj)).items():
                if not name.startswith("_") and not _has_schema(hint):
                    hints[hint] = None
                walk(getattr(obj, name))

    for _, _, node in group_options():
        walk(node)
    return list(hints)


PROBES: list[object] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    3,
    10,
    11,
    63,
    512,
    9216,
    0.0,
    0.5,
    1.0,
    -0.5,
    1e-8,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "3",
    "x",
    str(ROOT),
    EXISTING_FILE,
    [],
    [0.5],
    [0.9, 0.999],
    [0.5, 1.5],
    [float("nan"), 0.1],
    [0.5, 0.5, 0.5],
    ["a", "b"],
    Device.cuda,
    AlexNetWeights.DEFAULT,
    ResNet18Weights.DEFAULT,
    Precision.bf16,
]


def as_omegaconf_holds_it(hint: Any) -> Any:
    """A fixed-length tuple hint (``betas``) as the list of that length OmegaConf holds."""
    metadata: tuple[Any, ...] = ()
    if typing.get_origin(hint) is Annotated:
        hint, metadata = hint.__origin__, hint.__metadata__
    if typing.get_origin(hint) is tuple:
        items = typing.get_args(hint)
        hint = Annotated[list[items[0]], Len(len(items), len(items))]  # type: ignore[valid-type]
    return Annotated[(hint, *metadata)] if metadata else hint


@pytest.mark.parametrize("hint", every_field_hint(), ids=repr)
def test_launch_validator_gives_pydantics_verdicts(hint: Any) -> None:
    from pydantic import ConfigDict, TypeAdapter
    from pydantic import ValidationError as PydanticError
    from pydantic_core import ValidationError

    config = ConfigDict(strict=True, allow_inf_nan=False)
    reference: TypeAdapter[Any] = TypeAdapter(as_omegaconf_holds_it(hint), config=config)
    for value in PROBES:
        try:
            reference.validate_python(value)
            expected = "ok"
        except PydanticError as error:
            expected = error.errors()[0]["type"]
        try:
            validator(hint).validate_python(value)
            verdict = "ok"
        except ValidationError as error:
            verdict = error.errors()[0]["type"]
        assert verdict == expected, value


def test_a_constraint_the_validator_cannot_enforce_is_not_ignored() -> None:
    with pytest.raises(TypeError, match="cannot enforce"):
        validator(Annotated[int, Timezone(None)])
