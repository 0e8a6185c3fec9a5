"""Groups in the Chat tab, with three real nodes on 127.0.0.1 and two windows (alice's and bob's),
driven as people do: clicks on the buttons and list items, typed keys, Enter."""
from __future__ import annotations

import asyncio
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from desktop.window import MainWindow
from tests.gui.test_chat_files import dialogs, file_rows, sha256  # noqa: F401  (dialogs: a fixture)
from tests.gui.test_chat_tab import (WAIT, befriend, chat, click, click_contact, click_tab, contact_index,
                                     contact_text, shown, shown_texts, write)


def link(a, b, run, qtbot, address_of):
    """``a`` adds ``b`` by address (named); both let the other chat (group members need pairwise links)."""
    run(a.add_peer(address_of(b), name=b.identity.name))
    qtbot.waitUntil(lambda: a.identity.id in b.connections, timeout=WAIT)
    a.trust(b.identity.id, "external")
    b.trust(a.identity.id, "external")


@pytest.fixture
def trio(window, make_node, run, qtbot, address_of):
    """alice (``window``), bob with a window of his own, carol headless; everyone may chat with everyone."""
    bob, carol = make_node("bob"), make_node("carol")
    befriend(window, bob, run, qtbot, address_of)
    befriend(window, carol, run, qtbot, address_of)
    link(bob, carol, run, qtbot, address_of)
    run(bob.add_peer(address_of(window.node), name="alice"))      # bob names alice in his peer book
    bob_window = MainWindow(bob)
    qtbot.addWidget(bob_window)
    bob_window.show()
    qtbot.waitExposed(bob_window)
    click_tab(window, qtbot, "Chat")
    click_tab(bob_window, qtbot, "Chat")
    return bob, carol, bob_window


def check_item(qtbot, widget, text: str) -> None:
    """Tick the item of a checkable list that starts with ``text``: click it, press Space."""
    item = next(widget.item(i) for i in range(widget.count()) if widget.item(i).text().startswith(text))
    qtbot.mouseClick(widget.viewport(), Qt.LeftButton, pos=widget.visualItemRect(item).center())
    if item.checkState() != Qt.Checked:
        qtbot.keyClick(widget, Qt.Key_Space)
    assert item.checkState() == Qt.Checked


def create_group(window, qtbot, name: str, members: list[str]) -> None:
    panel = window.chat_panel
    click(qtbot, panel.group_button)
    dialog = panel.group_dialog
    assert dialog.isVisible() and not dialog.create_button.isEnabled()
    qtbot.keyClicks(dialog.name, name)
    for member in members:
        check_item(qtbot, dialog.peers, member)
    click(qtbot, dialog.create_button)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=WAIT)
    qtbot.waitUntil(lambda: panel.conversation.title.text() == name)


def accept_headless(node, run, qtbot, name: str) -> None:
    """A node without a window accepts its invitation to ``name`` once it arrived."""
    qtbot.waitUntil(lambda: any(i["name"] == name for i in chat(node).groups.invitations()), timeout=WAIT)
    assert run(chat(node).groups.accept(name))["joined"]


def open_invitation(panel, qtbot, name: str, creator: str = "alice") -> None:
    """The invited person sees the invitation's row and opens it: Accept and Decline, nothing to write."""
    qtbot.waitUntil(lambda: contact_text(panel, name) == f"{name}\ngroup · invitation from {creator}", timeout=WAIT)
    click_contact(panel, qtbot, name)
    conv = panel.conversation
    qtbot.waitUntil(lambda: conv.stay_button.isVisible() and conv.decline_button.isVisible(), timeout=WAIT)
    assert f"{creator} invites you to {name}." in conv.notice_text.text()
    assert not conv.box.isEnabled() and not conv.send_button.isEnabled()
    assert not conv.members_button.isVisible() and not conv.leave_button.isVisible()
    assert not conv.file_button.isVisible() and shown_texts(panel) == []


def accept_in_window(panel, qtbot) -> None:
    """Click Accept; the invitation's page turns into the group's once the creator added us."""
    conv = panel.conversation
    click(qtbot, conv.stay_button)
    qtbot.waitUntil(lambda: not conv.notice.isVisible() and conv.box.isEnabled()
                    and conv.members_button.isVisible(), timeout=WAIT)


def members_seen(window, qtbot) -> list[str]:
    """Open the Members dialog as a person does and read the member ids it lists; close it."""
    panel = window.chat_panel
    click(qtbot, panel.conversation.members_button)
    dialog = panel.members_dialog
    assert dialog.isVisible()
    ids = dialog.members()
    dialog.reject()
    return ids


