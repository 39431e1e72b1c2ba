"""``confusion.png`` (app-evaluate): the confusion matrix as a heat map, true class down, predicted
class across; readable from 2 classes to ImageNet's 1,000."""

import math
from dataclasses import dataclass
from pathlib import Path

from app.plots.canvas import GRID, INK, SCALE, Box, Canvas

TITLE = "confusion matrix (rows: true class, columns: predicted)"
SHADE = "a cell's shade: its share of the row (white: none, blue: all)"
# The matrix is at most 720 px wide (a laptop screen's height, less its title and labels): cells of
# 48 px for up to 15 classes, 7 px at 100, 1 px past 720 classes.
MATRIX_PX, CELL_MAX = 720, 48
LINE = 13  # a name's line: the 11 px font and 2 px between; a cell narrower names 1 class in k
NAME_PX = 160  # a longer class name is shortened with an ellipsis (23 characters of the 11 px font)
COUNT_CELL = 20  # cells this wide or wider hold their count where it fits


@dataclass(frozen=True)
class ConfusionLayout:
    """What ``confusion`` drew where, in the PNG's pixels."""

    size: tuple[int, int]
    title: Box
    matrix: Box
    named: list[int]  # the classes whose names are written (each of them, or 1 in k)
    cell: int  # a cell's side


def confusion(confusion: list[list[int]], names: list[str], path: Path) -> ConfusionLayout:
    """The confusion matrix as a heat map: true class down, predicted class across, counts in cells."""
    classes, s = len(confusion), SCALE
    cell = max(1, min(CELL_MAX, MATRIX_PX // max(classes, 1)))
    every = math.ceil(LINE / cell)  # 1: every class named; k: classes 0, k, 2k, ... (names 13 px apart)
    named = list(range(0, classes, every))
    note = SHADE if every == 1 else f"{SHADE}; 1 class in {every} named, of {classes}"
    measure = Canvas(1, 1, font_px=11)
    shown_names = [measure.fit(name, NAME_PX * s) for name in names]
    label = max([measure.width(shown_names[i]) for i in named] + [0.0]) / s + 8
    side = classes * cell
    title_w = max(measure.width(TITLE), measure.width(note)) / s
    width = max(label + 12 + side + 16, title_w + 32)
    left = (width - (label + 12 + side + 16)) / 2 + label + 12  # the block centred under the title
    top = 48
    canvas = Canvas(width, top + side + 12 + label + 8, font_px=11)
    draw, font = canvas.draw, canvas.font
    draw.text((canvas.image.width / 2, 8 * s), TITLE, fill=INK, font=font, anchor="ma")
    draw.text((canvas.image.width / 2, 24 * s), note, fill=INK, font=font, anchor="ma")
    _cells(canvas, confusion, (left * s, top * s), cell * s)
    for i in named:
        middle, centre = (top + i * cell + cell / 2) * s, (left + i * cell + cell / 2) * s
        draw.text(((left - 6) * s, middle), shown_names[i], fill=INK, font=font, anchor="rm")
        canvas.upright(shown_names[i], centre, (top + side + 6) * s)
        if every > 1:  # which row and column a name is of: a 3 px tick at each
            draw.line([((left - 4) * s, middle), ((left - 1) * s, middle)], fill=INK, width=s)
            draw.line([(centre, (top + side + 1) * s), (centre, (top + side + 4) * s)], fill=INK, width=s)
    return ConfusionLayout(
        canvas.save(path),
        Box((width - title_w) / 2, 8, (width + title_w) / 2, 38),
        Box(left, top, left + side, top + side),
        named,
        cell,
    )


def _cells(canvas: Canvas, confusion: list[list[int]], corner: tuple[float, float], cell: int) -> None:
    """Each row as fractions of its class (white: none, blue: all), drawn as a picture of one pixel
    per cell scaled up (a million cells take 0.3 s, not a minute of rectangles); lines between cells
    where they are 8 px or more, counts where they fit."""
    from PIL import Image

    classes, s = len(confusion), SCALE
    shades = []
    for row in confusion:
        total = max(sum(row), 1)
        shades.append([int(255 * (1 - count / total)) for count in row])
    small = Image.new("RGB", (classes, classes))
    small.putdata([(shade, shade, 255) for row in shades for shade in row])
    x0, y0 = corner
    canvas.image.paste(small.resize((classes * cell, classes * cell), Image.Resampling.NEAREST), (int(x0), int(y0)))
    if cell >= 8 * s:
        for i in range(classes + 1):
            canvas.draw.line([(x0 + i * cell, y0), (x0 + i * cell, y0 + classes * cell)], fill=GRID, width=s)
            canvas.draw.line([(x0, y0 + i * cell), (x0 + classes * cell, y0 + i * cell)], fill=GRID, width=s)
    if cell < COUNT_CELL * s:
        return
    for r, row in enumerate(confusion):
        for c, count in enumerate(row):
            if count and canvas.width(str(count)) <= cell - 4 * s:
                colour = "white" if shades[r][c] < 128 else INK
                centre = (x0 + c * cell + cell / 2, y0 + r * cell + cell / 2)
                canvas.draw.text(centre, str(count), fill=colour, font=canvas.font, anchor="mm")
