"""``curves.png``: a run's loss and accuracy per epoch, train against val (and the EMA's val), the
best epoch marked; readable from 1 epoch to 1,000."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from app.plots.canvas import (
    BLUE,
    GREEN,
    GRID,
    INK,
    ORANGE,
    PURPLE,
    SCALE,
    Box,
    Canvas,
    padded,
    shown,
    tick_step,
    value_grid,
)

COLOURS = {"train": BLUE, "val": ORANGE, "ema_val": GREEN}
BEST = PURPLE  # the best epoch's dashed line: a colour no curve has, so it reads as a marker
PANEL_W, HEIGHT = 500, 400  # each panel, in the PNG's pixels
# the plot area inside a panel: room for 6-character tick labels on the left (62 px), half a tick
# label on the right (20 px), the legend row and the title above (52 px), ticks and "epoch" below
LEFT, RIGHT, TOP, BOTTOM = 62, 20, 52, 44
DOTS_UP_TO = 60  # epochs drawn as dots too: 60 dots fit 420 px with 7 px between them


@dataclass(frozen=True)
class CurvesPanel:
    """Where one panel drew what, in the PNG's pixels."""

    metric: str  # "loss" or "acc"
    plot: Box  # the plot area
    best_x: Optional[float]  # the best-epoch marker's x
    x_ticks: list[tuple[int, float]]  # (epoch, x) of each labelled epoch
    y_ticks: list[tuple[str, float]]  # (label, y) of each labelled value


@dataclass(frozen=True)
class CurvesLayout:
    """What ``curves`` drew where: the PNG's size, each panel, the legend's box."""

    size: tuple[int, int]
    panels: list[CurvesPanel]
    legend: Box


def curves(rows: Sequence[dict[str, Any]], path: Path, best_epoch: Optional[int]) -> CurvesLayout:
    """Loss and accuracy per epoch, train against val (and the EMA's val), best epoch marked."""
    canvas = Canvas(2 * PANEL_W, HEIGHT)
    drawn = []
    for panel, (metric, title) in enumerate([("loss", "cross-entropy loss"), ("acc", "accuracy")]):
        series = {split: _points(rows, f"{split}_{metric}") for split in COLOURS}
        series = {split: points for split, points in series.items() if points}
        drawn.append(_panel(canvas, panel * PANEL_W, metric, title, series, best_epoch))
    splits = [split for split in COLOURS if any(_points(rows, f"{split}_{m}") for m in ("loss", "acc"))]
    legend = _legend(canvas, splits, best_epoch)
    return CurvesLayout(canvas.save(path), drawn, legend)


def _points(rows: Sequence[dict[str, Any]], column: str) -> list[tuple[int, float]]:
    """``column``'s finite values by epoch (a NaN or an empty cell left out)."""
    found = []
    for row in rows:
        try:
            value = float(row[column])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(value):
            found.append((int(row["epoch"]), value))
    return found


def epoch_range(epochs: Sequence[int]) -> tuple[float, float]:
    """The x axis: the epochs, half an epoch (or 2% of them, past 50) beyond either end, so a dot or
    the best-epoch line at the first or last epoch is drawn inside the frame, never on it."""
    first, last = min(epochs, default=1), max(epochs, default=1)
    pad = max(0.5, (last - first) * 0.02)
    return first - pad, last + pad


def epoch_ticks(first: int, last: int) -> list[int]:
    """Whole epochs 1, 2 or 5 x 10^k apart (at most 8 of them), never one twice."""
    step = max(1, round(tick_step(first, last, 8)))
    marks = list(range(math.ceil(first / step) * step, last + 1, step))
    if not marks or marks[0] - first >= step / 2:  # the first epoch too, where it has room
        marks.insert(0, first)
    return marks


