"""The desktop survives a long run of core events (an hour of training emits tens of thousands).

PySide6 6.12.0 on Python 3.11 dropped a reference to True/None on every
``Signal.emit`` and the process died with "Fatal Python error: bool_dealloc"
after a few thousand events. The soak runs in a child process so such a crash
is reported as a failed assertion instead of killing the test run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

EVENTS = 50_000

SOAK = textwrap.dedent(f"""
    import json, sys
    from PySide6.QtWidgets import QApplication, QWidget
    from core.events import EventBus
    from desktop.bridge import EventBridge

    class Panel(QWidget):
        seen = 0
        def on_event_ml_round(self, event):
            self.seen += 1
        def on_event_peer_connected(self, event):
            self.seen += 1

    app = QApplication([])
    bus = EventBus()
    bridge = EventBridge(bus)
    panel = Panel()
    bridge.register(panel)

    def counts():
        return [sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)]

    before = counts()
    for i in range({EVENTS}):
        if i % 2:
            bus.emit("ml_round", round=i, accuracy=0.5, secure_agg=False, epsilon=None, ok=True)
        else:
            bus.emit("peer_connected", peer="p", initiator=True, name=None, closed=False)
        if i % 1000 == 0:
            app.processEvents()
    app.processEvents()
    print(json.dumps({{"before": before, "after": counts(), "seen": panel.seen}}))
""")


def test_tens_of_thousands_of_events_through_the_bridge_leave_refcounts_flat():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", SOAK], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, f"the soak process died: {proc.stderr[-2000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["seen"] == EVENTS
    for name, before, after in zip(("True", "False", "None"), result["before"], result["after"]):
        assert abs(after - before) < 100, f"refcount of {name} drifted from {before} to {after}"
