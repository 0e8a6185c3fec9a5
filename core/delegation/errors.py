"""Errors of task delegation (to move into core/errors.py with the service).

Each names its cause; ``code`` is the stable name sent to a requester.
"""
from __future__ import annotations

from core.errors import BadRequest, CoveyError, TimedOut


class UnknownTaskType(CoveyError):
    """This executor does not run tasks of that type."""
    code = "unknown_task_type"


class ExecutorBusy(CoveyError):
    """The executor is busy: its queue is full; try again later."""
    code = "executor_busy"


class TaskTimedOut(TimedOut):
    """The task ran past its time limit and was stopped."""
    code = "task_timeout"


class MemoryLimitExceeded(CoveyError):
    """The task exceeded its memory limit and was stopped."""
    code = "memory_limit"


class TaskFailed(CoveyError):
    """The task failed while it ran."""
    code = "task_failed"


class ProofMismatch(CoveyError):
    """The execution proof does not match this request, executor or result."""
    code = "proof_mismatch"


# The exit statuses a proof may carry besides "ok", and the error each stands for.
EXIT_ERRORS = {cls.code: cls for cls in (TaskTimedOut, MemoryLimitExceeded, TaskFailed,
                                         UnknownTaskType, BadRequest)}
