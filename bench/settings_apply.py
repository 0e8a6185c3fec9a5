"""One Apply of the encryption panel: hops from the GUI to the transport, and disk I/O.

Starts a real node (127.0.0.1, no discovery) with its main window offscreen,
changes the mode (asymmetric -> none) with one click on Apply and records,
from the click until the panel shows the new mode and the events have settled:

- ``chain``: the call chain from ``CryptoPanel.apply`` to ``Transport.reconfigure``
  (``hops`` = its length, the GUI's frame excluded);
- ``reconfigures``, ``endpoints`` (new ``LocalEndpoint``s: fresh Noise keys),
  ``sessions_closed`` (outbound HTTP sessions thrown away);
- ``core_calls``: profile "call" events into core/ (coroutine resumptions included);
- ``opens``: files of the node's home (which holds a network key and a config.json) opened for reading / writing (audit hook
  "open", so ``Path.read_bytes``, ``open`` and ``os.open`` all count).

Counts, not timings: the numbers are the same on any machine. Prints JSON.
    QT_QPA_PLATFORM=offscreen PYTHONPATH=$PWD .venv/bin/python bench/settings_apply.py
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent


def main() -> dict:
    import qasync
    from PySide6.QtWidgets import QApplication

    from core.config import Settings
    from core.identity import Identity
    from core.net import transport as transport_mod
    from core.net.handshake import LocalEndpoint
    from core.node import Node
    from desktop.window import MainWindow

    home = Path(tempfile.mkdtemp(prefix="covey-bench-")) / "alice"
    Identity.generate("alice").save(home)
    # A home that has been used: a network key and a config.json (a setting changed before).
    (home / "network.key").write_text(os.urandom(32).hex() + "\n")
    (home / "config.json").write_text(json.dumps({"discovery_interval": 5.0}))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)   # the window closes before the node stops
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    recording = False
    opens: Counter[str] = Counter()
    core_calls = 0
    chains: list[list[str]] = []
    counts = Counter()

    def audit(event, args):
        if not recording or event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = Path(os.fsdecode(args[0]))
        if home not in path.parents:
            return
        mode, flags = args[1], args[2] or 0
        writes = (any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR)))
        name = path.name.split(".tmp")[0].lstrip(".").rsplit(".", 2)[0] if ".tmp" in path.name else path.name
        opens[f"{'write' if writes else 'read'} {name}"] += 1

    def profile(frame, event, arg):
        nonlocal core_calls
        if event != "call":
            return
        filename = frame.f_code.co_filename
        if filename.startswith(str(ROOT / "core")):
            core_calls += 1
        if frame.f_code.co_name == "reconfigure" and filename == transport_mod.__file__:
            chain, f = [], frame
            while f is not None:
                if f.f_code.co_filename.startswith((str(ROOT / "core"), str(ROOT / "desktop"))):
                    chain.append(f"{Path(f.f_code.co_filename).stem}.{f.f_code.co_name}")
                    if f.f_code.co_name == "apply" and "crypto_panel" in f.f_code.co_filename:
                        break
                f = f.f_back
            chains.append(list(reversed(chain)))

    sys.addaudithook(audit)
    create, reconfigure = LocalEndpoint.create.__func__, transport_mod.Transport.reconfigure

    def counting_create(cls, *a, **k):
        counts["endpoints"] += recording
        return create(cls, *a, **k)

    def counting_reconfigure(self, *a, **k):
        counts["reconfigures"] += recording
        before = self._session
        result = reconfigure(self, *a, **k)
        counts["sessions_closed"] += recording and before is not None and self._session is not before
        return result

    LocalEndpoint.create = classmethod(counting_create)
    transport_mod.Transport.reconfigure = counting_reconfigure

    async def run() -> dict:
        nonlocal recording
        node = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
        await node.start()
        try:
            node.transport._client()   # an outbound session exists, as after any dial
            window = MainWindow(node)
            window.show()
            await asyncio.sleep(0.2)
            panel = window.encryption_panel.modes
            panel.preferred.setCurrentIndex(panel.preferred.findData("none"))
            recording = True
            sys.setprofile(profile)
            panel.apply_button.click()
            for _ in range(500):
                if node.settings.mode == "none" and panel.current.text().startswith("In effect: none"):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)   # let every listener of the event run
            sys.setprofile(None)
            recording = False
            window.close()
            return {"mode": node.settings.mode}
        finally:
            recording = False
            await node.stop()

    with loop:
        state = loop.run_until_complete(run())
    chain = chains[0] if chains else []
    return {"state": state, "hops": max(len(chain) - 1, 0), "chain": chain,
            "reconfigures": counts["reconfigures"], "endpoints": counts["endpoints"],
            "sessions_closed": counts["sessions_closed"], "core_calls": core_calls,
            "opens": dict(sorted(opens.items())),
            "reads": sum(n for k, n in opens.items() if k.startswith("read")),
            "writes": sum(n for k, n in opens.items() if k.startswith("write"))}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
