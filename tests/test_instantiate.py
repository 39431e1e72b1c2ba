"""``instantiate`` on every node builds the real torch object it describes."""

from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from app import errors, state_dicts
from app.checks import ConfigError, field_hints, group_options, unwrap
from app.configs import (
    AlexNetConfig,
    ConvNeXtTinyConfig,
    EfficientNetB0Config,
    FeatureExtractorConfig,
    MobileNetV3SmallConfig,
    ResNet18Config,
    ResNet50Config,
    VGG11BNConfig,
    ViTB16Config,
    node_class,
)
from app.data import Splits
from app.launch import check_overrides, compose_config
from app.models import ImageClassifier, staged


@pytest.fixture(scope="session")
def alexnet_features() -> torch.Tensor:
    """The default extractor's output for a 124-px batch of two images (built once)."""
    torch.manual_seed(0)
    extractor = instantiate(compose_config().feature_extractor)
    with torch.no_grad():
        features: torch.Tensor = extractor(torch.randn(2, 3, 124, 124))
    return features


def test_alexnet_extractor_emits_its_declared_width(alexnet_features: torch.Tensor) -> None:
    assert alexnet_features.shape == (2, compose_config().feature_extractor.out_features)


@pytest.mark.parametrize(("head", "classes", "layers"), [("small", 10, 3), ("large", 4, 7)])
def test_head_output_shape_on_alexnet_batch(
    head: str, classes: int, layers: int, alexnet_features: torch.Tensor
) -> None:
    cfg = compose_config([f"classifier={head}", f"dataset.classes={classes}"])
    module = instantiate(cfg.classifier)
    assert isinstance(module, torch.nn.Sequential) and len(module) == layers
    assert module(alexnet_features).shape == (2, classes)
    if head == "large":  # non-linear: ReLU and Dropout between the Linear layers
        kinds = {type(layer) for layer in module}
        assert {torch.nn.ReLU, torch.nn.Dropout} <= kinds


def test_resnet18_extractor_and_head_fit_together() -> None:
    cfg = compose_config(["feature_extractor=resnet18", "classifier=large"])
    model = ImageClassifier(instantiate(cfg.feature_extractor), instantiate(cfg.classifier))
    assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_grey_images_are_repeated_for_an_rgb_backbone(alexnet_features: torch.Tensor) -> None:
    cfg = compose_config(["dataset.image.channels=1"])
    model = ImageClassifier(instantiate(cfg.feature_extractor), instantiate(cfg.classifier))
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("option", ["digits", "fake"])
def test_dataset_nodes_build_splits(option: str) -> None:
    cfg = compose_config(
        [
            f"dataset={option}",
            "dataset.image.size=32",
            "dataset.train_size=20",
            "dataset.val_size=6",
            "dataset.classes=4",
        ],
        validate=False,  # images smaller than AlexNet takes: only the dataset is built here
    )
    splits = instantiate(cfg.dataset)
    assert isinstance(splits, Splits)
    assert (len(splits.train), len(splits.val), splits.classes) == (20, 6, 4)
    image, label = splits.train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert 0 <= int(label) < 4


def test_digits_uses_every_image_when_sizes_are_null() -> None:
    splits = instantiate(compose_config(["dataset.image.size=16"], validate=False).dataset)
    assert len(splits.train) + len(splits.val) == 1797
    assert len(splits.val) == round(1797 * 0.2)


def test_splits_follow_the_seed() -> None:
    def first_labels(seed: int) -> list[int]:
        cfg = compose_config(["dataset.image.size=16", f"trainer.seed={seed}"], validate=False)
        train = instantiate(cfg.dataset).train
        return [int(train[i][1]) for i in range(20)]

    assert first_labels(0) == first_labels(0)
    assert first_labels(0) != first_labels(1)


