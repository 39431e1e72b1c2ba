"""The entry of ``app-evaluate`` and ``app-predict``: the checkpoint's settings put before the command
line's overrides (``from_checkpoint``), the command checked as its job will see it, then handed
to Hydra (``entry_main``)."""

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from app.checks import ConfigError, group_options, schema_rules
from app.configs import EVALUATE_NAME, AugmentedDatasetConfig
from app.files import checkpoint_config
from app.launch.argv import parse_command
from app.launch.check import check_command, report
from app.launch.hydra_setup import shared_config_store
from app.launch.overrides import as_override, key_of


def _leaves(node: dict[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{name}.")
        elif not name.startswith("_"):
            yield f"{prefix}{name}", value


def from_checkpoint(config_name: str, overrides: Sequence[str]) -> list[str]:
    """What ``app-evaluate`` and ``app-predict`` put before their command line's overrides: the
    job's name and, for evaluate, the checkpoint's dataset (its option and values), which the
    command line's own ``dataset`` overrides then change. A dataset option given on the command
    line keeps only the checkpoint's image settings (what the model was trained on), classes
    and seed."""
    prefix = [f"hydra.job.name={config_name}"]
    if config_name != EVALUATE_NAME:
        return prefix
    path = next((o.partition("=")[2] for o in overrides if key_of(o) == "checkpoint"), None)
    values = checkpoint_config(path) if path else None
    if values is None or not isinstance(values.get("dataset"), dict):  # refused: the checkpoint says so
        return [*prefix, "dataset.seed=0"]  # and not the seed's interpolation, to a trainer it lacks
    dataset = values["dataset"]
    option = next(
        (
            name
            for group, name, node in group_options()
            if group == "dataset" and getattr(node, "_target_", None) == dataset.get("_target_")
        ),
        None,
    )
    chosen = any(key_of(o) == "dataset" for o in overrides)
    if option is None and not chosen:
        return prefix
    keep = ("image", "classes", "seed") if chosen else tuple(dataset)
    prefix += [] if chosen else [f"dataset={option}"]
    # not the run's augmentation: a split is evaluated as the run validated, image for image
    return prefix + [
        f"{key}={as_override(value)}"
        for key, value in _leaves(dataset, "dataset.")
        if key.split(".")[1] in keep and key.split(".")[1] not in AugmentedDatasetConfig.augment_keys
    ]


def entry_main(config_name: str, schema: type, usage: str, hydra_main: Callable[[], Any], argv: Sequence[str]) -> None:
    """``main()`` of ``app-evaluate`` and ``app-predict``: check the command as the job will
    see it (the checkpoint's settings first), then hand it to ``hydra_main``."""
    if list(argv[:1]) in (["-h"], ["--help"]):
        rules = "".join(f"  {key:<12}{text}\n" for key, text in schema_rules(schema))
        print(f"{usage}\n== Rules (checked before anything runs) ==\n{rules}")
        sys.exit(0)
    with shared_config_store():
        try:
            command = parse_command(argv)
            prefix = from_checkpoint(config_name, command.overrides)
            points, problems = check_command(
                command._replace(config_name=config_name, overrides=[*prefix, *command.overrides])
            )
        except ConfigError as error:
            points, problems, prefix = error.points, error.problems, []
        if problems:
            report(problems, points)
            sys.exit(1)
        start = len(argv) - len(command.overrides)  # the overrides end the command line
        sys.argv = [sys.argv[0], *argv[:start], *prefix, *argv[start:]]
        hydra_main()
