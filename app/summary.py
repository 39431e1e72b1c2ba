"""One summary per sweep: ``summary.csv``, ``summary.md`` and ``summary.png`` in the sweep dir.

``SweepSummary`` is the Hydra callback (registered in the app's stored Hydra config, so every
sweeper and launcher runs it) that writes them when a multirun ends; ``app-summary SWEEP_DIR...``
(``python -m app.summary``) rebuilds them from the run dirs, after a crash or to merge sweeps.
Everything is read from each job's run dir: ``.hydra/`` (its number, overrides, tags),
``status.json`` (completed, failed with the error, stopped) and ``summary.json`` (the metrics).
No torch is imported: Hydra loads this module before the first job.
"""

import argparse
import csv
import io
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from app import plots
from app.configs import JOB_NAME
from app.files import STATUS, SUMMARY, read_bounded, shown, write_atomically

CSV, MARKDOWN, PLOT = "summary.csv", "summary.md", "summary.png"
# The most app-summary reads of one file of a run dir: 1 MiB. Hydra's hydra.yaml is about 10 kB,
# config.yaml 3 kB, status.json and summary.json under 2 kB; a larger file is no run's.
MAX_RUN_FILE = 2**20


class Refused(OSError):
    """A run dir's file that no run writes (files.FileRefused's kind; this command imports no errors)."""


COMPLETED = "completed"
USAGE = """app-summary: rebuild summary.csv, summary.md and summary.png from a sweep's run dirs.

    app-summary multirun/2026-11-29/01-45-05-123456
    app-summary multirun/a multirun/b --out merged      # several sweeps, one summary

It exits 0 when every job completed, 1 when one failed, stopped or left no status.
"""


@dataclass
class Row:
    """One job of a sweep, as its run dir tells it."""

    job: int
    status: str
    overrides: list[str]
    run_dir: Path
    best_val_acc: Optional[float] = None
    final_val_acc: Optional[float] = None
    best_epoch: Optional[int] = None
    seconds: Optional[float] = None
    tags: list[str] = field(default_factory=list)
    error: str = ""

    def value(self, key: str) -> Optional[str]:
        """The value this job's overrides give ``key``, as typed."""
        return next((o.partition("=")[2] for o in self.overrides if _key(o) == key), None)


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def _yaml(path: Path) -> Any:
    """A YAML file of a run dir (``Refused``, ``files.FileRefused``: too large, not UTF-8, not YAML, or with anchors
    and aliases, which neither Hydra nor OmegaConf writes and a billion-laughs file nests)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on hydra.yaml
    try:
        text = read_bounded(path, MAX_RUN_FILE).decode()
        if any(isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None) for e in yaml.parse(text, loader)):
            raise Refused(f"{shown(str(path))}: YAML anchors or aliases (&, *), which no run writes")
        return yaml.load(text, Loader=loader)
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as error:
        why = " ".join(str(error).split()) or type(error).__name__
        raise Refused(f"{shown(str(path))}: not YAML a run wrote ({type(error).__name__}: {why})") from None


def _json(path: Path) -> dict[str, Any]:
    """A JSON file of a run dir: ``{}`` when there is none, and (warned of, on one line) when it
    is not one the app wrote: too large, not a regular file, not JSON, nested past the stack."""
    if not os.path.lexists(path):
        return {}
    try:
        data = json.loads(read_bounded(path, MAX_RUN_FILE))
    except (OSError, ValueError, RecursionError) as error:
        said = str(error)  # files.read_bounded's refusals name the file already
        _warn(said if said.startswith(shown(str(path))) else f"{shown(str(path))}: {type(error).__name__}: {said}")
        return {}
    return data if isinstance(data, dict) else {}


def _warn(text: str) -> None:
    print(f"app-summary: {' '.join(text.split())}", file=sys.stderr)


def read_run(run_dir: Path) -> Row:
    """The row of the job whose run dir is ``run_dir`` (it holds ``.hydra/overrides.yaml``).

    A run dir without ``status.json`` is ``incomplete``: the job is still running, was killed,
    or died before it could record anything (its ``train.log`` says what it got to).
    """
    hydra = run_dir / ".hydra"
    listed = _yaml(hydra / "overrides.yaml") or []
    if not isinstance(listed, list):
        raise Refused(f"{shown(str(hydra / 'overrides.yaml'))}: not a list of overrides")
    overrides = [str(o) for o in listed]
    try:
        job = int(_yaml(hydra / "hydra.yaml")["hydra"]["job"]["num"])
    except (OSError, KeyError, TypeError, ValueError):
        job = int(run_dir.name) if run_dir.name.isdigit() else -1
    status = _json(run_dir / STATUS)
    row = Row(job, str(status.get("status") or "incomplete"), overrides, run_dir, error=str(status.get("error") or ""))
    try:
        tags = (_yaml(hydra / "config.yaml") or {}).get("tags") or []
    except OSError:
        tags = []
    row.tags = [str(t) for t in tags]
    if row.status == COMPLETED:
        summary = _json(run_dir / SUMMARY)
        best, final = summary.get("best") or {}, summary.get("final") or {}
        row.best_val_acc = float(best["val_acc"]) if "val_acc" in best else None
        row.best_epoch = int(best["epoch"]) if "epoch" in best else None
        row.final_val_acc = float(final["val_acc"]) if "val_acc" in final else None
        row.seconds = float(summary["seconds"]) if "seconds" in summary else None
        row.tags = [str(t) for t in summary.get("tags", row.tags)]
    if row.seconds is None and "seconds" in status:
        row.seconds = float(status["seconds"])
    return row


def read_sweep(sweep_dir: Path) -> list[Row]:
    """Every job under ``sweep_dir`` (any ``hydra.sweep.subdir`` layout), by job number."""
    runs = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")})
    rows = []
    for run in runs:
        try:
            rows.append(read_run(run))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:  # what a damaged run dir raises
            # one row says so, and one line on stderr; the others are kept
            why = f"{type(error).__name__}: {' '.join(str(error).split())}"
            _warn(f"{shown(str(run))}: unreadable, its row says so ({why})")
            job = int(run.name) if run.name.isdigit() else -1
            rows.append(Row(job, "unreadable", [], run, error=why))
    return sorted(rows, key=lambda row: (row.job, str(row.run_dir)))


def swept_keys(rows: Sequence[Row]) -> list[str]:
    """The override keys whose value differs between the jobs, in the order the first job gives them."""
    keys: list[str] = []
    for row in rows:
        keys += [_key(o) for o in row.overrides if _key(o) not in keys]
    return [
        key for key in keys if key != "tags" and len({row.value(key) for row in rows}) > 1
    ]  # tags: a column already


def best_first(rows: Sequence[Row]) -> list[Row]:
    """Completed jobs by best val acc, highest first (ties: lower job number), then the rest."""
    return sorted(rows, key=lambda r: (r.best_val_acc is None, -(r.best_val_acc or 0.0), r.job))


def command(row: Row) -> str:
    """The ``app-train`` command that runs ``row``'s point again, ready to paste."""
    return shlex.join(["app-train", *row.overrides])


