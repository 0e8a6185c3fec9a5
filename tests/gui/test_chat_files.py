"""Files in a conversation, between two real nodes on 127.0.0.1, each with its window.

Only the file dialogs are replaced (their static getters, where the desktop calls them): the offer,
the chunks and the saved file go through the real nodes and the real disk.
"""
from __future__ import annotations

import hashlib
import os

import pytest
from PySide6.QtWidgets import QFileDialog

from desktop.window import MainWindow
from tests.gui.test_chat_tab import WAIT, befriend, chat, click, click_contact, click_tab, shown

MiB = 1 << 20


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def pair(window, make_node, run, qtbot, address_of):
    """alice's window and bob's window, each with the other's conversation open."""
    bob = make_node("bob")
    befriend(window, bob, run, qtbot, address_of)
    bob_window = MainWindow(bob)
    qtbot.addWidget(bob_window)
    bob_window.show()
    qtbot.waitExposed(bob_window)
    for win in (window, bob_window):
        click_tab(win, qtbot, "Chat")
    click_contact(window.chat_panel, qtbot, "bob")
    alice_name = bob_window.chat_panel.name_of(window.node.identity.id)
    click_contact(bob_window.chat_panel, qtbot, alice_name)
    return bob, bob_window


@pytest.fixture
def dialogs(monkeypatch):
    """The file dialogs answer what the test says (``open``: the file to send; ``save``: where to save)."""
    answers: dict = {}
    asked: list = []

    def get_open(parent, caption="", folder="", *args, **kwargs):
        asked.append(("open", caption))
        return answers.get("open", ""), ""

    def get_save(parent, caption="", suggested="", *args, **kwargs):
        asked.append(("save", caption, suggested))
        return answers.get("save", ""), ""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(get_open))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(get_save))
    answers["asked"] = asked
    return answers


def file_rows(panel):
    return [r for r in shown(panel) if r.kind == "file"]


def only_card(panel, qtbot):
    qtbot.waitUntil(lambda: len(file_rows(panel)) == 1, timeout=WAIT)
    card = panel.conversation.card(file_rows(panel)[0].file["id"])
    assert card is not None and card.isVisible()
    return card


def offer(window, qtbot, dialogs, path):
    """alice clicks File…, picks ``path``; returns her card for it."""
    dialogs["open"] = str(path)
    click(qtbot, window.chat_panel.conversation.file_button)
    return only_card(window.chat_panel, qtbot)


def test_a_file_is_offered_accepted_saved_where_chosen_and_progress_reaches_100_on_both_sides(
        window, pair, qtbot, tmp_path, dialogs):
    bob, bob_window = pair
    src = tmp_path / "weights round 12.bin"
    src.write_bytes(os.urandom(3 * MiB + 12345))
    out = tmp_path / "saved" / "from alice.bin"
    out.parent.mkdir()

    mine = offer(window, qtbot, dialogs, src)
    assert mine.title.text() == "weights round 12.bin" and mine.size.text() == "3.2 MB"
    assert mine.state.text() == "waiting for them to accept" and mine.cancel_button.isVisible()
    assert not mine.accept_button.isVisible()

    bob_panel = bob_window.chat_panel
    theirs = only_card(bob_panel, qtbot)
    assert theirs.title.text() == "weights round 12.bin" and theirs.state.text() == "offered to you"
    assert theirs.accept_button.isVisible() and theirs.decline_button.isVisible()
    assert not theirs.progress.isVisible()
    seen = {"alice": [], "bob": []}
    mine.progress.valueChanged.connect(seen["alice"].append)
    theirs.progress.valueChanged.connect(seen["bob"].append)

    dialogs["save"] = str(out)
    click(qtbot, theirs.accept_button)
    assert dialogs["asked"][-1][0] == "save" and dialogs["asked"][-1][2].endswith("weights round 12.bin")
    qtbot.waitUntil(lambda: theirs.progress.value() == 100 and mine.progress.value() == 100, timeout=WAIT)
    qtbot.waitUntil(lambda: theirs.state.text() == f"saved to {out}", timeout=WAIT)
    qtbot.waitUntil(lambda: mine.state.text() == "sent", timeout=WAIT)
    assert sha256(out) == sha256(src)
    assert not theirs.cancel_button.isVisible() and not mine.cancel_button.isVisible()
    for values in seen.values():
        assert values == sorted(values) and values[-1] == 100
    assert [f.name for f in out.parent.iterdir()] == ["from alice.bin"]     # no part file left
    assert "weights round 12.bin" in window.chat_panel.model.spoken(file_rows(window.chat_panel)[0])

    # the file row keeps its place when the conversation is opened again
    window.chat_panel.close_view()
    assert window.chat_panel.open_conversation(bob.identity.id)    # what clicking its row again does
    card = only_card(window.chat_panel, qtbot)
    assert card.state.text() == "sent" and card.progress.value() == 100


