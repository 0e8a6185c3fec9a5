"""Frozen entry point: exactly the `covey` console script (``desktop.launcher:main``).

PyInstaller runs its entry script as ``__main__`` outside any package, so pointing it at
desktop/launcher.py directly breaks the launcher's relative import of the desktop app
(``from .app import main``: "attempted relative import with no known parent package").

In a bundle ``sys.executable`` is this program, not a Python interpreter, so the node's own
child processes (a delegated task runs as ``sys.executable -s -P -m core.delegation.child``)
arrive here with interpreter flags: those run the named Covey module, and nothing else does.
"""
import runpy
import sys

from desktop.launcher import main

INTERPRETER_FLAGS = {"-s", "-P", "-I", "-E", "-B"}
CHILD_MODULES = {"core.delegation.child"}   # the modules the node starts as `python -m`


def child_module(argv: list[str]) -> tuple[str, list[str]] | None:
    """(module, its arguments) when ``argv`` is ``[flags...] -m MODULE args...`` for a child
    module of the node; None for a normal `covey` command line."""
    i = 0
    while i < len(argv) and argv[i] in INTERPRETER_FLAGS:
        i += 1
    if i + 1 < len(argv) and argv[i] == "-m" and argv[i + 1] in CHILD_MODULES:
        return argv[i + 1], argv[i + 2:]
    return None


if __name__ == "__main__":
    child = child_module(sys.argv[1:]) if getattr(sys, "frozen", False) else None
    if child is not None:
        module, args = child
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        sys.exit(0)
    sys.exit(main())
