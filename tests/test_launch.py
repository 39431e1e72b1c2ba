"""From a command line (or Python) to checked configs: once per run, every problem at once, the
same refusals from Python as from the CLI, and the caller's Hydra left as found."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig

import app.data
import app.launch
import app.train
from app.checks import ConfigError, Problem, check_config
from app.configs import AdamConfig, ImageConfig, LinearConfig, MainConfig
from app.launch import check_main, check_overrides, compose_config, load_config, parse_command
from tests.conftest import TINY, refused_in_process, run_cli


def keys(problems: list[Problem]) -> list[str]:
    return sorted(p.key for p in problems)


def test_a_cli_run_checks_its_config_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []
    ran: list[DictConfig] = []

    def counting(where: str, real: Any) -> Any:
        def check(*args: Any) -> Any:
            calls.append(where)
            return real(*args)

        return check

    def run(cfg: DictConfig, output_dir: Path) -> float:
        ran.append(cfg)
        return 0.0

    # the launch's checks.check_config, and the one train() (from Python) calls, through checks.checked
    for where, module in (("launch", "app.launch.check"), ("train", "app.checks.walk")):
        monkeypatch.setattr(f"{module}.check_config", counting(where, check_config))
    monkeypatch.setattr(app.train, "run", run)
    monkeypatch.setattr(sys, "argv", ["app-train", "+debug=fast", f"hydra.run.dir={tmp_path / 'out'}"])
    app.train.main()
    assert len(ran) == 1 and ran[0].trainer.epochs == 1
    assert calls == ["launch"]  # the launch check; the job does not check again


def test_python_callers_of_train_are_checked(tmp_path: Path) -> None:
    cfg = compose_config(["+debug=fast"])
    cfg.dataset.classes = -5  # bypasses the launch check, as a notebook might
    with pytest.raises(ConfigError, match="dataset.classes"):
        app.train.train(cfg, tmp_path)
    assert not list(tmp_path.iterdir())


def test_every_problem_of_a_command_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main(["+trainer.foo=1", "dataset.clases=3", "classifier=medium", "optimizer.lr=0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Refused: 4 problems;")
    for given in ["trainer.foo=1", "dataset.clases=3", "classifier=medium", "optimizer.lr=0.0"]:
        assert f"\n{given}\n" in err


def test_a_wrong_group_option_takes_its_keys_along() -> None:
    _, problems = check_overrides(["dataset=folderr", "dataset.root=/tmp", "trainer.epochs=0"])
    assert keys(problems) == ["dataset", "trainer.epochs"]  # not "dataset.root: no such key"


LAYER_PROBLEMS = [
    (
        "{_target_:torch.nn.Linear,in_features:9216,out_features:10,bogus:1}",
        "classifier._args_.0.bogus",
        "a key of LinearConfig: in_features, out_features, bias",
    ),
    (
        "{_target_:torch.nn.Linear,in_features:9216,out_features:'10'}",
        "classifier._args_.0.out_features",
        "a value of type int, >= 1",
    ),
    ("{_target_:torch.nn.Linear,in_features:9216}", "classifier._args_.0.out_features", "LinearConfig needs it"),
    ("{_target_:torch.nn.Dropout,p:1.5}", "classifier._args_.1.p", "0 <= value < 1"),
    ("{_target_:torch.nn.ReLU,inplace:1}", "classifier._args_.1.inplace", "a value of type bool"),
]


@pytest.mark.parametrize(("layer", "key", "rule"), LAYER_PROBLEMS)
def test_a_layer_written_as_a_dict_is_checked_as_its_config(layer: str, key: str, rule: str) -> None:
    head = "{_target_:torch.nn.Linear,in_features:9216,out_features:10}"  # a whole head on its own
    layers = [layer] if key.startswith("classifier._args_.0") else [head, layer]
    _, problems = check_overrides([f"classifier._args_=[{','.join(layers)}]"])
    assert [(p.key, p.rule.split(" (")[0]) for p in problems] == [(key, rule)]


def test_the_same_unknown_key_mistake_reads_the_same_wherever_it_is_found() -> None:
    _, composed = check_overrides(["optimizer.bettas=[0.9,0.99]"])  # found by Hydra's composition
    _, walked = check_overrides(
        [
            "classifier._args_=[{_target_:torch.nn.Dropout,pp:0.1},"
            "{_target_:torch.nn.Linear,in_features:9216,out_features:10}]"
        ]
    )
    assert [(p.rule, p.hint) for p in composed] == [
        ("a key of AdamConfig: lr, weight_decay, fused, betas, eps, amsgrad", "did you mean optimizer.betas?")
    ]
    assert [(p.rule, p.hint) for p in walked] == [
        ("a key of DropoutConfig: p, inplace", "did you mean classifier._args_.0.p?")
    ]


# ------------------------------------------------------------------------- from Python
REFUSED_FROM_PYTHON = [
    ["dataset.classes=0.5"],  # type
    ["trainer.epoch=3"],  # key
    ["classifier=medium"],  # group option
    ["~dataset.classes"],  # deletion of a typed field
    ["dataset.classes=-5", "optimizer.lr=0"],  # rules
    ["classifier=small,large"],  # a sweep without -m
]


@pytest.mark.parametrize("overrides", REFUSED_FROM_PYTHON, ids=" ".join)
def test_python_gets_a_config_error_with_the_problems_the_cli_prints(overrides: list[str]) -> None:
    with pytest.raises(ConfigError) as refused:
        compose_config(overrides)
    _, cli = check_overrides(overrides)
    assert cli and [p.render() for p in refused.value.problems] == [p.render() for p in cli]


def test_validate_false_skips_the_rules_but_not_composition() -> None:
    assert compose_config(["dataset.classes=-5"], validate=False).dataset.classes == -5
    with pytest.raises(ConfigError, match="trainer.epoch"):
        compose_config(["trainer.epoch=3"], validate=False)


def test_a_bare_string_is_refused_not_read_letter_by_letter() -> None:
    with pytest.raises(TypeError, match=r"\['classifier=large'\]"):
        compose_config("classifier=large")


def test_load_config_gives_typed_dataclasses() -> None:
    config = load_config(["optimizer.lr=0.5", "dataset.classes=4"])
    assert isinstance(config, MainConfig) and isinstance(config.optimizer, AdamConfig)
    assert config.optimizer.lr == 0.5
    last = config.classifier._args_[-1]
    assert isinstance(last, LinearConfig) and last.out_features == 4  # interpolations resolved


def test_the_callers_hydra_context_is_left_as_found() -> None:
    with initialize(version_base="1.3", config_path=None, job_name="mine"):
        hydra = GlobalHydra.instance().hydra
        check_overrides(["classifier=large"])
        compose_config(["classifier=large"])
        assert GlobalHydra.instance().hydra is hydra
        assert compose(config_name="config").classifier._target_ == "torch.nn.Sequential"
    assert not GlobalHydra.instance().is_initialized()


def test_factories_receive_the_dataclass_their_signature_names(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[Any] = []

    def digits(**kwargs: Any) -> None:
        received.append(kwargs["image"])

    monkeypatch.setattr(app.data, "digits", digits)
    instantiate(compose_config(["dataset.image.size=70"]).dataset)
    assert isinstance(received[0], ImageConfig) and received[0].size == 70


def test_app_check_reads_the_command_line_as_app_train_does() -> None:
    pasted = parse_command(["python3.11", "-m", "app.train", "-m", "--config-name=config", "classifier=large"])
    assert pasted == parse_command(["-m", "-cn", "config", "classifier=large"])
    assert pasted.multirun and pasted.overrides == ["classifier=large"] and not pasted.prints_only
    assert parse_command(["--cfg=job", "classifier=large"]).prints_only
    assert parse_command(["--info", "searchpath"]).prints_only
    with pytest.raises(ConfigError, match="--multirun --cfg"):  # Hydra would raise a ValueError, traceback and all
        parse_command(["-m", "--cfg", "job", "classifier=large"])


@pytest.mark.cli
def test_app_checks_own_flags_lead_and_the_rest_is_app_trains(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert (
        usage.startswith("usage: app-check [-h] [--strict] [--lint FILE ...]")
        and "--lint" in usage
        and "exits 0" in usage
    )
    # after an app-train flag, -h and --lint are app-train's: Hydra's --help only prints, so nothing to check
    assert check_main(["-m", "-h"]) == 0 and "OK: 1 configuration valid." in capsys.readouterr().out
    assert check_main(["-cd", "/nonexistent", "--lint"]) == 1
    assert "--lint" in capsys.readouterr().err  # read by Hydra's parser, which refuses it there
    assert check_main(["--lint"]) == 0  # no file: nothing to check
    python_m = subprocess.run([sys.executable, "-m", "app.launch", "--help"], capture_output=True, text=True)
    assert python_m.returncode == 0 and python_m.stdout == usage


def test_lint_tells_a_rule_refusal_from_a_line_that_needs_a_folder_not_made_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    doc = tmp_path / "doc.md"
    lines = [
        "app-train classifier=large",
        "app-train dataset=folder dataset.root=later dataset.classes=3",  # made by an earlier step
        "app-train dataset=folder dataset.root=nope dataset.classes=3  # refused",
    ]
    doc.write_text("\n".join(lines) + "\n")
    assert check_main(["--lint", str(doc)]) == 0
    out = capsys.readouterr().out
    assert f"{doc}:2: not checked here: it needs a file or folder that is not there yet (dataset.root=later)" in out
    assert f"{doc}:3: refused as marked" in out  # its missing folder is the refusal it shows
    assert f"{doc}: 3 commands: 1 valid, 1 not checked here, 1 refused as marked" in out
    assert check_main(["--strict", "--lint", str(doc)]) == 1  # under --strict what it needs must be here
    assert "dataset.root=later\n  rule: an existing directory" in capsys.readouterr().err
    (tmp_path / "later").mkdir()
    doc.write_text(lines[1] + "\napp-train trainer.epochs=0 dataset=folder dataset.root=nope dataset.classes=3\n")
    assert check_main(["--strict", "--lint", str(doc)]) == 1  # 'later' holds no class folder yet
    err = capsys.readouterr().err
    assert f"{doc}:1: refused" in err and "dataset.classes=3\n  rule:" in err  # a rule, not an absence
    assert check_main(["--lint", str(doc)]) == 1  # a rule's refusal fails without --strict: trainer.epochs=0
    assert f"{doc}:2: refused: app-train trainer.epochs=0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        check_main(["--strict", "classifier=large"])
    assert "--strict goes with --lint" in capsys.readouterr().err


def test_app_summary_reads_its_flags_anywhere_and_refuses_a_wrong_one_in_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app import summary

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert summary.main(["--bogus"]) == 1
    assert summary.main([str(tmp_path / "a"), "--out", str(tmp_path / "m"), str(tmp_path / "b")]) == 1
    assert summary.main([str(tmp_path / "a"), "--out"]) == 1
    err = capsys.readouterr().err
    assert err.count("app-summary refused: ") == 3 and err.count("\n  hint: app-summary SWEEP_DIR") == 3
    assert "unrecognized arguments: --bogus" in err and "Traceback" not in err
    assert f"no run dir (a folder with .hydra/overrides.yaml) under {tmp_path / 'a'}, {tmp_path / 'b'}" in err
    assert "--out needs a directory" in err
    assert summary.main(["--help"]) == 0 and "usage: app-summary" in capsys.readouterr().out
    assert summary.main([]) == 1 and "app-summary multirun/a multirun/b --out merged" in capsys.readouterr().out


# ------------------------------------------------------------------------------- the CLI
@pytest.mark.cli
@pytest.mark.extended
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_refused_before_any_run_dir_where_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    single = run_cli("trainer.device=cuda", "hydra.run.dir=out", cwd=tmp_path)  # a real process (imports torch)
    # the sweep through the same entry point in this process (torch is imported already)
    code, _, sweep = refused_in_process(
        "-m",
        "trainer.device=cpu,cuda",
        *TINY,
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    for status, stderr in ((single.returncode, single.stderr), (code, sweep)):
        assert status == 1 and "Traceback" not in stderr
        assert "trainer.device=cuda" in stderr and "torch sees no CUDA device" in stderr
    assert "1 of 2 sweep points" in sweep
    assert not (tmp_path / "out").exists() and not (tmp_path / "sweep").exists()


@pytest.mark.cli
@pytest.mark.extended
def test_relative_paths_are_read_from_the_launch_dir_even_when_the_job_changes_dir(
    tmp_path: Path, image_folder: Path
) -> None:
    shutil.copytree(image_folder, tmp_path / "images")
    result = run_cli(
        "hydra.job.chdir=true",
        "dataset=folder",
        "dataset.root=images",
        "dataset.classes=3",
        "dataset.image.size=64",
        "trainer.epochs=1",
        "trainer.batch_size=4",
        "hydra.run.dir=out",
        "trainer.freeze_extractor=true",
        "trainer.feature_cache_dir=features",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    checkpoint = torch.load(tmp_path / "out/checkpoints/last.pt", weights_only=True)
    assert checkpoint["config"]["dataset"]["root"] == str(tmp_path / "images")
    assert checkpoint["config"]["trainer"]["feature_cache_dir"] == str(tmp_path / "features")
    [cache] = (tmp_path / "features").iterdir()  # the image files' features, cached beside the images
    assert cache.name.startswith("alexnet-image_folder-64px-") and json.loads((cache / "key.json").read_text())["files"]
