"""``summary.png``: a sweep's best val acc by each swept key, a panel per key. A numeric key with
many values is an axis (a log one where they span 10x or more); any other key (a head's name, a
grid's few lrs) is a column per value, its jobs side by side in it. Points are never joined (two
jobs at neighbouring values are different trials), each is marked by its job's status, and a job
without a val acc (failed, pruned before its first epoch) is marked on a strip under the plot."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Protocol

from app.plots.canvas import (
    BLUE,
    BROWN,
    GREY,
    GRID,
    INK,
    ORANGE,
    PURPLE,
    RED,
    SCALE,
    Box,
    Canvas,
    padded,
    shown,
    tick_labels,
    ticks,
)

COMPLETED = "completed"
Mark = tuple[tuple[int, int, int], str]  # a colour and a shape
# How each status is marked; any other status (a new one) takes the next of OTHERS, its name in the legend.
MARKS: dict[str, Mark] = {
    COMPLETED: (BLUE, "dot"),
    "failed": (RED, "cross"),
    "pruned": (ORANGE, "down"),
    "stopped": (BROWN, "square"),
    "incomplete": (GREY, "ring"),  # no status.json: still running, or killed
    "unreadable": (GREY, "cross"),  # a run dir app-summary could not read
}
OTHERS: list[Mark] = [(PURPLE, "diamond"), (GREY, "diamond"), (PURPLE, "ring"), (BROWN, "ring")]
COLUMNS_UP_TO = 8  # a numeric key with at most 8 values (a grid) gets a column each, labelled as typed
PANEL_W, PLOT_H, PER_ROW = 420, 200, 3  # a panel's width and plot height; 3 panels a row (1,260 px)
LEFT, RIGHT = 64, 16  # "no acc" and the acc labels on the left; half a value label on the right
UPRIGHT_MAX = 160  # a value label turned upright is at most 160 px (24 characters; longer ones shortened)
NOT_SET = "(not set)"  # a job whose overrides do not name the key (sweeps merged by app-summary)


class SweepJob(Protocol):
    """What ``sweep`` reads of a job (``app.summary.Row``)."""

    job: int
    status: str
    best_val_acc: Optional[float]

    def value(self, key: str) -> Optional[str]: ...


@dataclass(frozen=True)
class SweepPoint:
    """A job's mark, in the PNG's pixels: in the plot at its acc, or on the strip under it."""

    job: int
    status: str
    x: float
    y: float
    on_strip: bool


@dataclass(frozen=True)
class SweepPanel:
    """One swept key's panel, in the PNG's pixels."""

    key: str
    plot: Box
    strip: Box  # where the jobs without a val acc are marked
    x_labels: list[tuple[str, float]]  # (text, x): the key's values (a column's) or round ticks (an axis's)
    points: list[SweepPoint]
    upright: bool  # the value labels turned upright (they would overlap side by side)


@dataclass(frozen=True)
class SweepLayout:
    """What ``sweep`` drew where: the PNG's size, each panel, the legend's box."""

    size: tuple[int, int]
    panels: list[SweepPanel]
    legend: Box


def number(text: Optional[str]) -> Optional[float]:
    """``text`` as a finite number, or None."""
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Axis:
    """A key's x axis: its columns (labels, in order), or numbers on a linear or log scale."""

    columns: list[str]
    log: bool = False
    span: tuple[float, float] = (0.0, 1.0)  # an axis's ends (log10s on a log scale)


def axis(rows: Sequence[SweepJob], key: str) -> Axis:
    """A column per value where the key is not numeric or has at most ``COLUMNS_UP_TO`` values
    (numeric ones in order, the rest as they come), else a number axis."""
    texts = [_text(row, key) for row in rows]
    numbers = [number(t) for t in texts]
    distinct = list(dict.fromkeys(texts))
    if len(distinct) <= COLUMNS_UP_TO or any(n is None for n in numbers):
        if all(number(t) is not None for t in distinct if t != NOT_SET):
            distinct.sort(key=lambda t: (t == NOT_SET, number(t) or 0.0, t))
        return Axis(distinct)
    values = [n for n in numbers if n is not None]
    log = min(values) > 0 and max(values) / min(values) >= 10
    scaled = [math.log10(v) if log else v for v in values]
    a, b = min(scaled), max(scaled)
    return Axis([], log, (a - (b - a) * 0.06, b + (b - a) * 0.06))  # the ends off the frame: 6% of the range


def _text(row: SweepJob, key: str) -> str:
    if not key:
        return "every job"
    value = row.value(key)
    return NOT_SET if value is None else value


