"""The ``covey chat`` commands (declared once: served by the control API, parsed by the CLI).

Every command that names a PEER answers about that one conversation only.
"""
from __future__ import annotations

import os

from core.commands import CommandSet, Param
from core.errors import BadRequest

from .protocol import MAX_REQUEST_TEXT, MAX_TEXT, TIMERS

COMMANDS = CommandSet()
command = COMMANDS.command
PEER = Param("peer", "peer id, unique id prefix, or name", max_len=128)
ON_OFF = ("on", "off")


def _chat(node):
    return node.service("chat")


@command("chat.send", "send an end-to-end encrypted message (kept in memory only)", PEER,
         Param("text", "the message", max_len=MAX_TEXT))
async def _chat_send(node, peer, text):
    return await _chat(node).send(peer, text)


@command("chat.read", "show a conversation (marks it read); --follow keeps printing new messages", PEER,
         Param("follow", "keep printing new messages until interrupted", kind=bool, required=False,
               flag="--follow"),
         Param("after", "only messages with an id above this", kind=int, required=False, flag="--after"),
         Param("wait", "seconds to wait for a new message (at most 60)", kind=int, required=False,
               flag="--wait"))
async def _chat_read(node, peer, follow=None, after=None, wait=None):
    service = _chat(node)
    if wait:
        return await service.wait_messages(peer, after or 0, float(wait))
    return service.read(peer, after or 0)


@command("chat.list", "list open conversations (unread counts, timer, verified; no text)")
async def _chat_list(node):
    return _chat(node).conversations_view()


@command("chat.close", "close a conversation: wipes it here and on the peer", PEER)
async def _chat_close(node, peer):
    return _chat(node).close(peer)


@command("chat.timer", "set a conversation's disappearing timer (both sides honour it)", PEER,
         Param("timer", "off, 30s, 5m, 1h or 1d", choices=tuple(TIMERS)))
async def _chat_timer(node, peer, timer):
    return _chat(node).set_timer(peer, timer)


@command("chat.verify", "show the safety number with a peer; --mark stores that you compared it", PEER,
         Param("mark", "mark the peer as verified", kind=bool, required=False, flag="--mark"))
async def _chat_verify(node, peer, mark=None):
    return _chat(node).verify(peer, bool(mark))


@command("chat.request", "send a contact request (one short line) to a peer that does not chat with you yet",
         PEER, Param("text", f"one line of at most {MAX_REQUEST_TEXT} characters", max_len=MAX_REQUEST_TEXT))
async def _chat_request(node, peer, text):
    return await _chat(node).request(peer, text)


@command("chat.requests", "list contact requests waiting for an answer")
async def _chat_requests(node):
    return _chat(node).requests()


@command("chat.accept", "accept a contact request (the peer becomes EXTERNAL and may chat)", PEER)
async def _chat_accept(node, peer):
    return _chat(node).accept(peer)


@command("chat.refuse", "refuse a contact request", PEER)
async def _chat_refuse(node, peer):
    return _chat(node).refuse(peer)


@command("chat.settings", "show or set read receipts and typing indicators",
         Param("read_receipts", "send and show read receipts", required=False, flag="--read-receipts",
               choices=ON_OFF),
         Param("typing", "send and show typing indicators", required=False, flag="--typing", choices=ON_OFF))
async def _chat_settings(node, read_receipts=None, typing=None):
    def flag(value):
        return None if value is None else value == "on"
    return _chat(node).settings(read_receipts=flag(read_receipts), typing=flag(typing))


FILE_ID = Param("file", "file id (or a unique prefix of it), see `covey chat file list`", max_len=64)


@command("chat.file.send", "offer a file to a peer (end-to-end encrypted; sent when it accepts)", PEER,
         Param("path", "the file (the node reads it)", max_len=4096))
async def _chat_file_send(node, peer, path):
    return await _chat(node).files.send(peer, path)


@command("chat.file.accept", "accept a file offer and save it at PATH (a directory: under its name)",
         FILE_ID, Param("to", "where to save it", flag="--to", max_len=4096))
async def _chat_file_accept(node, file, to=None):
    if to is None:
        raise BadRequest("say where to save it: --to PATH")
    return _chat(node).files.accept(file, to)


@command("chat.file.list", "file offers and transfers, both directions, with progress")
async def _chat_file_list(node):
    return _chat(node).files.views()


@command("chat.file.cancel", "refuse a file offer or stop a transfer (removes the partial file)", FILE_ID)
async def _chat_file_cancel(node, file):
    return _chat(node).files.cancel(file)


def _absolute(name: str):
    def prepare(values: dict) -> dict:
        """CLI side: PATH relative to the command's directory, not the node's."""
        if values.get(name):
            values[name] = os.path.abspath(os.path.expanduser(values[name]))
        return values
    return prepare


