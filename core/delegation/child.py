"""Entry point of a task's child process: ``python -m core.delegation.child LIMITS_JSON``.

Applies its resource limits first, reads one msgpack request on stdin
(``{"type", "args", "context"}``), runs the task, writes one msgpack reply on
the original stdout (``{"ok": true, "result"}`` or ``{"ok": false, "code",
"message"}``, both with ``"rusage"``) and exits. Anything a library prints
goes to stderr, so it cannot corrupt the reply. Never pickle.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import sys

import msgpack

from core.delegation.encoding import encode_result
from core.delegation.limits import Limits, apply
from core.delegation.tasks import TASK_TYPES, task_type
from core.errors import CoveyError, MalformedMessage

MAX_INPUT = 16 * 1024 * 1024


def _peak_rss_kb() -> int:
    # Not ru_maxrss: Linux carries it over from the parent across fork + exec, so a child
    # of a 300 MB node would report 300 MB. VmHWM belongs to this process image only.
    with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
        return next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), 0)


def _rusage() -> dict:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_seconds": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            "peak_rss_kb": max(_peak_rss_kb(), kids.ru_maxrss)}


def _read_request() -> dict:
    raw = sys.stdin.buffer.read(MAX_INPUT + 1)
    if len(raw) > MAX_INPUT:
        raise MalformedMessage(f"task input is larger than {MAX_INPUT} bytes")
    try:
        msg = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise MalformedMessage(f"task input is not valid msgpack: {exc}") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("context", {}), dict):
        raise MalformedMessage("task input must be a map with type, args and context")
    return msg


def run(types: dict) -> dict:
    """Read, check and run one task; the reply map (never raises)."""
    try:
        msg = _read_request()
        kind = task_type(msg.get("type"), types)
        result = kind.run(kind.check(msg.get("args")), msg.get("context", {}))
        encode_result(result)  # refuse here what the parent could not sign
        return {"ok": True, "result": result}
    except MemoryError:
        return {"ok": False, "code": "memory_limit", "message": "out of memory (address-space limit)"}
    except OSError as exc:
        if exc.errno == errno.EFBIG:  # Python ignores SIGXFSZ: RLIMIT_FSIZE surfaces here
            return {"ok": False, "code": "file_size_limit", "message": str(exc)}
        return {"ok": False, "code": "task_failed", "message": f"OSError: {exc}"[:2000]}
    except CoveyError as exc:
        return {"ok": False, "code": exc.code, "message": str(exc)}
    # The child's last line of defence: any failure of the task becomes a reply.
    except Exception as exc:
        return {"ok": False, "code": "task_failed", "message": f"{type(exc).__name__}: {exc}"[:2000]}


def main(types: dict = TASK_TYPES) -> int:
    """Apply the limits in ``argv[1]``, run one task, write the reply; returns the exit code."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints (ours or a library's) go to stderr
    sys.stdout = sys.stderr
    apply(Limits.from_dict(json.loads(sys.argv[1])))
    reply = run(types)
    reply["rusage"] = _rusage()
    with os.fdopen(reply_fd, "wb") as out:
        out.write(msgpack.packb(reply, use_bin_type=True))
    return 0 if reply["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
