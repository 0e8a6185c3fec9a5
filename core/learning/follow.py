"""CLI side of ``covey ml status --follow``: a live progress line until the task ends.

``--follow`` polls ``ml.status`` through the control API and redraws one
progress line (round, accuracy, loss, time remaining) while stdout is a
terminal; otherwise it prints one plain line per completed round. It returns
the final status when the task is no longer running.
"""
from __future__ import annotations

import sys
import time


POLL_SECONDS = 0.5
BAR_WIDTH = 24


def follow_task(call, home, values: dict, out=sys.stdout):
    """`covey ml status [TASK] --follow`: follow the task until it ends."""
    values = {k: v for k, v in values.items() if k != "follow"}
    status = call(home, "ml.status", values)
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
    budget = budget_note(status)
    return "  ".join(parts + ([budget] if budget else [])).ljust(78)


def budget_note(status: dict) -> str:
    """For a worker's task: ``model mlp, 2,410 parameters (budget 5,000,000)``, or that it is over."""
    params, budget = status.get("params"), status.get("max_params")
    if not isinstance(params, int) or not isinstance(budget, int):
        return ""
    verdict = f"(budget {budget:,})" if status.get("within_budget") else \
        f"OVER this node's budget of {budget:,}: join refuses it"
    return f"model {status.get('model')}, {params:,} parameters {verdict}"


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