def test_a_group_is_created_seen_by_members_with_the_same_list_and_a_leaver_gets_nothing_later(
        window, trio, qtbot, run):
    bob, carol, bob_window = trio
    alice, panel, bob_panel = window.node, window.chat_panel, bob_window.chat_panel
    a_id, b_id, c_id = alice.identity.id, bob.identity.id, carol.identity.id

    create_group(window, qtbot, "Lab team", ["bob", "carol"])
    qtbot.waitUntil(lambda: contact_text(panel, "Lab team") == "Lab team\ngroup · 1 member")
    assert panel.conversation.members.text() == ("1 member: you · created by you · invited, not answered yet: "
                                                  "bob, carol")
    assert not panel.conversation.safety_button.isVisible() and panel.conversation.file_button.isVisible()

    # bob sees an invitation, not a group; he accepts and sees the same member list as alice
    open_invitation(bob_panel, qtbot, "Lab team")
    assert bob_panel.conversation.members.text() == "1 member now: alice · created by alice"
    assert chat(bob).groups.listing() == []
    accept_in_window(bob_panel, qtbot)
    accept_headless(carol, run, qtbot, "Lab team")
    qtbot.waitUntil(lambda: panel.conversation.members.text().startswith("3 members: you, bob, carol"), timeout=WAIT)
    qtbot.waitUntil(lambda: contact_text(bob_panel, "Lab team") == "Lab team\ngroup · 3 members", timeout=WAIT)
    assert members_seen(window, qtbot) == members_seen(bob_window, qtbot) == [a_id, b_id, c_id]
    carol_view = chat(carol).groups.listing()[0]
    assert carol_view["members"] == [a_id, b_id, c_id] and carol_view["name"] == "Lab team"

    # a round trip, each message shown with its sender's name
    write(panel, qtbot, "hello team")
    qtbot.waitUntil(lambda: shown_texts(bob_panel) == ["hello team"], timeout=WAIT)
    assert bob_panel.model.sender(shown(bob_panel)[0]) == "alice"
    write(bob_panel, qtbot, "hi alice and carol")
    qtbot.waitUntil(lambda: shown_texts(panel) == ["hello team", "hi alice and carol"], timeout=WAIT)
    assert panel.model.sender(shown(panel)[1]) == "bob" and panel.model.sender(shown(panel)[0]) == "You"
    qtbot.waitUntil(lambda: [m["text"] for m in chat(carol).groups.read("Lab team")]
                    == ["hello team", "hi alice and carol"], timeout=WAIT)
    qtbot.waitUntil(lambda: shown(panel)[0].state == "delivered", timeout=WAIT)

    # bob leaves: asked first, then the group is read-only for him and says why
    click(qtbot, bob_panel.conversation.leave_button)
    box = bob_panel.confirm_box
    assert box.isVisible() and "Leave the group Lab team?" in box.text()
    qtbot.mouseClick(box.button(QMessageBox.Yes), Qt.LeftButton)
    qtbot.waitUntil(lambda: bob_panel.conversation.notice.isVisible())
    assert bob_panel.conversation.notice_text.text().startswith("You left Lab team.")
    assert not bob_panel.conversation.box.isEnabled() and not bob_panel.conversation.send_button.isEnabled()
    assert not bob_panel.conversation.leave_button.isVisible() and shown_texts(bob_panel) == []
    qtbot.waitUntil(lambda: "you left" in contact_text(bob_panel, "Lab team"))
    assert chat(bob).groups.listing() == []

    # alice and carol see two members; what alice writes next reaches carol, never bob
    qtbot.waitUntil(lambda: panel.conversation.members.text().startswith("2 members: you, carol"), timeout=WAIT)
    qtbot.waitUntil(lambda: "2 members" in contact_text(panel, "Lab team"))
    qtbot.waitUntil(lambda: chat(carol).groups.listing()[0]["members"] == [a_id, c_id], timeout=WAIT)
    write(panel, qtbot, "after bob left")
    qtbot.waitUntil(lambda: "after bob left" in [m["text"] for m in chat(carol).groups.read("Lab team")],
                    timeout=WAIT)
    qtbot.waitUntil(lambda: shown(panel)[-1].state == "delivered", timeout=WAIT)
    for _ in range(20):                        # give a stray copy every chance to arrive
        run(asyncio.sleep(0.05))
    assert shown_texts(bob_panel) == [] and chat(bob).groups.listing() == []
    assert all("after bob left" not in m["text"] for m in chat(bob).read(a_id, mark=False))

    # bob drops the old group from his list
    click(qtbot, bob_panel.conversation.dismiss_button)
    assert contact_index(bob_panel, "Lab team") is None and bob_panel.conversation.currentIndex() == 0


