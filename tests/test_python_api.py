"""The Python side a user types against: configs that refuse unknown names, required fields,
typed partial overrides and experiments, ``train`` and the factories taking a ``MainConfig``,
and refusals that carry their cause."""

import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from app import factories
from app.checks import ConfigError, checked
from app.configs import (
    DEFAULT_OPTIONS,
    AdamConfig,
    AlexNetConfig,
    DatasetConfig,
    DigitsConfig,
    FakeDataConfig,
    ImageConfig,
    ImageFolderConfig,
    LinearConfig,
    LoggerConfig,
    MainConfig,
    OptimizerConfig,
    SGDConfig,
    SmallHeadConfig,
    TrainerConfig,
    UnknownField,
    add_option,
    as_untyped,
    experiment,
    given,
    partial_override,
    store,
)
from app.launch import compose_config, load_config
from app.models import ImageClassifier
from app.train import train


def tiny_run(epochs: int) -> MainConfig:
    """A whole run built in Python: fake 64-px images, AlexNet from random weights, two epochs' worth at most."""
    return MainConfig(
        dataset=FakeDataConfig(image=ImageConfig(size=64), classes=3, train_size=16, val_size=8),
        feature_extractor=AlexNetConfig(),
        classifier=SmallHeadConfig(),
        optimizer=AdamConfig(lr=1e-3, betas=(0.8, 0.9)),
        scheduler=None,
        trainer=TrainerConfig(epochs=epochs, batch_size=8, num_workers=0),
        logger=LoggerConfig(),
    )


@pytest.mark.parametrize(
    ("config", "name", "said"),
    [
        (TrainerConfig(), "epoch", "did you mean 'epochs'?"),
        (ImageConfig(), "sise", "did you mean 'size'?"),
        (AdamConfig(), "beta", "did you mean 'betas'?"),
        (DigitsConfig(), "zzz", "its fields: "),
    ],
)
def test_a_value_set_under_an_unknown_name_is_refused_with_the_names_it_could_be(
    config: object, name: str, said: str
) -> None:
    with pytest.raises(UnknownField, match=f"{type(config).__name__} has no field '{name}'") as raised:
        setattr(config, name, 2)
    assert said in str(raised.value) and raised.value.hint
    assert not hasattr(config, name)


def test_a_loaded_config_refuses_a_typo_and_takes_a_field() -> None:
    cfg = load_config()
    with pytest.raises(UnknownField, match="epochs"):
        setattr(cfg.trainer, "epoch", 2)  # noqa: B010  (what mypy flags, refused at run time too)
    cfg.trainer.epochs = 2
    assert checked(cfg).trainer.epochs == 2


def test_fields_a_user_must_give_have_no_default_and_fixed_ones_cannot_be_given() -> None:
    with pytest.raises(TypeError, match="root"):
        ImageFolderConfig(classes=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="out_features"):
        LinearConfig(in_features=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="_target_"):
        DigitsConfig(_target_="os.system")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="out_features"):
        AlexNetConfig(out_features=10)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="trainer"):
        MainConfig(dataset=DigitsConfig())  # type: ignore[call-arg]
    # Hydra still fills them in at launch: the stored folder option asks for root and classes
    with pytest.raises(ConfigError) as refused:
        compose_config(["dataset=folder"])
    assert "dataset.root" in {p.key for p in refused.value.problems}


def test_partial_override_takes_every_group_of_main_config() -> None:
    takes = set(inspect.signature(partial_override).parameters) - {"name", "pick_options"}
    assert takes == {f.name for f in dataclasses.fields(MainConfig) if f.init}


def test_a_partial_override_sets_only_what_each_config_was_given() -> None:
    assert given(TrainerConfig(epochs=3, seed=0)) == {"epochs": 3, "seed": 0}  # a default given is set too
    assert given(DigitsConfig(image=ImageConfig(size=64))) == {"image": {"size": 64}}
    assert given(OptimizerConfig(lr=1e-3)) == {"lr": 1e-3}
    head = given(SmallHeadConfig(_args_=[LinearConfig(in_features=9216, out_features=4)]))
    assert head["_args_"] == [{"_target_": "torch.nn.Linear", "in_features": 9216, "out_features": 4, "bias": True}]


