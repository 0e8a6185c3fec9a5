"""The commands loader: the node's own commands plus those of every registered service.

The CLI parses and the control API serves exactly what :func:`load_commands`
returns, so a service's commands appear on both surfaces from its one line in
:data:`core.service.REGISTRY`.
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence

from core.commands import Command, CommandSet
from core.service import Registration

NODE_COMMANDS = "core.app.node_commands"


def command_modules(registry: Sequence[Registration] | None = None) -> list[str]:
    """The modules that declare commands: the node's, then each service's (registry order)."""
    from core.service import REGISTRY
    return [NODE_COMMANDS] + [reg.commands for reg in (REGISTRY if registry is None else registry)
                              if reg.commands]


def load_commands(registry: Sequence[Registration] | None = None) -> dict[str, Command]:
    """Every command by name (``"peers.add"``); a name declared by two modules is an error.

    Each module named by :func:`command_modules` must hold ``COMMANDS``, a
    :class:`~core.commands.CommandSet`. Importing a commands module must stay light
    (no torch): the CLI loads them all to build its parser.
    """
    found: dict[str, Command] = {}
    for name in command_modules(registry):
        declared = getattr(importlib.import_module(name), "COMMANDS", None)
        if not isinstance(declared, CommandSet):
            raise TypeError(f"{name} declares no COMMANDS = CommandSet()")
        for cmd in declared:
            if cmd.name in found:
                raise ValueError(f"command {cmd.name!r} is declared by {name} and another module")
            found[cmd.name] = cmd
    return found
