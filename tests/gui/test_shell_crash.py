"""An unexpected exception is logged and shown in a dialog with the log file's path."""
from __future__ import annotations

import json
import logging
import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton

from desktop.shell.crash import CrashReporter
from desktop.shell.logfile import add_log_file, log_path, remove_log_file
from tests.gui.shell_helpers import urls_opened

pytestmark = pytest.mark.qt_no_exception_capture   # the reporter, not pytest-qt, takes the exceptions


@pytest.fixture
def reporter(tmp_path, qloop):
    logging.getLogger().setLevel(logging.INFO)
    handler = add_log_file(tmp_path)
    crash = CrashReporter(log_path(tmp_path))
    crash.install()
    crash.watch(qloop)
    yield crash
    crash.uninstall(qloop)
    if crash.dialog is not None:
        crash.dialog.close()
    remove_log_file(handler)


def records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in log_path(tmp_path).read_text().splitlines()]


def test_an_exception_in_a_button_handler_shows_the_dialog_with_the_log_path(reporter, tmp_path, qtbot,
                                                                          artifacts):
    button = QPushButton("Break")
    qtbot.addWidget(button)
    button.show()

    def broken():
        raise ValueError("the view has no row 7")

    button.clicked.connect(broken)
    qtbot.mouseClick(button, Qt.LeftButton)
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible())
    box = reporter.dialog
    assert box.windowTitle() == "Covey: unexpected error"
    assert "ValueError: the view has no row 7" in box.informativeText()
    assert str(log_path(tmp_path)) in box.informativeText()
    box.grab().save(str(artifacts / "shell-crash-dialog.png"))
    logged = [r for r in records(tmp_path) if r["level"] == "critical"]
    assert logged and "the view has no row 7" in logged[0]["exc"] and "broken" in logged[0]["exc"]
    qtbot.mouseClick(box.button(QMessageBox.Close), Qt.LeftButton)
    qtbot.waitUntil(lambda: not box.isVisible())


def test_open_log_folder_shows_the_folder_of_the_log(reporter, tmp_path, qtbot):
    try:
        raise LookupError("no such conversation")
    except LookupError:
        sys.excepthook(*sys.exc_info())
    box = reporter.dialog
    folder = next(b for b in box.buttons() if b.text() == "Open log folder")
    with urls_opened() as opened:
        qtbot.mouseClick(folder, Qt.LeftButton)
        qtbot.waitUntil(lambda: not box.isVisible())
    assert [u.toLocalFile() for u in opened.urls] == [str(log_path(tmp_path).parent)]


def test_an_exception_in_an_event_loop_callback_shows_the_dialog(reporter, tmp_path, qloop, qtbot):
    def callback():
        raise KeyError("missing-field")

    qloop.call_soon(callback)
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible())
    assert "KeyError: 'missing-field'" in reporter.dialog.informativeText()
    assert any("missing-field" in r.get("exc", "") for r in records(tmp_path) if r["level"] == "error")


def test_a_task_nobody_awaited_is_reported_too(reporter, tmp_path, qloop, qtbot):
    async def fails():
        raise RuntimeError("background job failed")

    task = qloop.create_task(fails())
    qtbot.waitUntil(task.done)
    del task            # nobody retrieves the exception: the loop reports it when the task goes
    import gc
    gc.collect()
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible())
    assert "RuntimeError: background job failed" in reporter.dialog.informativeText()


def test_a_lost_connection_is_logged_without_a_dialog(reporter, tmp_path, qloop, qtbot):
    def callback():
        raise ConnectionResetError("peer went away")

    qloop.call_soon(callback)
    qtbot.waitUntil(lambda: any("peer went away" in r["msg"] for r in records(tmp_path)))
    assert reporter.dialog is None


def test_one_dialog_at_a_time_the_rest_is_logged(reporter, tmp_path, qtbot):
    for n in range(3):
        try:
            raise OSError(f"disk said no #{n}")
        except OSError:
            sys.excepthook(*sys.exc_info())
    assert reporter.shown == 1
    assert "#0" in reporter.dialog.informativeText()
    assert sum("disk said no" in r["msg"] for r in records(tmp_path)) == 3
