"""A task child with extra, misbehaving task types (tests only): ``python -m`` this module.

The runner takes the child module from the executor's code, never from a
request, so these types exist only where a test asks for them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from core.delegation import child
from core.delegation.tasks import TASK_TYPES, TaskType


def _any(raw: dict) -> dict:
    return dict(raw)


def _alloc(args: dict, ctx: dict) -> dict:
    import numpy as np
    block = np.ones(args["mb"] * 1024 * 1024, dtype=np.uint8)
    return {"sum": int(block.sum())}


def _sleep_with_grandchild(args: dict, ctx: dict) -> dict:
    grandchild = subprocess.Popen(["sleep", "300"])
    print(f"grandchild pid {grandchild.pid}", file=sys.stderr, flush=True)
    time.sleep(300)
    return {}


def _spin(args: dict, ctx: dict) -> dict:
    x = 0
    while True:
        x += 1


def _big_output(args: dict, ctx: dict) -> dict:
    return {"blob": "x" * args["chars"]}


def _environment(args: dict, ctx: dict) -> dict:
    with open("scratch.txt", "w") as fh:
        fh.write("a file in the working directory")
    return {"env": sorted(os.environ), "cwd": os.getcwd(), "pid": os.getpid(),
            "pgid": os.getpgid(0), "sid": os.getsid(0)}


def _write_file(args: dict, ctx: dict) -> dict:
    with open("big.bin", "wb") as fh:
        fh.write(b"\0" * args["bytes"])
    return {}


TYPES = dict(TASK_TYPES)
for _name, _run in (("test.alloc", _alloc), ("test.sleep_with_grandchild", _sleep_with_grandchild),
                    ("test.spin", _spin), ("test.big_output", _big_output),
                    ("test.environment", _environment), ("test.write_file", _write_file)):
    TYPES[_name] = TaskType(_name, "test only", _any, _run)

if __name__ == "__main__":
    sys.exit(child.main(TYPES))