def sweep(rows: Sequence[SweepJob], keys: Sequence[str], path: Path) -> SweepLayout:
    """``summary.png``: each job's best val acc by each swept key (see the module's docstring)."""
    keys = list(keys) or [""]  # no key swept: one column of every job
    axes = [axis(rows, key) for key in keys]
    measure = Canvas(1, 1, font_px=11)
    per_row = min(PER_ROW, len(keys))
    rooms = [_label_room(measure, ax) for ax in axes]
    # each row of panels: title 28, plot, strip 4 + 20, value labels 6 + their room, caption 24
    heights = [28 + PLOT_H + 24 + 6 + max(rooms[i : i + per_row]) + 24 for i in range(0, len(keys), per_row)]
    top = 30  # the legend's row
    canvas = Canvas(per_row * PANEL_W, top + sum(heights), font_px=11)
    accs = [row.best_val_acc for row in rows if row.best_val_acc is not None]
    low, high = padded(accs or [0.0, 1.0], 0.05)  # at least 0.05 of acc: ticks 0.01 apart at the finest
    marks = marks_of([row.status for row in rows])
    panels = []
    for index, (key, ax) in enumerate(zip(keys, axes)):
        left, y = (index % per_row) * PANEL_W, top + sum(heights[: index // per_row])
        frame = _frame(canvas, key, ax, (left, y), (low, high))
        across = (frame.plot.left * SCALE, frame.plot.right * SCALE)
        where = _columns(rows, key, ax, across) if ax.columns else _numbers(rows, key, ax, across)
        points = []
        for row, x in zip(rows, where):
            acc = row.best_val_acc
            y = (frame.strip.top + frame.strip.bottom) / 2 * SCALE if acc is None else _y(frame, acc, (low, high))
            _mark(canvas, marks[row.status], x, y)
            points.append(SweepPoint(row.job, row.status, x / SCALE, y / SCALE, acc is None))
        panels.append(replace(frame, points=points))
    legend = _legend(canvas, rows, marks, top)
    return SweepLayout(canvas.save(path), panels, legend)


def marks_of(statuses: Sequence[str]) -> dict[str, Mark]:
    """Each status' mark: its own in ``MARKS``, or the next of ``OTHERS`` (in name order)."""
    others = sorted(set(statuses) - set(MARKS))
    return MARKS | {status: OTHERS[i % len(OTHERS)] for i, status in enumerate(others)}


def _label_room(measure: Canvas, ax: Axis) -> float:
    """The height the value labels need under a panel: a line, or the longest one turned upright."""
    if not ax.columns:
        return 16.0
    widest = max(measure.width(c) for c in ax.columns) / SCALE
    slot = (PANEL_W - LEFT - RIGHT) / len(ax.columns)
    return 16.0 if widest <= slot - 6 else min(widest, UPRIGHT_MAX) + 4


def _y(frame: SweepPanel, acc: float, accs: tuple[float, float]) -> float:
    """``acc``'s height in the plot, drawn at ``SCALE``."""
    low, high = accs
    return (frame.plot.bottom - (acc - low) / (high - low) * (frame.plot.bottom - frame.plot.top)) * SCALE


def _frame(canvas: Canvas, key: str, ax: Axis, corner: tuple[float, float], accs: tuple[float, float]) -> SweepPanel:
    """A panel without its points: the title, the acc axis, the plot's frame, the strip and the key's values."""
    s, draw, font = SCALE, canvas.draw, canvas.font
    left, top = corner
    x0, x1, y0 = (left + LEFT) * s, (left + PANEL_W - RIGHT) * s, (top + 28) * s
    y1 = y0 + PLOT_H * s
    strip = (y1 + 4 * s, y1 + 24 * s)
    low, high = accs
    values = [t for t in ticks(low, high, 5) if -1e-9 <= t <= 1 + 1e-9]  # no acc under 0 or over 1 named
    for value, label in zip(values, tick_labels(values)):
        y = y1 - (value - low) / (high - low) * (y1 - y0)
        draw.line([(x0, y), (x1, y)], fill=GRID, width=s)
        draw.text((x0 - 6 * s, y), label, fill=INK, font=font, anchor="rm")
    draw.rectangle([x0, y0, x1, y1], outline=INK, width=s)
    draw.rectangle([x0, strip[0], x1, strip[1]], outline=GRID, width=s)
    draw.text((x0 - 6 * s, sum(strip) / 2), "no acc", fill=INK, font=font, anchor="rm")
    title = "best val acc" + (f" by {key}" if key else " (no key swept)")
    draw.text(((x0 + x1) / 2, (top + 8) * s), canvas.fit(title, x1 - x0), fill=INK, font=font, anchor="ma")
    x_labels, upright = _value_labels(canvas, ax, (x0, x1), strip[1] + 6 * s)
    for _, x in x_labels:  # a guide down each column or tick, through the plot and the strip
        draw.line([(x * s, y0 + s), (x * s, y1 - s)], fill=GRID, width=s)
        draw.line([(x * s, strip[0] + s), (x * s, strip[1] - s)], fill=GRID, width=s)
    caption = "" if not key else key + (" (log scale)" if ax.log else "")
    below = strip[1] + 6 * s + (_label_room(canvas, ax) + 4) * s
    draw.text(((x0 + x1) / 2, below), canvas.fit(caption, x1 - x0), fill=INK, font=font, anchor="ma")
    return SweepPanel(key, shown([x0, y0, x1, y1]), shown([x0, strip[0], x1, strip[1]]), x_labels, [], upright)


def _columns(rows: Sequence[SweepJob], key: str, ax: Axis, across: tuple[float, float]) -> list[float]:
    """Each job's x: its value's column, the column's jobs side by side in job order (at most 12
    px apart, within 70% of the column), so that no two marks hide each other."""
    x0, x1 = across
    slot = (x1 - x0) / len(ax.columns)
    texts = [_text(row, key) for row in rows]
    where = []
    for index, text in enumerate(texts):
        column = ax.columns.index(text)
        together = [i for i, t in enumerate(texts) if t == text]
        gap = min(12 * SCALE, slot * 0.7 / len(together))
        rank = together.index(index)
        where.append(x0 + slot * (column + 0.5) + (rank - (len(together) - 1) / 2) * gap)
    return where


def _numbers(rows: Sequence[SweepJob], key: str, ax: Axis, across: tuple[float, float]) -> list[float]:
    x0, x1 = across
    a, b = ax.span
    return [x0 + (_scaled(number(row.value(key)) or 0.0, ax) - a) / (b - a) * (x1 - x0) for row in rows]


def _scaled(value: float, ax: Axis) -> float:
    return math.log10(value) if ax.log else value


def _value_labels(
    canvas: Canvas, ax: Axis, across: tuple[float, float], top: float
) -> tuple[list[tuple[str, float]], bool]:
    """The values under the strip: each column's, side by side or turned upright where they would
    overlap; an axis' round ticks (decades on a log axis)."""
    s, (x0, x1) = SCALE, across
    if ax.columns:
        slot = (x1 - x0) / len(ax.columns)
        upright = max(canvas.width(c) for c in ax.columns) > slot - 6 * s
        placed = [(c, x0 + slot * (i + 0.5)) for i, c in enumerate(ax.columns)]
        for text, x in placed:
            if upright:
                canvas.upright(canvas.fit(text, UPRIGHT_MAX * s), x, top)
            else:
                canvas.draw.text((x, top), text, fill=INK, font=canvas.font, anchor="ma")
        return [(text, x / s) for text, x in placed], upright
    a, b = ax.span
    marks = _log_ticks(a, b) if ax.log else list(zip(tick_labels(ticks(a, b)), ticks(a, b)))
    placed = [(text, x0 + (value - a) / (b - a) * (x1 - x0)) for text, value in marks]
    for text, x in placed:
        canvas.draw.line([(x, top - 6 * s), (x, top - 2 * s)], fill=INK, width=s)
        canvas.draw.text((x, top), text, fill=INK, font=canvas.font, anchor="ma")
    return [(text, x / s) for text, x in placed], False


def _log_ticks(a: float, b: float) -> list[tuple[str, float]]:
    """Decades from ``10**a`` to ``10**b`` (log10s), every other one where more than 6 show."""
    powers = list(range(math.ceil(a), math.floor(b) + 1))
    step = math.ceil(len(powers) / 6) or 1
    if len(powers) < 2:  # less than a decade: round ticks on the lr itself
        values = ticks(10**a, 10**b)
        return [(text, math.log10(v)) for text, v in zip(tick_labels(values), values) if v > 0]
    return [(f"1e{p}", float(p)) for p in powers[::step]]


def _mark(canvas: Canvas, mark: Mark, x: float, y: float) -> None:
    """A mark 9 px across: a dot, a ring, a cross, a downward triangle, a square or a diamond."""
    colour, shape = mark
    draw, r = canvas.draw, 4.5 * SCALE
    if shape == "dot":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif shape == "ring":
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2 * SCALE)
    elif shape == "cross":
        draw.line([(x - r, y - r), (x + r, y + r)], fill=colour, width=2 * SCALE)
        draw.line([(x - r, y + r), (x + r, y - r)], fill=colour, width=2 * SCALE)
    elif shape == "down":
        draw.polygon([(x - r, y - r), (x + r, y - r), (x, y + r)], fill=colour)
    elif shape == "square":
        draw.rectangle([x - r * 0.8, y - r * 0.8, x + r * 0.8, y + r * 0.8], fill=colour)
    else:
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=colour)


def _legend(canvas: Canvas, rows: Sequence[SweepJob], marks: dict[str, Mark], top: int) -> Box:
    """A row above the panels: each status the jobs have (completed first), its mark and count."""
    s = SCALE
    statuses = sorted({row.status for row in rows}, key=lambda t: (t != COMPLETED, t))
    entries = [f"{t} ({sum(row.status == t for row in rows)})" for t in statuses]
    total = sum(14 * s + canvas.width(text) + 18 * s for text in entries) - 18 * s
    x, y = (canvas.image.width - total) / 2, top / 2 * s
    for status, text in zip(statuses, entries):
        _mark(canvas, marks[status], x + 5 * s, y)
        canvas.draw.text((x + 14 * s, y), text, fill=INK, font=canvas.font, anchor="lm")
        x += 14 * s + canvas.width(text) + 18 * s
    return shown([(canvas.image.width - total) / 2, y - 8 * s, (canvas.image.width + total) / 2, y + 8 * s])
