"""CLI side of ``covey ml ...``: numeric flags typed, and ``ml status --follow``'s live progress.

``--follow`` polls ``ml.status`` through the control API and redraws one
progress line (round, accuracy, loss, time remaining) while stdout is a
terminal; otherwise it prints one plain line per completed round. It returns
the final status when the task is no longer running.
"""
from __future__ import annotations

import sys
import time

from core.errors import BadRequest

POLL_SECONDS = 0.5
BAR_WIDTH = 24


def typed_args(name: str, values: dict) -> dict:
    """Convert the CLI's string values to the int/float kinds the command declares."""
    from core.commands import COMMANDS
    out = dict(values)
    for p in COMMANDS[name].params:
        value = out.get(p.name)
        if isinstance(value, str) and p.kind in (int, float):
            try:
                out[p.name] = p.kind(value)
            except ValueError:
                raise BadRequest(f"{p.flag or p.name} must be a {'whole ' if p.kind is int else ''}number, "
                                 f"not {value!r}") from None
    return out


def run_ml(call, home, name: str, values: dict, out=sys.stdout):
    """Run an ``ml.*`` command for the CLI; ``ml status --follow`` follows the task until it ends."""
    values = typed_args(name, values)
    follow = values.pop("follow", False) if name == "ml.status" else False
    status = call(home, name, values)
    if not follow:
        return status
    return follow_status(lambda: call(home, "ml.status", {"task": status["task"]}), status, out)


def follow_status(fetch, status: dict, out=sys.stdout, poll: float = POLL_SECONDS) -> dict:
    """Print progress of ``status``'s task until its state is no longer running; return the last status."""
    tty = out.isatty()
    printed = 0
    while True:
        history = status.get("history") or []
        if tty:
            out.write("\r" + progress_line(status))
            out.flush()
        else:
            for h in history[printed:]:
                out.write(round_line(h, status) + "\n")
            out.flush()
        printed = len(history)
        if status.get("state") != "running":
            if tty:
                out.write("\n")
            out.write(f"task {status['task']} {status.get('state')}\n")
            out.flush()
            return status
        time.sleep(poll)
        status = fetch()


def progress_line(status: dict) -> str:
    """``[#####.....] round 7/20  acc 0.912  loss 0.301  eps 1.2  ~14 s left``."""
    rnd, total = int(status.get("round") or 0), int(status.get("rounds") or 1)
    filled = int(BAR_WIDTH * rnd / max(total, 1))
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    parts = [f"[{bar}] round {rnd}/{total}", f"acc {_fmt(status.get('accuracy'))}",
             f"loss {_fmt(status.get('loss'))}"]
    if status.get("epsilon") is not None:
        parts.append(f"eps {_fmt(status['epsilon'], 2)}")
    eta = status.get("eta_seconds")
    parts.append(f"~{eta:.0f} s left" if isinstance(eta, (int, float)) else "-- s left")
    return "  ".join(parts).ljust(78)


def round_line(h: dict, status: dict) -> str:
    """One plain line per completed round (for logs and pipes)."""
    line = (f"round {h.get('round')}/{status.get('rounds')} accuracy {_fmt(h.get('accuracy'))} "
            f"loss {_fmt(h.get('loss'))} accepted {h.get('accepted')} rejected {h.get('rejected')} "
            f"{h.get('seconds', 0):.2f}s")
    if h.get("epsilon") is not None:
        line += f" epsilon {_fmt(h['epsilon'], 3)}"
    eta = status.get("eta_seconds")
    if isinstance(eta, (int, float)):
        line += f" ~{eta:.0f}s left"
    return line


def _fmt(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
