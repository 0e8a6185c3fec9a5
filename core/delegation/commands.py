"""The ``covey tasks`` commands (declared once: served by the control API, parsed by the CLI)."""
from __future__ import annotations

from core.commands import CommandSet, Param
from core.errors import BadRequest

from .protocol import SENT, SERVED, parse_pairs

COMMANDS = CommandSet()


def _tasks(node):
    return node.service("delegation")


@COMMANDS.command("tasks.run", "run a task on a peer; prints the result and its verified, signed proof",
         Param("peer", "peer id, unique id prefix, or name", max_len=128),
         Param("type", "task type (see `covey tasks types`)", max_len=64),
         Param("args", "arguments as KEY=VALUE (a file as KEY=@/absolute/path)", kind=list,
               required=False),
         Param("timeout", "seconds the task may take (default 30)", kind=float, flag="--timeout",
               required=False),
         Param("http", "send it as POST /tasks over plain HTTP instead of the peer link", kind=bool,
               flag="--http", required=False))
async def _tasks_run(node, peer, type, args=None, timeout=None, http=None):
    try:
        values, files = parse_pairs(type, list(args or []))
    except ValueError as exc:
        raise BadRequest(f"{type}: {exc}") from None
    return await _tasks(node).run(peer, type, values, files=files,
                                  timeout=30.0 if timeout is None else timeout, http=bool(http))


@COMMANDS.command("tasks.list", "tasks this node sent and served, newest first",
         Param("role", "only tasks sent or served", flag="--role", required=False, choices=(SENT, SERVED)))
async def _tasks_list(node, role=None):
    return _tasks(node).list(role)


@COMMANDS.command("tasks.show", "one task with its proof, verified again",
         Param("task", "task id (or a unique prefix)", max_len=64))
async def _tasks_show(node, task):
    return _tasks(node).show(task)


@COMMANDS.command("tasks.types", "the task types this node runs, their arguments and datasets")
async def _tasks_types(node):
    return _tasks(node).types()
