"""The errors task delegation raises (declared in core/errors.py) and what a proof's exit status means."""
from __future__ import annotations

from core.errors import (BadRequest, ExecutorBusy, MemoryLimitExceeded, ProofMismatch, TaskFailed,
                         TaskTimedOut, UnknownTaskType)

__all__ = ["ExecutorBusy", "MemoryLimitExceeded", "ProofMismatch", "TaskFailed", "TaskTimedOut",
           "UnknownTaskType", "EXIT_ERRORS"]

# The exit statuses a proof may carry besides "ok", and the error each stands for.
EXIT_ERRORS = {cls.code: cls for cls in (TaskTimedOut, MemoryLimitExceeded, TaskFailed,
                                         UnknownTaskType, BadRequest)}
