"""The ``app-train`` command line, read by Hydra's own parser: ``Command``, ``parse_command``, and
the processes a pasted ``torchrun`` command starts (its ``--nproc_per_node`` x ``--nnodes``)."""

import os
import re
from collections.abc import Sequence
from typing import NamedTuple, NoReturn, Optional

from app.checks import ConfigError, Problem
from app.configs import CONFIG_NAME


class Command(NamedTuple):
    overrides: list[str]
    multirun: bool = False
    config_name: str = CONFIG_NAME
    prints_only: bool = False  # --help, --cfg, --info, ...: Hydra prints and runs nothing
    config_dir: Optional[str] = None  # -cd: a directory Hydra searches before the app's configs
    config_path: Optional[str] = None  # -cp: refused, the primary config is the app's own
    rerun: Optional[str] = None  # --experimental-rerun: refused, it unpickles a file unchecked
    processes: int = 1  # a torchrun command's --nproc_per_node x --nnodes: checked as its rank 0 checks it


PROGRAM = re.compile(r"^(app-train|python3?(?:\.\d+)?)$")
# Hydra flags after which Hydra only prints: nothing is launched, so nothing to check.
PRINT_ONLY = ("help", "hydra_help", "cfg", "info", "shell_completion", "version")
# The flags that run something of their own, of which Hydra takes one (it raises a ValueError for more).
MODES = ("run", "multirun", "cfg", "info", "shell_completion")


def parse_command(argv: Sequence[str]) -> Command:
    """An ``app-train`` command line (the program name may lead), read by Hydra's own parser.

    Raises ``ConfigError`` for what that parser refuses (an unknown flag, a flag after the
    overrides, a missing flag value), which Hydra would end with its usage text.
    """
    import argparse

    # hydra._internal get_args_parser; public replacement: none yet (@hydra.main builds it inside, 1.4.0.dev9 too)
    from hydra._internal.utils import get_args_parser

    processes, tokens = _app_tokens(argv)
    parser = get_args_parser()
    parser.exit_on_error = False

    def refuse(message: str) -> NoReturn:
        raise argparse.ArgumentError(None, message)

    parser.error = refuse  # type: ignore[method-assign]
    try:
        args = parser.parse_args(tokens)
    except argparse.ArgumentError as error:
        raise ConfigError(
            [
                Problem(
                    "command line",
                    " ".join(tokens),
                    f"what app-train's parser (Hydra's) takes: {error.message}",
                    "flags first, then overrides: app-train [-m] [--cfg job] key=value ...; --help lists the flags",
                )
            ]
        ) from None
    modes = [f"--{flag.replace('_', '-')}" for flag in MODES if _given(getattr(args, flag), flag)]
    if len(modes) > 1:  # Hydra raises a ValueError with a traceback
        raise ConfigError(
            [
                Problem(
                    "command line",
                    " ".join(modes),
                    "one of --run, --multirun (-m), --cfg, --info and --shell-completion",
                    f"keep one: {modes[0]} or {modes[1]} (--cfg job shows one point of a sweep without -m)",
                )
            ]
        )
    return Command(
        list(args.overrides),
        bool(args.multirun),
        args.config_name or CONFIG_NAME,
        any(getattr(args, flag, None) for flag in PRINT_ONLY),
        args.config_dir,
        args.config_path,
        args.experimental_rerun,
        processes,
    )


def _app_tokens(argv: Sequence[str]) -> tuple[int, list[str]]:
    """(processes, the tokens after the program): ``app-train``, ``python -m app.train`` or a
    ``torchrun`` command that starts either may lead."""
    tokens, processes = list(argv), 1
    if tokens[:1] == ["torchrun"]:  # torchrun [its flags] -m app.train ...: the processes it starts
        processes, tokens = _torchrun(tokens)
    if tokens[:1] == ["app-train"]:
        tokens = tokens[1:]
    elif len(tokens) >= 3 and PROGRAM.match(tokens[0]) and tokens[1:3] == ["-m", "app.train"]:
        tokens = tokens[3:]
    return processes, tokens


def _given(value: object, flag: str) -> bool:
    """Whether Hydra's parser saw the mode ``flag``: ``--info`` alone is given (its value is
    then ``all``; ``None`` when absent), the others are given when true."""
    return value is not None if flag == "info" else bool(value)


def _torchrun(tokens: list[str]) -> tuple[int, list[str]]:
    """(processes, the app's own tokens) of ``torchrun [flags] -m app.train ...`` (or of the
    ``app-train`` script instead of ``-m app.train``): processes per
    node (``--nproc_per_node``; ``gpu``/``auto`` count as 1 here) x nodes (the most of a range)."""
    end = next(
        (
            i
            for i in range(len(tokens))
            if tokens[i : i + 2] == ["-m", "app.train"] or os.path.basename(tokens[i]) == "app-train"
        ),
        len(tokens),
    )
    flags: dict[str, str] = {}
    words = iter(tokens[1:end])
    for word in words:
        name, equals, value = word.lstrip("-").replace("-", "_").partition("=")
        flags[name] = value if equals else (next(words, "") if name in ("nproc_per_node", "nnodes") else "")
    per_node = int(flags["nproc_per_node"]) if flags.get("nproc_per_node", "").isdigit() else 1
    nodes = flags.get("nnodes", "1").rpartition(":")[2]
    script = end < len(tokens) and tokens[end] != "-m"  # torchrun ... $(which app-train) ...
    return per_node * (int(nodes) if nodes.isdigit() else 1), [
        "app-train" if script else "python",
        *tokens[end + script :],
    ]
