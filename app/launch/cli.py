"""``app-check``: validate a run, a whole ``-m`` sweep, or every command in a file, running nothing.

Its own flags (``--help``, ``--lint``) come first and are read by argparse (``get_args_parser``);
the rest of the line is an ``app-train`` command line, read by Hydra's parser as ``app-train``
reads it (``app.launch.argv.parse_command``).
"""

import argparse
import re
import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Optional

from app.checks import ConfigError, render
from app.errors import FileRefused
from app.files import read_bounded, shown
from app.launch.argv import parse_command
from app.launch.check import check_command, report
from app.launch.hydra_setup import shared_config_store

CHECK_USAGE = """app-check: validate a run, a whole -m sweep, or every command in a file, running nothing.

    app-check classifier=large dataset.classes=5
    app-check -m classifier=small,large optimizer.lr=1e-4,1e-3
    app-check python -m app.train -m classifier=small,large    # a pasted command works too
    app-check torchrun --nproc_per_node=4 -m app.train trainer.batch_size=64   # as its 4 processes run it
    app-check --lint README.md scripts/sweeps.sh               # each app-train command in them
    app-check --strict --lint scripts/sweeps.sh                # ... and every file and extra they need is here

It reads the same command line as app-train and exits 0 when everything is valid, 1 otherwise.
--lint tells three answers apart: valid (or refused as marked), refused by a rule (exit 1), and
not checked here: the line needs what this machine lacks (a folder an earlier command makes, an
optional extra, SLURM, a GPU), which fails only under --strict.
"""
LINE = re.compile(r"^\s*(?:\$\s*)?(app-train|python3?(?:\.\d+)? -m app\.train|torchrun\s.*-m app\.train)(\s|$)")
OWN_FLAGS = ("-h", "--help", "--strict", "--lint")  # app-check's own, read only where the line starts with one
# The largest file --lint reads: 16 MiB (this project's README is 60 kB); the longest command line
# in it: 128 KiB, Linux's MAX_ARG_STRLEN, past which no shell could pass it as one argument.
MAX_LINT_BYTES, MAX_LINE = 16 * 2**20, 128 * 2**10


def get_args_parser() -> argparse.ArgumentParser:
    """The parser of ``app-check``'s own flags; ``command`` is the ``app-train`` command line after them."""
    parser = argparse.ArgumentParser(
        prog="app-check",
        usage="%(prog)s [-h] [--strict] [--lint FILE ...] [APP-TRAIN COMMAND LINE ...]",
        description=CHECK_USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # -h is read first, like --lint: what follows either is not app-train's
        allow_abbrev=False,  # --li is a flag for Hydra's parser to refuse, not --lint
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="with --lint: a line that needs what this machine lacks (a folder not made yet, an extra, SLURM, a GPU) "
        "fails too, instead of being reported as not checked here",
    )
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


def lint(paths: Sequence[str], strict: bool = False) -> int:
    """Check each ``app-train`` / ``python -m app.train`` / ``torchrun ... -m app.train`` line; one
    marked ``# refused`` must fail. A line refused only for what this machine lacks (a folder an
    earlier command makes, an extra, SLURM) is told apart and fails only under ``strict``."""
    failures = 0
    for path in paths:
        text = _text(path)
        if text is None:
            failures += 1
            continue
        tally: Counter[str] = Counter()
        for number, line in enumerate(text.splitlines(), start=1):
            if LINE.match(line[:MAX_LINE]):
                verdict, failed, report = _lint_line(line, strict)
                tally[verdict.split(":")[0]] += 1
                failures += failed
                print(f"{path}:{number}: {verdict}{report}", file=sys.stderr if failed else sys.stdout)
        counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(tally.items(), key=lambda item: -item[1]))
        print(f"{path}: {tally.total()} command{'s' if tally.total() != 1 else ''}: {counts or 'none found'}")
    return 1 if failures else 0


def _lint_line(line: str, strict: bool) -> tuple[str, bool, str]:
    """(verdict, whether it fails the lint, the report that goes with it) for one command line."""
    expect_refusal = "# refused" in line
    try:
        if len(line) > MAX_LINE:
            raise ValueError(f"a command line of {len(line):,} characters, over the {MAX_LINE:,} a shell passes")
        words = shlex.split(line.strip().removeprefix("$"), comments=True)
    except ValueError as error:  # shlex: "No closing quotation", "No escaped character"
        return f"refused: not a shell command line ({error})", True, ""
    try:
        points, problems = check_command(parse_command(words))
    except ConfigError as error:  # a command line Hydra's parser refuses
        points, problems = error.points, error.problems
    absent = sorted({p.absent.value for p in problems if p.absent is not None})
    if problems and not expect_refusal and all(p.absent is not None for p in problems):
        given = "; ".join(dict.fromkeys(f"{p.key}={p.value}" for p in problems))
        report = f"\n{render(problems, points)}" if strict else f" ({given})"
        return f"not checked here: it needs {' and '.join(absent)}", strict, report
    if bool(problems) != expect_refusal:
        verdict = "accepted, but marked # refused" if expect_refusal else "refused"
        return verdict, True, f": {line.strip()}\n{render(problems, points) if problems else ''}"
    return ("refused as marked" if expect_refusal else "valid"), False, ""


def _text(path: str) -> Optional[str]:
    """``path``'s text for ``--lint``; None, with a one-line refusal that names it and why, for a
    file that is missing, not a regular file, too large, binary or not UTF-8."""
    try:
        data = read_bounded(path, MAX_LINT_BYTES)
        if b"\0" in data:
            raise ValueError("a binary file (it holds NUL bytes), not text")
        return data.decode()
    except FileRefused as error:
        why = str(error).removeprefix(f"{shown(path)}: ")
    except OSError as error:  # no such file, no permission
        why = error.strerror or type(error).__name__
    except UnicodeDecodeError as error:
        why = f"not UTF-8 text (byte {error.start:,} is not)"
    except ValueError as error:
        why = str(error)
    print(f"app-check --lint: {shown(path)}: {why}; nothing in it was checked", file=sys.stderr)
    return None


def check_main(argv: Optional[Sequence[str]] = None) -> int:
    """``app-check [--lint FILE...] [app-train command line]``: see ``CHECK_USAGE``."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.help:
        get_args_parser().print_help()
        return 0
    if args.strict and args.lint is None:
        get_args_parser().error("--strict goes with --lint: app-check --strict --lint FILE ...")
    with shared_config_store():
        if args.lint is not None:
            return lint(args.lint, args.strict)
        try:
            points, problems = check_command(parse_command(args.command))
        except ConfigError as error:
            points, problems = error.points, error.problems
    if problems:
        report(problems, points)
        return 1
    print(f"OK: {points} configuration{'s' if points != 1 else ''} valid.")
    return 0
