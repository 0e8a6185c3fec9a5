"""Live charts of a training task (pyqtgraph).

Imported by :mod:`desktop.training_panel` only when the Training tab is first
shown, so the app does not pay pyqtgraph's import (~0.4 s, ~90 MB) until then.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QWidget

ACCENT = "#1f5fbf"
GOOD = "#2e7d32"
BAD = "#c62828"
MUTED = "#8e6bbf"
AXIS = "#4a5263"


def _plot(title: str) -> pg.PlotWidget:
    """A small white chart; the title names the y axis and the x axis is always the round."""
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color=AXIS, size="9pt")
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.setMinimumSize(110, 190)   # four side by side still fit a narrow window
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(pg.mkPen(AXIS))
        axis.setTextPen(pg.mkPen(AXIS))
    return plot


def _curve(plot: pg.PlotWidget, color: str, dash: bool = False) -> pg.PlotDataItem:
    pen = pg.mkPen(color, width=2, style=pg.QtCore.Qt.DashLine if dash else pg.QtCore.Qt.SolidLine)
    return plot.plot([], [], pen=pen, symbol="o", symbolSize=6, symbolBrush=color, symbolPen=None)


class TrainingCharts(QWidget):
    """Accuracy, loss, accepted/rejected updates and ε per round; ``show_history`` redraws them."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.accuracy_plot = _plot("Test accuracy")
        self.accuracy_plot.setYRange(0, 1, padding=0.02)
        self.loss_plot = _plot("Test loss")
        self.updates_plot = _plot(f'Updates <span style="color:{GOOD}">kept</span>'
                                  f' / <span style="color:{BAD}">rejected</span>')
        self.updates_plot.setToolTip("Updates per round: accepted into the aggregate (green) and rejected (red)")
        self.epsilon_plot = _plot("Privacy spent ε")
        self.curves = {
            "accuracy": _curve(self.accuracy_plot, ACCENT),
            "loss": _curve(self.loss_plot, MUTED),
            "accepted": _curve(self.updates_plot, GOOD),
            "rejected": _curve(self.updates_plot, BAD, dash=True),
            "epsilon": _curve(self.epsilon_plot, ACCENT),
        }
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        for plot in (self.accuracy_plot, self.loss_plot, self.updates_plot, self.epsilon_plot):
            row.addWidget(plot, 1)
        self.show_epsilon(False)
        self.show_history([])

    def show_epsilon(self, on: bool) -> None:
        """The ε chart is shown only for tasks with differential privacy."""
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
        first, last = (rounds[0], rounds[-1]) if len(rounds) else (1.0, 5.0)   # empty: an inviting frame
        step = _whole_step(last - first + 1, 10)   # rounds are whole numbers: so are the ticks
        for plot in (self.accuracy_plot, self.loss_plot, self.updates_plot, self.epsilon_plot):
            plot.setXRange(max(1.0, first) - 0.3, last + 0.3, padding=0)
            plot.getAxis("bottom").setTickSpacing(step, step)
        counts = np.concatenate([column("accepted"), column("rejected"), [1.0]])
        top = float(np.nanmax(counts))
        self.updates_plot.setYRange(-0.3, top + 0.5, padding=0)   # zeros stay off the axis line
        self.updates_plot.getAxis("left").setTickSpacing(_whole_step(top, 6), _whole_step(top, 6))


def _whole_step(span: float, ticks: int) -> int:
    """A whole-number tick step that puts at most about ``ticks`` ticks on ``span``."""
    return max(1, int(np.ceil(span / ticks)))