@pytest.mark.parametrize("option", ["adam", "adamw", "sgd"])
def test_optimizer_nodes_are_partials_of_torch_optimizers(option: str) -> None:
    cfg = compose_config([f"optimizer={option}", "optimizer.lr=0.5"])
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = instantiate(cfg.optimizer)(params)
    assert type(optimizer).__name__.lower() == option
    assert optimizer.param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize(
    ("option", "kind"),
    [("constant", "ConstantLR"), ("cosine", "CosineAnnealingLR"), ("onecycle", "OneCycleLR"), ("step", "StepLR")],
)
def test_scheduler_nodes_wrap_the_optimizer(option: str, kind: str) -> None:
    cfg = compose_config([f"scheduler={option}"])
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    assert type(instantiate(cfg.scheduler)(optimizer, 10)).__name__ == kind
    if option != "onecycle":  # its warm-up is its own rise
        warmed = compose_config([f"scheduler={option}", "scheduler.warmup_epochs=1"])
        assert type(instantiate(warmed.scheduler)(optimizer, 10)).__name__ == "SequentialLR"


def test_nodes_without_target_instantiate_to_themselves() -> None:
    trainer: Any = instantiate(compose_config().trainer)
    assert isinstance(trainer, DictConfig) and trainer.epochs == 4


def test_extractor_loads_a_local_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(123)
    reference = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pt"
    torch.save(reference.state_dict(), path)
    extractor = instantiate(compose_config([f"feature_extractor.checkpoint={path}"]).feature_extractor)
    assert torch.equal(extractor.features[0].weight, reference.features[0].weight)


# The big bodies take a second or more to build on 2 cores: the slow tier (pytest -m slow).
BACKBONES = [
    ("alexnet", AlexNetConfig, torchvision.models.AlexNet_Weights),
    ("resnet18", ResNet18Config, torchvision.models.ResNet18_Weights),
    ("mobilenet_v3_small", MobileNetV3SmallConfig, torchvision.models.MobileNet_V3_Small_Weights),
    ("efficientnet_b0", EfficientNetB0Config, torchvision.models.EfficientNet_B0_Weights),
    ("convnext_tiny", ConvNeXtTinyConfig, torchvision.models.ConvNeXt_Tiny_Weights),
    pytest.param("resnet50", ResNet50Config, torchvision.models.ResNet50_Weights, marks=pytest.mark.slow),
    pytest.param("vgg11_bn", VGG11BNConfig, torchvision.models.VGG11_BN_Weights, marks=pytest.mark.slow),
    pytest.param("vit_b_16", ViTB16Config, torchvision.models.ViT_B_16_Weights, marks=pytest.mark.slow),
]


def test_every_backbone_is_tested() -> None:
    tested = {getattr(case, "values", case)[0] for case in BACKBONES}
    assert tested == {option for group, option, _ in group_options() if group == "feature_extractor"}


@pytest.mark.parametrize(("option", "config", "weights"), BACKBONES)
def test_a_backbones_facts_on_its_config_hold_for_the_torchvision_model(option: str, config: Any, weights: Any) -> None:
    weight_names = set(unwrap(field_hints(config)["weights"])[0].__members__)
    # all of torchvision's names, but the ViT weights made for 384-px inputs
    assert weight_names == set(weights.__members__) - {"IMAGENET1K_SWAG_E2E_V1"}
    size = config.min_image_size
    base = [f"feature_extractor={option}", f"dataset.image.size={size}", "dataset.classes=7"]
    extractor = instantiate(compose_config(base).feature_extractor).eval()
    with torch.no_grad():
        assert extractor(torch.zeros(2, 3, size, size)).shape == (2, config().out_features)
        for head in ("small", "large"):  # every head follows the body's width
            model = ImageClassifier(extractor, instantiate(compose_config([*base, f"classifier={head}"]).classifier))
            assert model.eval()(torch.zeros(2, 1, size, size)).shape == (2, 7)
    if option in ("alexnet", "vgg11_bn"):  # one pixel less and a max-pool has nothing left to pool
        with pytest.raises(RuntimeError):
            extractor(torch.zeros(1, 3, size - 1, size - 1))


