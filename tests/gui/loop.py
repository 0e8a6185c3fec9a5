"""The asyncio loop of a GUI test: qasync on the Qt event loop that qtbot drives."""
from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import Iterator

import qasync

# Closed loops are kept, as the app kept every loop before: freeing one lets Python's garbage
# collector delete its Qt timer object at any moment, even while Qt delivers timer events,
# and the process crashed (SIGSEGV in QTimerInfoList::activateTimers). A closed loop holds
# no file and no thread.
_closed: list[qasync.QEventLoop] = []


@contextmanager
def qt_asyncio_loop(app) -> Iterator[qasync.QEventLoop]:
    """A qasync loop on ``app``'s event loop, the running asyncio loop until the block ends;
    then closed, with its executor's threads and its self-pipe."""
    # Not ``already_running=True``: that ties the loop to app.aboutToQuit (the app outlives
    # every test, so every test's loop stayed open: two sockets each), and such a loop only
    # closes after stop(), whose app.exit() makes every later QEventLoop.exec() (dialogs,
    # qtbot.waitSignal) return at once. Marking it running is all qtbot's loop needs.
    loop = qasync.QEventLoop(app)
    loop.set_default_executor(qasync.QThreadExecutor(2))
    asyncio.set_event_loop(loop)
    asyncio.events._set_running_loop(loop)
    try:
        yield loop
    finally:
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
        loop.close()   # shuts the executor down (waiting for its threads) and closes the self-pipe
        _closed.append(loop)
