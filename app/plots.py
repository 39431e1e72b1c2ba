"""Every picture the app draws, with Pillow: a run's ``curves.png``, app-evaluate's
``confusion.png`` and a sweep's ``summary.png``. Torch-free (Hydra loads the sweep summary
before any job). Pillow is a dependency of torchvision already: importing matplotlib and drawing
its first figure cost 0.6 s + 0.4 s per run on the 2-core CPU, then 0.1 s per epoch; this takes
16 ms to import and about 10 ms per epoch."""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Protocol

from app.files import write_atomically

COLOURS = {"train": (31, 119, 180), "val": (255, 127, 14), "ema_val": (44, 160, 44)}
SCALE = 2  # drawn at twice the size, then downsampled: smooth lines without an antialiasing engine


def curves(rows: list[dict[str, Any]], path: Path, best_epoch: Optional[int]) -> None:
    """Loss and accuracy per epoch, train against val (and the EMA's val), best epoch marked."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = 500 * SCALE, 380 * SCALE
    image = Image.new("RGB", (2 * width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12 * SCALE)
    epochs = [int(row["epoch"]) for row in rows]
    for panel, (metric, title) in enumerate([("loss", "cross-entropy loss"), ("acc", "accuracy")]):
        series = {
            split: [
                (e, float(row[f"{split}_{metric}"]))
                for e, row in zip(epochs, rows)
                if row.get(f"{split}_{metric}") not in (None, "")
            ]
            for split in COLOURS
        }
        # the legend where the curves are not: top right for a falling loss, bottom right for accuracy
        _panel(
            draw,
            font,
            panel * width,
            width,
            height,
            title,
            {k: v for k, v in series.items() if v},
            best_epoch,
            legend_at_top=metric == "loss",
        )
    small = image.resize((image.width // SCALE, image.height // SCALE), Image.Resampling.LANCZOS)
    write_atomically(path, lambda tmp: small.save(tmp, format="PNG"))


def confusion(confusion: list[list[int]], names: list[str], path: Path) -> None:
    """The confusion matrix as a heat map: true class down, predicted class across, counts in cells."""
    from PIL import Image, ImageDraw, ImageFont

    classes, s = len(confusion), SCALE
    cell = max(14, min(48, 640 // classes)) * s
    label = max(len(name) for name in names) * 7 * s + 16 * s
    left, top = label + 24 * s, 36 * s
    width, height = left + classes * cell + 16 * s, top + classes * cell + label + 24 * s
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11 * s)
    ink = (40, 40, 40)
    draw.text(
        (width / 2, 10 * s), "confusion matrix (rows: true class, columns: predicted)", fill=ink, font=font, anchor="ma"
    )
    for row in range(classes):
        total = max(sum(confusion[row]), 1)
        for col in range(classes):
            count = confusion[row][col]
            shade = int(255 * (1 - count / total))  # each row as fractions of its class: white 0, blue all
            x, y = left + col * cell, top + row * cell
            draw.rectangle([x, y, x + cell, y + cell], fill=(shade, shade, 255), outline=(220, 220, 220))
            if count and cell >= 20 * s:
                draw.text(
                    (x + cell / 2, y + cell / 2),
                    str(count),
                    fill="white" if shade < 128 else ink,
                    font=font,
                    anchor="mm",
                )
        draw.text((left - 6 * s, top + row * cell + cell / 2), names[row], fill=ink, font=font, anchor="rm")
    for col in range(classes):  # the predicted classes' names, under their columns
        text = Image.new("RGBA", (label, 14 * s), (255, 255, 255, 0))
        ImageDraw.Draw(text).text((label, 7 * s), names[col], fill=ink, font=font, anchor="rm")
        rotated = text.rotate(90, expand=True)
        image.paste(rotated, (int(left + col * cell + cell / 2 - 7 * s), top + classes * cell + 6 * s), rotated)
    small = image.resize((width // s, height // s), Image.Resampling.LANCZOS)
    write_atomically(path, lambda tmp: small.save(tmp, format="PNG"))


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 x 10^k apart) from ``low`` to ``high``."""
    span = (high - low) or 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _panel(
    draw: Any,
    font: Any,
    left: int,
    width: int,
    height: int,
    title: str,
    series: dict[str, list[tuple[int, float]]],
    best_epoch: Optional[int],
    legend_at_top: bool,
) -> None:
    s = SCALE
    x0, x1, y0, y1 = left + 62 * s, left + width - 14 * s, 28 * s, height - 44 * s  # the plot area
    values = [v for points in series.values() for _, v in points] or [0.0, 1.0]
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or 0.05
    low, high = low - pad, high + pad
    first, last = 1, max([e for points in series.values() for e, _ in points] + [2])

    def xy(epoch: float, value: float) -> tuple[float, float]:
        return (x0 + (epoch - first) / (last - first) * (x1 - x0), y1 - (value - low) / (high - low) * (y1 - y0))

    grid, ink = (228, 228, 228), (40, 40, 40)
    for value in ticks(low, high, 6):
        y = xy(first, value)[1]
        draw.line([(x0, y), (x1, y)], fill=grid, width=s)
        draw.text((x0 - 6 * s, y), f"{value:.3g}", fill=ink, font=font, anchor="rm")
    for epoch in ticks(first, last, 8):
        if float(epoch).is_integer():
            x = xy(epoch, low)[0]
            draw.line([(x, y0), (x, y1)], fill=grid, width=s)
            draw.text((x, y1 + 6 * s), str(int(epoch)), fill=ink, font=font, anchor="ma")
    draw.rectangle([x0, y0, x1, y1], outline=ink, width=s)
    draw.text(((x0 + x1) / 2, y1 + 24 * s), "epoch", fill=ink, font=font, anchor="ma")
    draw.text(((x0 + x1) / 2, 8 * s), title, fill=ink, font=font, anchor="ma")
    if best_epoch is not None:
        x = xy(best_epoch, low)[0]
        for y in range(y0, y1, 10 * s):  # dashed
            draw.line([(x, y), (x, min(y + 5 * s, y1))], fill=(120, 120, 120), width=2 * s)
    for split, points in series.items():
        line = [xy(e, v) for e, v in points]
        if len(line) > 1:
            draw.line(line, fill=COLOURS[split], width=2 * s, joint="curve")
        for x, y in line if len(line) <= 60 else []:
            draw.ellipse([x - 3 * s, y - 3 * s, x + 3 * s, y + 3 * s], fill=COLOURS[split])
    labels = [(split.replace("_", " "), COLOURS[split]) for split in series]
    labels += [(f"best (epoch {best_epoch})", (120, 120, 120))] if best_epoch is not None else []
    top = y0 + 6 * s if legend_at_top else y1 - (8 + 18 * len(labels)) * s
    draw.rectangle([x1 - 158 * s, top, x1 - 6 * s, top + (4 + 18 * len(labels)) * s], fill="white", outline=grid)
    for i, (label, colour) in enumerate(labels):
        y = top + (11 + 18 * i) * s
        draw.line([(x1 - 150 * s, y), (x1 - 128 * s, y)], fill=colour, width=3 * s)
        draw.text((x1 - 122 * s, y), label, fill=ink, font=font, anchor="lm")


