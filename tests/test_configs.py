"""The config tree: every option composes, keeps its field types, matches what it targets,
and none of it imports torch."""

import dataclasses
import importlib
import inspect
import subprocess
import sys
import typing
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ValidationError
from omegaconf.nodes import AnyNode, BooleanNode, EnumNode, FloatNode, IntegerNode, StringNode

from app.checks import ConfigError
from app.configs import (
    AdamConfig,
    DigitsConfig,
    DropoutConfig,
    FakeDataConfig,
    LinearConfig,
    MainConfig,
    ReLUConfig,
)
from app.launch import compose_config

GROUPS = ["dataset", "feature_extractor", "classifier", "optimizer", "scheduler", "trainer"]


def options(group: str) -> list[str]:
    return sorted(name.removesuffix(".yaml") for name in ConfigStore.instance().list(group))


ALL_OPTIONS = [(group, option) for group in GROUPS for option in options(group)]
# Options with keys that have no default: what a user must give them.
REQUIRED = {("dataset", "folder"): ["dataset.root=/tmp", "dataset.classes=3"]}


def choose(group: str, option: str, *overrides: str) -> DictConfig:
    """Composition and types only: /tmp is no class-folder dataset, and that is not tested here."""
    return compose_config([f"{group}={option}", *REQUIRED.get((group, option), []), *overrides], validate=False)


def test_every_group_has_options() -> None:
    assert options("dataset") == ["cifar10", "digits", "fake", "folder"]
    assert options("feature_extractor") == [
        "alexnet",
        "convnext_tiny",
        "efficientnet_b0",
        "mobilenet_v3_small",
        "resnet18",
        "resnet50",
        "vgg11_bn",
        "vit_b_16",
    ]
    assert options("classifier") == ["large", "small"]
    assert options("optimizer") == ["adam", "adamw", "sgd"]
    assert options("scheduler") == ["constant", "cosine", "onecycle", "step"]
    assert options("trainer") == ["default"]
    assert options("logger") == ["csv", "tensorboard"]
    assert options("debug") == ["fast", "overfit", "profile"]


def test_defaults_match_the_tutorial() -> None:
    cfg = compose_config()
    assert cfg.dataset.image.size == 124
    assert cfg.dataset.image.channels == 3
    assert cfg.dataset.classes == 10
    assert OmegaConf.get_type(cfg.dataset) is DigitsConfig
    assert cfg.feature_extractor._target_ == "app.models.alexnet"
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.optimizer.lr == pytest.approx(1e-4)


@pytest.mark.parametrize(("group", "option"), ALL_OPTIONS)
def test_every_option_composes(group: str, option: str) -> None:
    cfg = choose(group, option)
    node = cfg[group]
    assert isinstance(node, DictConfig)
    # Structured all the way: the node is typed by the option's dataclass, not a plain dict.
    assert dataclasses.is_dataclass(OmegaConf.get_type(node))
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # nothing left unset


def test_head_widths_follow_extractor_and_dataset() -> None:
    small = compose_config(["dataset.classes=7"]).classifier._args_
    assert [small[0].in_features, small[0].out_features] == [9216, 100]
    assert [small[2].in_features, small[2].out_features] == [100, 7]

    large = compose_config(["classifier=large", "feature_extractor=resnet18"]).classifier._args_
    assert large[0].in_features == 512  # follows resnet18's width
    widened = compose_config(["classifier=large", "classifier._args_.3.out_features=64"])
    assert widened.classifier._args_[6].in_features == 64  # relative interpolation follows
    kinds = [OmegaConf.get_type(layer) for layer in large]
    assert kinds == [LinearConfig, ReLUConfig, DropoutConfig] * 2 + [LinearConfig]


def test_scheduler_follows_epochs_and_can_be_removed() -> None:
    assert compose_config(["trainer.epochs=9"]).scheduler.epochs == 9
    assert compose_config(["scheduler=onecycle", "trainer.epochs=9"]).scheduler.epochs == 9
    assert compose_config(["~scheduler"]).scheduler is None


def test_debug_preset_is_added_with_plus() -> None:
    cfg = compose_config(["+debug=fast"])
    assert cfg.trainer.epochs == 1
    assert cfg.dataset.image.size == 64
    assert cfg.dataset.classes == 10  # untouched keys keep their values


def test_debug_preset_is_a_typed_partial_override() -> None:
    stored = ConfigStore.instance().load("debug/fast.yaml").node
    assert issubclass(OmegaConf.get_type(stored), MainConfig)  # type: ignore[arg-type]
    for option, kind in [("digits", DigitsConfig), ("fake", FakeDataConfig)]:
        cfg = compose_config(["+debug=fast", f"dataset={option}"])
        assert OmegaConf.get_type(cfg.dataset) is kind  # the option keeps its own schema
        assert (cfg.dataset.image.size, cfg.dataset.train_size, cfg.trainer.batch_size) == (64, 64, 16)
    assert compose_config(["+debug=fast", "~scheduler"]).scheduler is None  # unset keys stay unset
    assert compose_config(["+debug=fast", "optimizer=sgd"]).optimizer.lr == 0.01