def test_a_declined_file_says_so_on_both_sides_and_nothing_is_written(window, pair, qtbot, tmp_path, dialogs):
    bob, bob_window = pair
    src = tmp_path / "notes.txt"
    src.write_bytes(b"not for bob\n" * 1000)
    mine = offer(window, qtbot, dialogs, src)
    theirs = only_card(bob_window.chat_panel, qtbot)
    click(qtbot, theirs.decline_button)
    qtbot.waitUntil(lambda: mine.state.text() == "cancelled: the peer refused it", timeout=WAIT)
    assert theirs.state.text() == "cancelled: cancelled here"
    assert not theirs.accept_button.isVisible() and not mine.cancel_button.isVisible()
    assert [d for d in dialogs["asked"] if d[0] == "save"] == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["notes.txt"]


def test_the_sender_withdraws_an_offer_and_a_file_changed_on_disk_fails_with_the_reason(
        window, pair, qtbot, tmp_path, dialogs):
    bob, bob_window = pair
    bob_panel = bob_window.chat_panel
    src = tmp_path / "draft.bin"
    src.write_bytes(os.urandom(MiB))
    mine = offer(window, qtbot, dialogs, src)
    theirs = only_card(bob_panel, qtbot)
    click(qtbot, mine.cancel_button)
    qtbot.waitUntil(lambda: theirs.state.text() == "cancelled: the peer cancelled it", timeout=WAIT)
    assert not theirs.accept_button.isVisible()

    # a second offer whose file changes on alice's disk before bob accepts: it fails, saying why
    src.write_bytes(os.urandom(MiB))
    dialogs["open"] = str(src)
    click(qtbot, window.chat_panel.conversation.file_button)
    qtbot.waitUntil(lambda: len(file_rows(bob_panel)) == 2, timeout=WAIT)
    second = bob_panel.conversation.card(file_rows(bob_panel)[1].file["id"])
    src.write_bytes(os.urandom(MiB))                          # same size, other bytes
    dialogs["save"] = str(tmp_path / "draft-copy.bin")
    click(qtbot, second.accept_button)
    qtbot.waitUntil(lambda: second.state.text().startswith("failed"), timeout=WAIT)
    assert "changed" in second.state.text()
    assert not (tmp_path / "draft-copy.bin").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_saving_over_an_existing_file_is_refused_and_the_offer_stays_open(window, pair, qtbot, tmp_path, dialogs):
    bob, bob_window = pair
    src = tmp_path / "a.txt"
    src.write_bytes(b"a" * 5000)
    offer(window, qtbot, dialogs, src)
    theirs = only_card(bob_window.chat_panel, qtbot)
    taken = tmp_path / "taken.txt"
    taken.write_bytes(b"keep me")
    dialogs["save"] = str(taken)
    click(qtbot, theirs.accept_button)
    qtbot.waitUntil(lambda: "exists" in bob_window.statusBar().currentMessage(), timeout=WAIT)
    assert taken.read_bytes() == b"keep me"
    assert theirs.state.text() == "offered to you" and theirs.accept_button.isEnabled()
    assert chat(bob).files.views()[0]["state"] == "offered"


