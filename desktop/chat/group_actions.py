"""The Chat tab's group actions (a mixin of :class:`~desktop.chat.chat_panel.ChatPanel`).

Create a group, show its members (the creator's signed list, the same for every
member), invite and remove (its creator), leave; an invitation from another
creator is a row of its own (nothing of the group is shown before the person
answers) with Accept (join: the creator adds us) and Decline (forgotten here);
a group this node is no longer in stays in the list, read-only, saying why,
until the person removes it. Every call goes to ``chat.groups`` through
:mod:`desktop.actions`.
"""
from __future__ import annotations

from PySide6.QtWidgets import QMessageBox
from qasync import asyncSlot

from ..actions import confirm, run_action, run_action_now
from .group_dialogs import CreateGroupDialog, MembersDialog

MAX_DEPARTED = 32     # groups shown read-only after leaving them (the oldest go first)
GONE = ("left", "removed", "closed")


def departed_text(why: str, name: str) -> str:
    """What a person reads in a group it is no longer in."""
    return {"left": f"You left {name}. Its messages were wiped here and you get none of the later ones.",
            "removed": f"You were removed from {name} by its creator. Its messages were wiped here and you "
                       f"get none of the later ones.",
            "closed": f"{name} was closed by its creator. Its messages were wiped here."}.get(why, why)


INVITATION_GONE = {"invitation_withdrawn": "was withdrawn by its creator", "invitation_expired": "expired"}


def group_row(gid: str, name: str, members: int, unread: int, messages: int, departed: str = "",
              note: str = "") -> dict:
    """A group's row in the contacts list (``note``: an invitation's state instead of the member count)."""
    return {"kind": "group", "id": gid, "name": name, "tier": "group", "connected": True, "verified": False,
            "unread": unread, "last_at": None, "typing": False, "messages": messages, "members": members,
            "departed": departed, "note": note}


def invitation_row(invitation: dict, creator: str) -> dict:
    """An invitation's row: the group's name, who invites, or that we accepted and wait."""
    note = f"joining… (waiting for {creator})" if invitation["accepted"] else f"invitation from {creator}"
    return group_row(invitation["group"], invitation["name"], len(invitation["members"]), 0, 0, note=note)


