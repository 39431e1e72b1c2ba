"""The launch check's own machinery: a cross-field rule that raises is refused as the app's bug
and fails the test suite, every rule applies by asking the config (never by an exception), and
a config is recognised by its type, never by the keys it happens to have."""

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError

from app.checks import CROSS_RULES, STRICT, Problem, check_config, cross_rule
from app.checks.facts import is_a, kind, primary
from app.configs import (
    EVALUATE_NAME,
    PREDICT_NAME,
    DigitsConfig,
    EvaluateConfig,
    ImageFolderConfig,
    InferenceConfig,
    MainConfig,
    PredictConfig,
)
from app.launch import app_hydra, check_main, check_overrides, compose_config
from tests.conftest import ROOT


@pytest.fixture
def raising_rule() -> Iterator[None]:
    """A cross-field rule with a bug in it, registered for one test."""

    @cross_rule("a rule with a bug in it")
    def _divides_by_zero(cfg: DictConfig) -> Iterator[Problem]:
        yield Problem("trainer.epochs", str(cfg.trainer.epochs // 0), "never reached", "never reached")

    try:
        yield
    finally:
        CROSS_RULES.remove(("a rule with a bug in it", _divides_by_zero))


# --------------------------------------------------------------- a rule that raises is a bug
def test_a_rule_that_raises_is_refused_as_a_bug_of_the_check(
    raising_rule: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(STRICT)  # as a user runs it: no strict mode
    _, problems = check_overrides([])
    assert len(problems) == 1, [p.render() for p in problems]
    problem = problems[0]
    assert problem.key.endswith("_divides_by_zero") and problem.value.startswith("ZeroDivisionError")
    assert "a bug of the app's launch check" in problem.rule and "a rule with a bug in it" in problem.rule
    assert isinstance(problem.error, ZeroDivisionError)
    assert check_main([]) == 1  # refused, never silently passed
    assert "_divides_by_zero" in capsys.readouterr().err
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ZeroDivisionError):  # the traceback, as for any other problem's error
        check_main([])


def test_a_rule_may_not_read_what_the_walk_refused_already(monkeypatch: pytest.MonkeyPatch) -> None:
    # The only exception a rule may end in: OmegaConf's, reading a value the walk has told already.
    @cross_rule("a rule that reads every value")
    def _reads(cfg: DictConfig) -> Iterator[Problem]:
        OmegaConf.to_container(cfg.dataset, resolve=True, throw_on_missing=True)
        return iter(())

    try:
        _, problems = check_overrides(["dataset.classes=${nope}"])
        assert [p.key for p in problems] == ["dataset.classes"]  # told once, by the walk
        monkeypatch.delenv(STRICT)
        cfg = compose_config([])
        cfg.dataset.classes = "${nope}"
        monkeypatch.setattr("app.checks.walk._Walk.node", lambda self, node, path: None)  # no walk problem
        (problem,) = [p for p in check_config(cfg) if p.key.endswith("_reads")]  # so it is the rule's bug
        assert isinstance(problem.error, InterpolationKeyError)
    finally:
        CROSS_RULES.remove(("a rule that reads every value", _reads))


@pytest.mark.parametrize(
    ("overrides", "told"),
    [
        # the splits rule read dataset.classes=0 as "0 images" and told "holds out 1 of the 0 images"
        (["dataset.classes=0"], {"dataset.classes": "2 <= value <= 10"}),
        # a rule on the refused key itself still says more than the field's ">= 1"
        (["dataset.image.size=0"], {"dataset.image.size": ">= 63: the smallest image app.models.alexnet"}),
    ],
)
def test_a_refused_value_is_told_once_and_never_echoed_by_a_rule_on_another_key(
    overrides: list[str], told: dict[str, str]
) -> None:
    _, problems = check_overrides(overrides)
    assert {p.key: p.rule[: len(told[p.key])] for p in problems} == told


def test_under_strict_a_rule_that_raises_is_re_raised_and_written_down(
    raising_rule: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "raised.log"
    monkeypatch.setenv(STRICT, str(log))
    with pytest.raises(ZeroDivisionError) as raised:
        check_overrides([])
    assert any("_divides_by_zero raised" in note for note in raised.value.__notes__)
    assert "_divides_by_zero raised" in log.read_text() and "ZeroDivisionError" in log.read_text()


def test_the_suite_runs_every_check_strict() -> None:
    # conftest sets it for the session: each process a test starts inherits it
    assert os.environ.get(STRICT) and Path(os.environ[STRICT]).is_file()


@pytest.mark.cli
def test_a_rule_that_raises_fails_the_session_even_where_a_test_swallows_it(tmp_path: Path) -> None:
    (tmp_path / "bug.py").write_text(
        "from app.checks import Problem, cross_rule\n\n"
        "@cross_rule('a rule with a bug in it')\n"
        "def _divides_by_zero(cfg):\n"
        "    yield Problem('x', str(1 // 0), 'never reached', 'never reached')\n"
    )
    (tmp_path / "test_swallowed.py").write_text(
        "import subprocess, sys\n"
        "import bug\n"
        "from app.launch import check_overrides\n\n"
        "def test_swallows_it_in_process():\n"
        "    try:\n"
        "        check_overrides([])\n"
        "    except ZeroDivisionError:\n"
        "        pass\n\n"
        "def test_a_process_of_its_own_is_not_asked():\n"
        "    code = 'import bug; from app.launch import check_main; check_main([])'\n"
        "    subprocess.run([sys.executable, '-c', code], capture_output=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != STRICT}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", "test_swallowed.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "2 passed" in result.stdout, result.stdout + result.stderr  # each test passes...
    assert result.returncode == 1, result.stdout  # ... and the session fails
    assert result.stdout.count("_divides_by_zero raised") == 2  # in process, and in the process it started


# ----------------------------------------------------------- every rule asks what it reads
def fake_checkpoint(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:  # whole as torch.save writes one, but no app checkpoint
        archive.writestr("archive/data.pkl", b"not a pickle")
    return path


def plain(cfg: DictConfig) -> DictConfig:
    """``cfg`` as a run's resolved config reads back: a plain dict, its nodes untyped."""
    untyped = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(untyped, DictConfig)
    return untyped


def composed(config_name: str, overrides: list[str]) -> DictConfig:
    from hydra import compose

    with app_hydra():
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)


def test_every_rule_applies_to_every_primary_config_without_raising(tmp_path: Path, image_folder: Path) -> None:
    checkpoint = str(fake_checkpoint(tmp_path / "best.pt"))
    configs = {
        "app-train, from Python (no hydra node)": compose_config(["+debug=fast"]),
        "app-train, a folder dataset": composed(
            "config", ["dataset=folder", f"dataset.root={image_folder}", "dataset.classes=3"]
        ),
        "app-train, ~scheduler": composed("config", ["~scheduler"]),
        "app-evaluate": composed(EVALUATE_NAME, [f"checkpoint={checkpoint}", "dataset.seed=0"]),
        "app-predict": composed(PREDICT_NAME, [f"checkpoint={checkpoint}", f"input={image_folder}"]),
        "a plain dict (a run's resolved config)": plain(compose_config(["+debug=fast"])),
    }
    for name, cfg in configs.items():
        for _, rule in CROSS_RULES:
            list(rule(cfg))  # raises on a rule that does not guard what it reads: the test fails
        assert not any("a bug of the app's launch check" in p.rule for p in check_config(cfg)), name


# --------------------------------------------------------------------- identity by type
def test_the_primary_configs_are_known_by_their_type(tmp_path: Path) -> None:
    checkpoint = str(fake_checkpoint(tmp_path / "best.pt"))
    evaluate = composed(EVALUATE_NAME, [f"checkpoint={checkpoint}", "dataset.seed=0"])
    predict = composed(PREDICT_NAME, [f"checkpoint={checkpoint}", "input=."])
    train = composed("config", ["+experiment=digits_resnet18_frozen", "+debug=fast"])
    assert primary(evaluate, EvaluateConfig) and primary(evaluate, InferenceConfig)
    assert primary(predict, PredictConfig) and not primary(predict, EvaluateConfig)
    assert primary(train, MainConfig) and not primary(train, InferenceConfig)
    assert kind(predict, "dataset") is None and kind(evaluate, "trainer") is None
    # the checkpoint rule applies to app-evaluate's config, by its type
    _, problems = check_overrides([f"checkpoint={checkpoint}", "dataset.seed=0"], config_name=EVALUATE_NAME)
    assert [(p.key, p.rule) for p in problems] == [
        ("checkpoint", "a checkpoint app-train wrote (its config is inside)")
    ]


def test_a_folder_dataset_is_known_by_its_type_typed_or_not(image_folder: Path) -> None:
    typed = compose_config(["dataset=folder", f"dataset.root={image_folder}", "dataset.classes=3"])
    assert is_a(typed, "dataset", ImageFolderConfig) and not is_a(typed, "dataset", DigitsConfig)
    # a run's resolved config, as a plain dict: the stored option with its _target_
    untyped = plain(typed)
    assert OmegaConf.get_type(untyped.dataset) is dict and is_a(untyped, "dataset", ImageFolderConfig)
    untyped.dataset.classes = 4  # (resolved, the head's last layer keeps its 3: a problem of its own)
    assert ("dataset.classes", "set dataset.classes=3") in [(p.key, p.hint) for p in check_config(untyped)]
    # keys alone make no folder dataset: digits with a root and a val_root is still digits
    digits = plain(compose_config([]))
    digits.dataset.root, digits.dataset.val_root = str(image_folder), None
    assert not is_a(digits, "dataset", ImageFolderConfig)
    assert "dataset.classes" not in {p.key for p in check_config(digits)}


def test_the_sweeper_and_launcher_are_known_by_their_full_target() -> None:
    _, problems = check_overrides(["+hparams_search=lr_wd", "hydra.sweeper.n_trials=0"], multirun=True)
    assert "hydra.sweeper.n_trials" in {p.key for p in problems}  # the resumable Optuna sweeper is Optuna's
    _, joblib = check_overrides(["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], multirun=True)
    assert [p.key for p in joblib] == ["hydra.launcher.n_jobs"]
