"""Frozen entry point: exactly the `covey` console script (``desktop.launcher:main``).

PyInstaller runs its entry script as ``__main__`` outside any package, so pointing it at
desktop/launcher.py directly breaks the launcher's relative import of the desktop app
(``from .app import main``: "attempted relative import with no known parent package").
"""
import sys

from desktop.launcher import main

if __name__ == "__main__":
    sys.exit(main())
