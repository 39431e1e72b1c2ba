"""The pictures, drawn from synthetic rows in process: where each drawing says it put its plot area,
ticks and marks (the layout it returns), and the pixels of the PNG it wrote where that is cheap."""

import math
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app import plots
from app.plots.canvas import BLUE, ORANGE, RED, tick_labels, ticks
from app.plots.learning_curves import BEST
from app.plots.sweep_summary import marks_of
from app.summary import Row, swept_keys

Colour = tuple[int, int, int]


def epochs(count: int) -> list[dict[str, Any]]:
    """``count`` epochs of a run that learns: the loss falls, the accuracy rises."""
    rows = []
    for epoch in range(1, count + 1):
        t = epoch / count
        rows.append(
            {
                "epoch": epoch,
                "train_loss": 2.3 * math.exp(-3 * t) + 0.1,
                "val_loss": 2.3 * math.exp(-2.5 * t) + 0.2,
                "train_acc": 1 - 0.9 * math.exp(-3 * t),
                "val_acc": 0.95 - 0.85 * math.exp(-3 * t),
            }
        )
    return rows


def near(picture: Image.Image, box: tuple[float, float, float, float], colour: Colour, within: int = 40) -> int:
    """How many pixels of ``picture`` inside ``box`` (left, top, right, bottom) are ``colour``, give or
    take ``within`` on each channel (downsampling blends a line's edges)."""
    left, top, right, bottom = (int(round(v)) for v in box)
    data = picture.convert("RGB").crop((left, top, right + 1, bottom + 1)).tobytes()
    pixels = (data[i : i + 3] for i in range(0, len(data), 3))
    return sum(all(abs(a - b) <= within for a, b in zip(pixel, colour)) for pixel in pixels)


