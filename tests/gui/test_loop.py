"""The loop every GUI test runs on gives back what it opened."""
from __future__ import annotations

import asyncio

from tests.gui.loop import qt_asyncio_loop
from tests.open_files import open_files


def test_twenty_test_loops_leave_the_process_open_files_unchanged(qapp, qtbot):
    def one_round():
        with qt_asyncio_loop(qapp) as loop:
            task = loop.create_task(asyncio.sleep(0.01, result="slept"))
            qtbot.waitUntil(task.done)
            worker = loop.run_in_executor(None, sum, [1, 2])
            qtbot.waitUntil(worker.done)
            assert (task.result(), worker.result()) == ("slept", 3)

    one_round()   # Qt opens files of its own once per process (its event dispatcher)
    before = open_files()
    for _ in range(20):
        one_round()
    assert open_files() == before
