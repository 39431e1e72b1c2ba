"""What ``app.launch`` relies on in Hydra beyond its public API, pinned: each ``hydra._internal``
use behaves as launch expects, each Hydra or OmegaConf message text that launch matches is still
in Hydra's real error, and the sweepers and launchers the app names by ``_target_`` are the
installed plugins'. A Hydra upgrade that changes one of them fails here, not in a user's refusal."""

import argparse
import ast
import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import hydra
import pytest
from hydra import compose
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf.errors import ConfigIndexError, ConfigKeyError, ConfigTypeError, ValidationError

from app.configs import (
    BASIC_SWEEPER,
    JOBLIB_LAUNCHER,
    OPTUNA_SWEEPER,
    OPTUNA_SWEEPERS,
    SEARCH_SWEEPER,
    SUBMITIT_LAUNCHERS,
    AdamConfig,
)
from app.launch import app_hydra, shared_config_store
from app.launch.argv import MODES, PRINT_ONLY, parse_command
from app.launch.hydra_errors import (
    ALREADY_THERE,
    AMBIGUOUS,
    NO_DELETION,
    NOT_AN_INTEGER,
    SET_BY_OPTION,
    composition_problem,
)
from tests.conftest import ROOT


@pytest.fixture
def hydra_of_the_app() -> Iterator[None]:
    with app_hydra():
        yield


def composition_error(overrides: list[str]) -> Exception:
    """The error Hydra's own ``compose`` raises for ``overrides`` (the app's primary config)."""
    with pytest.raises(Exception) as raised:
        compose(config_name="config", overrides=overrides, return_hydra_config=True)
    return raised.value


def target_of(overrides: list[str]) -> dict[str, str]:
    cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    return {part: str(cfg.hydra[part]._target_) for part in ("sweeper", "launcher")}


def class_path(target: str) -> str:
    """``module.QualName`` of the class that ``target`` imports: its identity, not its spelling."""
    from hydra.utils import get_class

    cls = get_class(target)
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------- each internal use, its public replacement named
# (tests/test_layers.py: only app/launch/ imports hydra._internal)
def internal_imports(path: Path) -> Iterator[ast.stmt]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.startswith("hydra._internal") for a in node.names):
            yield node
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hydra._internal"):
            yield node


def test_each_internal_use_names_its_public_replacement() -> None:
    uses = 0
    for path in (ROOT / "app" / "launch").glob("*.py"):
        lines = path.read_text().splitlines()
        for node in internal_imports(path):
            uses += 1
            above = lines[node.lineno - 2].strip()
            assert above.startswith("# hydra._internal") and "public replacement" in above, f"{path.name}:{node.lineno}"
    # get_args_parser, create_config_search_path, Hydra.create_main_hydra2, BasicSweeper.split_arguments
    assert uses == 4
    assert (
        "CachingConfigRepository deep-copies the store; public replacement"
        in (ROOT / "app" / "launch" / "hydra_setup.py").read_text()
    )


# ------------------------------------------------------------------- get_args_parser
def test_hydras_parser_has_the_flags_parse_command_reads() -> None:
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    defaults = vars(parser.parse_args([]))
    read = {"overrides", "config_name", "config_dir", "config_path", "experimental_rerun"}
    assert read | set(MODES) | (set(PRINT_ONLY) - {"version"}) <= set(defaults)
    assert defaults["info"] is None and vars(parser.parse_args(["--info"]))["info"] == "all"  # --info alone is given
    args = parser.parse_args(["-m", "-cn", "config", "-cd", "conf", "a=1", "b=2"])
    assert (args.multirun, args.config_name, args.config_dir, args.overrides) == (
        True,
        "config",
        "conf",
        ["a=1", "b=2"],
    )
    assert parser.parse_args(["--cfg", "job"]).cfg == "job"
    # --version is argparse's own action: it prints Hydra's version and exits, before parse_command reads it
    with pytest.raises(SystemExit) as exited:
        parse_command(["--version"])
    assert exited.value.code == 0


def test_hydras_parser_refuses_by_argument_errors_once_it_may_not_exit() -> None:
    # parse_command sets exit_on_error=False and an error() that raises: every refusal (an
    # unknown flag, a flag after the overrides, a bad choice, a missing value) is then an
    # ArgumentError, not usage text and an exit
    from hydra._internal.utils import get_args_parser

    def error(message: str) -> NoReturn:
        raise argparse.ArgumentError(None, message)

    for argv in (["--bogus"], ["a=1", "--cfg", "job", "b=2"], ["--cfg", "jobs"], ["-cn"]):
        parser = get_args_parser()
        parser.exit_on_error = False
        parser.error = error  # type: ignore[method-assign]
        with pytest.raises(argparse.ArgumentError):
            parser.parse_args(argv)


