"""``lr_find.png`` (app-lr-find): the smoothed training loss against the lr, on a log axis, with the
suggested lr marked."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.plots.canvas import BLUE, GRID, INK, ORANGE, SCALE, Box, Canvas, padded, shown, value_grid

WIDTH, HEIGHT = 560, 380
# the plot area: 6-character loss labels on the left (62 px), half an lr label right (24 px)
LEFT, RIGHT, TOP, BOTTOM = 62, 24, 28, 44
MANTISSAS = [(1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)]  # ticks a decade apart, then finer, for 3 or more


@dataclass(frozen=True)
class LrRangeLayout:
    """What ``lr_range`` drew where, in the PNG's pixels."""

    size: tuple[int, int]
    plot: Box
    x_ticks: list[tuple[str, float]]  # (label, x)
    y_ticks: list[tuple[str, float]]  # (label, y)
    suggested: tuple[float, float]  # the ring's centre
    note: Box  # "suggested ..." written beside it


def lr_ticks(first: float, last: float) -> list[tuple[str, float]]:
    """Round lrs between ``10**first`` and ``10**last`` (log10s): decades, or 1-2-5 (or 1-9) within
    them where fewer than 3 decades show, as ``(label, log10 lr)``."""
    found: list[tuple[str, float]] = []
    for mantissas in MANTISSAS:
        found = [
            (f"{m}e{power}", math.log10(m) + power)
            for power in range(math.floor(first), math.ceil(last) + 1)
            for m in mantissas
            if first <= math.log10(m) + power <= last
        ]
        if len(found) >= 3:
            break
    return found


def lr_range(lrs: Sequence[float], losses: Sequence[float], suggested: float, path: Path) -> LrRangeLayout:
    """The learning-rate range test: the smoothed training loss against the lr (log axis), the
    suggested lr marked."""
    s = SCALE
    canvas = Canvas(WIDTH, HEIGHT)
    draw, font = canvas.draw, canvas.font
    x0, x1, y0, y1 = LEFT * s, (WIDTH - RIGHT) * s, TOP * s, (HEIGHT - BOTTOM) * s
    logs = [math.log10(lr) for lr in lrs]
    span = (max(logs) - min(logs)) or 1.0
    first, last = min(logs) - span * 0.03, max(logs) + span * 0.03  # the ends off the frame: 3% of the range
    low, high = padded([v for v in losses if math.isfinite(v)] or [0.0, 1.0], 0.05)

    def xy(log_lr: float, value: float) -> tuple[float, float]:
        return x0 + (log_lr - first) / (last - first) * (x1 - x0), y1 - (value - low) / (high - low) * (y1 - y0)

    y_ticks = value_grid(draw, low, high, lambda v: xy(first, v)[1], (x0, x1), font, s)
    x_ticks = [(label, xy(log, low)[0]) for label, log in lr_ticks(first, last)]
    for label, x in x_ticks:
        draw.line([(x, y0), (x, y1)], fill=GRID, width=s)
        draw.text((x, y1 + 6 * s), label, fill=INK, font=font, anchor="ma")
    draw.rectangle([x0, y0, x1, y1], outline=INK, width=s)
    draw.text(((x0 + x1) / 2, y1 + 24 * s), "learning rate (log scale)", fill=INK, font=font, anchor="ma")
    title = "training loss (smoothed) over the lr range test"
    draw.text(((x0 + x1) / 2, 8 * s), title, fill=INK, font=font, anchor="ma")
    line = [xy(log, v) for log, v in zip(logs, losses) if math.isfinite(v)]
    draw.line(line, fill=BLUE, width=2 * s, joint="curve")
    nearest = min(range(len(lrs)), key=lambda i: abs(lrs[i] - suggested))
    x, y = xy(math.log10(suggested), losses[nearest])
    draw.ellipse([x - 5 * s, y - 5 * s, x + 5 * s, y + 5 * s], outline=ORANGE, width=2 * s)
    note = _note(canvas, f"suggested {suggested:.2g}", (x, y), (x0, x1, y0, y1))
    return LrRangeLayout(
        canvas.save(path),
        shown([x0, y0, x1, y1]),
        [(label, x / s) for label, x in x_ticks],
        [(label, y / s) for label, y in y_ticks],
        (x / s, y / s),
        note,
    )


def _note(canvas: Canvas, text: str, at: tuple[float, float], plot: tuple[float, float, float, float]) -> Box:
    """``text`` beside ``at``, off the curve, which falls through the suggestion: above right of it,
    or below left where it would cross the frame's right edge (and the other way up where that
    would cross the top or the bottom)."""
    s, (x, y), (x0, x1, y0, y1) = SCALE, at, plot
    width, height = canvas.width(text), 14 * s
    right = x + 8 * s + width <= x1 - 4 * s or x - 8 * s - width < x0 + 4 * s
    fits_up, fits_down = y - 8 * s - height >= y0 + 4 * s, y + 8 * s + height <= y1 - 4 * s
    up = (right and fits_up) or not fits_down
    left = x + 8 * s if right else x - 8 * s - width
    top = y - 8 * s - height if up else y + 8 * s
    canvas.draw.text((left, top), text, fill=ORANGE, font=canvas.font, anchor="la")
    return shown([left, top, left + width, top + height])
