"""app-evaluate, app-predict and app.models.load on a checkpoint of a tiny real run."""

import csv
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from app import data, files, launch, models
from app.configs import EVALUATE_NAME, PREDICT_NAME, ImageFolderConfig
from app.evaluate import evaluate
from app.train import train
from tests.conftest import console_script, run_cli

# fp32 (which app-evaluate then uses too), so that its loss is the run's to the last digits.
RECIPE = [
    "+debug=fast",
    "dataset=folder",
    "dataset.augment=randaugment",
    "dataset.randaugment_ops=3",
    "dataset.random_erasing=0.25",
    "dataset.classes=3",
    "dataset.val_fraction=0.3",
    "trainer.epochs=3",
    "optimizer.lr=1e-3",
    "trainer.precision=fp32",
    "trainer.batch_size=4",
    "trainer.num_workers=0",
]


@pytest.fixture(scope="session")
def trained(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a 3-epoch run on the three-colour image folder."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(launch.compose_config([*RECIPE, f"dataset.root={image_folder}"]), out)
    return out / "checkpoints" / "best.pt"


def entry(program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, program=[sys.executable, "-m", f"app.{program}"])


def refusals(config_name: str, *overrides: str) -> dict[str, str]:
    """{key: rule} of what the launch check refuses, as app-evaluate / app-predict check it."""
    given = list(overrides)
    _, problems = launch.check_overrides([*launch.from_checkpoint(config_name, given), *given], config_name=config_name)
    return {p.key: p.rule for p in problems}


# ---------------------------------------------------------------------------------- evaluate
@pytest.mark.cli
def test_evaluate_reproduces_the_runs_validation_figures(trained: Path, tmp_path: Path) -> None:
    result = run_cli(
        f"checkpoint={trained}", "hydra.run.dir=out", cwd=tmp_path, program=[console_script("app-evaluate")]
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "out/metrics.json").read_text())
    summary = json.loads((trained.parent.parent / "summary.json").read_text())["best"]
    assert figures["images"] == 5 and figures["split"] == "val"  # 30 % of 18
    assert figures["accuracy"] == pytest.approx(summary["val_acc"])
    assert figures["loss"] == pytest.approx(summary["val_loss"], rel=1e-4)
    assert [row["class"] for row in figures["per_class"]] == ["cat", "dog", "emu"]  # the folders' names
    assert sum(row["support"] for row in figures["per_class"]) == 5 == sum(map(sum, figures["confusion"]))
    assert "top5_accuracy" not in figures  # three classes
    assert (tmp_path / "out/confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "accuracy" in (tmp_path / "out/evaluate.log").read_text()
    # the run's .hydra/overrides.yaml holds the checkpoint's dataset, put first, for a rerun
    assert "dataset=folder" in (tmp_path / "out/.hydra/overrides.yaml").read_text()
    again = run_cli(
        f"checkpoint={trained}", "hydra.run.dir=out", cwd=tmp_path, program=[console_script("app-evaluate")]
    )
    assert again.returncode == 1 and "holds an earlier run (metrics.json, confusion.png)" in again.stderr


def test_evaluate_takes_the_checkpoints_dataset_and_the_command_lines_changes(trained: Path, tmp_path: Path) -> None:
    overrides = [f"checkpoint={trained}", "split=train", "dataset.train_size=5", "hydra.run.dir=out"]
    with launch.app_hydra():
        from hydra import compose

        cfg = compose(EVALUATE_NAME, [*launch.from_checkpoint(EVALUATE_NAME, overrides), *overrides])
    assert OmegaConf.get_type(cfg.dataset) is ImageFolderConfig
    assert cfg.dataset.image.size == 64 and cfg.dataset.val_fraction == 0.3  # the checkpoint's
    assert cfg.dataset.train_size == 5  # the command line's
    # the training split as the run would validate it, unaugmented
    assert (cfg.dataset.augment.name, cfg.dataset.randaugment_ops, cfg.dataset.random_erasing) == ("none", 2, 0)
    assert evaluate(cfg, tmp_path)["images"] == 5


def test_evaluate_says_which_images_it_scores_and_split_all_takes_every_one_of_a_new_folder(
    trained: Path, image_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="app.evaluate")
    base = [f"checkpoint={trained}", f"dataset.root={image_folder}", "num_workers=0"]
    val = evaluate(composed(EVALUATE_NAME, *base), tmp_path / "val")
    every = evaluate(composed(EVALUATE_NAME, *base, "split=all"), tmp_path / "all")
    assert (val["images"], every["images"]) == (5, 18)  # 18 images; the run's 30 % held out: 5
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("evaluating")]
    assert said == [
        f"evaluating the val split of {image_folder}: 5 of its 18 images (the 30% a seeded split holds out, "
        "seed 0; split=train or split=all for the rest)",
        f"evaluating all 18 images of {image_folder} (both splits)",
    ]
    assert sum(row["support"] for row in every["per_class"]) == 18 and sum(map(sum, every["confusion"])) == 18