# ------------------------------------------------ create_config_search_path, create_main_hydra2
def search_path_rows(output: str) -> list[tuple[str, str]]:
    table = output.split("Config search path")[1].split("\n\n")[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("|")]
    return [(provider, path) for provider, path in cells[1:]]  # less the header


@pytest.mark.cli
def test_app_hydra_searches_as_app_train_does(tmp_path: Path) -> None:
    # Hydra's own @hydra.main(config_path=None) with -cd, as app-train is: the same search path
    conf = tmp_path / "conf"
    conf.mkdir()
    (tmp_path / "main.py").write_text(
        "import hydra\nimport app.launch  # noqa: F401\n\n"
        "@hydra.main(config_path=None, config_name='config', version_base='1.3')\n"
        "def main(cfg: object) -> None:\n    pass\n\nmain()\n"
    )
    result = subprocess.run(
        [sys.executable, "main.py", "-cd", "conf", "--info", "searchpath"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    with app_hydra(str(conf)):
        hydra_now = GlobalHydra.instance()
        assert hydra_now.is_initialized()  # create_main_hydra2 initialised it
        elements = hydra_now.config_loader().get_search_path().get_path()
        ours = [(e.provider, e.path) for e in elements]
        assert compose(config_name="config", return_hydra_config=True).hydra.job.name == "train"
    assert ours == search_path_rows(result.stdout)
    assert ours[0] == ("hydra", "pkg://hydra.conf") and ours[-2:] == [
        ("command-line", f"file://{conf}"),
        ("schema", "structured://"),
    ]


# ------------------------------------------------------------ BasicSweeper.split_arguments
def test_the_basic_sweepers_split_is_every_combination_in_order(hydra_of_the_app: None) -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parse = OverridesParser.create().parse_overrides
    batches = BasicSweeper.split_arguments(parse(["a=1,2", "b=x,y", "c=3"]), None)
    assert batches == [
        [["a=1", "b=x", "c=3"], ["a=1", "b=y", "c=3"], ["a=2", "b=x", "c=3"], ["a=2", "b=y", "c=3"]]
    ]  # one batch (no max_batch_size), the first key varying slowest
    assert BasicSweeper.split_arguments(parse(["a=1,2", "a=3"]), None) == [[["a=3"]]]  # the last one wins
    assert BasicSweeper.split_arguments(parse(["a=range(1,3)", "b=choice(x,y)"]), None) == [
        [["a=1", "b=x"], ["a=1", "b=y"], ["a=2", "b=x"], ["a=2", "b=y"]]
    ]
    # an interval is no list: a HydraException of its own (no cause), told as the -m problem
    with pytest.raises(HydraException, match="does not support sweep type") as raised:
        BasicSweeper.split_arguments(parse(["a=interval(0,1)"]), None)
    assert raised.value.__cause__ is None


# ---------------------------------------------------------------- the shared ConfigStore
def test_the_caching_repository_copies_the_store_unless_shared(hydra_of_the_app: None) -> None:
    from hydra._internal.config_repository import CachingConfigRepository
    from hydra._internal.core_plugins.structured_config_source import StructuredConfigSource

    assert hydra.__version__.startswith("1.3."), "shared_config_store patches Hydra 1.3 only: look at it again"
    repository = GlobalHydra.instance().config_loader().repository  # type: ignore[attr-defined]

    def store_in(cached: Any) -> ConfigStore:
        return next(s.store for s in cached.delegate.get_sources() if isinstance(s, StructuredConfigSource))

    # Hydra still copies the whole store per query (else drop the patch) ...
    assert store_in(CachingConfigRepository(repository)) is not ConfigStore.instance()
    with shared_config_store():  # ... and the patch still stops it
        assert store_in(CachingConfigRepository(repository)) is ConfigStore.instance()
    # sharing is safe because each load copies the node it returns
    store = ConfigStore.instance()
    node = store.load("config.yaml").node
    node.tags = ["canary"]
    assert store.load("config.yaml").node is not node and store.load("config.yaml").node.tags == []
    assert copy.deepcopy(store) is not store  # and the patch is gone again


# ---------------------------------------------------------- the message texts launch matches
def test_plus_on_an_existing_key_is_known_by_hydras_text(hydra_of_the_app: None) -> None:
    error = composition_error(["+trainer.epochs=3"])
    assert isinstance(error, ConfigCompositionException) and ALREADY_THERE in str(error)
    assert str(error).split("'")[1] == "trainer.epochs"  # the key, first between quotes
    problem = composition_problem(error, ["+trainer.epochs=3"])
    assert (problem.key, problem.value, problem.hint) == ("+trainer.epochs", "3", "drop the +: trainer.epochs=...")


def test_a_sweep_without_multirun_is_known_by_hydras_text(hydra_of_the_app: None) -> None:
    error = composition_error(["classifier=small,large"])
    first = str(error).strip().splitlines()[0]
    assert isinstance(error, ConfigCompositionException) and AMBIGUOUS in first
    assert first.split("'")[1] == "classifier=small,large"  # the override, first between quotes
    problem = composition_problem(error, ["classifier=small,large"])
    assert (problem.key, problem.value) == ("classifier", "small,large") and "sweeps need -m" in problem.rule


def test_deleting_a_typed_field_is_known_by_omegaconfs_text(hydra_of_the_app: None) -> None:
    error = composition_error(["~dataset.classes"])
    cause = error.__cause__
    assert isinstance(cause, ConfigTypeError) and NO_DELETION in str(cause)
    assert cause.full_key == "dataset.classes"
    assert composition_problem(error, ["~dataset.classes"]).key == "~dataset.classes"


def test_a_float_for_an_int_is_known_by_omegaconfs_text(hydra_of_the_app: None) -> None:
    # interval(1,5)'s bounds are floats: the hint to cast them reads this rule
    error = composition_error(["trainer.epochs=1.0"])
    cause = error.__cause__
    assert isinstance(cause, ValidationError) and NOT_AN_INTEGER in str(cause).splitlines()[0]
    assert cause.full_key == "trainer.epochs"
    assert NOT_AN_INTEGER in composition_problem(error, ["trainer.epochs=1.0"]).rule


def test_the_omegaconf_errors_name_the_key_and_the_schema(hydra_of_the_app: None) -> None:
    past = composition_error(["classifier._args_.9.p=1"]).__cause__
    assert isinstance(past, ConfigIndexError) and past.full_key == "classifier._args_[9]"  # [n]: read as .n
    unknown = composition_error(["optimizer.bettas=1"]).__cause__
    assert isinstance(unknown, (ConfigKeyError, AttributeError))
    assert unknown.full_key == "optimizer.bettas" and unknown.object_type is AdamConfig  # type: ignore[union-attr]
    missing = composition_error(["dataset=folderr"])
    assert isinstance(missing, MissingConfigException) and missing.missing_cfg_file == "dataset/folderr"
    assert "folder" in list(missing.options or [])


# ------------------------------------------------------ sweepers and launchers by _target_
def test_the_plugin_targets_the_app_names_are_the_installed_plugins(hydra_of_the_app: None) -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    assert target_of([])["sweeper"] == BASIC_SWEEPER == f"{BasicSweeper.__module__}.{BasicSweeper.__qualname__}"
    assert target_of(["hydra/sweeper=optuna"])["sweeper"] == OPTUNA_SWEEPER
    assert target_of(["+hparams_search=lr_wd"])["sweeper"] == SEARCH_SWEEPER
    assert set(OPTUNA_SWEEPERS) == {OPTUNA_SWEEPER, SEARCH_SWEEPER}
    assert target_of(["hydra/launcher=joblib"])["launcher"] == JOBLIB_LAUNCHER
    submitit = [target_of([f"hydra/launcher={name}"])["launcher"] for name in ("submitit_local", "submitit_slurm")]
    assert tuple(submitit) == SUBMITIT_LAUNCHERS
    assert target_of(["hydra/launcher=slurm_ddp"])["launcher"] == SUBMITIT_LAUNCHERS[1]  # the app's own option
    for target in (BASIC_SWEEPER, OPTUNA_SWEEPER, SEARCH_SWEEPER, JOBLIB_LAUNCHER, *SUBMITIT_LAUNCHERS):
        assert class_path(target) == target  # each one a class, spelled as its module and name


def test_a_key_an_experiment_sets_that_the_chosen_option_lacks_is_known_by_hydras_text(hydra_of_the_app: None) -> None:
    error = composition_error(["+experiment=torchvision_recipe"])  # sets dataset.augment; digits has none
    found = SET_BY_OPTION.search(str(error))
    assert isinstance(error, ConfigCompositionException) and found is not None
    assert (found["option"], found["key"], found["schema"]) == ("experiment/torchvision_recipe", "dataset.augment",
                                                                "DigitsConfig")  # fmt: skip
    problem = composition_problem(error, ["+experiment=torchvision_recipe"])
    assert (problem.key, problem.value) == ("dataset.augment", "set by +experiment=torchvision_recipe")
    assert "dataset=folder" in problem.hint and "dataset=cifar10" in problem.hint
