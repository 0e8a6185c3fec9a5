"""Live charts of a training task (pyqtgraph).

Imported by :mod:`desktop.training_panel` only when the Training tab is first
shown, so the app does not pay pyqtgraph's import (~0.4 s, ~90 MB) until then.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGridLayout, QWidget

ACCENT = "#1f5fbf"
GOOD = "#2e7d32"
BAD = "#c62828"
MUTED = "#8e6bbf"
AXIS = "#4a5263"


def _plot(title: str, left: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color=AXIS, size="10pt")
    plot.setLabel("bottom", "round", color=AXIS)
    plot.setLabel("left", left, color=AXIS)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.setMinimumHeight(150)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(pg.mkPen(AXIS))
        axis.setTextPen(pg.mkPen(AXIS))
    return plot


def _curve(plot: pg.PlotWidget, color: str, name: str | None = None, dash: bool = False) -> pg.PlotDataItem:
    pen = pg.mkPen(color, width=2, style=pg.QtCore.Qt.DashLine if dash else pg.QtCore.Qt.SolidLine)
    return plot.plot([], [], pen=pen, symbol="o", symbolSize=6, symbolBrush=color, symbolPen=None, name=name)


class TrainingCharts(QWidget):
    """Accuracy, loss, accepted/rejected updates and ε per round; ``show_history`` redraws them."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.accuracy_plot = _plot("Test accuracy", "accuracy")
        self.accuracy_plot.setYRange(0, 1, padding=0.02)
        self.loss_plot = _plot("Test loss", "loss")
        self.updates_plot = _plot("Updates per round", "updates")
        self.updates_plot.addLegend(offset=(-8, 8), labelTextColor=AXIS)
        self.epsilon_plot = _plot("Privacy spent (ε)", "ε")
        self.curves = {
            "accuracy": _curve(self.accuracy_plot, ACCENT),
            "loss": _curve(self.loss_plot, MUTED),
            "accepted": _curve(self.updates_plot, GOOD, "accepted"),
            "rejected": _curve(self.updates_plot, BAD, "rejected", dash=True),
            "epsilon": _curve(self.epsilon_plot, ACCENT),
        }
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(8)
        self._grid.addWidget(self.accuracy_plot, 0, 0)
        self._grid.addWidget(self.loss_plot, 0, 1)
        self.show_epsilon(False)

    def show_epsilon(self, on: bool) -> None:
        """With DP the ε chart sits beside the updates chart; without it the updates chart is wide."""
        self._grid.removeWidget(self.updates_plot)
        self._grid.removeWidget(self.epsilon_plot)
        if on:
            self._grid.addWidget(self.updates_plot, 1, 0)
            self._grid.addWidget(self.epsilon_plot, 1, 1)
        else:
            self._grid.addWidget(self.updates_plot, 1, 0, 1, 2)
        self.epsilon_plot.setVisible(on)

    def show_history(self, history: list[dict]) -> None:
        """Draw every round of ``history`` (the coordinator's round records, in order)."""
        rounds = np.array([h["round"] for h in history], dtype=float)

        def column(key):
            return np.array([np.nan if h.get(key) is None else float(h[key]) for h in history], dtype=float)

        for key, curve in self.curves.items():
            values = column(key)
            keep = ~np.isnan(values)
            curve.setData(rounds[keep], values[keep])
        if len(rounds):
            for plot in (self.accuracy_plot, self.loss_plot, self.updates_plot, self.epsilon_plot):
                plot.setXRange(max(1.0, rounds[0]) - 0.3, rounds[-1] + 0.3, padding=0)
            top = max(1.0, float(np.nanmax(np.concatenate([column("accepted"), column("rejected")]))))
            self.updates_plot.setYRange(0, top + 0.5, padding=0)