@pytest.mark.cli
def test_evaluate_refuses_what_does_not_fit_the_checkpoint(trained: Path, tmp_path: Path) -> None:
    state_dict = tmp_path / "resnet18.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, state_dict)
    assert refusals(EVALUATE_NAME, f"checkpoint={trained}", "dataset=fake", "dataset.classes=5") == {
        "dataset.classes": "equals the checkpoint's classes (3): the model scores that many"
    }
    assert set(refusals(EVALUATE_NAME, f"checkpoint={state_dict}")) == {"checkpoint"}  # not this app's
    missing = refusals(EVALUATE_NAME, f"checkpoint={tmp_path / 'none.pt'}", "split=test")
    assert missing == {
        "checkpoint": f"an existing file: there is none at {tmp_path / 'none.pt'}",
        "split": missing["split"],
    }
    run_dir = trained.parent.parent
    assert refusals(EVALUATE_NAME, f"checkpoint={run_dir}") == {"checkpoint": "a checkpoint file, not a folder"}
    result = entry("evaluate", f"checkpoint={trained}", "dataset.classes=2", "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "dataset.classes=2" in result.stderr and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------- predict
@pytest.mark.cli
def test_predict_classifies_every_image_under_a_folder_as_the_model_does(
    trained: Path, image_folder: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    shutil.copytree(image_folder / "dog", inputs / "nested" / "dog")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    result = entry("predict", f"checkpoint={trained}", f"input={inputs}", "top_k=2", "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with (tmp_path / "out/predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == [f"nested/dog/{i}.png" for i in range(6)]  # broken.png left out
    assert list(rows[0]) == ["file", "class", "probability", "class_2", "probability_2"]
    assert "left out" in result.stdout and "broken.png" in result.stdout
    # the classes and probabilities of the model on the images as the run's validation transform reads them
    loaded = models.load(str(trained))
    splits: data.Splits = instantiate(OmegaConf.structured(loaded.config).dataset)
    dogs = splits.train if "dog" in str(splits.train.files[0]) else splits.val  # type: ignore[attr-defined]
    dog_files = [f for f in dogs.files if "/dog/" in f]  # type: ignore[attr-defined]
    expected = {}
    with torch.no_grad():
        for path in dog_files:
            index = dogs.files.index(path)  # type: ignore[attr-defined]
            probabilities = loaded.model(dogs[index][0][None]).softmax(1)[0]
            expected[os.path.basename(path)] = (loaded.classes[int(probabilities.argmax())], float(probabilities.max()))
    for row in rows:
        name = os.path.basename(row["file"])
        if name in expected:
            assert row["class"] == expected[name][0]
            assert float(row["probability"]) == pytest.approx(expected[name][1], abs=1e-5)
        assert float(row["probability"]) >= float(row["probability_2"]) and row["class"] != row["class_2"]


def test_predict_refuses_a_top_k_past_the_classes_and_a_folder_without_images(trained: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert refusals(PREDICT_NAME, f"checkpoint={trained}", f"input={tmp_path / 'empty'}", "top_k=4") == {
        "top_k": "<= the checkpoint's classes (3)",
        "input": "a folder with at least one image in it (searched recursively)",
    }
    assert set(refusals(PREDICT_NAME, f"checkpoint={trained}")) == {"input"}  # mandatory


@pytest.mark.cli
def test_help_lists_the_keys_and_their_rules(tmp_path: Path) -> None:
    result = entry("predict", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "app-predict checkpoint=" in result.stdout
    assert "  top_k       >= 1" in result.stdout and "  input       an existing file or directory" in result.stdout


# ------------------------------------------------------------------------------ from Python
def test_models_load_gives_a_ready_model_its_typed_config_and_class_names(trained: Path, image_folder: Path) -> None:
    loaded = models.load(str(trained))
    assert isinstance(loaded.config.dataset, ImageFolderConfig) and loaded.config.dataset.root == str(image_folder)
    assert loaded.classes == ["cat", "dog", "emu"] and not loaded.model.training
    state = torch.load(trained, weights_only=True)["model"]
    assert all(torch.equal(v, state[k]) for k, v in loaded.model.state_dict().items())


@pytest.mark.cli
def test_a_checkpoints_config_is_read_without_torch_and_without_running_its_pickle(
    trained: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\nfrom app.files import checkpoint_config\n"
        f"print(checkpoint_config({str(trained)!r})['dataset']['classes'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["3", "[]"]

    class Payload:  # what a hostile pickle does on load: call a function of its choosing
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.mkdir, (str(tmp_path / "ran"),))

    hostile = tmp_path / "hostile.pt"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("x/data.pkl", pickle.dumps({"format": files.CHECKPOINT_FORMAT, "config": Payload()}))
    assert files.checkpoint_config(str(hostile)) is None and not (tmp_path / "ran").exists()
    assert files.checkpoint_config(str(tmp_path / "missing.pt")) is None
    assert files.checkpoint_config(io.__file__) is None


# ------------------------------------------------------------------------- test-time augmentation
def composed(config_name: str, *overrides: str) -> Any:
    with launch.app_hydra():
        from hydra import compose

        return compose(config_name, [*launch.from_checkpoint(config_name, list(overrides)), *overrides])


def test_tta_flip_averages_the_models_probabilities_on_the_image_and_its_mirror(trained: Path, tmp_path: Path) -> None:
    figures = evaluate(composed(EVALUATE_NAME, f"checkpoint={trained}", "tta=flip", "hydra.run.dir=out"), tmp_path)
    loaded = models.load(str(trained))
    val = instantiate(OmegaConf.structured(loaded.config).dataset).val
    images, labels = (
        torch.stack([val[i][0] for i in range(len(val))]),
        torch.tensor([val[i][1] for i in range(len(val))]),
    )
    with torch.no_grad():
        plain = loaded.model(images).softmax(1)
        averaged = (plain + loaded.model(images.flip(-1)).softmax(1)) / 2
    assert figures["tta"] == "flip" and figures["images"] == len(val) == 5
    assert figures["loss"] == pytest.approx(-averaged[range(5), labels].log().mean().item(), rel=1e-4)
    assert figures["accuracy"] == (averaged.argmax(1) == labels).float().mean().item()
    # the figures without it, beside them, are the plain model's
    assert figures["without_tta"]["loss"] == pytest.approx(-plain[range(5), labels].log().mean().item(), rel=1e-4)
    assert json.loads((tmp_path / files.EVALUATION).read_text())["without_tta"] == figures["without_tta"]
    # on images that are not their own mirror (the folder's are flat colours): the mean of both views
    from app.training import engine, inference

    ramps = torch.linspace(0, 1, 64).repeat(2, 3, 64, 1) * torch.tensor([1.0, -1.0])[:, None, None, None]
    found = inference.predictions(
        loaded.model, [(ramps, torch.arange(2))], engine.Step(torch.device("cpu")), tta="flip"
    )
    with torch.no_grad():
        mean = (loaded.model(ramps).softmax(1) + loaded.model(ramps.flip(-1)).softmax(1)) / 2
    assert found.tta is not None and torch.allclose(found.tta.exp(), mean, atol=1e-6)
    assert not torch.allclose(found.logits.softmax(1), mean, atol=1e-4)


def test_five_crop_views_are_the_corners_and_centre_at_the_models_input_size() -> None:
    from app.training.inference import views

    ramp = torch.arange(64.0).repeat(64, 1)[None, None].expand(2, 3, 64, 64)  # brighter to the right
    crops = views(ramp, "five_crop")
    assert len(crops) == 5 and all(c.shape == ramp.shape for c in crops)
    left, right, centre = crops[0].mean(), crops[1].mean(), crops[4].mean()
    assert left < centre < right and centre == pytest.approx(ramp.mean().item(), abs=0.1)
    flat = torch.full((1, 3, 40, 40), 0.5)
    assert all(torch.allclose(c, flat) for c in views(flat, "five_crop"))  # nothing but crop and resize


def test_predict_with_tta_lists_the_probabilities_averaged_over_the_views(trained: Path, tmp_path: Path) -> None:
    from PIL import Image

    from app.predict import predict
    from app.training.inference import views

    (tmp_path / "in").mkdir()
    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8)  # green to the left, blue to the right
    pixels = torch.stack([torch.full((32, 32), 30, dtype=torch.uint8), ramp.flip(0).repeat(32, 1), ramp.repeat(32, 1)])
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(tmp_path / "in/ramp.png")
    given = (f"checkpoint={trained}", f"input={tmp_path / 'in'}")
    (plain,) = predict(composed(PREDICT_NAME, *given), tmp_path / "a")
    (crops,) = predict(composed(PREDICT_NAME, *given, "tta=five_crop"), tmp_path / "b")
    loaded = models.load(str(trained))
    transform = data.image_transform(OmegaConf.structured(loaded.config))
    picture = data.ImageList([str(tmp_path / "in/ramp.png")], transform)[0][0][None]
    with torch.no_grad():
        expected = torch.stack([loaded.model(v).softmax(1) for v in views(picture, "five_crop")]).mean(0)[0]
    assert crops["class"] == loaded.classes[int(expected.argmax())]
    assert crops["probability"] == pytest.approx(expected.max().item(), abs=1e-5) != plain["probability"]
    assert sum(v for k, v in crops.items() if k.startswith("probability")) == pytest.approx(1, abs=1e-5)
    assert set(refusals(PREDICT_NAME, *given, "tta=ten_crop")) == {"tta"}