@pytest.mark.parametrize(("option", "config", "weights"), BACKBONES)
def test_a_backbones_body_state_fact_is_its_torchvision_models(option: str, config: Any, weights: Any) -> None:
    with torch.device("meta"):
        net = getattr(torchvision.models, option)()
    assert isinstance(getattr(net, config.classifier_attribute), torch.nn.Module)
    body = {
        k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith(f"{config.classifier_attribute}.")
    }
    assert config.body_state == (len(body), state_dicts.state_digest(body)), (
        f"{option}: {(len(body), state_dicts.state_digest(body))}"
    )


def test_a_state_dict_of_another_architecture_is_refused_at_launch_naming_the_option_it_fits(tmp_path: Path) -> None:
    alexnet, resnet = tmp_path / "alexnet.pt", tmp_path / "resnet18_7.pt"
    torch.save(torchvision.models.alexnet().state_dict(), alexnet)
    torch.save(torchvision.models.resnet18(num_classes=7).state_dict(), resnet)  # its own head: still a resnet18
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "odd.pt")
    _, problems = check_overrides(["feature_extractor=resnet18", f"feature_extractor.checkpoint={alexnet}"])
    assert [(p.key, p.hint) for p in problems] == [
        ("feature_extractor.checkpoint", "feature_extractor=alexnet takes it")
    ]
    assert "the file is a state dict of torchvision's alexnet" in problems[0].rule
    assert check_overrides(["feature_extractor=resnet18", f"feature_extractor.checkpoint={resnet}"]) == (1, [])
    _, (odd,) = check_overrides(["feature_extractor=resnet18", f"feature_extractor.checkpoint={tmp_path / 'odd.pt'}"])
    assert "a state dict of 1 tensor (the first: conv1.weight [1]) that fits no option" in odd.rule
    assert "torch.save(torchvision.models.resnet18().state_dict(), PATH)" in odd.hint


@pytest.mark.parametrize("option", [getattr(case, "values", case)[0] for case in BACKBONES])
def test_each_backbones_stages_hold_each_parameter_once_from_the_input_up(option: str) -> None:
    cfg = compose_config([f"feature_extractor={option}", "dataset.image.size=224"])
    with torch.device("meta"):  # the modules and their names, no weights: all eight in a second
        extractor = instantiate(cfg.feature_extractor)
    backbone: type[FeatureExtractorConfig] = node_class("feature_extractor", cfg.feature_extractor)
    stages = backbone.stages
    named = list(extractor.named_parameters())
    by_stage = staged(named, stages)  # raises for a parameter in no stage, or in two
    assert all(by_stage) and sum(map(len, by_stage)) == len(named)  # no empty stage, nothing left out
    depth = {id(p): i for i, params in enumerate(by_stage) for p in params}
    order = [depth[id(p)] for _, p in named]
    assert order == sorted(order)  # torchvision defines its modules from the input up


@pytest.mark.cli
def test_a_checkpoint_of_this_app_starts_an_extractor(tiny_run: dict[str, Any]) -> None:
    best = tiny_run["dir"] / "checkpoints/best.pt"
    saved = torch.load(best, weights_only=True)["model"]
    extractor = instantiate(compose_config([f"feature_extractor.checkpoint={best}"]).feature_extractor)
    assert all(torch.equal(value, saved[f"extractor.{key}"]) for key, value in extractor.state_dict().items())
    into_resnet = ["feature_extractor=resnet18", f"feature_extractor.checkpoint={best}"]
    with pytest.raises(ConfigError) as refused:  # found at launch, from the checkpoint's own config
        compose_config(into_resnet)
    (problem,) = refused.value.problems
    assert problem.key == "feature_extractor.checkpoint" and problem.hint == "feature_extractor=alexnet takes it"
    assert "the file is a checkpoint of an app-train run of feature_extractor=alexnet" in problem.rule
    resnet = compose_config(into_resnet, validate=False).feature_extractor  # and in the job, by its tensors
    with pytest.raises(InstantiationException) as caught:
        instantiate(resnet)
    assert isinstance(caught.value.__cause__, errors.ExtractorWeightsDoNotFit)
    assert "feature_extractor.checkpoint a state dict" in caught.value.__cause__.hint
    with pytest.raises(
        InstantiationException,
        match=r"\d+ not in the checkpoint \(bn1\.bias, .*\); "
        r"10 in the checkpoint, not in this model \(features\.0\.bias",
    ):  # an AlexNet's, into a ResNet
        instantiate(resnet)


