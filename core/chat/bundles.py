"""Remembered prekey bundles: the last verified bundle of each chat peer, in the database.

A peer's prekey bundle is public, signed data. Every bundle this node fetches
and verifies (:meth:`Bundles.fetch`: before a session starts, for a spare, and
in the background when a chat peer connects) is kept in ``chat_bundles``
(:mod:`core.chat.db`) as
the signed envelope it came in, so a session can start while the peer is away
even after this node restarted: the mailbox copy goes under it
(:meth:`core.chat.mailbox.Mailbox.deposit`). Nothing secret is stored: no
plaintext, ratchet state or message key, only what the peer hands anyone it
chats with.

:meth:`Bundles.load` re-verifies the envelope (the peer's signature, made for
us) and the signed prekey's signature against the peer's identity key, and
refuses, with the reason, a bundle:

- older than ``max_age`` (by the time the peer signed it): the peer keeps a
  signed prekey for two rotation periods and this one was current when it
  signed, so within one period it still opens there;
- whose one-time prekey this node already used in a key agreement
  (``spent_opk``, set by :attr:`ChatKeys.on_agreed`): the peer deletes it once
  it opens that session, so a second session from it would fail there. The
  peer hands us the same one-time prekey until it is used, so the next fetch
  after it answered brings a fresh one. (X3DH without a one-time prekey is not
  an option: Covey's sessions always use one, which is what makes a replayed
  initial message fail after the peer opened it.)

The table keeps at most ``MAX_ROWS`` rows (the longest-stored go first) and
drops rows past their age when it writes.
"""
from __future__ import annotations

import logging
import time

import msgpack

from core.errors import CoveyError, RefusedByPolicy, UnknownPeer
from core.signed import canonical

from core.chat import protocol as proto
from core.chat.background import BackgroundTasks
from core.chat.errors import BadBundle, KeyAgreementFailed
from core.chat.x3dh_adapter import ROTATION_PERIOD, Bundle, verify_bundle

log = logging.getLogger("covey.chat.bundles")

MAX_ROWS = 4096
MAX_AGE = ROTATION_PERIOD       # seconds a stored bundle is used after the peer signed it
REFRESH_AFTER = 24 * 3600       # a usable row younger than this is not fetched again on connect
FETCH_GAP = 60.0                # seconds between two background fetches for one peer
FETCH_TIMEOUT = 10.0
MAX_ENVELOPE = 4096             # bytes of one stored envelope (a bundle is about 400)


