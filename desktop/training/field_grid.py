"""Label-and-field pairs in as many columns as the width allows (three on a wide window, fewer on a
small one), so a long form fits a narrow screen without scrolling sideways."""
from __future__ import annotations

from PySide6.QtCore import QSize, QTimer
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

SPACING = 8


class FieldGrid(QWidget):
    """``pairs`` of (label text or None, field), placed row by row in ``most`` columns or fewer."""

    def __init__(self, pairs: list[tuple[str | None, QWidget]], most: int = 3, least: int = 1, parent=None):
        super().__init__(parent)
        self.pairs = [(QLabel(text) if text is not None else None, field) for text, field in pairs]
        self.most, self.least = most, least
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(SPACING)
        self.columns = 0
        self.arrange(most)

    def arrange(self, columns: int) -> None:
        """Place the pairs ``columns`` to a row (a field without a label takes its label's cell too)."""
        if columns == self.columns:
            return
        while self.grid.count():
            self.grid.takeAt(0)
        for c in range(2 * max(self.most, self.columns)):
            self.grid.setColumnStretch(c, 0)
        for i, (label, field) in enumerate(self.pairs):
            row, col = divmod(i, columns)
            if label is None:
                self.grid.addWidget(field, row, 2 * col, 1, 2)
            else:
                self.grid.addWidget(label, row, 2 * col)
                self.grid.addWidget(field, row, 2 * col + 1)
        for col in range(columns):
            self.grid.setColumnStretch(2 * col + 1, 1)
        self.columns = columns
        self.updateGeometry()
        # this runs inside the parents' layout pass, which ends by marking them clean again:
        # lay them out once more after it, with the new height
        QTimer.singleShot(0, self, self._relayout_parents)

    def _relayout_parents(self) -> None:
        widget = self
        while widget is not None:
            widget.updateGeometry()   # drops the size hints the parent layout keeps of it
            if widget.layout() is not None:
                widget.layout().invalidate()
            widget = widget.parentWidget()

    def width_for(self, columns: int) -> int:
        """The narrowest width that shows ``columns`` pairs to a row without cutting any."""
        labels = max((label.sizeHint().width() for label, _ in self.pairs if label is not None), default=0)
        fields = max(field.minimumSizeHint().width() for _, field in self.pairs)
        return columns * (labels + fields) + (2 * columns - 1) * SPACING

    def minimumSizeHint(self) -> QSize:
        return QSize(self.width_for(self.least), super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        width = event.size().width()
        self.arrange(next((n for n in range(self.most, self.least, -1) if width >= self.width_for(n)), self.least))
        super().resizeEvent(event)
