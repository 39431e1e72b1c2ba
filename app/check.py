"""``app-check``: validate a run, a whole ``-m`` sweep, or every command in a file, running nothing.

    app-check classifier=large dataset.classes=5
    app-check -m classifier=small,large optimizer.lr=1e-4,1e-3
    app-check python -m app.train -m classifier=small,large    # a pasted command works too
    app-check --lint README.md scripts/sweeps.sh               # each app-train command in them

Exit status 0 when everything is valid, 1 otherwise; torch is never imported.
"""

import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Optional

from app.validation import CONFIG_NAME, check_overrides, render, report

# Hydra flags that take no part in composition, with how many values follow each.
IGNORED_FLAGS = {"--cfg": 1, "-c": 1, "--package": 1, "-p": 1, "--resolve": 0, "--help": 0,
                 "-h": 0, "--hydra-help": 0, "--info": 0, "-i": 0}
COMMAND = re.compile(r"^\s*(?:\$\s*)?(app-train|python3?(?:\.\d+)? -m app\.train)(\s|$)")


class Command(NamedTuple):
    overrides: list[str]
    multirun: bool
    config_name: str


def parse(argv: Sequence[str]) -> Command:
    """Overrides and flags of an ``app-train`` command line (the program name may lead)."""
    tokens = list(argv)
    if tokens[:1] == ["app-train"]:
        tokens = tokens[1:]
    elif len(tokens) >= 3 and tokens[0].startswith("python") and tokens[1:3] == ["-m", "app.train"]:
        tokens = tokens[3:]
    overrides, multirun, config_name = [], False, CONFIG_NAME
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("-m", "--multirun"):
            multirun = True
        elif token in ("-cn", "--config-name"):
            config_name, i = tokens[i + 1], i + 1
        elif token.startswith("--config-name="):
            config_name = token.partition("=")[2]
        elif token in IGNORED_FLAGS:
            i += IGNORED_FLAGS[token]
        else:
            overrides.append(token)
        i += 1
    return Command(overrides, multirun, config_name)


def check(command: Command) -> Optional[str]:
    """The refusal report, or None when every point is valid."""
    points, problems = check_overrides(command.overrides, command.multirun, command.config_name)
    return render(problems, points) if problems else None


def lint(paths: Sequence[str]) -> int:
    """Check each ``app-train`` / ``python -m app.train`` line; one marked ``# refused`` must fail."""
    failures = 0
    for path in paths:
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if not COMMAND.match(line):
                continue
            expect_refusal = "# refused" in line
            result = check(parse(shlex.split(line.strip().removeprefix("$"), comments=True)))
            if (result is not None) != expect_refusal:
                failures += 1
                verdict = "accepted, but marked # refused" if expect_refusal else "refused"
                print(f"{path}:{number}: {verdict}: {line.strip()}\n{result or ''}", file=sys.stderr)
            else:
                print(f"{path}:{number}: ok ({'refused as marked' if expect_refusal else 'valid'})")
    return 1 if failures else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if args[:1] == ["--lint"]:
        return lint(args[1:])
    command = parse(args)
    points, problems = check_overrides(command.overrides, command.multirun, command.config_name)
    if problems:
        report(problems, points)
        return 1
    print(f"OK: {points} configuration{'s' if points != 1 else ''} valid.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