def _panel(
    canvas: Canvas,
    left: int,
    metric: str,
    title: str,
    series: dict[str, list[tuple[int, float]]],
    best_epoch: Optional[int],
) -> CurvesPanel:
    s, draw, font = SCALE, canvas.draw, canvas.font
    x0, x1, y0, y1 = (left + LEFT) * s, (left + PANEL_W - RIGHT) * s, TOP * s, (HEIGHT - BOTTOM) * s
    epochs = [e for points in series.values() for e, _ in points] + ([best_epoch] if best_epoch else [])
    first, last = epoch_range(epochs)
    # accuracy spans at least 0.02 and loss 0.05: ticks no finer than 0.005 (a flat 1-epoch curve too)
    low, high = padded(
        [v for points in series.values() for _, v in points] or [0.0, 1.0], 0.02 if metric == "acc" else 0.05
    )

    def xy(epoch: float, value: float) -> tuple[float, float]:
        return x0 + (epoch - first) / (last - first) * (x1 - x0), y1 - (value - low) / (high - low) * (y1 - y0)

    y_ticks = value_grid(draw, low, high, lambda v: xy(first, v)[1], (x0, x1), font, s)
    x_ticks = [(e, xy(e, low)[0]) for e in epoch_ticks(min(epochs, default=1), max(epochs, default=1))]
    for epoch, x in x_ticks:
        draw.line([(x, y0), (x, y1)], fill=GRID, width=s)
        draw.text((x, y1 + 6 * s), str(epoch), fill=INK, font=font, anchor="ma")
    draw.rectangle([x0, y0, x1, y1], outline=INK, width=s)
    draw.text(((x0 + x1) / 2, y1 + 24 * s), "epoch", fill=INK, font=font, anchor="ma")
    draw.text(((x0 + x1) / 2, 32 * s), title, fill=INK, font=font, anchor="ma")
    best_x = xy(best_epoch, low)[0] if best_epoch is not None else None
    if best_x is not None:
        for y in range(int(y0) + s, int(y1), 10 * s):  # dashed, 5 px on and 5 off
            draw.line([(best_x, y), (best_x, min(y + 5 * s, y1 - s))], fill=BEST, width=2 * s)
    _draw_series(canvas, {split: [xy(e, v) for e, v in points] for split, points in series.items()})
    if len({e for points in series.values() for e, _ in points}) == 1:  # one epoch: its values, written
        _values_beside(canvas, [(*xy(*points[0]), points[0][1], COLOURS[k]) for k, points in series.items()])
    return CurvesPanel(
        metric,
        shown([x0, y0, x1, y1]),
        None if best_x is None else best_x / s,
        [(e, x / s) for e, x in x_ticks],
        [(label, y / s) for label, y in y_ticks],
    )


def _draw_series(canvas: Canvas, lines: dict[str, list[tuple[float, float]]]) -> None:
    s = SCALE
    for split, line in lines.items():
        if len(line) > 1:
            canvas.draw.line(line, fill=COLOURS[split], width=2 * s, joint="curve")
        for x, y in line if len(line) <= DOTS_UP_TO else []:
            canvas.draw.ellipse([x - 3 * s, y - 3 * s, x + 3 * s, y + 3 * s], fill=COLOURS[split])


def _values_beside(canvas: Canvas, points: list[tuple[float, float, float, tuple[int, int, int]]]) -> None:
    """Each point's value to its right, pushed apart to one line each where they would overlap."""
    s, line = SCALE, 16 * SCALE
    below = -math.inf
    for x, y, value, colour in sorted(points, key=lambda p: p[1]):
        y = max(y, below + line)
        canvas.draw.text((x + 9 * s, y), f"{value:.4g}", fill=colour, font=canvas.font, anchor="lm")
        below = y


def _legend(canvas: Canvas, splits: list[str], best_epoch: Optional[int]) -> Box:
    """One row above both panels (never over a curve): a line sample and a name per entry."""
    s, draw, font = SCALE, canvas.draw, canvas.font
    entries = [(split.replace("_", " "), COLOURS[split]) for split in splits]
    entries += [(f"best: epoch {best_epoch}", BEST)] if best_epoch is not None else []
    sample, gap, after = 22 * s, 6 * s, 20 * s  # a 22 px line, 6 px to its name, 20 px to the next entry
    total = sum(sample + gap + canvas.width(text) + after for text, _ in entries) - after
    x, y = (canvas.image.width - total) / 2, 14 * s
    for text, colour in entries:
        if colour == BEST:
            for dx in range(0, sample, 8 * s):
                draw.line([(x + dx, y), (x + dx + 4 * s, y)], fill=colour, width=3 * s)
        else:
            draw.line([(x, y), (x + sample, y)], fill=colour, width=3 * s)
        draw.text((x + sample + gap, y), text, fill=INK, font=font, anchor="lm")
        x += sample + gap + canvas.width(text) + after
    return shown([(canvas.image.width - total) / 2, y - 9 * s, (canvas.image.width + total) / 2, y + 9 * s])
