"""The `covey` console script: the CLI of the core, with the desktop app as the default."""
from __future__ import annotations

import sys


def open_desktop(home, overrides, passphrase) -> int:
    from .app import main as app_main  # Qt is imported only when the window opens
    return app_main(home, overrides, passphrase)


def main(argv: list[str] | None = None) -> int:
    from core.app.cli import main as cli_main
    return cli_main(argv, open_desktop=open_desktop)


if __name__ == "__main__":
    sys.exit(main())
