"""The Chat tab's file actions (a mixin of :class:`~desktop.chat.chat_panel.ChatPanel`).

A file is a row of its conversation (a :class:`~desktop.chat.file_row.FileCard`),
placed after the message shown when it appeared (a group's file: a row of the
group, one per member on the sender's side, each saying who); ``chat_file`` events move its
progress bar and state on both sides; a cut connection and the resumption are
said on the card. Paths only: the desktop never reads a file's content.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog
from qasync import asyncSlot

from core.errors import CoveyError

from ..actions import run_action, run_action_now
from .messages_model import Row

MAX_FILE_PLACES = 256  # where each file row sits in its conversation (pruned to live transfers)
CUT_NOTE = "connection cut: it resumes when they are back (only the missing pieces)"
RESUMED_NOTE = "resumed after the connection was cut"


class FileActions:
    """File handling for the panel (it owns ``chat``, ``model``, ``conversation``, ``file_places``, ...)."""

    def on_event_chat_file(self, event) -> None:
        """A file offer or transfer moved on: its row in the open conversation redraws."""
        data = event.data
        peer, fid = str(data.get("peer")), str(data.get("file"))
        key = str(data.get("group") or peer)      # the conversation the file belongs to
        try:
            view = self._file_view(self.chat.files.find(fid).view())
        except CoveyError:     # already forgotten (the conversation was closed): what the event says
            view = {**data, "id": fid}
        if fid not in self.file_places:
            self.file_places[fid] = self.model.last_id if key == self.current else self._last_message(key)
            self._prune_files()
            if view.get("direction") == "in" and view.get("state") == "offered":
                name = self.name_of(peer)
                where = f" in {self.group_name(key)}" if data.get("group") else ""
                self.status.emit(f"{name} offers you a file{where}: accept or decline it in the conversation")
                if not self.window().isActiveWindow():
                    self.notifier.notify("Covey", f"{name} offers you a file")
        if key != self.current or "name" not in view:
            return
        if self.conversation.update_file(view, self.file_notes.get(fid, "")):
            return
        if self.file_places[fid] >= self.model.last_id:
            self.model.add_file(view, self.file_places[fid])
        else:
            self.model.set_rows(self.rows_with_files(key, self._messages(key)))

    def _file_view(self, view: dict) -> dict:
        """A transfer's view for its card: a group's says who it goes to or comes from."""
        return {**view, "who": self.name_of(view["peer"])} if view.get("group") else view

    def _messages(self, key: str) -> list[dict]:
        """A conversation's (a peer's or a group's) messages, not marking them read."""
        if key == self.group or key in {g["group"] for g in self.chat.groups.listing()}:
            return self.chat.groups.read(key, 0, mark=False)
        return self.chat.read(key, 0, mark=False)

    def rows_with_files(self, key: str, views: list[dict]) -> list[Row]:
        """A conversation's messages with its file rows, each after the message it followed
        (``key``: the peer, or the group, whose conversation it is)."""
        rows = [Row.from_view(v) for v in views]
        last = rows[-1].id if rows else 0
        subs: dict[int, int] = {}
        for view in self.chat.files.views():
            if (view.get("group") or view["peer"]) != key:
                continue
            view = self._file_view(view)
            after = self.file_places.setdefault(view["id"], last)
            subs[after] = subs.get(after, 0) + 1
            row = Row.for_file(after, subs[after], view)
            row.note = self.file_notes.get(view["id"], "")
            rows.append(row)
        rows.sort(key=lambda r: r.key)
        return rows

    def _last_message(self, key: str) -> int:
        try:
            views = self._messages(key)
        except CoveyError:      # the peer was removed (or the group left) meanwhile: its files are dropped
            return 0
        return int(views[-1]["id"]) if views else 0

    def _prune_files(self) -> None:
        if len(self.file_places) <= MAX_FILE_PLACES:
            return
        live = {v["id"] for v in self.chat.files.views()}
        for fid in [f for f in self.file_places if f not in live]:
            del self.file_places[fid]
            self.file_notes.pop(fid, None)
        while len(self.file_places) > MAX_FILE_PLACES:
            fid, _ = self.file_places.popitem(last=False)
            self.file_notes.pop(fid, None)

    def _note_files(self, peer, only_if: str | None, note: str) -> None:
        """Say on each active transfer with ``peer`` that the connection was cut, or that it resumed."""
        for view in self.chat.files.views():
            fid = view["id"]
            if view["peer"] != peer or view["state"] not in ("transferring", "offered"):
                continue
            if only_if is not None and self.file_notes.get(fid) != only_if:
                continue
            if view["state"] == "offered" and only_if is None:
                continue
            self.file_notes[fid] = note
            if (view.get("group") or peer) == self.current:
                self.conversation.update_file(self._file_view(view), note)

    @asyncSlot()
    async def send_file(self) -> None:
        """File…: pick a file and offer it (the node hashes it in a thread; nothing is read here); in a
        group, to each member."""
        if self.group is not None:
            await self.send_group_file(self.group)
            return
        peer = self.peer
        if peer is None:
            return
        name = self.name_of(peer)
        path, _ = QFileDialog.getOpenFileName(self, f"Send a file to {name}", str(Path.home()))
        if not path:
            return
        await run_action(self, self.chat.files.send(peer, path), failure=f"Could not send the file to {name}",
                         busy=self.conversation.file_button,
                         success=lambda view: f"{view['name']} offered to {name}: it goes once they accept it")

    async def send_group_file(self, gid: str) -> None:
        name = self.group_name(gid)
        path, _ = QFileDialog.getOpenFileName(self, f"Send a file to the members of {name}", str(Path.home()))
        if not path:
            return

        def offered(view: dict) -> str:
            missed = [self.name_of(p) for p in view["unreachable"]]
            return (f"{view['name']} offered to {len(view['files'])} member{'s' if len(view['files']) != 1 else ''} "
                    f"of {name}: it goes to each who accepts it"
                    + (f"; not offered to {', '.join(missed)}" if missed else ""))
        await run_action(self, self.chat.groups.send_file(gid, path), failure=f"Could not send the file to {name}",
                         busy=self.conversation.file_button, success=offered)

    def file_action(self, action: str, fid: str) -> None:
        """Accept (choose where to save), decline or cancel a file."""
        card = self.conversation.card(fid)
        if action == "accept":
            try:
                offered = self.chat.files.find(fid).view()
            except CoveyError as exc:
                self.failed.emit(f"Could not accept the file: {exc}")
                return
            folder = QStandardPaths.writableLocation(QStandardPaths.DownloadLocation) or str(Path.home())
            path, _ = QFileDialog.getSaveFileName(self, f"Save the file from {self.name_of(offered['peer'])}",
                                                  str(Path(folder) / offered["name"]))
            if not path:
                return
            def accepted(view: dict) -> str:
                self.conversation.update_file(self._file_view(view))
                return f"Receiving {view['name']} into {view['path']}"
            run_action_now(self, lambda: self.chat.files.accept(fid, path), failure="Could not accept the file",
                           success=accepted)
            return

        def ended(view: dict) -> str:
            self.conversation.update_file(self._file_view(view))
            return "File declined" if action == "decline" else "Transfer cancelled"
        if card is not None:
            card.set_busy(True)
        ok = run_action_now(self, lambda: self.chat.files.cancel(fid),
                            failure="Could not decline the file" if action == "decline" else "Could not cancel",
                            success=ended)
        if card is not None and not ok:
            card.set_busy(False)