def test_to_object_gives_typed_main_config() -> None:
    obj = OmegaConf.to_object(compose_config(["optimizer=adam"]))
    assert isinstance(obj, MainConfig)
    assert isinstance(obj.optimizer, AdamConfig)
    last = obj.classifier._args_[2]
    assert isinstance(last, LinearConfig) and last.out_features == 10


# -------------------------------------------------------------- every field keeps its type
BAD_VALUE: dict[type, str] = {IntegerNode: "abc", FloatNode: "abc", BooleanNode: "maybe", EnumNode: "nope"}


def leaves(node: Any, prefix: str) -> list[tuple[str, Any]]:
    """(dotted key, value node) for every leaf under ``node``."""
    found: list[tuple[str, Any]] = []
    keys = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
    for key in keys:
        child = node._get_node(key)
        path = f"{prefix}.{key!s}"
        if isinstance(child, (DictConfig, ListConfig)):
            found += leaves(child, path)
        else:
            found.append((path, child))
    return found


@pytest.mark.parametrize(("group", "option"), ALL_OPTIONS)
def test_every_field_refuses_a_mistyped_override(group: str, option: str) -> None:
    cfg = choose(group, option)
    checked = []
    for key, node in leaves(cfg[group], group):
        # An Any-typed field accepts anything: that is the bug this test exists for.
        assert not isinstance(node, AnyNode), f"{key} is typed Any"
        if isinstance(node, StringNode):
            continue  # strings accept any text
        # What Hydra does with a value override once parsed (OmegaConf.update on the composed
        # config): one composition per option instead of one per field (~20 s of the suite).
        bad = BAD_VALUE[type(node)]
        with pytest.raises(ValidationError):
            OmegaConf.update(cfg, key, bad, merge=True)
        checked.append(f"{key}={bad}")
    assert checked
    with pytest.raises(ConfigError):  # and the first of them through the whole command-line path
        choose(group, option, checked[0])


# ------------------------------------------------------- configs match what they target
def config_nodes_with_targets() -> list[tuple[str, DictConfig]]:
    found: dict[str, DictConfig] = {}

    def walk(node: Any) -> None:
        if isinstance(node, DictConfig):
            if "_target_" in node:
                found.setdefault(OmegaConf.get_type(node).__name__, node)  # type: ignore[union-attr]
            for key in node.keys():
                walk(node._get_node(key))
        elif isinstance(node, ListConfig):
            for i in range(len(node)):
                walk(node._get_node(i))

    for group, option in ALL_OPTIONS:
        walk(choose(group, option, "classifier=large")[group])
    return sorted(found.items())


def import_target(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("name", "node"), config_nodes_with_targets())
def test_config_matches_target_signature(name: str, node: DictConfig) -> None:
    target = import_target(node._target_)
    # Positional-only parameters are the job's to pass (a partial's optimizer, its run dir).
    params = {k: p for k, p in inspect.signature(target).parameters.items() if p.kind is not p.POSITIONAL_ONLY}
    cls = OmegaConf.get_type(node)
    assert isinstance(cls, type)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    unknown = set(fields) - set(params)
    assert not unknown, f"{name} has fields {unknown} that {node._target_} does not take"
    if node._target_.startswith("app."):
        # The app's own factories: the config covers the whole signature, with the same types
        # and defaults, so nothing can be set in Python that the CLI cannot set.
        target_hints = typing.get_type_hints(getattr(target, "__init__") if isinstance(target, type) else target)  # noqa: B009 (mypy: __init__ on an instance)
        assert set(fields) == set(params)
        for key, param in params.items():
            assert hints[key] == target_hints[key], key
            value = node._get_node(key)._value()  # type: ignore[union-attr]
            interpolated = isinstance(value, str) and value.startswith("${")
            if param.default is not inspect.Parameter.empty and not interpolated:
                assert value == param.default, key


# ---------------------------------------------------------------- the config layer is light
@pytest.mark.cli
def test_importing_and_composing_configs_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from app.launch import compose_config\n"
        "cfg = compose_config(['classifier=large', 'dataset=fake', 'optimizer=sgd'])\n"
        "from omegaconf import OmegaConf; OmegaConf.to_yaml(cfg, resolve=True)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision'})\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_compose_config_checks_the_rules() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.classes=-5") as refused:
        compose_config(["dataset.classes=-5", "optimizer.lr=0"])
    assert {p.key for p in refused.value.problems} == {"dataset.classes", "optimizer.lr"}
    assert compose_config(["dataset.classes=-5"], validate=False).dataset.classes == -5
