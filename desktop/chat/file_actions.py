"""The Chat tab's file actions (a mixin of :class:`~desktop.chat.chat_panel.ChatPanel`).

A file is a row of its conversation (a :class:`~desktop.chat.file_row.FileCard`),
placed after the message shown when it appeared; ``chat_file`` events move its
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
        try:
            view = self.chat.files.find(fid).view()
        except CoveyError:     # already forgotten (the conversation was closed): what the event says
            view = {**data, "id": fid}
        if fid not in self.file_places:
            self.file_places[fid] = self.model.last_id if peer == self.peer else self._last_message(peer)
            self._prune_files()
            if view.get("direction") == "in" and view.get("state") == "offered":
                name = self.name_of(peer)
                self.status.emit(f"{name} offers you a file: accept or decline it in the conversation")
                if not self.window().isActiveWindow():
                    self.notifier.notify("Covey", f"{name} offers you a file")
        if peer != self.peer or "name" not in view:
            return
        if self.conversation.update_file(view, self.file_notes.get(fid, "")):
            return
        if self.file_places[fid] >= self.model.last_id:
            self.model.add_file(view, self.file_places[fid])
        else:
            self.model.set_rows(self.rows_with_files(peer, self.chat.read(peer, 0, mark=False)))

    def rows_with_files(self, peer: str, views: list[dict]) -> list[Row]:
        """A conversation's messages with its file rows, each after the message it followed."""
        rows = [Row.from_view(v) for v in views]
        last = rows[-1].id if rows else 0
        subs: dict[int, int] = {}
        for view in self.chat.files.views():
            if view["peer"] != peer:
                continue
            after = self.file_places.setdefault(view["id"], last)
            subs[after] = subs.get(after, 0) + 1
            row = Row.for_file(after, subs[after], view)
            row.note = self.file_notes.get(view["id"], "")
            rows.append(row)
        rows.sort(key=lambda r: r.key)
        return rows

    def _last_message(self, peer: str) -> int:
        try:
            views = self.chat.read(peer, 0, mark=False)
        except CoveyError:      # the peer was removed meanwhile: its files are being dropped
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
            if peer == self.peer:
                self.conversation.update_file(view, note)

    @asyncSlot()
    async def send_file(self) -> None:
        """File…: pick a file and offer it (the node hashes it in a thread; nothing is read here)."""
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
                self.conversation.update_file(view)
                return f"Receiving {view['name']} into {view['path']}"
            run_action_now(self, lambda: self.chat.files.accept(fid, path), failure="Could not accept the file",
                           success=accepted)
            return

        def ended(view: dict) -> str:
            self.conversation.update_file(view)
            return "File declined" if action == "decline" else "Transfer cancelled"
        if card is not None:
            card.set_busy(True)
        ok = run_action_now(self, lambda: self.chat.files.cancel(fid),
                            failure="Could not decline the file" if action == "decline" else "Could not cancel",
                            success=ended)
        if card is not None and not ok:
            card.set_busy(False)
