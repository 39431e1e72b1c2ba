"""``app-check``: validate a run, a whole ``-m`` sweep, or every command in a file, running nothing.

Its own flags (``--help``, ``--lint``) come first and are read by argparse (``get_args_parser``);
the rest of the line is an ``app-train`` command line, read by Hydra's parser as ``app-train``
reads it (``app.launch.argv.parse_command``).
"""

import argparse
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from app.checks import ConfigError, render
from app.launch.argv import parse_command
from app.launch.check import check_command, report
from app.launch.hydra_setup import shared_config_store

CHECK_USAGE = """app-check: validate a run, a whole -m sweep, or every command in a file, running nothing.

    app-check classifier=large dataset.classes=5
    app-check -m classifier=small,large optimizer.lr=1e-4,1e-3
    app-check python -m app.train -m classifier=small,large    # a pasted command works too
    app-check torchrun --nproc_per_node=4 -m app.train trainer.batch_size=64   # as its 4 processes run it
    app-check --lint README.md scripts/sweeps.sh               # each app-train command in them

It reads the same command line as app-train and exits 0 when everything is valid, 1 otherwise.
"""
LINE = re.compile(r"^\s*(?:\$\s*)?(app-train|python3?(?:\.\d+)? -m app\.train|torchrun\s.*-m app\.train)(\s|$)")
OWN_FLAGS = ("-h", "--help", "--lint")  # app-check's own, read only where the line starts with one


def get_args_parser() -> argparse.ArgumentParser:
    """The parser of ``app-check``'s own flags; ``command`` is the ``app-train`` command line after them."""
    parser = argparse.ArgumentParser(
        prog="app-check",
        usage="%(prog)s [-h] [--lint FILE ...] [APP-TRAIN COMMAND LINE ...]",
        description=CHECK_USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # -h is read first, like --lint: what follows either is not app-train's
        allow_abbrev=False,  # --li is a flag for Hydra's parser to refuse, not --lint
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument(
        "--lint",
        nargs=argparse.REMAINDER,
        metavar="FILE",
        help="FILE ...: check each app-train, python -m app.train and torchrun ... -m app.train line in them; "
        "a line marked '# refused' must be refused",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="APP-TRAIN COMMAND LINE",
        help="flags first, then overrides, as app-train takes them (app-train --help lists both); "
        "a pasted 'python -m app.train ...' or 'torchrun ... -m app.train ...' works too",
    )
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``help``, ``lint`` (the files, or None) and ``command`` (the ``app-train`` command line)."""
    parser = get_args_parser()
    if argv[:1] and argv[0] not in OWN_FLAGS:  # app-train's flags and overrides: Hydra's parser reads them
        args = parser.parse_args([])
        args.command = list(argv)
        return args
    return parser.parse_args(argv)


def lint(paths: Sequence[str]) -> int:
    """Check each ``app-train`` / ``python -m app.train`` / ``torchrun ... -m app.train`` line; one
    marked ``# refused`` must fail."""
    failures = 0
    for path in paths:
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if not LINE.match(line):
                continue
            expect_refusal = "# refused" in line
            try:
                points, problems = check_command(
                    parse_command(shlex.split(line.strip().removeprefix("$"), comments=True))
                )
                result = render(problems, points) if problems else None
            except ConfigError as error:  # a command line Hydra's parser refuses
                result = str(error)
            if (result is not None) != expect_refusal:
                failures += 1
                verdict = "accepted, but marked # refused" if expect_refusal else "refused"
                print(f"{path}:{number}: {verdict}: {line.strip()}\n{result or ''}", file=sys.stderr)
            else:
                print(f"{path}:{number}: ok ({'refused as marked' if expect_refusal else 'valid'})")
    return 1 if failures else 0


def check_main(argv: Optional[Sequence[str]] = None) -> int:
    """``app-check [--lint FILE...] [app-train command line]``: see ``CHECK_USAGE``."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.help:
        get_args_parser().print_help()
        return 0
    with shared_config_store():
        if args.lint is not None:
            return lint(args.lint)
        try:
            points, problems = check_command(parse_command(args.command))
        except ConfigError as error:
            points, problems = error.points, error.problems
    if problems:
        report(problems, points)
        return 1
    print(f"OK: {points} configuration{'s' if points != 1 else ''} valid.")
    return 0
