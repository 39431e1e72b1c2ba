"""Every picture the app draws, with Pillow: a run's ``curves.png``, app-evaluate's
``confusion.png``, a sweep's ``summary.png`` and app-lr-find's ``lr_find.png``. Torch-free (Hydra
loads the sweep summary before any job). Pillow is a dependency of torchvision already: importing
matplotlib and drawing its first figure cost 0.6 s + 0.4 s per run on the 2-core CPU, then 0.1 s
per epoch; this takes 16 ms to import and about 10 ms per epoch.

Each drawing returns where it drew what (the plot area, ticks, marks, legend) in the PNG's pixels:
what its tests check, and what a caller may ignore."""

from app.plots.canvas import Box, ticks
from app.plots.confusion_matrix import ConfusionLayout, confusion
from app.plots.learning_curves import CurvesLayout, CurvesPanel, curves
from app.plots.lr_range_test import LrRangeLayout, lr_range
from app.plots.sweep_summary import SweepJob, SweepLayout, SweepPanel, SweepPoint, sweep

__all__ = [
    "Box",
    "ConfusionLayout",
    "CurvesLayout",
    "CurvesPanel",
    "LrRangeLayout",
    "SweepJob",
    "SweepLayout",
    "SweepPanel",
    "SweepPoint",
    "confusion",
    "curves",
    "lr_range",
    "sweep",
    "ticks",
]