def _columns(rows: Sequence[Row], where: Path) -> tuple[list[str], list[list[str]]]:
    keys = swept_keys(rows)
    header = [
        "job",
        "status",
        "best_val_acc",
        "final_val_acc",
        "best_epoch",
        "seconds",
        *keys,
        "tags",
        "overrides",
        "error",
        "run_dir",
    ]

    def text(value: Optional[float], digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    def run_dir(path: Path) -> str:  # relative to the summary when inside it, so the sweep dir can move
        return os.path.relpath(path, where) if path.resolve().is_relative_to(where.resolve()) else str(path)

    table = [
        [
            str(r.job),
            r.status,
            text(r.best_val_acc, 4),
            text(r.final_val_acc, 4),
            "" if r.best_epoch is None else str(r.best_epoch),
            text(r.seconds, 1),
            *[r.value(key) or "" for key in keys],
            ",".join(r.tags),
            " ".join(r.overrides),
            r.error,
            run_dir(r.run_dir),
        ]
        for r in rows
    ]
    return header, table


def to_csv(rows: Sequence[Row], where: Path) -> str:
    """``summary.csv``: one row per job, in job order."""
    header, table = _columns(rows, where)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(table)
    return out.getvalue()


def to_markdown(rows: Sequence[Row], where: Path) -> str:
    """``summary.md``: the winner's command on top, then every job, best first."""
    ranked = best_first(rows)
    failed = [r for r in rows if r.status != COMPLETED]
    lines = [f"# Sweep summary: {len(rows)} jobs, {len(rows) - len(failed)} completed, {len(failed)} not", ""]
    if ranked and ranked[0].best_val_acc is not None:
        winner = ranked[0]
        lines += [
            f"Best: job {winner.job}, val acc {winner.best_val_acc:.4f} at epoch {winner.best_epoch}, run dir "
            f"`{os.path.relpath(winner.run_dir, where)}`. To run it again:",
            "",
            "```bash",
            command(winner),
            "```",
            "",
        ]
    else:
        lines += ["No job completed.", ""]
    header, table = _columns(ranked, where)

    def cell(text: str) -> str:
        return text.replace("|", "\\|") or " "

    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table]
    return "\n".join(lines) + "\n"


