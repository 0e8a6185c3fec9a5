"""A bounded set of background tasks that a chat component cancels when it stops."""
from __future__ import annotations

import asyncio
from typing import Coroutine


class BackgroundTasks:
    """At most ``limit`` tasks at once; :meth:`stop` cancels them and waits for them to end."""

    def __init__(self, limit: int):
        self.limit = limit
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine) -> bool:
        """Run ``coro`` as a task; False (and the coroutine closed) when ``limit`` tasks run."""
        if len(self._tasks) >= self.limit:
            coro.close()
            return False
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def stop(self) -> None:
        """Cancel every task and wait for them (the node bounds its own stop's wait)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
