"""A QR code of a text (a contact link) as a QPixmap, drawn from segno's module matrix."""
from __future__ import annotations

import segno
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap

BORDER = 4   # quiet zone in modules, as the standard asks


def qr_image(text: str) -> QImage:
    """One pixel per module (quiet zone included), black on white."""
    matrix = segno.make(text, error="m", micro=False).matrix
    size = len(matrix) + 2 * BORDER
    image = QImage(size, size, QImage.Format_RGB32)
    image.fill(QColor("white"))
    black = QColor("black").rgb()
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                image.setPixel(x + BORDER, y + BORDER, black)
    return image


def qr_pixmap(text: str, max_side: int) -> QPixmap:
    """The code scaled by a whole number of pixels per module to at most ``max_side`` pixels
    (sharp edges, so a camera reads it from the screen)."""
    image = qr_image(text)
    scale = max(1, max_side // image.width())
    return QPixmap.fromImage(image.scaled(image.width() * scale, image.height() * scale,
                                          Qt.IgnoreAspectRatio, Qt.FastTransformation))