@pytest.mark.usefixtures("own_registrations")
def test_an_experiment_picks_the_option_of_a_class_and_sets_only_its_given_values() -> None:
    mine = experiment(
        "MineForTest",
        dataset=DatasetConfig(train_size=40),  # a base class: no option picked
        optimizer=SGDConfig(lr=0.5),  # an option's class: optimizer=sgd
        scheduler=None,
        trainer=TrainerConfig(epochs=2),
    )
    store(as_untyped(mine), group="experiment", name="mine_for_test", package="_global_")
    store.add_to_hydra_store(overwrite_ok=True)
    cfg = compose_config(["+experiment=mine_for_test", "dataset=fake"])
    assert OmegaConf.get_type(cfg.optimizer) is SGDConfig and cfg.optimizer.lr == 0.5
    assert cfg.optimizer.momentum == 0.9  # SGD's own default: only lr was given
    assert OmegaConf.get_type(cfg.dataset) is FakeDataConfig and cfg.dataset.train_size == 40
    assert cfg.scheduler is None and cfg.trainer.epochs == 2 and cfg.trainer.batch_size == 32
    default = compose_config(["+experiment=mine_for_test"])  # the dataset keeps its default option
    assert DEFAULT_OPTIONS["dataset"] == "digits" and OmegaConf.get_type(default.dataset) is DigitsConfig


@pytest.mark.usefixtures("own_registrations")
def test_an_option_of_another_groups_class_is_refused_at_registration() -> None:
    with pytest.raises(TypeError, match="the dataset group's options are DatasetConfigs, not AdamConfig"):
        add_option("dataset", "adam_as_data", AdamConfig())  # type: ignore[call-overload]
    assert "adam_as_data" not in {e["name"] for e in store if e["group"] == "dataset"}


def test_train_takes_a_main_config_built_in_python(tmp_path: Path) -> None:
    accuracy = train(tiny_run(epochs=1), tmp_path / "run")
    assert 0.0 <= accuracy <= 1.0
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert saved.optimizer.betas == [0.8, 0.9] and "defaults" not in saved


def test_train_refuses_a_wrong_config_before_creating_anything(tmp_path: Path) -> None:
    bad = tiny_run(epochs=1)
    bad.trainer.batch_size = 0
    with pytest.raises(ConfigError) as refused:
        train(bad, tmp_path / "run")
    assert [p.key for p in refused.value.problems] == ["trainer.batch_size"]
    with pytest.raises(TypeError, match="a MainConfig, or its DictConfig"):
        train(DigitsConfig(), tmp_path / "run")  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()


def test_the_factories_build_typed_objects_from_a_main_config_or_its_dict_config() -> None:
    config = tiny_run(epochs=1)
    model = factories.model(config)
    assert isinstance(model, ImageClassifier) and model.freeze_extractor == config.trainer.freeze_extractor
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    node = compose_config(["dataset=fake", "dataset.train_size=8", "dataset.val_size=4", "optimizer=sgd"])
    splits = factories.splits(node)
    assert (len(splits.train), len(splits.val), splits.classes) == (8, 4, 10)
    optimizer = factories.optimizer(node, factories.head(node).parameters())
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    schedule = factories.scheduler(node, optimizer, steps_per_epoch=5)
    assert schedule is not None and factories.scheduler(config, optimizer, 5) is None
    bad = tiny_run(epochs=1)
    bad.dataset.classes = 1
    with pytest.raises(ConfigError):  # a MainConfig is checked first, as app-train checks it
        factories.model(bad)


def test_a_refusal_carries_its_cause() -> None:
    with pytest.raises(ConfigError) as refused:
        compose_config(["trainer.epochs=${nowhere}"])
    cause = refused.value.__cause__
    assert cause is not None and "nowhere" in str(cause)
    assert refused.value.problems[0].error is cause and "trainer.epochs" in str(refused.value)
