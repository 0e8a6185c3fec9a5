"""The task runner for real: child processes, rlimits, wall clock, process groups, caps."""
from __future__ import annotations

import asyncio
import os
import re

import psutil
import pytest

from core.delegation.errors import MemoryLimitExceeded, TaskFailed, TaskTimedOut
from core.delegation.limits import MiB, Limits
from core.delegation.runner import run_task
from tests.integration.conftest import wait_until

HOSTILE = "tests.integration.delegation.hostile_child"


async def run(kind: str, args: dict, **limits):
    return await run_task(kind, args, Limits(**limits), child_module=HOSTILE)


async def test_echo_runs_in_a_child_and_reports_its_cost():
    res = await run("echo", {"text": "héllo"})
    assert res.status == "ok" and res.error is None
    assert res.result == {"text": "héllo", "length": 5}
    assert res.exit_code == 0
    assert res.cost.cpu_seconds > 0 and res.cost.wall_seconds > 0 and res.cost.peak_rss_mb > 1
    assert res.started <= res.ended


async def test_memory_limit_is_reported_as_such():
    res = await run("test.alloc", {"mb": 2048}, memory_bytes=256 * MiB)
    assert res.status == "memory_limit"
    assert isinstance(res.error, MemoryLimitExceeded)
    assert "256 MiB" in str(res.error)
    with pytest.raises(MemoryLimitExceeded):
        res.raise_for_status()


async def test_same_allocation_succeeds_under_a_larger_limit():
    res = await run("test.alloc", {"mb": 64}, memory_bytes=1024 * MiB)
    assert res.status == "ok" and res.result == {"sum": 64 * MiB}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_timeout_kills_the_whole_process_group():
    res = await run("test.sleep_with_grandchild", {}, wall_seconds=2.0)
    assert res.status == "task_timeout"
    assert isinstance(res.error, TaskTimedOut)
    assert "2 s" in str(res.error) and "wall-clock" in str(res.error)
    assert res.error.details["timeout"] == 2.0
    match = re.search(r"grandchild pid (\d+)", res.stderr_tail)
    assert match, res.stderr_tail
    grandchild = int(match.group(1))
    # Killed by the group kill; once its parent is gone, init reaps it.
    await wait_until(lambda: not _alive(grandchild), timeout=10)


async def test_cpu_limit_stops_a_spinning_task():
    res = await run("test.spin", {}, cpu_seconds=1, wall_seconds=30)
    assert res.status == "task_timeout"
    assert "CPU time limit of 1 s" in str(res.error)


async def test_output_larger_than_the_cap_is_refused():
    res = await run("test.big_output", {"chars": 200_000}, output_bytes=100_000)
    assert res.status == "task_failed" and "output limit" in str(res.error)
    res = await run("test.big_output", {"chars": 2_000})
    assert res.status == "ok" and len(res.result["blob"]) == 2_000


async def test_file_size_limit():
    res = await run("test.write_file", {"bytes": 2 * MiB}, file_bytes=1 * MiB)
    assert res.status == "task_failed" and "file size limit" in str(res.error)


async def test_scrubbed_environment_own_session_and_temporary_directory(monkeypatch):
    monkeypatch.setenv("COVEY_SECRET_TOKEN", "must-not-leak")
    res = await run("test.environment", {})
    assert res.status == "ok", res.error
    env = set(res.result["env"])
    assert "COVEY_SECRET_TOKEN" not in env
    assert env <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
                   "PYTHONNOUSERSITE", "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                   "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"}
    assert res.result["pgid"] == res.result["pid"] == res.result["sid"]  # its own session and group
    assert os.path.basename(res.result["cwd"]).startswith("covey-task-")
    assert not os.path.exists(res.result["cwd"])  # removed with what the task wrote there


async def test_unknown_type_reaching_the_child_is_named():
    res = await run("no.such.type", {})
    assert res.status == "unknown_task_type"
    assert "unknown task type 'no.such.type'" in str(res.error)


async def test_cancelling_a_run_kills_its_child():
    task = asyncio.create_task(run("test.sleep_with_grandchild", {}, wall_seconds=60))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    await wait_until(lambda: {p.pid for p in psutil.Process().children(recursive=True)} - before
                     or task.done(), timeout=10)
    children = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for proc in children:
        await wait_until(lambda: not _alive(proc.pid), timeout=10)


async def test_failure_inside_a_task_is_reported():
    res = await run("test.alloc", {"mb": None})
    assert res.status == "task_failed" and isinstance(res.error, TaskFailed)
    assert "TypeError" in str(res.error)


async def test_peak_memory_is_the_childs_own_not_the_parents():
    ballast = b"\x01" * (400 * MiB)  # written, so resident in this (the parent) process
    res = await run("echo", {"text": "x"})
    assert len(ballast) == 400 * MiB
    assert res.status == "ok" and 1 < res.cost.peak_rss_mb < 200
