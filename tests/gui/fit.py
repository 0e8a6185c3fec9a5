"""Does a tab fit its window? No label cut, every button whole and within reach, no sideways
scrolling. ``python -m tests.gui.fit`` checks the Node and Encryption tabs of a real node's
window at 900x600 (run it with QT_SCALE_FACTOR=1.5 for 150 %) and prints the problems as JSON."""
from __future__ import annotations

import json
import os
import sys

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QScrollArea

SIZE = tuple(int(n) for n in os.environ.get("COVEY_FIT_SIZE", "900x600").split("x"))
TABS = ("Node", "Encryption")


def problems(tab: QScrollArea) -> list[str]:
    """What does not fit in ``tab`` (a scrolling tab) as it is laid out now."""
    QApplication.processEvents()
    found = []
    body, viewport = tab.widget(), tab.viewport()
    if tab.horizontalScrollBar().maximum() > 0:
        found.append(f"{type(tab).__name__} scrolls sideways by {tab.horizontalScrollBar().maximum()} px")
    for label in body.findChildren(QLabel):
        if not label.isVisibleTo(body) or not label.text():
            continue
        if label.wordWrap():
            if label.height() < label.heightForWidth(label.width()):
                found.append(f"label {label.text()[:40]!r} is cut: {label.height()} < "
                             f"{label.heightForWidth(label.width())} px high")
        elif label.width() < label.sizeHint().width() - 1:
            found.append(f"label {label.text()[:40]!r} is cut: {label.width()} < {label.sizeHint().width()} px")
    for button in body.findChildren(QAbstractButton):
        if not button.isVisibleTo(body) or button.objectName().startswith("qt_"):
            continue
        left = button.mapTo(body, QPoint(0, 0)).x()
        if button.width() < button.minimumSizeHint().width():
            found.append(f"button {button.text()!r} is squeezed: {button.width()} px")
        if left < 0 or left + button.width() > viewport.width():
            found.append(f"button {button.text()!r} is out of sight: x {left}..{left + button.width()}, "
                         f"view {viewport.width()} px")
    return found


def main() -> int:
    """Open a node's window at SIZE and print {tab: [problems]} for TABS."""
    import asyncio
    import tempfile
    from pathlib import Path

    import qasync

    from core.config import Settings
    from core.identity import Identity
    from core.node import Node
    from desktop.style import style_sheet
    from desktop.window import MainWindow

    app = QApplication(sys.argv[:1])
    app.setStyleSheet(style_sheet())
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def run() -> dict:
        home = Path(tempfile.mkdtemp()) / "alice"
        identity = Identity.generate("alice")
        identity.save(home)
        node = Node(home, identity, Settings(listen="127.0.0.1:0", discovery=False))
        await node.start()
        try:
            window = MainWindow(node)
            window.resize(*SIZE)
            window.show()
            await asyncio.sleep(0.3)
            report = {}
            for title in TABS:
                index = next(i for i in range(window.tabs.count()) if window.tabs.tabText(i) == title)
                window.tabs.setCurrentIndex(index)
                await asyncio.sleep(0.2)
                report[title] = problems(window.tabs.currentWidget())
                out = os.environ.get("COVEY_FIT_PNG")
                if out:
                    window.grab().save(f"{out}-{title.lower()}.png")
            report["window"] = [window.width(), window.height()]
            window.close()
            return report
        finally:
            await node.stop()

    with loop:
        print(json.dumps(loop.run_until_complete(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
