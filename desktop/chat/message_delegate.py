"""Draws a message row as a bubble: sender and time, the text, the ticks and the timer countdown.

Each row's layout (its height, the wrapped text's box and the header line) is
cached per (row key, width), so a 10,000-row conversation lays out once and
scrolls without measuring text again; a width change (the window resized) or
a new conversation measures afresh. File rows have one fixed height (a
:class:`~desktop.chat.file_row.FileCard` covers them).
"""
from __future__ import annotations

import math

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from .file_row import CARD_HEIGHT
from .messages_model import ROW_ROLE, Row, clock, countdown, ticks

PAD, GAP, MARGIN = 8, 3, 6       # inside a bubble, between its lines, around it
MAX_FRACTION = 0.78              # a bubble is at most this share of the view's width
OUT_BG, IN_BG, BORDER = QColor("#dbe7fb"), QColor("#ffffff"), QColor("#d9dce1")
MUTED, READ, BAD = QColor("#6b7383"), QColor("#1f5fbf"), QColor("#b71c1c")
CACHE_LIMIT = 20_000


def has_footer(row: Row) -> bool:
    """A line under the text for the ticks (our messages) or the countdown (disappearing ones)."""
    return row.outgoing or row.expires_at is not None


class MessageDelegate(QStyledItemDelegate):
    """See the module docstring; ``model`` is the :class:`MessagesModel` (sender names, receipts)."""

    def __init__(self, model, view):
        super().__init__(view)
        self.model = model
        self.view = view      # rows are as wide as its viewport (a sizeHint option has no useful rect)
        self._layouts: dict[tuple, tuple[int, int, int, str]] = {}   # (key, width) -> height, text w, h, head
        model.modelReset.connect(self.forget)   # ids start again in a new or closed conversation

    def fonts(self, option) -> tuple[QFont, QFont]:
        small = QFont(option.font)
        small.setPointSizeF(max(6.0, option.font.pointSizeF() * 0.85))
        return option.font, small

    def row_width(self) -> int:
        return max(160, self.view.viewport().width())

    def bubble_width(self) -> int:
        return int((self.row_width() - 2 * MARGIN) * MAX_FRACTION)

    def layout(self, option, row: Row) -> tuple[int, int, int, str]:
        """(height, text width, text height, header) of a message row at the current width (cached)."""
        width = self.bubble_width()
        key = (row.key, width)
        found = self._layouts.get(key)
        if found is None:
            if len(self._layouts) > CACHE_LIMIT:
                self._layouts.clear()
            font, small = self.fonts(option)
            fm = QFontMetrics(font)
            text = row.text or " "
            # most messages fit one line: one advance instead of a wrapped layout (rounded up, plus a
            # pixel, so drawing it wrapped in that width never pushes the last word onto a hidden line)
            one_line = (math.ceil(QFontMetricsF(font).horizontalAdvance(text)) + 1
                        if "\n" not in text and len(text) < 200 else None)
            if one_line is not None and one_line <= width - 2 * PAD:
                text_w, text_h = one_line, fm.height()
            else:
                box = fm.boundingRect(QRect(0, 0, width - 2 * PAD, 100_000), Qt.TextWordWrap, text)
                text_w, text_h = box.width(), box.height()
            line = QFontMetrics(small).height()
            foot = GAP + line if has_footer(row) else 0
            height = 2 * PAD + line + GAP + text_h + foot + 2 * MARGIN
            head = f"{self.model.sender(row)} · {clock(row.sent_at)}"
            found = self._layouts[key] = (height, text_w, text_h, head)
        return found

    def sizeHint(self, option, index) -> QSize:
        row: Row = index.data(ROW_ROLE)
        if row.kind == "file":
            return QSize(self.row_width(), CARD_HEIGHT)     # a FileCard (an index widget) covers it
        return QSize(self.row_width(), self.layout(option, row)[0])

    def paint(self, painter: QPainter, option, index) -> None:
        row: Row = index.data(ROW_ROLE)
        if row.kind == "file":
            return
        font, small = self.fonts(option)
        sm = QFontMetrics(small)
        width = self.bubble_width()
        _, text_w, text_h, head = self.layout(option, row)
        marks, _ = ticks(row.state, self.model.read_receipts) if row.outgoing else ("", "")
        timer = f"disappears in {countdown(row.expires_at)}" if row.expires_at is not None else ""
        foot = "  ".join(p for p in (timer, marks) if p)
        inner = max(text_w, sm.horizontalAdvance(head), sm.horizontalAdvance(foot))
        bubble_w = min(width, inner + 2 * PAD)
        rect = option.rect.adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN)
        left = rect.right() - bubble_w if row.outgoing else rect.left()
        bubble = QRect(left, rect.top(), bubble_w, rect.height())

        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        selected = bool(option.state & QStyle.State_Selected)
        painter.setPen(QPen(READ if selected else BORDER))
        painter.setBrush(OUT_BG if row.outgoing else IN_BG)
        painter.drawRoundedRect(bubble, 8, 8)
        x, y = bubble.left() + PAD, bubble.top() + PAD
        painter.setFont(small)
        painter.setPen(MUTED)
        painter.drawText(QRect(x, y, bubble_w - 2 * PAD, sm.height()), Qt.AlignLeft, head)
        y += sm.height() + GAP
        painter.setFont(font)
        painter.setPen(option.palette.text().color())
        painter.drawText(QRect(x, y, bubble_w - 2 * PAD, text_h), Qt.TextWordWrap, row.text)
        y += text_h + GAP
        painter.setFont(small)
        foot_rect = QRect(x, y, bubble_w - 2 * PAD, sm.height())
        if timer:
            painter.setPen(MUTED)
            painter.drawText(foot_rect, Qt.AlignLeft, timer)
        if marks:
            painter.setPen(BAD if row.state == "failed" else READ if marks == "✓✓" and row.state == "read"
                           and self.model.read_receipts else MUTED)
            painter.drawText(foot_rect, Qt.AlignRight, marks)
        painter.restore()

    def forget(self) -> None:
        """Drop the cached layouts (a new conversation, or the font changed)."""
        self._layouts.clear()
