"""Resource limits of one task and how the child process applies them to itself.

Limits are set by the child at its start (not with ``preexec_fn``, which is
unsafe in a process with threads, such as a node with executor threads).
``processes`` is off by default: RLIMIT_NPROC counts every process and thread
of the *user*, not of the task, so it only means something when the executor
runs tasks under a dedicated user (and root ignores it).
"""
from __future__ import annotations

import resource
from dataclasses import asdict, dataclass, replace

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one task may use; ``wall_seconds`` is enforced by the parent, the rest by rlimits."""
    cpu_seconds: int = 10
    memory_bytes: int = 512 * MiB       # RLIMIT_AS (address space)
    wall_seconds: float = 20.0
    file_bytes: int = 16 * MiB          # RLIMIT_FSIZE: largest file the task may write
    open_files: int = 64                # RLIMIT_NOFILE
    processes: int | None = None        # RLIMIT_NPROC (see the module docstring)
    output_bytes: int = 1 * MiB         # cap on the child's reply (the result)

    def __post_init__(self):
        for name in ("cpu_seconds", "memory_bytes", "file_bytes", "open_files", "output_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"limit {name} must be a positive int, got {value!r}")
        if not (isinstance(self.wall_seconds, (int, float)) and 0 < self.wall_seconds <= 3600):
            raise ValueError(f"wall_seconds must be in (0, 3600], got {self.wall_seconds!r}")
        if self.processes is not None and (type(self.processes) is not int or self.processes < 1):
            raise ValueError(f"processes must be a positive int or None, got {self.processes!r}")

    def with_wall(self, seconds: float) -> "Limits":
        """A copy with the wall-clock limit lowered to ``seconds`` (never raised)."""
        return replace(self, wall_seconds=max(0.001, min(self.wall_seconds, seconds)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> "Limits":
        return cls(**doc)


def _set(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:  # never ask for more than we are allowed
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def apply(limits: Limits) -> None:
    """Apply ``limits`` to the calling process (the task's child process)."""
    # Soft CPU limit sends SIGXCPU; the hard one, a second later, SIGKILL.
    _set(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1)
    _set(resource.RLIMIT_AS, limits.memory_bytes)
    _set(resource.RLIMIT_FSIZE, limits.file_bytes)
    _set(resource.RLIMIT_NOFILE, limits.open_files)
    _set(resource.RLIMIT_CORE, 0)
    if limits.processes is not None:
        _set(resource.RLIMIT_NPROC, limits.processes)