class GroupActions:
    """Group handling for the panel (it owns ``chat``, ``node``, ``model``, ``conversation``, ...)."""

    def on_event_chat_group(self, event) -> None:
        """A group was created, joined, changed, left or closed (``core.chat.groups``)."""
        data = event.data
        gid, name, action = str(data.get("group")), str(data.get("name") or ""), str(data.get("action"))
        mine = {g["group"]: g for g in self.chat.groups.listing()}
        invited = self.invitation_view(gid)
        if (gid in mine or invited) and self.departed.pop(gid, None) is not None and gid == self.group:
            self.open_group(gid)               # invited again while its read-only page is open
        if action in GONE and gid not in mine:
            self.departed[gid] = {"name": name, "why": action, "members": list(data.get("members") or [])}
            self.departed.move_to_end(gid)
            while len(self.departed) > MAX_DEPARTED:
                self.departed.popitem(last=False)
            if gid == self.group:
                self.model.clear()
                self.conversation.show_departed(departed_text(action, name))
            if action != "left":
                self.status.emit(departed_text(action, name))
            if self.members_dialog is not None and self.members_dialog.property("group") == gid:
                self.members_dialog.reject()
        elif action == "invitation" and invited:
            creator = self.name_of(invited["creator"])
            self.status.emit(f"{creator} invites you to the group {name}: open it to accept or decline")
            if not self.window().isActiveWindow():
                self.notifier.notify("Covey", f"{creator} invites you to a group")
        elif action == "joined" and gid in mine:
            self.status.emit(f"You joined {name}")
            if gid == self.group:
                self.open_group(gid)           # the invitation's page becomes the group's
        elif action in INVITATION_GONE and gid not in mine and not invited:
            self.status.emit(f"The invitation to {name} {INVITATION_GONE[action]}")
            if gid == self.group:
                self.close_view()
        elif action == "invitation_declined" and data.get("peer"):
            self.status.emit(f"{self.name_of(str(data['peer']))} declined the invitation to {name}")
        if gid == self.group and (gid in mine or invited):
            self.refresh_group()
        if self.members_dialog is not None and self.members_dialog.property("group") == gid and gid in mine:
            self.members_dialog.show_group(self.group_view(gid) or mine[gid], self.chat_peers())
        self.contacts_update.request()

    def group_name(self, gid: str | None) -> str:
        """A group's name (also of one we left), or "a group"."""
        view = self.group_view(gid) if gid else None
        return view["name"] if view else (self.departed.get(gid or "", {}).get("name") or "a group")

    def group_view(self, gid: str) -> dict | None:
        """The group's summary, this node's own name in it as "you"."""
        view = next((g for g in self.chat.groups.listing() if g["group"] == gid), None)
        if view is not None:
            view["names"] = {**view["names"], self.node.identity.id: "you"}
        return view

    def invitation_view(self, gid: str) -> dict | None:
        """Our open invitation to the group, if any (nothing of the group is shown before we answer)."""
        return next((i for i in self.chat.groups.invitations() if i["group"] == gid), None)

    def chat_peers(self) -> list[dict]:
        """Peers our policy lets us chat with (who can be in a group with us)."""
        return [p for p in self.node.list_peers()
                if not p["discovered"] and not p["banned"] and self.may_chat(p["id"])]

    def open_group(self, gid: str) -> bool:
        """Show a group's conversation (read-only, saying why, once we are no longer in it)."""
        gone = self.departed.get(gid)
        if gone is not None:
            self.peer, self.group = None, gid
            self.model.clear()
            self.conversation.open(gone["name"], group=True)
            self.conversation.show_departed(departed_text(gone["why"], gone["name"]))
            return True
        invitation = self.invitation_view(gid)
        if invitation is not None:
            self.peer, self.group = None, gid
            self.model.clear()
            self.conversation.open(invitation["name"], group=True)
            self.refresh_group()
            return True

        def shown(views: list) -> None:
            self.peer, self.group = None, gid
            self.model.set_rows(self.rows_with_files(gid, views))
            view = self.group_view(gid)
            self.conversation.open(view["name"] if view else "", group=True)
            self.refresh_group()
            self.contacts_update.request()     # unread counts
        return run_action_now(self, lambda: self.chat.groups.read(gid, 0), failure="Could not open the group",
                              success=shown)

    def refresh_group(self) -> None:
        gid = self.group
        if gid is None or gid in self.departed:
            return
        view = self.group_view(gid)
        if view is not None:
            self.conversation.show_group(view)
            return
        invitation = self.invitation_view(gid)
        if invitation is None:
            return
        names = {**invitation["names"], self.node.identity.id: "you"}
        creator = names.get(invitation["creator"]) or self.name_of(invitation["creator"])
        members = ", ".join(names.get(m) or m[:12] for m in invitation["members"])
        if invitation["accepted"]:
            text = f"You accepted. Waiting for {creator} to add you: the group opens here once they have."
        else:
            text = (f"{creator} invites you to {invitation['name']}. Accept to join: its members then see you "
                    f"in the member list and you see their messages. Decline, and nothing of it stays here. "
                    f"The invitation expires {invitation['expires_at'].replace('T', ' ').rstrip('Z')} UTC.")
        count = len(invitation["members"])
        self.conversation.show_invitation(text, f"{count} member{'s' if count != 1 else ''} now: {members} · "
                                                f"created by {creator}", answer=not invitation["accepted"])

    def catch_up_group(self) -> None:
        """Add the open group's new messages (reading them marks them read)."""
        gid = self.group
        if gid is None or gid in self.departed:
            return
        def shown(views: list) -> None:
            self.model.append(views)
        run_action_now(self, lambda: self.chat.groups.read(gid, self.model.last_id),
                       failure="Could not read the group", success=shown)

    def open_group_dialog(self) -> CreateGroupDialog:
        """New group…: a name and members to tick."""
        dialog = CreateGroupDialog(self.chat_peers(), self)
        dialog.submitted.connect(self.create_group)
        self.group_dialog = dialog
        dialog.open()
        return dialog

    def create_group(self, name: str, peers: list) -> None:
        """Create the group; a refusal is shown in the dialog, which stays open."""
        dialog = self.group_dialog

        def created(view: dict) -> str:
            if dialog is not None:
                dialog.accept()
            self.reload_contacts()
            self.open_group(view["group"])
            self._select(view["group"])
            missed = [self.name_of(p) for p in view["unreachable"]]
            return f"Group {view['name']} created" + (f"; not reachable now: {', '.join(missed)}" if missed else "")
        run_action_now(self, lambda: self.chat.groups.create(name, list(peers)), failure="Could not create the group",
                       on_error=dialog.show_refusal if dialog is not None else None, success=created)

    def open_members(self) -> MembersDialog | None:
        """Members…: the open group's member list (its creator changes it there)."""
        gid = self.group
        view = self.group_view(gid) if gid else None
        if view is None:
            return None
        dialog = MembersDialog(self)
        dialog.setProperty("group", gid)
        dialog.show_group(view, self.chat_peers())
        dialog.invite_requested.connect(lambda peer: self.change_members(gid, "invite", peer))
        dialog.remove_requested.connect(lambda peer: self.change_members(gid, "remove", peer))
        self.members_dialog = dialog
        dialog.open()
        return dialog

    def change_members(self, gid: str, change: str, peer: str) -> None:
        """As the group's creator: invite or remove ``peer`` (the dialog redraws on the event)."""
        dialog = self.members_dialog
        call = self.chat.groups.invite if change == "invite" else self.chat.groups.remove
        done = "added to" if change == "invite" else "removed from"
        run_action_now(self, lambda: call(gid, peer), failure=f"Could not change the members of "
                       f"{self.group_name(gid)}", on_error=dialog.show_refusal if dialog is not None else None,
                       success=lambda view: f"{self.name_of(peer)} {done} {view['name']}")

    def confirm_leave(self) -> QMessageBox | None:
        """Leave group: asks first (the creator leaving closes the group)."""
        gid = self.group
        view = self.group_view(gid) if gid else None
        if view is None:
            return None
        closes = " You created it: leaving closes it for every member." if view["creator_is_me"] else ""
        self.confirm_box = confirm(
            self, "Leave group", f"Leave the group {view['name']}?",
            f"Its messages are wiped here and you get none of the later ones.{closes}", "Leave group",
            lambda: self.leave_group(gid))
        return self.confirm_box

    def leave_group(self, gid: str) -> None:
        """Leave now; the group turns read-only here when the core says it is gone."""
        run_action_now(self, lambda: self.chat.groups.leave(gid), failure="Could not leave the group",
                       success=lambda view: f"You left {view['name']}")

    @asyncSlot(bool)
    async def answer_invite(self, accept: bool) -> None:
        """Accept (join: the group opens once its creator adds us) or decline (the invitation and its
        row go) the open invitation."""
        gid = self.group
        row = self.contacts.get(gid) if gid else None
        if row is None or row["kind"] != "group":
            return
        name = row["name"]          # the core says why if the invitation is gone meanwhile (e.g. expired)
        buttons = (self.conversation.stay_button, self.conversation.decline_button)

        def busy(on: bool) -> None:
            for button in buttons:
                button.setEnabled(not on)
        if not accept:
            def declined(_view: dict) -> str:
                if self.group == gid:
                    self.close_view()
                self.reload_contacts()
                return f"You declined the invitation to {name}"
            run_action_now(self, lambda: self.chat.groups.decline(gid), failure="Could not decline the invitation",
                           success=declined)
            return

        def accepted(view: dict) -> str:
            self.reload_contacts()
            if view["joined"]:
                if self.group == gid:
                    self.open_group(gid)
                return f"You joined {name}"
            self.refresh_group()
            return f"You accepted the invitation to {name}: it opens once {self.name_of(view['creator'])} adds you"
        await run_action(self, self.chat.groups.accept(gid), failure=f"Could not join {name}", busy=busy,
                         success=accepted)
        self.reload_contacts()        # an expired invitation is gone now too

    def dismiss_group(self) -> None:
        """Drop a group we are no longer in from the list (it was wiped already)."""
        gid = self.group
        if gid is not None and self.departed.pop(gid, None) is not None:
            self.close_view()
            self.reload_contacts()
