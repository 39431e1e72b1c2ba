"""Where Hydra writes or connects from its own node (``logging_problems``): each logging handler
Python's ``dictConfig`` builds from ``hydra.job_logging`` and ``hydra.hydra_logging`` writes to
the console or to a file inside the job's run dir, never to a socket, a mail or syslog server,
another process's queue or a file elsewhere (``hydra.output_subdir`` is null: ``hydra_rules``).
(Which modules logging may import at all: ``app.checks.walk``.)

The run dir is ``hydra.runtime.output_dir`` as the job sees it (``launch.as_the_job_sees_it``
sets it for the check); without it (a config composed outside a launch) a file's place is not
checked: the job always has one.
"""

import os
from collections.abc import Iterator
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from app.checks.problems import Problem

FILE_HANDLERS = (
    "logging.FileHandler",
    "logging.handlers.RotatingFileHandler",
    "logging.handlers.TimedRotatingFileHandler",
    "logging.handlers.WatchedFileHandler",
)
# What each section of a logging config may build (dictConfig reads "()", else "class"): every
# option of Hydra's job_logging and hydra_logging builds these; colorlog's formatter for its plugin.
BUILDS = {
    "handlers": ("logging.StreamHandler", "logging.NullHandler", *FILE_HANDLERS),
    "formatters": ("logging.Formatter", "colorlog.ColoredFormatter"),
    "filters": ("logging.Filter",),
}
DEFAULT = {"formatters": "logging.Formatter", "filters": "logging.Filter"}  # what dictConfig builds without one
LOGGING_HINT = "pick a logging option of Hydra's: hydra/job_logging=default, stdout, disabled or none"


def _entry(node: DictConfig, path: str) -> dict[str, tuple[Any, Optional[str]]]:
    """An entry's own keys: (value as the job reads it, None), or (None, the text) for a value
    that does not resolve here."""
    from app.checks.walk import resolved_leaves  # walk imports this module: read at call time

    return {
        str(key): (value, text) for full, key, value, text in resolved_leaves(node, path) if full == f"{path}.{key}"
    }


def _inside(filename: str, run_dir: str, cwd_is_run_dir: bool) -> bool:
    """Whether ``filename`` (relative: to the job's cwd) names a file inside ``run_dir``."""
    if not os.path.isabs(filename) and not cwd_is_run_dir:
        return False
    path = os.path.normpath(os.path.join(run_dir, filename))  # an absolute filename stays itself
    return os.path.commonpath([path, os.path.normpath(run_dir)]) == os.path.normpath(run_dir)


def _entry_problems(
    path: str, allowed: tuple[str, ...], child: Any, run_dir: Optional[str], chdir: bool, told: set[str]
) -> Iterator[Problem]:
    """One handler's, formatter's or filter's problems: what it builds, attributes set on it, its file."""
    section = path.split(".")[2]
    if not isinstance(child, DictConfig):
        if path in told:
            return
        yield Problem(
            path, str(child._value()), f"a dict of logging's {section} config the check can read", LOGGING_HINT
        )
        return
    entry = _entry(child, path)
    key = "()" if "()" in entry else "class"
    value, text = entry.get(key, (DEFAULT.get(section, ""), None))
    builds = str(value) if text is None else text
    if f"{path}.{key}" in told:
        return
    if builds not in allowed:
        yield Problem(
            f"{path}.{key}",
            builds,
            f"one of {', '.join(allowed)}: the others open sockets, mail or syslog connections or queues, "
            "or build what no check reads",
            LOGGING_HINT,
        )
    elif "." in child:
        yield Problem(
            f"{path}..",
            str(child._get_node(".")),
            "no attributes set on what logging builds (a file handler's baseFilename, say)",
            "leave the . key out",
        )
    elif builds in FILE_HANDLERS and run_dir is not None:
        filename, text = entry.get("filename", (None, None))
        if f"{path}.filename" not in told and not (isinstance(filename, str) and _inside(filename, run_dir, chdir)):
            yield Problem(
                f"{path}.filename",
                str(filename) if text is None else text,
                f"a file inside the job's run dir ({run_dir})"
                + ("" if chdir else "; a relative one is the launch dir's, outside it"),
                "write it under the run dir: filename=${hydra.runtime.output_dir}/NAME.log",
            )


def logging_problems(cfg: DictConfig, told: set[str]) -> Iterator[Problem]:
    """Every logging entry that would build what ``BUILDS`` does not hold, set attributes on it
    (``.``), or open a file outside the run dir. Keys in
    ``told`` have their problem already."""
    hydra = cfg.get("hydra")
    if not isinstance(hydra, DictConfig):
        return
    missing = OmegaConf.is_missing(hydra.runtime, "output_dir")
    run_dir = None if missing or not hydra.runtime.output_dir else str(hydra.runtime.output_dir)
    unresolved = list(_unresolved(hydra, told)) if run_dir is not None else []  # launched: all resolves here
    yield from unresolved
    told = told | {p.key for p in unresolved}
    for part in ("job_logging", "hydra_logging"):
        node = OmegaConf.select(hydra, part, throw_on_resolution_failure=False)  # None: the walk tells it
        # Hydra sets job_logging up after it enters the run dir under hydra.job.chdir=true, and
        # hydra_logging in the launching process, before any run dir: a relative file there is the launch dir's.
        chdir = (
            part == "job_logging" and OmegaConf.select(hydra, "job.chdir", throw_on_resolution_failure=False) is True
        )
        for section, allowed in BUILDS.items():
            entries = OmegaConf.select(node, section, throw_on_resolution_failure=False) if node else None
            if not isinstance(entries, DictConfig):
                continue  # none of this section (a value that does not resolve: told by the walk)
            for name in map(str, entries.keys()):
                path = f"hydra.{part}.{section}.{name}"
                yield from _entry_problems(path, allowed, entries._get_node(name), run_dir, chdir, told)


def _unresolved(hydra: DictConfig, told: set[str]) -> Iterator[Problem]:
    """Logging's values and the output subdir that do not resolve here: an ``oc.env`` the job's
    machine may set otherwise (a SLURM node's), under an ``oc.decode`` that builds a handler."""
    from app.checks.walk import resolved_leaves  # walk imports this module: read at call time

    parts = ("job_logging", "hydra_logging", "output_subdir")
    for key, _, _, text in resolved_leaves(hydra, "hydra", skip=[str(k) for k in hydra if k not in parts]):
        if text is not None and key not in told:
            yield Problem(
                key,
                text,
                "a value the launch check can resolve, where it decides what is written",
                "write the value out",
            )