def test_extractor_refuses_a_wrong_declared_width() -> None:
    cfg = compose_config(["feature_extractor.out_features=100"], validate=False)  # past the check
    with pytest.raises(Exception, match="produces 9216"):
        instantiate(cfg.feature_extractor)


def test_folder_dataset_reads_images_from_disk(image_folder: Path) -> None:
    cfg = compose_config(
        ["dataset=folder", f"dataset.root={image_folder}", "dataset.classes=3", "dataset.image.size=32"],
        validate=False,
    )
    splits = instantiate(cfg.dataset)
    assert len(splits.train) + len(splits.val) == 18  # notes.txt is not an image
    image, label = splits.val[0]
    assert image.shape == (3, 32, 32) and 0 <= int(label) < 3
    grey = instantiate(
        compose_config(
            [
                "dataset=folder",
                f"dataset.root={image_folder}",
                "dataset.classes=3",
                "dataset.image.channels=1",
                "dataset.image.size=16",
            ],
            validate=False,
        ).dataset
    )
    assert grey.train[0][0].shape == (1, 16, 16)


def test_loader_batches_in_memory_images_whole_and_seeded() -> None:
    from app.data import ImageTensorDataset
    from app.training.loaders import EpochOrder, loader

    dataset = ImageTensorDataset(torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 2, 2), torch.arange(10), 3)
    batches = list(loader(dataset, 4, EpochOrder(10, 7, True), None, False))
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert images.shape == (10, 3, 2, 2) and all(b[0].is_contiguous() for b in batches)  # pinnable
    assert sorted(labels.tolist()) == list(range(10)) and labels.tolist() != list(range(10))
    assert torch.equal(images[:, 2, 0, 0], labels.float())  # each image stays with its label
    assert torch.equal(labels, torch.cat([b[1] for b in loader(dataset, 4, EpochOrder(10, 7, True), None, False)]))
    assert [b[1].tolist() for b in loader(dataset, 4, EpochOrder(10, 7, False), None, False)][0] == [0, 1, 2, 3]


def test_the_digits_facts_on_its_config_are_sklearns() -> None:
    from sklearn.datasets import load_digits

    from app.configs import DigitsConfig

    labels = load_digits().target.tolist()
    assert DigitsConfig.images_per_class == tuple(labels.count(digit) for digit in range(10))
    assert DigitsConfig.in_memory


def test_weights_that_cannot_be_downloaded_end_in_one_paragraph_that_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.training.runtime import failure

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: torchvision must download
    for proxy in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # a closed port: offline, whatever the network
    cfg = compose_config(["feature_extractor=mobilenet_v3_small", "feature_extractor.weights=DEFAULT"])
    with pytest.raises(InstantiationException) as raised:
        instantiate(cfg.feature_extractor)
    text = failure(raised.value)
    assert text.startswith(
        "The run failed: WeightsUnavailable: feature_extractor.weights=DEFAULT: torchvision could not"
    )
    assert str(tmp_path / "hub" / "checkpoints") in text and "feature_extractor.checkpoint=PATH" in text
    assert not list((tmp_path / "hub" / "checkpoints").glob("*.pth"))  # nothing half-downloaded left