@pytest.mark.parametrize("count", [1, 2, 30, 500])
def test_curves_keep_the_best_epoch_marker_and_ticks_inside_the_plot_for_1_to_500_epochs(
    tmp_path: Path, count: int
) -> None:
    for best in sorted({1, (count + 1) // 2, count}):  # the edges, where the marker used to sit on the frame
        path = tmp_path / f"curves_{count}_{best}.png"
        layout = plots.curves(epochs(count), path, best)
        with Image.open(path) as picture:
            assert picture.size == layout.size
            for panel in layout.panels:
                plot = panel.plot
                assert panel.best_x is not None and plot.left + 3 <= panel.best_x <= plot.right - 3
                # the dashed line is there, in its colour, inside the plot area
                column = (panel.best_x - 1, plot.top + 2, panel.best_x + 1, plot.bottom - 2)
                assert near(picture, column, BEST) >= 20
                epochs_ticked = [epoch for epoch, _ in panel.x_ticks]
                assert epochs_ticked == sorted(set(epochs_ticked)) and 1 <= len(epochs_ticked) <= 9
                assert all(1 <= epoch <= count for epoch in epochs_ticked)  # whole epochs of the run only
                assert all(plot.left < x < plot.right for _, x in panel.x_ticks)
                labels = [label for label, _ in panel.y_ticks]
                assert len(labels) == len(set(labels)) >= 2  # never the same label twice
                assert all(plot.top <= y <= plot.bottom for _, y in panel.y_ticks)


def test_curves_keep_the_legend_off_both_plot_areas(tmp_path: Path) -> None:
    overfitting = [dict(row, val_loss=0.5 + row["epoch"] / 10) for row in epochs(30)]  # a rising loss
    for rows in (epochs(1), epochs(30), overfitting):
        layout = plots.curves(rows, tmp_path / "curves.png", 3)
        assert all(not layout.legend.meets(panel.plot) for panel in layout.panels)
        assert layout.legend.left >= 0 and layout.legend.right <= layout.size[0]


def test_a_one_epoch_curve_writes_its_values_beside_its_dots(tmp_path: Path) -> None:
    layout = plots.curves(epochs(1), tmp_path / "curves.png", 1)
    loss = layout.panels[0]
    ((epoch, x),) = loss.x_ticks  # epoch 1 alone, where its dots are
    assert epoch == 1
    with Image.open(tmp_path / "curves.png") as picture:
        # right of the dots, 9 px on: the values' text, in the val curve's colour
        text = (x + 8, loss.plot.top, min(x + 60, loss.plot.right), loss.plot.bottom)
        assert near(picture, text, ORANGE, within=60) >= 10


def test_tick_labels_tell_values_a_ten_thousandth_apart() -> None:
    values = ticks(0.9500, 0.9504, 6)
    labels = tick_labels(values)
    assert len(set(labels)) == len(labels) == len(values) and labels[0] == "0.9500"
    assert tick_labels(ticks(0.0, 1.0)) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert tick_labels(ticks(1, 1000, 8)) == ["200", "400", "600", "800", "1000"]


def lr_head_sweep(*statuses: str) -> list[Row]:
    """README's sweep: ``optimizer.lr=1e-4,1e-3,1e30 classifier=small,large``, each job's status as
    given, a val acc for the completed ones."""
    points = [(lr, head) for lr in ["0.0001", "0.001", "1e+30"] for head in ["small", "large"]]
    rows = []
    for job, ((lr, head), status) in enumerate(zip(points, statuses)):
        overrides = ["+debug=fast", f"optimizer.lr={lr}", f"classifier={head}", "tags=[lr_head]"]
        acc = 0.5 + 0.05 * job if status == "completed" else None
        rows.append(Row(job, status, overrides, Path(str(job)), best_val_acc=acc))
    return rows


def test_summary_draws_a_panel_per_swept_key_labelled_with_its_values(tmp_path: Path) -> None:
    rows = lr_head_sweep("completed", "completed", "completed", "completed", "failed", "failed")
    layout = plots.sweep(rows, swept_keys(rows), tmp_path / "summary.png")
    assert [panel.key for panel in layout.panels] == ["optimizer.lr", "classifier"]  # the head is kept
    lr, head = layout.panels
    assert [text for text, _ in lr.x_labels] == ["0.0001", "0.001", "1e+30"]  # the values as typed, in order
    assert [text for text, _ in head.x_labels] == ["small", "large"]
    for panel in layout.panels:
        assert sorted(point.job for point in panel.points) == [0, 1, 2, 3, 4, 5]  # every job, failed ones too
        columns = dict(panel.x_labels)
        for point in panel.points:  # each job in its value's column
            assert abs(point.x - columns[rows[point.job].value(panel.key) or ""]) < 20


def test_summary_marks_failed_and_pruned_jobs_by_their_status(tmp_path: Path) -> None:
    rows = lr_head_sweep("completed", "pruned", "completed", "pruned", "failed", "failed")
    rows[3].best_val_acc = 0.4  # pruned after an epoch: it has a val acc, and is still marked pruned
    path = tmp_path / "summary.png"
    layout = plots.sweep(rows, swept_keys(rows), path)
    colours = {"completed": BLUE, "failed": RED, "pruned": ORANGE}
    with Image.open(path) as picture:
        for panel in layout.panels:
            for point in panel.points:
                row = rows[point.job]
                assert point.status == row.status
                assert point.on_strip == (row.best_val_acc is None)
                assert (panel.strip if point.on_strip else panel.plot).holds(point.x, point.y)
                mark = (point.x - 3, point.y - 3, point.x + 3, point.y + 3)
                assert near(picture, mark, colours[row.status]) >= 4, (panel.key, point)


def test_summary_gives_every_status_its_own_mark() -> None:
    statuses = ["completed", "failed", "pruned", "stopped", "incomplete", "unreadable", "queued", "lost"]
    marks = marks_of(statuses)
    assert len({marks[status] for status in statuses}) == len(statuses)


def test_summary_never_joins_the_points_of_different_trials(tmp_path: Path) -> None:
    rows = [
        Row(0, "completed", ["optimizer.lr=0.0001"], Path("0"), best_val_acc=0.2),
        Row(1, "completed", ["optimizer.lr=0.001"], Path("1"), best_val_acc=0.9),
        Row(2, "completed", ["optimizer.lr=0.01"], Path("2"), best_val_acc=0.3),
    ]
    path = tmp_path / "summary.png"
    (panel,) = plots.sweep(rows, swept_keys(rows), path).panels
    a, b, c = sorted(panel.points, key=lambda point: point.x)
    with Image.open(path) as picture:
        for first, second in ((a, b), (b, c)):  # the stretch between two marks, 8 px clear of each
            for step in range(1, 10):
                x = first.x + (second.x - first.x) * step / 10
                y = first.y + (second.y - first.y) * step / 10
                if math.dist((x, y), (first.x, first.y)) > 8 and math.dist((x, y), (second.x, second.y)) > 8:
                    assert near(picture, (x - 1, y - 1, x + 1, y + 1), BLUE) == 0, (x, y)


def test_summary_turns_value_labels_upright_where_they_would_overlap(tmp_path: Path) -> None:
    names = ["digits_resnet18_finetune", "torchvision_recipe", "staged_finetune", "linear_probe", "a" * 60]
    rows = [Row(i, "completed", [f"+experiment={n}"], Path(str(i)), best_val_acc=0.5) for i, n in enumerate(names)]
    short = [Row(i, "completed", [f"model={n}"], Path(str(i)), best_val_acc=0.5) for i, n in enumerate(["a", "b"])]
    (long_panel,) = plots.sweep(rows, swept_keys(rows), tmp_path / "long.png").panels
    (short_panel,) = plots.sweep(short, swept_keys(short), tmp_path / "short.png").panels
    assert long_panel.upright and not short_panel.upright
    with Image.open(tmp_path / "long.png") as picture:  # the 60-character name shortened, not off the picture
        assert picture.height < 500


def test_confusion_keeps_its_title_inside_and_names_only_what_fits(tmp_path: Path) -> None:
    three = plots.confusion([[9, 1, 0], [2, 8, 0], [0, 0, 10]], ["cat", "dog", "bird"], tmp_path / "3.png")
    assert 0 <= three.title.left and three.title.right <= three.size[0]  # it was clipped at 3 classes
    assert three.named == [0, 1, 2] and three.cell == 48
    classes = 1000  # ImageNet's
    matrix = [[50 if row == col else 0 for col in range(classes)] for row in range(classes)]
    big = plots.confusion(matrix, [f"class_{i}" for i in range(classes)], tmp_path / "1000.png")
    assert max(big.size) <= 1200  # not 14,000 px of 14 px cells
    spacing = big.named[1] - big.named[0]
    assert big.named == list(range(0, classes, spacing)) and spacing * big.cell >= 13  # names 13 px apart
    with Image.open(tmp_path / "1000.png") as picture:
        assert picture.size == big.size


@pytest.mark.parametrize("at", [0, 98])
def test_lr_find_keeps_its_labels_and_the_suggestion_inside(tmp_path: Path, at: int) -> None:
    lrs = [1e-4 * 30 ** (i / 99) for i in range(100)]  # 1.5 decades: finer ticks than decades
    losses = [2.3 - 0.0001 * i for i in range(100)]  # nearly flat: labels a ten-thousandth apart
    layout = plots.lr_range(lrs, losses, lrs[at], tmp_path / "lr_find.png")
    y_labels = [label for label, _ in layout.y_ticks]
    assert len(set(y_labels)) == len(y_labels) >= 2
    assert len(layout.x_ticks) >= 3 and all(layout.plot.left < x < layout.plot.right for _, x in layout.x_ticks)
    note = layout.note
    assert layout.plot.left <= note.left and note.right <= layout.plot.right
    assert layout.plot.top <= note.top and note.bottom <= layout.plot.bottom
