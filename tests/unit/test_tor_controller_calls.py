"""TorController never calls stem from two threads at once.

stem deadlocks when ``Controller.close()`` runs in one thread while another
thread is inside a controller call: close joins stem's event thread, which
waits for the listener lock the other call holds, which waits for the socket
lock close holds. Seen as a node whose stop hung for good when a window closed
while the Network tab was reading circuits. The stand-in below records how
many threads are inside it at once; the real stem behaviour is covered by the
tor integration tests in the private tor network.
"""
from __future__ import annotations

import asyncio
import threading
import time

from core.net.tor import TorController


class CountingController:
    """Just enough of stem's Controller: every call sleeps a little and counts who is inside."""

    def __init__(self):
        self._lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.closed = False

    def _enter(self):
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.02)
        with self._lock:
            self.inside -= 1

    def get_circuits(self, default=None):
        self._enter()
        return []

    def get_newnym_wait(self):
        return 0.0

    def signal(self, _signal):
        self._enter()

    def remove_status_listener(self, _listener):
        self._enter()

    def close(self):
        self._enter()
        self.closed = True


def test_controller_calls_and_the_close_at_stop_never_overlap(tmp_path):
    tor = TorController(tmp_path, control="127.0.0.1:9051")
    controller = CountingController()
    tor._controller, tor.running = controller, True

    async def main():
        await asyncio.gather(tor.circuits(), tor.circuits(), tor.new_identity(), tor.stop())

    asyncio.run(main())
    assert controller.closed
    assert controller.most_inside == 1