class Bundles:
    """The ``chat_bundles`` rows of one node; ``chat`` is the ChatService (policy, store, node)."""

    def __init__(self, chat) -> None:
        self.chat = chat
        self.max_age = MAX_AGE
        self._next_fetch: dict[str, float] = {}   # peer -> monotonic time a background fetch may run
        self._tasks = BackgroundTasks(limit=16)

    @property
    def _store(self):
        return self.chat.node.store

    # -- fetching ------------------------------------------------------------------
    async def fetch(self, peer: str) -> Bundle:
        """Ask ``peer`` for its bundle, verify it, remember it; raises the refusal if any."""
        self.chat.check_peer(peer)
        node = self.chat.node
        try:
            reply = await node.request(peer, proto.BUNDLE, {}, timeout=FETCH_TIMEOUT)
        except (RefusedByPolicy, UnknownPeer) as exc:  # its policy, not ours: say what to do
            raise RefusedByPolicy(f"{peer[:12]} does not accept chat from this node yet; send it a "
                                  f"contact request: `covey chat request {peer[:12]} TEXT` "
                                  f"(it answered: {exc})", peer=peer) from None
        try:
            bundle = verify_bundle(reply.get("bundle"), peer, node.identity.id)
        except CoveyError as exc:
            self.chat.refused(peer, proto.BUNDLE, exc)
            raise
        try:
            self.remember(bundle)
        except CoveyError as exc:  # the live session does not need the row: only a later away one
            log.warning("chat: cannot store the prekey bundle of %s: %s [%s]", peer[:12], exc, exc.code)
        return bundle

    def refresh(self, peer: str) -> None:
        """A chat peer connected: fetch its bundle in the background unless a usable recent one is
        stored (at most one attempt per peer every FETCH_GAP seconds, a bounded number at once)."""
        now = time.monotonic()
        if not self.chat.connected(peer) or self._next_fetch.get(peer, 0.0) > now \
                or len(self._tasks) >= self._tasks.limit or self._key_changed(peer) or self._fresh(peer):
            return
        self._next_fetch[peer] = now + FETCH_GAP
        while len(self._next_fetch) > MAX_ROWS:
            self._next_fetch.pop(next(iter(self._next_fetch)))

        async def run() -> None:
            try:
                await self.fetch(peer)
            except CoveyError as exc:
                log.debug("no prekey bundle of %s stored: %s", peer[:12], exc)
        self._tasks.spawn(run())

    async def stop(self) -> None:
        await self._tasks.stop()

    def _key_changed(self, peer: str) -> bool:
        """A peer under a verified contact's name or address with another key: nothing is fetched
        from it in the background (chatting with it is refused loudly, by ChatService.check_peer)."""
        contacts, rec = self.chat.contacts, self.chat.node.peers.get(peer)
        if contacts is None or rec is None:
            return True
        return contacts.may_conflict(peer) and contacts.conflict(peer, rec.name, rec.address) is not None

    def _fresh(self, peer: str) -> bool:
        row = self._store.query_one("SELECT opk, spent_opk, made_at FROM chat_bundles WHERE peer = ?", (peer,))
        return row is not None and row["opk"] != row["spent_opk"] and time.time() - row["made_at"] < REFRESH_AFTER

    # -- the rows ----------------------------------------------------------------------
    def remember(self, bundle: Bundle) -> None:
        """Store a verified bundle (with the envelope it came in) as the peer's current one."""
        if bundle.envelope is None:
            raise ValueError("only a bundle verified from its envelope can be stored")
        raw = canonical(bundle.envelope)
        opk = next(iter(bundle.x3dh.pre_keys))
        now = time.time()
        with self._store.transaction():
            self._store.execute(
                "INSERT INTO chat_bundles (peer, envelope, opk, spent_opk, made_at, stored_at) "
                "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT(peer) DO UPDATE SET envelope = excluded.envelope, "
                "opk = excluded.opk, made_at = excluded.made_at, stored_at = excluded.stored_at",
                (bundle.peer, raw, opk, float(bundle.envelope["ts"]), now))
            self._store.execute("DELETE FROM chat_bundles WHERE made_at < ?", (now - self.max_age,))
            self._store.execute(
                "DELETE FROM chat_bundles WHERE peer NOT IN "
                "(SELECT peer FROM chat_bundles ORDER BY stored_at DESC, rowid DESC LIMIT ?)", (MAX_ROWS,))

    def spent(self, peer: str, opk: bytes) -> None:
        """This node used one-time prekey ``opk`` of ``peer`` (ChatKeys.on_agreed): a stored bundle
        carrying it is not used again, nor one fetched later that still carries it."""
        try:
            self._store.execute("UPDATE chat_bundles SET spent_opk = ? WHERE peer = ?", (opk, peer))
        except CoveyError as exc:   # after a restart that bundle's copy may then fail at the peer, loudly
            log.error("chat: cannot mark the prekey bundle of %s used: %s [%s]", peer[:12], exc, exc.code)

    def forget(self, peer: str) -> None:
        """Drop the stored bundle of ``peer`` (removed, banned)."""
        self._store.execute("DELETE FROM chat_bundles WHERE peer = ?", (peer,))

    def load(self, peer: str, now: float | None = None) -> Bundle:
        """The stored bundle of ``peer``, verified again, for a session started while it is away.

        Raises the policy's refusal or KeyChanged, BadBundle (the row was damaged: it is
        deleted), or KeyAgreementFailed (none stored, too old, or its one-time prekey used)."""
        self.chat.check_peer(peer)
        row = self._store.query_one("SELECT envelope, spent_opk FROM chat_bundles WHERE peer = ?", (peer,))
        if row is None:
            raise KeyAgreementFailed(f"no prekey bundle of {peer[:12]} is stored (fetched while it is "
                                     f"connected): cannot start a session it can open while away")
        try:
            raw = row["envelope"]
            if not isinstance(raw, bytes) or len(raw) > MAX_ENVELOPE:
                raise BadBundle("not a stored envelope")
            try:
                envelope = msgpack.unpackb(raw, raw=False, strict_map_key=True)
            except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
                raise BadBundle(f"not msgpack ({exc})") from None
            bundle = verify_bundle(envelope, peer, self.chat.node.identity.id)
        except BadBundle as exc:
            self.forget(peer)
            log.error("chat: the stored prekey bundle of %s is damaged and was deleted: %s", peer[:12], exc)
            raise BadBundle(f"the stored prekey bundle of {peer[:12]} is damaged (deleted): {exc}") from None
        age = (time.time() if now is None else now) - envelope["ts"]
        if age > self.max_age:
            self.forget(peer)
            raise KeyAgreementFailed(f"the stored prekey bundle of {peer[:12]} is {age / 3600:.0f} h old, past "
                                     f"its signed prekey's lifetime ({self.max_age / 3600:.0f} h): it was "
                                     f"deleted; messages wait until {peer[:12]} connects")
        if row["spent_opk"] is not None and row["spent_opk"] in bundle.x3dh.pre_keys:
            raise KeyAgreementFailed(f"the stored prekey bundle of {peer[:12]} was used already (its one-time "
                                     f"prekey may be gone there): messages wait until {peer[:12]} connects")
        return bundle