def test_the_creator_invites_and_removes_a_member_who_then_sees_why_and_can_decline(window, trio, qtbot, run):
    bob, carol, bob_window = trio
    panel, bob_panel = window.chat_panel, bob_window.chat_panel
    a_id, b_id, c_id = window.node.identity.id, bob.identity.id, carol.identity.id

    # a name the service refuses: the dialog says why and stays open
    click(qtbot, panel.group_button)
    dialog = panel.group_dialog
    qtbot.keyClicks(dialog.name, "x" * 70)
    check_item(qtbot, dialog.peers, "carol")
    click(qtbot, dialog.create_button)
    assert dialog.isVisible() and dialog.error.isVisible()
    assert "a group name is 1 to 64 printable characters" in dialog.error.text()
    assert chat(window.node).groups.listing() == []
    dialog.reject()

    create_group(window, qtbot, "Reading club", ["carol"])
    accept_headless(carol, run, qtbot, "Reading club")
    qtbot.waitUntil(lambda: panel.conversation.members.text().startswith("2 members: you, carol"), timeout=WAIT)
    assert members_seen(window, qtbot) == [a_id, c_id]
    assert contact_index(bob_panel, "Reading club") is None

    # alice invites bob from the Members dialog: he is listed as invited, not as a member
    click(qtbot, panel.conversation.members_button)
    dialog = panel.members_dialog
    assert dialog.remove_button.isVisible() and not dialog.remove_button.isEnabled()
    combo = dialog.candidates
    assert [combo.itemData(i) for i in range(combo.count())] == [b_id]
    click(qtbot, dialog.invite_button)
    qtbot.waitUntil(lambda: dialog.invited() == [b_id], timeout=WAIT)
    assert dialog.members() == [a_id, c_id] and combo.count() == 0
    dialog.reject()
    write(panel, qtbot, "before bob answered")
    open_invitation(bob_panel, qtbot, "Reading club")
    assert bob_panel.conversation.members.text() == "2 members now: alice, carol · created by alice"
    accept_in_window(bob_panel, qtbot)
    assert shown_texts(bob_panel) == []                      # nothing from before he joined
    assert members_seen(bob_window, qtbot) == [a_id, c_id, b_id]
    click(qtbot, bob_panel.conversation.members_button)
    bob_dialog = bob_panel.members_dialog
    assert not bob_dialog.remove_button.isVisible() and not bob_dialog.invite_button.isVisible()
    bob_dialog.reject()

    write(panel, qtbot, "welcome bob")
    qtbot.waitUntil(lambda: shown_texts(bob_panel) == ["welcome bob"], timeout=WAIT)

    # alice removes bob: he sees why, read-only
    click(qtbot, panel.conversation.members_button)
    dialog = panel.members_dialog
    rows = dialog.list
    item = next(rows.item(i) for i in range(rows.count()) if rows.item(i).data(Qt.UserRole + 1) == b_id)
    qtbot.mouseClick(rows.viewport(), Qt.LeftButton, pos=rows.visualItemRect(item).center())
    click(qtbot, dialog.remove_button)
    qtbot.waitUntil(lambda: dialog.members() == [a_id, c_id], timeout=WAIT)
    qtbot.waitUntil(lambda: bob_panel.conversation.notice.isVisible()
                    and "You were removed from Reading club" in bob_panel.conversation.notice_text.text(),
                    timeout=WAIT)
    assert shown_texts(bob_panel) == [] and not bob_panel.conversation.box.isEnabled()
    qtbot.waitUntil(lambda: "you were removed" in contact_text(bob_panel, "Reading club"))
    dialog.reject()
    write(panel, qtbot, "only for carol now")
    qtbot.waitUntil(lambda: "only for carol now" in [m["text"] for m in chat(carol).groups.read("Reading club")],
                    timeout=WAIT)
    assert shown_texts(bob_panel) == []

    # a fresh invitation that bob declines: it goes, and nothing of the group stays with him
    click(qtbot, panel.conversation.members_button)
    click(qtbot, panel.members_dialog.invite_button)
    open_invitation(bob_panel, qtbot, "Reading club")
    click(qtbot, bob_panel.conversation.decline_button)
    qtbot.waitUntil(lambda: contact_index(bob_panel, "Reading club") is None, timeout=WAIT)
    assert bob_panel.conversation.currentIndex() == 0
    assert chat(bob).groups.invitations() == [] and chat(bob).groups.listing() == []
    qtbot.waitUntil(lambda: panel.group_view(panel.group)["invited"] == [], timeout=WAIT)
    assert panel.group_view(panel.group)["members"] == [a_id, c_id]
    qtbot.waitUntil(lambda: panel.members_dialog.invited() == [], timeout=WAIT)

    # invited once more, then alice withdraws it from the Members dialog: bob's page goes
    click(qtbot, panel.members_dialog.invite_button)
    open_invitation(bob_panel, qtbot, "Reading club")
    dialog = panel.members_dialog
    qtbot.waitUntil(lambda: dialog.invited() == [b_id], timeout=WAIT)
    rows = dialog.list
    item = next(rows.item(i) for i in range(rows.count()) if rows.item(i).data(Qt.UserRole + 1) == b_id)
    assert item.text() == "bob (invited, not answered yet)"
    qtbot.mouseClick(rows.viewport(), Qt.LeftButton, pos=rows.visualItemRect(item).center())
    click(qtbot, dialog.remove_button)
    qtbot.waitUntil(lambda: contact_index(bob_panel, "Reading club") is None, timeout=WAIT)
    assert bob_panel.conversation.currentIndex() == 0 and chat(bob).groups.invitations() == []


