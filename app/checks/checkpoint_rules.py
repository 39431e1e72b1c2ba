"""The cross-field rules on checkpoint files: a ``feature_extractor.checkpoint`` is of the body
chosen; app-evaluate's and app-predict's ``checkpoint`` is one app-train wrote and fits their
other keys. Read without torch (``app.files``), registered in ``app.checks.rules``' table as its own are."""

import dataclasses
import os
from collections.abc import Iterator

from omegaconf import DictConfig

from app.checks.constraints import group_options
from app.checks.facts import architecture_of, kind, primary
from app.checks.problems import Absent, Problem
from app.checks.rules import cross_rule
from app.configs import EvaluateConfig, InferenceConfig, PredictConfig
from app.errors import UntrustedCheckpoint


@cross_rule(
    "feature_extractor.checkpoint is of the chosen feature_extractor's architecture (its state dict's names and shapes)"
)
def _checkpoint_of_the_extractor(cfg: DictConfig) -> Iterator[Problem]:
    fe, chosen = cfg.get("feature_extractor"), kind(cfg, "feature_extractor")
    path = fe.get("checkpoint") if fe is not None else None
    if chosen is None or not isinstance(path, str) or not os.path.isfile(path):
        return
    option, what = architecture_of(path)
    ours = next(o for g, o, node in group_options() if g == "feature_extractor" and type(node) is chosen)
    if option in ("", ours):
        return
    yield Problem(
        "feature_extractor.checkpoint",
        path,
        f"weights of {ours}, the feature_extractor this run builds: the file is {what}",
        f"feature_extractor={option} takes it"
        if option
        else f"give a state dict of torchvision's {ours} "
        f"(torch.save(torchvision.models.{ours}().state_dict(), PATH)) or a checkpoint of a {ours} run",
    )


def _no_checkpoint_file(path: str) -> Problem:
    """``checkpoint=`` names no file: nothing there, or a folder (a run dir, say)."""
    inside = [os.path.join(path, "checkpoints", name) for name in ("best.pt", "last.pt")]
    found = [p for p in inside if os.path.isfile(p)]
    if os.path.isdir(path):
        rule = "a checkpoint file, not a folder"
        hint = f"checkpoint={found[0]} (the run's best)" if found else "give a run's checkpoints/best.pt or last.pt"
    else:
        rule = f"an existing file: there is none at {os.path.abspath(path)}"
        hint = "give a run's checkpoints/best.pt or last.pt (app-train writes them in its run dir)"
    absent = None if os.path.lexists(path) else Absent.FILE
    return Problem("checkpoint", path, rule, hint, absent=absent)


@cross_rule(
    "app-evaluate, app-predict: checkpoint is one app-train wrote; evaluate's dataset.classes equals the "
    "checkpoint's; predict's top_k is at most its classes and its input holds images"
)
def _fits_the_checkpoint(cfg: DictConfig) -> Iterator[Problem]:
    if not primary(cfg, InferenceConfig):
        return
    from app.files import checkpoint_config, image_files_under

    trained = checkpoint_config(cfg.checkpoint)
    if trained is None and not os.path.isfile(cfg.checkpoint):
        yield _no_checkpoint_file(str(cfg.checkpoint))
        return
    if trained is None:
        yield Problem(
            "checkpoint",
            str(cfg.checkpoint),
            "a checkpoint app-train wrote (its config is inside)",
            "give a run's checkpoints/best.pt or last.pt; a torchvision state dict is for "
            "app-train feature_extractor.checkpoint=",
        )
        return
    from app.checks.built import checkpoint_problems  # built imports the walk, which imports this module

    yield from (dataclasses.replace(p, hint=UntrustedCheckpoint.hint) for p in checkpoint_problems(trained))
    dataset = trained.get("dataset")
    classes = dataset.get("classes") if isinstance(dataset, dict) else None
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        yield Problem(
            "checkpoint",
            str(cfg.checkpoint),
            "a checkpoint app-train wrote (its config names how many classes the model scores)",
            UntrustedCheckpoint.hint,
        )
        return
    if primary(cfg, EvaluateConfig) and cfg.dataset.classes != classes:
        yield Problem(
            "dataset.classes",
            str(cfg.dataset.classes),
            f"equals the checkpoint's classes ({classes}): the model scores that many",
            "evaluate on a dataset with the classes the model was trained on",
        )
    if primary(cfg, PredictConfig) and cfg.top_k is not None and cfg.top_k > classes:
        yield Problem(
            "top_k",
            str(cfg.top_k),
            f"<= the checkpoint's classes ({classes})",
            f"top_k={min(5, classes)}, or leave it out (null: 5, or all when there are fewer)",
        )
    if primary(cfg, PredictConfig) and os.path.isdir(cfg.input) and not image_files_under(cfg.input):
        yield Problem(
            "input",
            str(cfg.input),
            "a folder with at least one image in it (searched recursively)",
            "point input at an image or a folder of images",
        )
