"""The ``covey knowledge`` commands (declared once: served by the control API, parsed by the CLI).

Two commands touch local files, and the CLI, not the node, does that part:

- ``publish FILE``: the CLI reads FILE (at most 16 MiB, refused before it is
  read when larger) and sends its bytes base64-encoded in the JSON request,
  as ``file = {"name", "type", "data"}``. The control API's body limit is
  64 KiB for every other command; ``publish`` declares a larger one
  (``max_body``) that fits a 16 MiB file in base64.
- ``export ID PATH``: the CLI turns PATH into an absolute path (its own
  working directory, not the node's) and the node writes the file.

The CLI finds these steps as ``prepare_args`` on the command function.
"""
from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from core.commands import CommandSet, Param
from core.errors import BadRequest, MessageTooLarge

from . import protocol as proto

COMMANDS = CommandSet()
command = COMMANDS.command

# Base64 of a 16 MiB file plus the JSON around it; text is at most 1 MiB (<= 6 MiB as JSON).
MAX_PUBLISH_BODY = (proto.MAX_FILE_BYTES + 2) // 3 * 4 + (1 << 20)
_B64_MAX = (proto.MAX_FILE_BYTES + 2) // 3 * 4


def _knowledge(node):
    return node.service("knowledge")


def _opt(name, help, kind=str, max_len=4096):
    return Param(name, help, kind=kind, required=False, flag="--" + name.replace("_", "-"), max_len=max_len)


PACKET = Param("packet", "packet id (or a unique prefix of at least 4 hex digits)", max_len=64)


def _tags(text: str | None) -> list[str]:
    return [t for t in (text or "").split(",") if t.strip()]


def _file_arg(value: dict) -> tuple[str, str | None, bytes]:
    """(name, media type or None, bytes) from a publish request's ``file`` object."""
    if set(value) - {"name", "type", "data"} or not {"name", "data"} <= set(value):
        raise BadRequest("file must be an object with name, data (base64) and optionally type")
    name, media, data = value["name"], value.get("type"), value["data"]
    if not isinstance(name, str) or not isinstance(data, str) or not (media is None or isinstance(media, str)):
        raise BadRequest("file name, type and data must be strings")
    if len(data) > _B64_MAX:
        raise MessageTooLarge(f"the file is above {proto.MAX_FILE_BYTES} bytes (16 MiB)")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("file data is not valid base64") from None
    return name, media, raw


@command("knowledge.publish", "sign and share a file or a text with the federation",
         Param("file", "a file to publish (read by this command; at most 16 MiB)", kind=dict, required=False),
         _opt("text", "publish this text instead of a file", max_len=proto.MAX_TEXT_BYTES),
         _opt("title", "a title", max_len=proto.MAX_TITLE),
         _opt("kind", "what it is (default note): letters, digits, '.', '_', '-'", max_len=proto.MAX_KINDNAME),
         _opt("tag", "tags, separated by commas", max_len=proto.MAX_TAGS * (proto.MAX_TAG + 1)))
async def _publish(node, file=None, text=None, title=None, kind=None, tag=None):
    if (file is None) == (text is None):
        raise BadRequest("give a FILE or --text TEXT (one of them)")
    options = {"title": title or "", "kind": kind or "note", "tags": _tags(tag)}
    if text is not None:
        return await _knowledge(node).publish(text=text, **options)
    name, media, data = _file_arg(file)
    return await _knowledge(node).publish(data=data, filename=name, media_type=media, **options)


def _read_for_publish(values: dict) -> dict:
    """CLI side of publish: FILE becomes its name and bytes (refused before reading when over 16 MiB)."""
    path = values.get("file")
    if path is None:
        return values
    from .service import guess_media_type, read_file
    data, name = read_file(Path(path))
    values["file"] = {"name": name, "type": guess_media_type(name), "data": base64.b64encode(data).decode()}
    return values


_publish.prepare_args = _read_for_publish
_publish.max_body = MAX_PUBLISH_BODY


@command("knowledge.list", "list the packets this node holds, newest first",
         _opt("author", "only packets by this author (id, peer name or prefix, or 'self')", max_len=128),
         _opt("tag", "only packets with this tag", max_len=proto.MAX_TAG),
         _opt("kind", "only packets of this kind", max_len=proto.MAX_KINDNAME),
         _opt("limit", "at most this many (default 100, up to 1000)", kind=int))
async def _list(node, author=None, tag=None, kind=None, limit=None):
    return _knowledge(node).list(author=author, tag=tag, kind=kind, limit=limit or 100)


@command("knowledge.show", "show a packet, with its signature checked again", PACKET)
async def _show(node, packet):
    return _knowledge(node).show(packet)


@command("knowledge.export", "write a packet's content (file or text) to PATH", PACKET,
         Param("path", "where to write it", max_len=4096))
async def _export(node, packet, path):
    return await _knowledge(node).export(packet, path)


def _absolute_path(values: dict) -> dict:
    """CLI side of export: PATH relative to the command's directory, not the node's."""
    values["path"] = os.path.abspath(os.path.expanduser(values["path"]))
    return values


_export.prepare_args = _absolute_path


@command("knowledge.status", "counters per peer and in total: sent, received, accepted, rejected, duplicates")
async def _status(node):
    return _knowledge(node).status()


@command("knowledge.query", "ask a peer for its packets (what EXTERNAL peers may do); nothing is stored",
         Param("peer", "peer id, unique id prefix, or name", max_len=128),
         _opt("tag", "only packets with this tag", max_len=proto.MAX_TAG),
         _opt("author", "only packets by this author", max_len=128),
         _opt("kind", "only packets of this kind", max_len=proto.MAX_KINDNAME),
         _opt("limit", f"at most this many (default 20, up to {proto.MAX_QUERY_LIMIT})", kind=int))
async def _query(node, peer, tag=None, author=None, kind=None, limit=None):
    return await _knowledge(node).query(peer, tag=tag, author=author, kind=kind, limit=limit or 20)