_chat_file_send.prepare_args = _absolute("path")
_chat_file_accept.prepare_args = _absolute("to")


@command("chat.mailbox", "what this node holds for peers that are away: counts and bytes per recipient "
         "(never content)")
async def _chat_mailbox(node):
    return _chat(node).mailbox.summary()


GROUP = Param("group", "group id, unique id prefix, or name", max_len=128)


@command("chat.group.create", "create a chat group and invite these peers (you are its creator; each joins "
         "when it accepts)",
         Param("name", "the group's name", max_len=64),
         Param("peers", "peer ids, unique id prefixes, or names", kind=list, max_len=128))
async def _chat_group_create(node, name, peers):
    return _chat(node).groups.create(name, peers)


@command("chat.group.invite", "invite a peer to a group you created (it joins when it accepts)", GROUP, PEER)
async def _chat_group_invite(node, group, peer):
    return _chat(node).groups.invite(group, peer)


@command("chat.group.remove", "remove a member from a group you created (it gets nothing later), or withdraw "
         "its open invitation", GROUP, PEER)
async def _chat_group_remove(node, group, peer):
    return _chat(node).groups.remove(group, peer)


@command("chat.group.leave", "leave a group and wipe it here (its creator leaving closes it)", GROUP)
async def _chat_group_leave(node, group):
    return _chat(node).groups.leave(group)


@command("chat.group.send", "send a message to every member of a group", GROUP,
         Param("text", "the message", max_len=MAX_TEXT))
async def _chat_group_send(node, group, text):
    return await _chat(node).groups.send(group, text)


@command("chat.group.read", "show a group's messages (marks them read)", GROUP,
         Param("after", "only messages with an id above this", kind=int, required=False, flag="--after"))
async def _chat_group_read(node, group, after=None):
    return _chat(node).groups.read(group, after or 0)


@command("chat.group.list", "list your groups (members, version, unread; no text)")
async def _chat_group_list(node):
    return _chat(node).groups.listing()


@command("chat.group.invitations", "list the group invitations waiting for your answer (they expire)")
async def _chat_group_invitations(node):
    return _chat(node).groups.invitations()


@command("chat.group.accept", "accept a group invitation: its creator adds you and every member sees you", GROUP)
async def _chat_group_accept(node, group):
    return await _chat(node).groups.accept(group)


@command("chat.group.decline", "decline a group invitation (it is forgotten; its creator is told)", GROUP)
async def _chat_group_decline(node, group):
    return _chat(node).groups.decline(group)


@command("chat.group.file.send", "offer a file to every member of a group (each accepts it with "
         "`covey chat file accept`)", GROUP, Param("path", "the file (the node reads it)", max_len=4096))
async def _chat_group_file_send(node, group, path):
    return await _chat(node).groups.send_file(group, path)


_chat_group_file_send.prepare_args = _absolute("path")


def follow_messages(call, home, args: dict, out, *, as_json: bool, wait: int = 30) -> list:
    """``covey chat read PEER --follow``: print the conversation, then each new message, until
    interrupted (Ctrl-C). ``call(home, name, args)`` runs one command on the node."""
    import json
    if args.get("wait") or args.get("after"):
        raise BadRequest("--follow picks --after and --wait itself")
    peer = args["peer"]
    shown: list = []
    last = 0
    try:
        batch = call(home, "chat.read", {"peer": peer})
        while True:
            for msg in batch:
                last = max(last, msg["id"])
                shown.append(msg)
                print(json.dumps(msg) if as_json else line(msg), file=out, flush=True)
            batch = call(home, "chat.read", {"peer": peer, "after": last, "wait": wait}, timeout=wait + 30)
    except KeyboardInterrupt:
        return shown


def invitation_line(inv: dict) -> str:
    """One group invitation as a person reads it."""
    creator = inv["names"].get(inv["creator"]) or inv["creator"][:12]
    count = len(inv["members"])
    answer = ("accepted: waiting for its creator to add you" if inv["accepted"]
              else f"`covey chat group accept {inv['group'][:12]}` or `... decline ...`")
    return (f"{inv['name']}  from {creator}  ({count} member{'s' if count != 1 else ''}, id {inv['group'][:12]}, "
            f"expires {inv['expires_at']})  {answer}")


def line(msg: dict) -> str:
    """One message as a person reads it."""
    who = "me" if msg.get("outgoing") else msg["from"][:12]
    timer = f" (disappears {msg['expires_at']})" if msg.get("expires_at") else ""
    return f"[{msg['sent_at']}] {who}: {msg['text']}  [{msg['state']}]{timer}"