def write(rows: Sequence[Row], where: Path) -> None:
    """``summary.csv``, ``summary.md`` and ``summary.png`` of ``rows``, in the folder ``where``."""
    # backslashreplace: a run dir's name that is not UTF-8, an override with a lone surrogate ("\\ud800" in YAML)
    write_atomically(where / CSV, lambda tmp: tmp.write_bytes(to_csv(rows, where).encode(errors="backslashreplace")))
    write_atomically(
        where / MARKDOWN, lambda tmp: tmp.write_bytes(to_markdown(rows, where).encode(errors="backslashreplace"))
    )
    plots.sweep(rows, swept_keys(rows), where / PLOT)


# Each sweep this process ran, with its rows: app-train's exit status reads the last one.
finished: list[list[Row]] = []


class SweepSummary(Callback):
    """The Hydra callback that writes the sweep dir's summary when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.job.name != JOB_NAME:  # app-evaluate, app-predict: no training summary
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = read_sweep(sweep_dir)
        finished.append(rows)
        write(rows, sweep_dir)
        failed = [r for r in rows if r.status != COMPLETED]
        print(f"sweep summary: {sweep_dir / MARKDOWN} ({len(rows)} jobs, {len(failed)} not completed)", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises what it refuses, for ``main`` to refuse in its own words."""

    def error(self, message: str) -> NoReturn:
        raise argparse.ArgumentError(None, message)


def get_args_parser() -> argparse.ArgumentParser:
    """``app-summary``'s command line: sweep dirs, ``--out DIR`` anywhere among them."""
    parser = _Parser(
        prog="app-summary",
        usage="%(prog)s [-h] SWEEP_DIR [SWEEP_DIR ...] [--out DIR]",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # -h is a flag main reads: it returns 0, argparse does not exit
        allow_abbrev=False,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("sweep_dirs", nargs="*", metavar="SWEEP_DIR", help="a sweep dir (hydra.sweep.dir)")
    parser.add_argument(
        "--out",
        nargs="?",
        const="",  # --out without a directory: refused below, in the app's words
        metavar="DIR",
        help="where the summary goes (default: the one SWEEP_DIR); needed to merge several",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``app-summary SWEEP_DIR... [--out DIR]``: see ``USAGE``."""
    given = list(sys.argv[1:] if argv is None else argv)
    parser = get_args_parser()
    try:
        args = parser.parse_intermixed_args(given)
    except argparse.ArgumentError as error:
        return _refuse(error.message)
    if args.help or not given:
        parser.print_help()
        return 0 if given else 1
    dirs: list[str] = args.sweep_dirs
    out: Optional[str] = args.out
    problem = next((f"{d}: not a directory" for d in dirs if not os.path.isdir(d)), None)
    if problem is None and out == "":
        problem = "--out needs a directory"
    if problem is None and not dirs:
        problem = "no sweep dir given"
    if problem is None and len(dirs) > 1 and out is None:
        problem = f"{len(dirs)} sweep dirs: say where their merged summary goes, with --out DIR"
    rows = [row for d in dirs for row in read_sweep(Path(d))] if problem is None else []
    if problem is None and not rows:
        problem = f"no run dir (a folder with .hydra/overrides.yaml) under {', '.join(dirs)}"
    if problem is not None:
        return _refuse(problem)
    where = Path(out or dirs[0])
    write(rows, where)
    failed = [r for r in rows if r.status != COMPLETED]
    print(f"{shown(str(where / MARKDOWN))}: {len(rows)} jobs, {len(failed)} not completed")
    return 1 if failed else 0


def _refuse(problem: str) -> int:
    """The app's one-paragraph refusal, with its hint; exit status 1."""
    sys.stderr.write(
        f"app-summary refused: {problem}.\n  hint: app-summary SWEEP_DIR, or "
        "app-summary SWEEP_DIR SWEEP_DIR... --out DIR to merge sweeps\n"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