def test_accepting_an_invitation_that_expired_says_so_and_it_goes(window, trio, qtbot, run):
    bob, carol, bob_window = trio
    bob_panel = bob_window.chat_panel
    create_group(window, qtbot, "Too late", ["bob"])
    open_invitation(bob_panel, qtbot, "Too late")
    chat(bob).groups.clock = lambda: time.time() + 2 * 24 * 3600     # two days on
    failures = []
    bob_panel.failed.connect(failures.append)
    click(qtbot, bob_panel.conversation.stay_button)
    qtbot.waitUntil(lambda: bool(failures), timeout=WAIT)
    assert "the invitation to Too late expired" in failures[0]
    qtbot.waitUntil(lambda: contact_index(bob_panel, "Too late") is None, timeout=WAIT)
    assert bob_panel.conversation.currentIndex() == 0 and chat(bob).groups.listing() == []


def test_group_names_and_messages_from_the_network_are_plain_text(window, trio, qtbot, run):
    bob, carol, bob_window = trio
    bob_panel = bob_window.chat_panel
    evil = '<img src="file:///etc/passwd"><b>x</b>'
    group = chat(window.node).groups.create(evil, [bob.identity.id, carol.identity.id])
    open_invitation(bob_panel, qtbot, evil)
    conv = bob_panel.conversation
    for label in (conv.title, conv.members, conv.notice_text):
        assert label.textFormat() == Qt.PlainText
    assert conv.title.text() == evil and evil in conv.notice_text.text()
    accept_in_window(bob_panel, qtbot)
    run(chat(window.node).groups.send(group["group"], evil))
    qtbot.waitUntil(lambda: shown_texts(bob_panel) == [evil], timeout=WAIT)
    assert bob_panel.model.spoken(shown(bob_panel)[0]).endswith(evil)


def test_the_group_view_and_its_dialogs_fit_900_by_600_and_every_control_says_what_it_does(window, trio, qtbot,
                                                                                          artifacts):
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QApplication

    from tests.gui.test_chat_tab import visible_controls
    bob, carol, bob_window = trio
    panel, bob_panel = window.chat_panel, bob_window.chat_panel
    create_group(window, qtbot, "A group with a rather long name for a small window", ["bob", "carol"])
    open_invitation(bob_panel, qtbot, "A group with a rather long name for a small window")
    for win in (window, bob_window):
        win.resize(900, 600)
    QApplication.processEvents()
    qtbot.waitUntil(lambda: window.height() == 600 and bob_window.height() == 600)
    for win, expected in ((window, (panel.conversation.members_button, panel.conversation.leave_button)),
                          (bob_window, (bob_panel.conversation.stay_button, bob_panel.conversation.decline_button))):
        controls = visible_controls(win.chat_panel)
        assert set(expected) <= set(controls)
        for control in controls:
            where = control.rect().translated(control.mapTo(win, QPoint(0, 0)))
            assert win.rect().contains(where), f"{control.text()} is off screen: {where}"
            assert control.width() >= control.minimumSizeHint().width(), f"{control.text()} is cut"
            assert control.toolTip() and (control.accessibleName() or control.text()), control.text()
    assert bob_window.grab().save(str(artifacts / "chat-group-invited-900x600.png"))
    write(panel, qtbot, "Welcome to the group! The weights from round 12 are in.")
    qtbot.waitUntil(lambda: len(shown(panel)) == 1, timeout=WAIT)
    assert window.grab().save(str(artifacts / "chat-group-900x600.png"))
    click(qtbot, panel.group_button)
    dialog = panel.group_dialog
    for widget in (dialog.name, dialog.peers, dialog.create_button):
        assert widget.toolTip() and widget.accessibleName()
    dialog.reject()
    click(qtbot, panel.conversation.members_button)
    members = panel.members_dialog
    for widget in (members.list, members.remove_button, members.candidates, members.invite_button):
        assert widget.toolTip() and widget.accessibleName()
    members.reject()