def test_a_transfer_cut_midway_resumes_and_both_sides_say_so(window, pair, qtbot, tmp_path, dialogs, monkeypatch):
    import asyncio

    import core.chat.files as cf
    bob, bob_window = pair
    alice = window.node
    monkeypatch.setattr(cf, "PROGRESS_EVERY", 0.0)     # an event per chunk: cut at a precise point
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(16 * MiB))              # 64 chunks
    mine = offer(window, qtbot, dialogs, src)
    theirs = only_card(bob_window.chat_panel, qtbot)
    cut: list = []

    def progress(event) -> None:
        data = event.data
        if not cut and data["direction"] == "in" and data["state"] == "transferring" \
                and 0 < data["done"] >= data["total"] // 4:
            conn = alice.connections.get(bob.identity.id)
            if conn is not None:                       # alice's node dials bob again by itself
                cut.append(data["done"])
                asyncio.ensure_future(conn.close(reason="cut by the test"))
    bob.events.on("chat_file", progress)
    during_cut: list[str] = []            # what bob reads once his window heard of the cut
    bob.events.on("peer_disconnected", lambda _: during_cut.append(theirs.state.text()))
    dialogs["save"] = str(tmp_path / "got.bin")
    click(qtbot, theirs.accept_button)
    qtbot.waitUntil(lambda: theirs.state.text().startswith("saved to"), timeout=60000)
    assert cut and cut[0] < 16 * MiB                   # it really was cut midway
    assert sha256(tmp_path / "got.bin") == sha256(src)
    assert theirs.state.text().endswith("resumed after the connection was cut")
    qtbot.waitUntil(lambda: mine.state.text() == "sent · resumed after the connection was cut", timeout=WAIT)
    assert during_cut and during_cut[0].endswith("connection cut: it resumes when they are back "
                                                 "(only the missing pieces)"), during_cut


def test_a_file_name_from_the_network_is_plain_text_and_the_cards_fit_900_by_600(
        window, pair, qtbot, tmp_path, dialogs, artifacts):
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtWidgets import QApplication

    from tests.gui.test_chat_tab import visible_controls
    bob, bob_window = pair
    evil = tmp_path / '<img src="file:::etc:passwd"><b>x<:b>.txt'
    evil.write_bytes(b"x")
    offer(window, qtbot, dialogs, evil)
    theirs = only_card(bob_window.chat_panel, qtbot)
    assert theirs.title.text() == evil.name
    for label in (theirs.title, theirs.size, theirs.state):
        assert label.textFormat() == Qt.PlainText
    bob_window.resize(900, 600)
    QApplication.processEvents()
    qtbot.waitUntil(lambda: bob_window.height() == 600)
    frame = bob_window.rect()
    controls = visible_controls(bob_window.chat_panel)
    assert theirs.accept_button in controls and theirs.decline_button in controls
    assert bob_window.chat_panel.conversation.file_button in controls
    for control in controls:
        where = control.rect().translated(control.mapTo(bob_window, QPoint(0, 0)))
        assert frame.contains(where), f"{control.accessibleName() or control.text()} is off screen: {where}"
        assert control.width() >= control.minimumSizeHint().width(), f"{control.text()} is cut"
        assert control.toolTip() and control.accessibleName(), control.text()
    assert theirs.progress.accessibleName() and theirs.progress.toolTip()
    assert bob_window.grab().save(str(artifacts / "chat-file-offer-900x600.png"))


def test_cancel_during_a_transfer_stops_both_sides_and_removes_the_partial_file(
        window, pair, qtbot, tmp_path, dialogs, monkeypatch):
    from PySide6.QtCore import QTimer, Qt

    import core.chat.files as cf
    bob, bob_window = pair
    monkeypatch.setattr(cf, "PROGRESS_EVERY", 0.0)     # an event per chunk: cancel at a precise point
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(32 * MiB))              # 128 chunks
    mine = offer(window, qtbot, dialogs, src)
    theirs = only_card(bob_window.chat_panel, qtbot)
    clicked: list = []

    def progress(event) -> None:
        data = event.data
        if not clicked and data["direction"] == "in" and data["state"] == "transferring" \
                and 0 < data["done"] >= data["total"] // 8:
            clicked.append(data["done"])              # bob presses Cancel as soon as the loop turns
            QTimer.singleShot(0, lambda: qtbot.mouseClick(theirs.cancel_button, Qt.LeftButton))
    bob.events.on("chat_file", progress)
    out = tmp_path / "partial.bin"
    dialogs["save"] = str(out)
    click(qtbot, theirs.accept_button)
    qtbot.waitUntil(lambda: theirs.state.text().startswith("cancelled"), timeout=60000)
    assert clicked and clicked[0] < 32 * MiB
    assert theirs.state.text() == "cancelled: cancelled here" and not theirs.cancel_button.isVisible()
    qtbot.waitUntil(lambda: mine.state.text().startswith("cancelled"), timeout=WAIT)
    assert "the peer" in mine.state.text() and not mine.cancel_button.isVisible()
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