class SweepJob(Protocol):
    """What ``sweep`` reads of a job (``app.summary.Row``)."""

    job: int
    best_val_acc: Optional[float]

    def value(self, key: str) -> Optional[str]: ...


def _number(text: Optional[str]) -> Optional[float]:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


INK, GRID, BLUE, GREY = (40, 40, 40), (228, 228, 228), (31, 119, 180), (170, 170, 170)


def sweep(rows: Sequence[SweepJob], keys: Sequence[str], path: Path) -> None:
    """``summary.png``: best val acc against each numeric swept key (a log axis where the values
    span 10x or more, as learning rates do), or a bar per job where no swept key is numeric."""
    from PIL import Image, ImageDraw, ImageFont

    s = 2  # drawn at twice the size, then downsampled: smooth lines without antialiasing
    done = [r for r in rows if r.best_val_acc is not None]
    numeric = [k for k in keys if done and all(_number(r.value(k)) is not None for r in done)]
    panels = numeric or ["job"]
    width, height = 420 * s, 320 * s
    image = Image.new("RGB", (width * len(panels), height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11 * s)
    accs = [r.best_val_acc or 0.0 for r in done] or [0.0, 1.0]
    low, high = min(0.0, min(accs)), max(accs) * 1.08 or 1.0
    for index, key in enumerate(panels):
        left = index * width
        box = (left + 56 * s, left + width - 14 * s, 28 * s, height - 56 * s)
        x0, x1, y0, y1 = box
        for tick in ticks(low, high):
            y = y1 - (tick - low) / (high - low) * (y1 - y0)
            draw.line([(x0, y), (x1, y)], fill=GRID, width=s)
            draw.text((x0 - 6 * s, y), f"{tick:.2g}", fill=INK, font=font, anchor="rm")
        draw.rectangle([x0, y0, x1, y1], outline=INK, width=s)
        draw.text(((x0 + x1) / 2, 8 * s), f"best val acc by {key}", fill=INK, font=font, anchor="ma")
        if key == "job":
            _job_bars(draw, font, rows, box, (low, high), s)
        else:
            _by_value(draw, font, done, key, box, (low, high), s)
    small = image.resize((image.width // s, image.height // s), Image.Resampling.LANCZOS)
    write_atomically(path, lambda tmp: small.save(tmp, format="PNG"))


Box = tuple[float, float, float, float]  # x0, x1, y0, y1: a panel's plot area


def _job_bars(draw: Any, font: Any, rows: Sequence[SweepJob], box: Box, accs: tuple[float, float], s: int) -> None:
    """A bar per job, failed ones as a grey stub."""
    x0, x1, y0, y1 = box
    low, high = accs
    slot = (x1 - x0) / max(len(rows), 1)
    for i, row in enumerate(rows):
        bx = x0 + slot * (i + 0.2), x0 + slot * (i + 0.8)
        value = row.best_val_acc
        top = y1 - (value - low) / (high - low) * (y1 - y0) if value is not None else y1 - 4 * s
        draw.rectangle([bx[0], top, bx[1], y1], fill=BLUE if value is not None else GREY)
        draw.text(((bx[0] + bx[1]) / 2, y1 + 6 * s), str(row.job), fill=INK, font=font, anchor="ma")
    draw.text(((x0 + x1) / 2, y1 + 24 * s), "job (grey: not completed)", fill=INK, font=font, anchor="ma")


def _by_value(
    draw: Any, font: Any, done: Sequence[SweepJob], key: str, box: Box, accs: tuple[float, float], s: int
) -> None:
    """Each completed job's best val acc at its value of ``key``, the best at each value joined."""
    x0, x1, y0, y1 = box
    low, high = accs
    values = [_number(r.value(key)) or 0.0 for r in done]
    log = min(values) > 0 and (max(values) / min(values) >= 10 or len(set(values)) == 1)
    axis = [math.log10(v) if log else v for v in values]
    a, b = min(axis), max(axis)
    a, b = (a - 0.5, b + 0.5) if a == b else (a - (b - a) * 0.06, b + (b - a) * 0.06)

    def xy(value: float, acc: float) -> tuple[float, float]:
        x = x0 + ((math.log10(value) if log else value) - a) / (b - a) * (x1 - x0)
        return x, y1 - (acc - low) / (high - low) * (y1 - y0)

    for tick in ticks(a, b):
        x = x0 + (tick - a) / (b - a) * (x1 - x0)
        draw.line([(x, y0), (x, y1)], fill=GRID, width=s)
        draw.text((x, y1 + 6 * s), f"{10**tick:.2g}" if log else f"{tick:.3g}", fill=INK, font=font, anchor="ma")
    best_at: dict[float, float] = {}
    for v, r in zip(values, done):
        best_at[v] = max(best_at.get(v, 0.0), r.best_val_acc or 0.0)
    line = [xy(v, best_at[v]) for v in sorted(best_at)]
    if len(line) > 1:  # the best of the jobs at each value
        draw.line(line, fill=BLUE, width=2 * s)
    for v, r in zip(values, done):
        x, y = xy(v, r.best_val_acc or 0.0)
        draw.ellipse([x - 4 * s, y - 4 * s, x + 4 * s, y + 4 * s], fill=BLUE)
    draw.text(((x0 + x1) / 2, y1 + 24 * s), key + (" (log scale)" if log else ""), fill=INK, font=font, anchor="ma")


def lr_range(lrs: Sequence[float], losses: Sequence[float], suggested: float, path: Path) -> None:
    """The learning-rate range test: the smoothed training loss against the lr (log axis), the
    suggested lr marked."""
    from PIL import Image, ImageDraw, ImageFont

    s = SCALE
    width, height = 560 * s, 380 * s
    image = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=12 * s)
    x0, x1, y0, y1 = 62 * s, width - 14 * s, 28 * s, height - 44 * s
    first, last = math.log10(lrs[0]), math.log10(lrs[-1])
    low, high = min(losses), max(losses)
    pad = (high - low) * 0.08 or 0.05
    low, high = low - pad, high + pad

    def xy(lr: float, value: float) -> tuple[float, float]:
        x = x0 + (math.log10(lr) - first) / ((last - first) or 1.0) * (x1 - x0)
        return x, y1 - (value - low) / (high - low) * (y1 - y0)

    grid, ink = (228, 228, 228), (40, 40, 40)
    for value in ticks(low, high, 6):
        y = xy(lrs[0], value)[1]
        draw.line([(x0, y), (x1, y)], fill=grid, width=s)
        draw.text((x0 - 6 * s, y), f"{value:.3g}", fill=ink, font=font, anchor="rm")
    for power in range(math.ceil(first), math.floor(last) + 1):  # a line per decade
        x = xy(10.0**power, low)[0]
        draw.line([(x, y0), (x, y1)], fill=grid, width=s)
        draw.text((x, y1 + 6 * s), f"1e{power}", fill=ink, font=font, anchor="ma")
    draw.rectangle([x0, y0, x1, y1], outline=ink, width=s)
    draw.text(((x0 + x1) / 2, y1 + 24 * s), "learning rate (log scale)", fill=ink, font=font, anchor="ma")
    draw.text(
        ((x0 + x1) / 2, 8 * s), "training loss (smoothed) over the lr range test", fill=ink, font=font, anchor="ma"
    )
    draw.line([xy(lr, v) for lr, v in zip(lrs, losses)], fill=COLOURS["train"], width=2 * s, joint="curve")
    x, y = xy(suggested, losses[min(range(len(lrs)), key=lambda i: abs(lrs[i] - suggested))])
    draw.ellipse([x - 5 * s, y - 5 * s, x + 5 * s, y + 5 * s], outline=COLOURS["val"], width=2 * s)
    draw.text((x + 8 * s, y - 8 * s), f"suggested {suggested:.2g}", fill=COLOURS["val"], font=font, anchor="ld")
    small = image.resize((width // s, height // s), Image.Resampling.LANCZOS)
    write_atomically(path, lambda tmp: small.save(tmp, format="PNG"))