def test_the_creator_leaving_closes_the_group_for_every_member(window, trio, qtbot, run):
    bob, carol, bob_window = trio
    panel, bob_panel = window.chat_panel, bob_window.chat_panel
    create_group(window, qtbot, "Short lived", ["bob", "carol"])
    open_invitation(bob_panel, qtbot, "Short lived")
    accept_in_window(bob_panel, qtbot)
    accept_headless(carol, run, qtbot, "Short lived")
    write(panel, qtbot, "closing soon")
    qtbot.waitUntil(lambda: shown_texts(bob_panel) == ["closing soon"], timeout=WAIT)

    click(qtbot, panel.conversation.leave_button)
    box = panel.confirm_box
    assert "leaving closes it for every member" in box.informativeText()
    qtbot.mouseClick(box.button(QMessageBox.Yes), Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.conversation.notice_text.text().startswith("You left Short lived."))
    qtbot.waitUntil(lambda: bob_panel.conversation.notice.isVisible() and bob_panel.conversation.notice_text.text()
                    == "Short lived was closed by its creator. Its messages were wiped here.", timeout=WAIT)
    assert shown_texts(bob_panel) == [] and not bob_panel.conversation.box.isEnabled()
    qtbot.waitUntil(lambda: "closed by its creator" in contact_text(bob_panel, "Short lived"))
    qtbot.waitUntil(lambda: chat(carol).groups.listing() == [], timeout=WAIT)


def test_a_file_in_a_group_goes_to_each_member_who_accepts_it(window, trio, qtbot, run, tmp_path, dialogs):
    bob, carol, bob_window = trio
    panel, bob_panel = window.chat_panel, bob_window.chat_panel
    create_group(window, qtbot, "Data crew", ["bob", "carol"])
    open_invitation(bob_panel, qtbot, "Data crew")
    accept_in_window(bob_panel, qtbot)
    accept_headless(carol, run, qtbot, "Data crew")
    qtbot.waitUntil(lambda: panel.conversation.members.text().startswith("3 members"), timeout=WAIT)
    src = tmp_path / "round 12.bin"
    src.write_bytes(bytes(range(256)) * 5000)
    out = tmp_path / "bob got it.bin"

    # alice clicks File… in the group: one card per member, each saying to whom
    assert panel.conversation.file_button.isVisible()
    dialogs["open"] = str(src)
    click(qtbot, panel.conversation.file_button)
    qtbot.waitUntil(lambda: len(file_rows(panel)) == 2, timeout=WAIT)
    cards = {r.file["peer"]: panel.conversation.card(r.file["id"]) for r in file_rows(panel)}
    to_bob, to_carol = cards[bob.identity.id], cards[carol.identity.id]
    assert to_bob.state.text() == "to bob · waiting for them to accept"
    assert to_carol.state.text() == "to carol · waiting for them to accept"

    # bob sees one card in the group (not in his conversation with alice) and saves it
    qtbot.waitUntil(lambda: len(file_rows(bob_panel)) == 1, timeout=WAIT)
    theirs = bob_panel.conversation.card(file_rows(bob_panel)[0].file["id"])
    assert theirs.state.text() == "from alice · offered to you" and theirs.title.text() == "round 12.bin"
    dialogs["save"] = str(out)
    click(qtbot, theirs.accept_button)
    qtbot.waitUntil(lambda: theirs.state.text() == f"from alice · saved to {out}", timeout=WAIT)
    qtbot.waitUntil(lambda: to_bob.state.text() == "to bob · sent", timeout=WAIT)
    assert sha256(out) == sha256(src)

    # carol (headless) refuses hers: alice's card for carol says so
    offer = next(v for v in chat(carol).files.views() if v["direction"] == "in")
    assert offer["group"] == panel.group
    chat(carol).files.cancel(offer["id"])
    qtbot.waitUntil(lambda: to_carol.state.text() == "to carol · cancelled: the peer refused it", timeout=WAIT)

    # the group's file is not a row of bob's one-to-one conversation with alice
    click_contact(bob_panel, qtbot, "alice")
    assert file_rows(bob_panel) == []
