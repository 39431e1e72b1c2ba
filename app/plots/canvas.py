"""What every picture shares: a canvas drawn at twice its size, the atomic save, round ticks and
their labels, text fitted to a width or turned upright, and the plot-area box a layout reports."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.files import write_atomically

SCALE = 2  # drawn at twice the size, then downsampled: smooth lines without an antialiasing engine
INK, GRID, WHITE = (40, 40, 40), (228, 228, 228), (255, 255, 255)
# matplotlib's tab10, the colours people read plots in: blue, orange, green, red, purple, brown, grey
BLUE, ORANGE, GREEN, RED = (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)
PURPLE, BROWN, GREY = (148, 103, 189), (140, 86, 75), (127, 127, 127)
ELLIPSIS = "\u2026"


@dataclass(frozen=True)
class Box:
    """A rectangle in the saved PNG's pixels (``left <= x <= right``, ``top <= y <= bottom``)."""

    left: float
    top: float
    right: float
    bottom: float

    def holds(self, x: float, y: float) -> bool:
        return self.left <= x <= self.right and self.top <= y <= self.bottom

    def meets(self, other: "Box") -> bool:
        """Whether the two overlap (touching edges do not count)."""
        return not (
            self.right <= other.left or other.right <= self.left or self.bottom <= other.top or other.bottom <= self.top
        )


def shown(box: Sequence[float]) -> Box:
    """A box drawn at ``SCALE`` (``x0, y0, x1, y1``) in the saved PNG's pixels."""
    x0, y0, x1, y1 = (v / SCALE for v in box)
    return Box(x0, y0, x1, y1)


class Canvas:
    """A white picture of ``width`` x ``height`` (the saved PNG's pixels), drawn at ``SCALE``."""

    def __init__(self, width: float, height: float, font_px: int = 12) -> None:
        from PIL import Image, ImageDraw, ImageFont

        self.image = Image.new("RGB", (int(width) * SCALE, int(height) * SCALE), WHITE)
        self.draw: Any = ImageDraw.Draw(self.image)
        self.font: Any = ImageFont.load_default(size=font_px * SCALE)
        self.font_px = font_px

    def width(self, text: str) -> float:
        """``text``'s width, drawn at ``SCALE``."""
        return float(self.draw.textlength(text, font=self.font))

    def fit(self, text: str, width: float) -> str:
        """``text``, shortened with an ellipsis in the middle until it is at most ``width`` wide."""
        if self.width(text) <= width:
            return text
        keep = len(text)
        while keep > 1 and self.width(text[: (keep + 1) // 2] + ELLIPSIS + text[len(text) - keep // 2 :]) > width:
            keep -= 1
        return text[: (keep + 1) // 2] + ELLIPSIS + text[len(text) - keep // 2 :]

    def upright(self, text: str, x: float, top: float) -> None:
        """``text`` turned a quarter left (read bottom to top), centred on ``x``, its end at ``top``."""
        from PIL import Image, ImageDraw

        line = int(self.font_px * 1.4 * SCALE)  # a line of text: 1.4 font sizes, room for descenders
        strip = Image.new("RGBA", (int(self.width(text)) + SCALE, line), (255, 255, 255, 0))
        ImageDraw.Draw(strip).text((strip.width, line / 2), text, fill=INK, font=self.font, anchor="rm")
        turned = strip.rotate(90, expand=True)
        self.image.paste(turned, (int(x - line / 2), int(top)), turned)

    def save(self, path: Path) -> tuple[int, int]:
        """The picture downsampled to its size and written atomically as ``path``; its size."""
        from PIL import Image

        small = self.image.resize((self.image.width // SCALE, self.image.height // SCALE), Image.Resampling.LANCZOS)
        write_atomically(path, lambda tmp: small.save(tmp, format="PNG"))
        return small.size


def value_grid(
    draw: Any, low: float, high: float, y_of: Any, x_span: tuple[float, float], font: Any, s: int
) -> list[tuple[str, float]]:
    """About six labelled values between ``low`` and ``high``, each a grid line across ``x_span``
    at ``y_of(value)`` and its label left of it; their (label, y)."""
    values = ticks(low, high, 6)
    placed = [(label, float(y_of(v))) for v, label in zip(values, tick_labels(values), strict=True)]
    for label, y in placed:
        draw.line([(x_span[0], y), (x_span[1], y)], fill=GRID, width=s)
        draw.text((x_span[0] - 6 * s, y), label, fill=INK, font=font, anchor="rm")
    return placed


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 x 10^k apart) from ``low`` to ``high``."""
    step = tick_step(low, high, count)
    first = math.ceil(low / step - 1e-9) * step
    return [round((first + i * step) / step) * step for i in range(int((high - first) / step + 1e-9) + 1)]


def tick_step(low: float, high: float, count: int) -> float:
    """The round step (1, 2 or 5 x 10^k) that cuts ``low`` to ``high`` into at most ``count`` parts."""
    raw = ((high - low) or 1.0) / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def tick_labels(values: Sequence[float]) -> list[str]:
    """Labels for evenly spaced ticks, with as many decimals as tell each from the next (no two
    labels alike where the values differ: ``0.9500, 0.9502`` rather than ``0.95, 0.95``)."""
    if len(values) < 2:
        return [f"{v:.4g}" for v in values]
    step = abs(values[1] - values[0]) or 1.0
    top = max(abs(v) for v in values) or step
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if top < 1e6 and decimals <= 6:  # plain decimals up to a million and down to a millionth; past them 1.2e+07
        return [f"{0.0 if abs(v) < step / 1e6 else v:.{decimals}f}" for v in values]
    digits = max(1, math.floor(math.log10(top)) - math.floor(math.log10(step) + 1e-9) + 1)
    return [f"{v:.{digits}g}" for v in values]


def padded(values: Sequence[float], least: float) -> tuple[float, float]:
    """An axis' range around ``values``: 8% of their span either side, and at least ``least`` wide
    in all (a flat curve still gets a readable axis rather than ticks a millionth apart)."""
    low, high = min(values), max(values)
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    if high - low < least:
        middle = (low + high) / 2
        low, high = middle - least / 2, middle + least / 2
    return low, high
