"""How a ``covey`` command is declared: :class:`Param`, :class:`Command` and :class:`CommandSet`.

A command is an async function ``(node, **params) -> JSON-able`` plus the
parameters it takes. Each module that declares commands (the node's own in
``core.app.node_commands``, each service's in its ``commands`` module) holds
one ``COMMANDS = CommandSet()`` and decorates its functions with
``@COMMANDS.command(...)``; :func:`core.app.commands.load_commands` collects
them. The CLI builds its argument parser from the collection and the control
API validates requests against it, so the two surfaces cannot drift apart.
This module only declares: it imports no command and no service.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .errors import BadRequest


MAX_LIST = 64   # items of a list parameter (positional KEY=VALUE pairs)

@dataclass(frozen=True)
class Param:
    """One parameter: positional unless ``flag`` is given."""
    name: str
    help: str = ""
    kind: type = str
    required: bool = True
    flag: str | None = None
    choices: tuple[str, ...] | None = None
    max_len: int = 4096


@dataclass(frozen=True)
class Command:
    name: str                     # "peers.add" -> `covey peers add`
    help: str
    run: Callable[..., Awaitable[Any]]
    params: tuple[Param, ...] = field(default_factory=tuple)

    def validate(self, args: dict) -> dict:
        """Check a request's arguments against the declaration (BadRequest on mismatch)."""
        if not isinstance(args, dict):
            raise BadRequest("arguments must be a JSON object")
        known = {p.name for p in self.params}
        extra = set(args) - known
        if extra:
            raise BadRequest(f"{self.name}: unknown argument(s) {', '.join(sorted(extra))}")
        clean: dict[str, Any] = {}
        for p in self.params:
            value = args.get(p.name)
            if value is None:
                if p.required:
                    raise BadRequest(f"{self.name}: missing argument {p.name!r}")
                continue
            if p.kind is int and isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, p.kind) or isinstance(value, bool) and p.kind is not bool:
                raise BadRequest(f"{self.name}: argument {p.name!r} must be {p.kind.__name__}")
            if isinstance(value, str) and len(value) > p.max_len:
                raise BadRequest(f"{self.name}: argument {p.name!r} is too long")
            if isinstance(value, list) and (len(value) > MAX_LIST or not all(
                    isinstance(v, str) and len(v) <= p.max_len for v in value)):
                raise BadRequest(f"{self.name}: {p.name} must be at most {MAX_LIST} texts")
            if p.choices and value not in p.choices:
                raise BadRequest(f"{self.name}: {p.name} must be one of {', '.join(p.choices)}")
            clean[p.name] = value
        return clean


class CommandSet:
    """The commands one module declares, in declaration order (names unique)."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def command(self, name: str, help: str, *params: Param):
        """Decorator: declare ``fn`` as the command ``name`` (``"peers.add"`` -> `covey peers add`)."""
        def register(fn):
            self.add(Command(name, help, fn, tuple(params)))
            return fn
        return register

    def add(self, cmd: Command) -> None:
        if cmd.name in self._commands:
            raise ValueError(f"command {cmd.name!r} is declared twice")
        self._commands[cmd.name] = cmd

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def __getitem__(self, name: str) -> Command:
        return self._commands[name]
