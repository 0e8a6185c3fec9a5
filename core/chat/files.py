"""Files in a conversation: the offer rides the ratchet, the chunks ride the transport.

Sending (``send(peer, path)``): the node hashes the file chunk by chunk
(SHA-256 per chunk, in a thread, one chunk in memory) and queues a ``file``
content on the peer's link, so the offer travels end-to-end encrypted: file
id, name, size, media type, chunk size, the SHA-256 of the manifest (the
chunk hashes, concatenated) and a random per-file AES-256-GCM key.

Receiving (``accept(id, to)``): the user picks the path; the node writes a
part file next to it (``.NAME.ID.part``, 0600, sparse), fetches the
manifest (checked against the digest in the offer), then pulls chunks: at
most ``WINDOW`` requested at a time, each written at its offset as it
arrives, after it decrypts and matches its hash. A bad chunk is refused and
asked for again. Once every chunk is in (each checked against its hash
before it was written), the part file is synced and renamed to the chosen path. A cut
connection loses only what was in flight: on reconnect the receiver asks
for the chunks it is missing, nothing else. Nothing but that file (and its
part file, removed on cancel, failure or node stop) touches disk.

Transport messages (each needs CHAT; the sender is the connection's peer):

- ``chat.file.manifest`` request ``{f}`` -> ``{m}``: the sealed manifest.
- ``chat.file.get`` ``{f, i: [index, ...]}``: the receiver asks for chunks.
- ``chat.file.chunk`` ``{f, i, d}``: one sealed chunk.
- ``chat.file.end`` ``{f, r}``: either side stops (done, refused, cancelled,
  changed, failed).

Sealing: AES-256-GCM with the file's key, nonce = 4 zero bytes + the chunk
index (8 bytes), AD = file id + index. The sender checks each chunk it reads
against the manifest before sealing it a second time: a nonce never seals two
different plaintexts, and a file that changed on disk stops the transfer
with a clear reason (the receiver refuses the changed chunk by its hash and
asks again; that second read finds the change).

In a group (``send_many``, from :mod:`core.chat.groups`): the file is hashed
once and offered to each member over its own pairwise transfer (its own id and
key); the offer carries the group id, each member accepts (or not) as for a
one-to-one file, and leaving the group ends its group files there.

Events: ``chat_file`` {peer, file, state, done, total, direction, group} (bytes;
progress at most every ``PROGRESS_EVERY`` s; ``group`` only for a group's file).
Never the file's name.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import events as ev
from core.errors import BadRequest, CoveyError, MalformedMessage, PeerUnreachable, TimedOut
from core.peers import Capability

from core.chat import protocol as proto
from core.chat.errors import (BadChunk, BadFileOffer, ChunkOutOfRange, ChunkTooLarge, ConversationClosing,
                              FileChanged, OutboxFull, TooManyFiles, UnknownFile)

log = logging.getLogger("covey.chat.files")

MANIFEST, GET, CHUNK, END = "chat.file.manifest", "chat.file.get", "chat.file.chunk", "chat.file.end"

CHUNK_SIZE = 256 << 10     # default: well under a transport frame, so chat messages interleave
MIN_CHUNK, MAX_CHUNK = 4 << 10, 512 << 10
MAX_CHUNKS = 32768         # a manifest is at most 1 MiB
MAX_FILE = MAX_CHUNKS * MAX_CHUNK
ID_BYTES, KEY_BYTES, HASH = 16, 32, 32
TAG = 16                   # AES-GCM tag
WINDOW = 16                # chunks requested and not yet arrived, per transfer (4 MiB at 256 KiB)
MAX_QUEUE = 2 * WINDOW     # requested chunks a sender holds per transfer (more are dropped: asked again)
READ_AHEAD = 4             # chunks the sender reads (and seals) ahead of the one being sent
MAX_NAME, MAX_MIME = 255, 127
MAX_FILES = 64             # offers and transfers kept per direction (finished ones leave first)
MAX_PER_PEER = 16          # open incoming offers per peer
MAX_ACTIVE = 8             # incoming transfers in progress at once
MAX_BAD = 64               # bad chunks tolerated per transfer before it fails
STALL = 5.0                # seconds without a chunk before what is in flight is asked for again
MANIFEST_TIMEOUT = 30.0
PROGRESS_EVERY = 0.25

OFFERED, TRANSFERRING, SAVING, DONE, CANCELLED, FAILED = (
    "offered", "transferring", "saving", "done", "cancelled", "failed")
FINISHED = (DONE, CANCELLED, FAILED)
END_REASONS = ("done", "refused", "cancelled", "changed", "failed")


def nonce(index: int) -> bytes:
    return bytes(4) + index.to_bytes(8, "big")


def _ad(file_id: bytes, index: int) -> bytes:
    return file_id + index.to_bytes(8, "big")


MANIFEST_NONCE = b"\x00\x00\x00\x01" + bytes(8)   # never a chunk's nonce


@dataclass
class Offer:
    """What a file offer says (checked: see :func:`parse_offer`)."""
    id: bytes
    name: str
    size: int
    mime: str
    chunk_size: int
    digest: bytes           # SHA-256 of the manifest
    key: bytes

    @property
    def chunks(self) -> int:
        return -(-self.size // self.chunk_size)

    def chunk_len(self, index: int) -> int:
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def encode(self) -> dict:
        return {"id": self.id, "n": self.name, "s": self.size, "t": self.mime, "c": self.chunk_size,
                "m": self.digest, "k": self.key}

    def __reduce_ex__(self, protocol):
        raise TypeError("a file offer holds its key: it cannot be pickled")


def clean_name(name) -> str:
    """The offered name as a bare file name (no directory part, printable, at most MAX_NAME)."""
    if not isinstance(name, str):
        raise BadFileOffer("file offer: the name must be text")
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()[:MAX_NAME]
    return base if base not in ("", ".", "..") else "file"


def parse_offer(obj) -> Offer:
    """Check every field of an offer map (BadFileOffer)."""
    if not isinstance(obj, dict):
        raise BadFileOffer("a file offer must be a map")
    fid, size, chunk, digest, key, mime = (obj.get(k) for k in ("id", "s", "c", "m", "k", "t"))
    if not isinstance(fid, bytes) or len(fid) != ID_BYTES:
        raise BadFileOffer(f"file offer: the id must be {ID_BYTES} bytes")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE:
        raise BadFileOffer(f"file offer: the size must be 0..{MAX_FILE} bytes")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not MIN_CHUNK <= chunk <= MAX_CHUNK:
        raise BadFileOffer(f"file offer: the chunk size must be {MIN_CHUNK}..{MAX_CHUNK} bytes")
    if -(-size // chunk) > MAX_CHUNKS:
        raise BadFileOffer(f"file offer: more than {MAX_CHUNKS} chunks")
    if not isinstance(digest, bytes) or len(digest) != HASH or not isinstance(key, bytes) \
            or len(key) != KEY_BYTES:
        raise BadFileOffer("file offer: bad manifest digest or key")
    if not isinstance(mime, str) or len(mime) > MAX_MIME or mime.count("/") != 1 \
            or not all(ch.isalnum() or ch in "/.+-_" for ch in mime):
        mime = "application/octet-stream"
    return Offer(fid, clean_name(obj.get("n")), size, mime, chunk, digest, key)


@dataclass
class Transfer:
    """One file offered to or by a peer, and how far its transfer got (memory only)."""
    offer: Offer
    peer: str
    direction: str                      # "in" | "out"
    path: Path | None                   # out: the source; in: the chosen target (once accepted)
    group: str | None = None            # the group it was offered in (None: one-to-one)
    state: str = OFFERED
    hashes: bytes | None = None         # the manifest (32 bytes per chunk)
    error: str = ""
    have: bytearray = field(default_factory=bytearray)   # in: 1 per chunk stored; out: sends per chunk
    sealed: bytearray = field(default_factory=bytearray)  # out: 1 per chunk sealed at least once
    done: int = 0                       # chunks stored (in) / sent at least once (out)
    sends: int = 0                      # out: chunk messages sent, re-sends included
    bad: int = 0                        # in: bad chunks refused
    inflight: dict = field(default_factory=dict)         # in: index -> when requested
    storing: set = field(default_factory=set)            # in: indices being written now
    retry: deque = field(default_factory=deque)          # in: indices to ask for again first
    cursor: int = 0                     # in: no missing chunk below this (apart from retry)
    queue: deque = field(default_factory=deque)          # out: indices requested, not yet sent
    task: asyncio.Task | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    emitted_at: float = 0.0
    last_chunk_at: float = 0.0
    aead: AESGCM | None = None

    def __post_init__(self) -> None:
        self.aead = AESGCM(self.offer.key)
        self.have = bytearray(self.offer.chunks)
        self.sealed = bytearray(self.offer.chunks if self.direction == "out" else 0)

    def __reduce_ex__(self, protocol):
        raise TypeError("a file transfer holds its key: it cannot be pickled")

    @property
    def part(self) -> Path | None:
        if self.direction != "in" or self.path is None:
            return None
        return self.path.with_name(f".{self.path.name}.{self.offer.id.hex()[:12]}.part")

    @property
    def done_bytes(self) -> int:
        if self.state == DONE:
            return self.offer.size
        return min(self.done * self.offer.chunk_size, self.offer.size)

    def view(self) -> dict:
        o = self.offer
        return {"id": o.id.hex(), "peer": self.peer, "direction": self.direction, "name": o.name,
                "size": o.size, "type": o.mime, "state": self.state, "done": self.done_bytes,
                "total": o.size, "chunks": o.chunks, "path": str(self.path) if self.path else None,
                "error": self.error or None, "group": self.group}

    def missing(self, limit: int) -> list[int]:
        """Up to ``limit`` chunk indices to ask for: retries first, then the lowest missing ones."""
        busy = self.inflight.keys() | self.storing
        out: list[int] = []
        while self.retry and len(out) < limit:
            i = self.retry.popleft()
            if not self.have[i] and i not in busy and i not in out:
                out.append(i)
        n = self.offer.chunks
        while self.cursor < n and self.have[self.cursor]:
            self.cursor += 1
        i = self.cursor
        while i < n and len(out) < limit:
            if not self.have[i] and i not in busy and i not in out:
                out.append(i)
            i += 1
        return out

    def rewind(self) -> None:
        """Forget what was in flight (the connection was cut, or it stalled): ask again."""
        self.inflight.clear()
        self.cursor = 0
        self.wake.set()


def hash_file(path: Path, chunk_size: int) -> bytes:
    """The manifest of a file: SHA-256 of each chunk, concatenated (reads one chunk at a time)."""
    out = bytearray()
    with open(path, "rb", buffering=0) as f:
        while True:
            data = f.read(chunk_size)
            if not data:
                break
            out += hashlib.sha256(data).digest()
    return bytes(out)


def _chunk_size_for(size: int) -> int:
    need = -(-size // MAX_CHUNKS)
    return max(CHUNK_SIZE, -(-need // MIN_CHUNK) * MIN_CHUNK)


class Files:
    """File offers and transfers of the chat service (``chat.files``). See the module docstring."""

    def __init__(self, chat) -> None:
        self.chat = chat
        self.node = chat.node
        self.outgoing: "OrderedDict[bytes, Transfer]" = OrderedDict()
        self.incoming: "OrderedDict[bytes, Transfer]" = OrderedDict()
        self._unsubscribe: list = []
        cap = Capability.CHAT
        self.node.on_message(MANIFEST, self._on_manifest, capability=cap)
        self.node.on_message(GET, self._on_get, capability=cap)
        self.node.on_message(CHUNK, self._on_chunk, capability=cap)
        self.node.on_message(END, self._on_end, capability=cap)

    def start(self) -> None:
        on = self.node.events.on
        self._unsubscribe = [on(ev.PEER_CONNECTED, self._on_connected),
                             on(ev.PEER_DISCONNECTED, self._on_disconnected)]

    async def stop(self) -> None:
        """Stop every transfer; unfinished part files are removed (their keys die with the node)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        tasks = [t.task for t in (*self.outgoing.values(), *self.incoming.values()) if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for t in self.incoming.values():
            if t.state not in FINISHED:
                self._remove_part(t)
        self.outgoing.clear()
        self.incoming.clear()

    # -- events ---------------------------------------------------------------------
    def _emit(self, t: Transfer, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - t.emitted_at < PROGRESS_EVERY:
            return
        t.emitted_at = now
        extra = {"group": t.group} if t.group is not None else {}
        self.node.events.emit(ev.CHAT_FILE, peer=t.peer, file=t.offer.id.hex(), state=t.state,
                              done=t.done_bytes, total=t.offer.size, direction=t.direction, **extra)

    def _set(self, t: Transfer, state: str, error: str = "") -> None:
        t.state, t.error = state, error or t.error
        self._emit(t)

    def _on_connected(self, event) -> None:
        peer = event.data.get("peer")
        for t in self.incoming.values():
            if t.peer == peer and t.state == TRANSFERRING:
                t.rewind()   # ask for what is missing: only that

    def _on_disconnected(self, event) -> None:
        peer = event.data.get("peer")
        for t in self.outgoing.values():
            if t.peer == peer:
                t.queue.clear()   # the receiver asks again for what it still misses

    # -- lookups --------------------------------------------------------------------
    def find(self, ref: str) -> Transfer:
        """A transfer by its id or a unique prefix of it (hex)."""
        ref = str(ref).strip().lower()
        if len(ref) < 4:
            raise BadRequest("give at least 4 characters of the file id (see `covey chat file list`)")
        found = [t for table in (self.incoming, self.outgoing) for fid, t in table.items()
                 if fid.hex().startswith(ref)]
        if not found:
            raise UnknownFile(f"no file {ref!r}; see `covey chat file list`")
        if len(found) > 1:
            raise BadRequest(f"file id {ref!r} is ambiguous; give more of it")
        return found[0]

    def views(self) -> list[dict]:
        """Every offer and transfer, both directions, newest last."""
        return [t.view() for t in (*self.incoming.values(), *self.outgoing.values())]

    def _make_room(self, table: "OrderedDict[bytes, Transfer]") -> bool:
        if len(table) < MAX_FILES:
            return True
        for fid, t in table.items():
            if t.state in FINISHED:
                del table[fid]
                return True
        return False

    # -- sending --------------------------------------------------------------------
    async def send(self, ref: str, path: str, mime: str | None = None) -> dict:
        """Offer the file at ``path`` (absolute) to the peer; its chunks go when the peer accepts."""
        source = _source(path)
        chat = self.chat
        peer = chat._peer(ref)
        chat.check_peer(peer)
        if not self._make_room(self.outgoing):
            raise TooManyFiles(f"{MAX_FILES} files are offered or in transfer; cancel some first")
        link = self._link(peer)
        if chat.connected(peer):
            await link.ensure_bundle()
        prepared = await _prepare(source, mime)
        return self._offer(peer, prepared).view()

    async def send_many(self, peers: list[str], path: str, group: str) -> tuple[list[dict], list[str]]:
        """Offer the file at ``path`` to each of ``peers`` (a group's other members): hashed once, one
        pairwise transfer per peer. Returns the offers' views and the peers it could not go to."""
        prepared = await _prepare(_source(path), None)
        views, unreachable = [], []
        for peer in peers:
            try:
                self.chat.check_peer(peer)
                views.append(self._offer(peer, prepared, group).view())
            except CoveyError as exc:
                log.warning("group file: not offered to %s: %s", peer[:12], exc)
                unreachable.append(peer)
        return views, unreachable

    def _link(self, peer: str):
        """The peer's link, if a file offer may go on it now."""
        link = self.chat._link(peer)
        if link.closing:
            raise ConversationClosing(f"the conversation with {peer[:12]} is being closed")
        if link.out.unacked >= link.out.max_outbox:
            raise OutboxFull(f"{link.out.unacked} messages wait for {peer[:12]}; try later")
        return link

    def _offer(self, peer: str, prepared: "_Prepared", group: str | None = None) -> Transfer:
        """Queue an offer of a hashed file to ``peer`` (its own id and key)."""
        if not self._make_room(self.outgoing):
            raise TooManyFiles(f"{MAX_FILES} files are offered or in transfer; cancel some first")
        link = self._link(peer)
        p = prepared
        offer = Offer(os.urandom(ID_BYTES), p.name, p.size, p.mime, p.chunk, hashlib.sha256(p.hashes).digest(),
                      AESGCM.generate_key(bit_length=256))
        t = Transfer(offer, peer, "out", p.source, group=group, hashes=p.hashes)
        self.outgoing[offer.id] = t
        link.queue(proto.encode_content(proto.Content(proto.FILE, file=offer.encode(), group=group)))
        self._emit(t)
        log.info("file %s offered to %s (%d bytes, %d chunks)", offer.id.hex()[:12], peer[:12], p.size,
                 offer.chunks)
        return t

    def _outgoing(self, peer: str, body: dict) -> Transfer:
        t = self.outgoing.get(_file_id(body))
        if t is None or t.peer != peer:
            raise UnknownFile(f"{peer[:12]} asked for a file this node did not offer it")
        if t.state in FINISHED:
            raise UnknownFile(f"file {t.offer.id.hex()[:12]} is {t.state}; it is not sent any more")
        return t

    def _on_manifest(self, peer: str, body: dict) -> dict:
        try:
            t = self._outgoing(peer, body)
        except CoveyError as exc:
            self.chat.refused(peer, MANIFEST, exc)
            raise
        assert t.hashes is not None and t.aead is not None
        if t.state == OFFERED:
            self._set(t, TRANSFERRING)
        return {"m": t.aead.encrypt(MANIFEST_NONCE, t.hashes, t.offer.id + b"manifest")}

    def _on_get(self, peer: str, body: dict) -> None:
        try:
            t = self._outgoing(peer, body)
            wanted = body.get("i")
            if not isinstance(wanted, list) or not 0 < len(wanted) <= MAX_QUEUE:
                raise MalformedMessage(f"a chunk request names 1..{MAX_QUEUE} chunk indices")
            for i in wanted:
                _index(i, t.offer)
        except CoveyError as exc:
            self.chat.refused(peer, GET, exc)
            return
        if t.state == OFFERED:
            self._set(t, TRANSFERRING)
        for i in wanted:
            if i not in t.queue and len(t.queue) < MAX_QUEUE:
                t.queue.append(i)
        if t.task is None:
            t.task = asyncio.ensure_future(self._serve(t))

    async def _serve(self, t: Transfer) -> None:
        """Read, check, seal and send the requested chunks, reading at most READ_AHEAD ahead."""
        pending: deque = deque()
        try:
            while t.queue or pending:
                while t.queue and len(pending) < READ_AHEAD:
                    i = t.queue.popleft()
                    again, t.sealed[i] = t.sealed[i], 1
                    pending.append((i, asyncio.ensure_future(asyncio.to_thread(self._seal, t, i, bool(again)))))
                i, sealing = pending.popleft()
                sealed = await sealing
                if t.state in FINISHED:
                    return
                await self.node.send(t.peer, CHUNK, {"f": t.offer.id, "i": i, "d": sealed})
                t.sends += 1
                if not t.have[i]:
                    t.done += 1
                t.have[i] = min(t.have[i] + 1, 255)
                self._emit(t, force=False)
        except PeerUnreachable:
            t.queue.clear()        # the receiver asks again for what it misses once it is back
        except (FileChanged, OSError) as exc:
            reason = "changed" if isinstance(exc, FileChanged) else "failed"
            msg = str(exc) if isinstance(exc, FileChanged) else f"cannot read the file: {exc}"
            log.warning("file %s to %s stopped: %s", t.offer.id.hex()[:12], t.peer[:12], msg)
            self._set(t, FAILED, msg)
            await self._tell_end(t, reason)
        finally:
            for _, sealing in pending:
                sealing.cancel()
            t.task = None

    @staticmethod
    def _seal(t: Transfer, i: int, again: bool) -> bytes:
        """Read chunk ``i`` of the source and seal it (a thread).

        Sealed ``again`` (the nonce was used for it before), the chunk is first checked
        against the manifest: a nonce never seals two different plaintexts. A first seal
        needs no check: if the file changed, the receiver refuses the chunk by its hash and
        asks again, and that second seal finds the change (FileChanged: the transfer stops)."""
        o = t.offer
        assert t.hashes is not None and t.path is not None and t.aead is not None
        length = o.chunk_len(i)
        fd = os.open(t.path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, i * o.chunk_size)
        finally:
            os.close(fd)
        if len(data) != length or again and hashlib.sha256(data).digest() != t.hashes[i * HASH:(i + 1) * HASH]:
            raise FileChanged(f"{t.path} changed on disk since it was offered (chunk {i}); "
                              f"offer it again")
        return t.aead.encrypt(nonce(i), data, _ad(o.id, i))

    # -- receiving ------------------------------------------------------------------
    def on_offer(self, peer: str, offer_map, group: str | None = None) -> None:
        """A file offer arrived inside the conversation (from the chat service), or inside ``group``
        (from a member, checked by :mod:`core.chat.groups`)."""
        try:
            offer = parse_offer(offer_map)
            if offer.id in self.incoming:
                return
            open_from_peer = sum(1 for t in self.incoming.values() if t.peer == peer and t.state == OFFERED)
            if open_from_peer >= MAX_PER_PEER or not self._make_room(self.incoming):
                raise TooManyFiles(f"{peer[:12]} has {open_from_peer} file offers open here; refused")
        except CoveyError as exc:
            self.chat.refused(peer, "chat.file.offer", exc)
            fid = offer_map.get("id") if isinstance(offer_map, dict) else None
            if isinstance(fid, bytes) and len(fid) == ID_BYTES:
                asyncio.ensure_future(self._send_end(peer, fid, "refused"))
            return
        t = self.incoming[offer.id] = Transfer(offer, peer, "in", None, group=group)
        self._emit(t)

    def accept(self, ref: str, to: str) -> dict:
        """Accept an offer and save it at ``to`` (absolute; a directory: the offered name inside it)."""
        t = self.find(ref)
        if t.direction != "in":
            raise BadRequest("that file is one this node offers; the peer accepts it")
        if t.state != OFFERED:
            raise BadRequest(f"file {t.offer.id.hex()[:12]} is {t.state}, not waiting to be accepted")
        if sum(1 for x in self.incoming.values() if x.state in (TRANSFERRING, SAVING)) >= MAX_ACTIVE:
            raise TooManyFiles(f"{MAX_ACTIVE} files are being received; wait for one to finish")
        self.chat.check_peer(t.peer)
        if not isinstance(to, str) or not os.path.isabs(to):
            raise BadRequest("--to must be an absolute path")
        target = Path(to)
        if target.is_dir():
            target = target / t.offer.name
        if target.exists() or target.is_symlink():
            raise BadRequest(f"{target} exists; pick another path")
        if not target.parent.is_dir():
            raise BadRequest(f"{target.parent} is not a directory")
        t.path = target
        part = t.part
        assert part is not None
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, t.offer.size)   # sparse: chunks are written at their offsets
            finally:
                os.close(fd)
        except OSError as exc:
            t.path = None
            raise BadRequest(f"cannot write next to {target}: {exc.strerror or exc}") from None
        t.last_chunk_at = time.monotonic()
        self._set(t, TRANSFERRING)
        t.task = asyncio.ensure_future(self._fetch(t))
        return t.view()

    async def _fetch(self, t: Transfer) -> None:
        """Drive one incoming transfer: the manifest, then keep WINDOW chunks requested."""
        try:
            while t.state == TRANSFERRING:
                t.wake.clear()
                if self.chat.connected(t.peer):
                    try:
                        if await self._pull(t):
                            await self._finish(t)
                            return
                    except (PeerUnreachable, TimedOut):
                        t.inflight.clear()     # asked again when the peer is back (PEER_CONNECTED)
                try:
                    await asyncio.wait_for(t.wake.wait(), STALL)
                except asyncio.TimeoutError:
                    if t.inflight and time.monotonic() - t.last_chunk_at >= STALL:
                        log.info("file %s from %s stalled; asking again", t.offer.id.hex()[:12], t.peer[:12])
                        t.rewind()
        except CoveyError as exc:
            self._fail(t, str(exc))
            await self._tell_end(t, "failed")
        finally:
            if t.task is asyncio.current_task():
                t.task = None

    async def _pull(self, t: Transfer) -> bool:
        """Ask for the missing chunks that fit in the window; True once every chunk is in."""
        if t.hashes is None:
            await self._get_manifest(t)
        if all(t.have):
            return True
        wanted = t.missing(WINDOW - len(t.inflight))
        if wanted:
            now = time.monotonic()
            for i in wanted:
                t.inflight[i] = now
            await self.node.send(t.peer, GET, {"f": t.offer.id, "i": wanted})
        return False

    async def _get_manifest(self, t: Transfer) -> None:
        assert t.aead is not None
        reply = await self.node.request(t.peer, MANIFEST, {"f": t.offer.id}, timeout=MANIFEST_TIMEOUT)
        sealed = reply.get("m")
        want = HASH * t.offer.chunks
        if not isinstance(sealed, bytes) or len(sealed) != want + TAG:
            raise BadChunk("the file's manifest has the wrong size")
        try:
            hashes = t.aead.decrypt(MANIFEST_NONCE, sealed, t.offer.id + b"manifest")
        except InvalidTag:
            raise BadChunk("the file's manifest does not decrypt with the file's key") from None
        if hashlib.sha256(hashes).digest() != t.offer.digest:
            raise BadChunk("the file's manifest does not match the digest in the offer")
        t.hashes = hashes

    async def _on_chunk(self, peer: str, body: dict) -> None:
        t: Transfer | None = None
        try:
            t = self.incoming.get(_file_id(body))
            if t is None or t.peer != peer:
                raise UnknownFile(f"a chunk for a file {peer[:12]} never offered this node")
            if t.state in FINISHED or t.state == SAVING:
                return        # in flight when it ended: not an error
            if t.state != TRANSFERRING or t.hashes is None:
                raise UnknownFile(f"a chunk for file {t.offer.id.hex()[:12]}, which was not accepted")
            i = _index(body.get("i"), t.offer)
            data = body.get("d")
            if not isinstance(data, bytes):
                raise MalformedMessage("a file chunk must carry bytes")
            if len(data) > t.offer.chunk_len(i) + TAG:
                raise ChunkTooLarge(f"chunk {i} of file {t.offer.id.hex()[:12]} has {len(data)} bytes; "
                                    f"at most {t.offer.chunk_len(i) + TAG} fit")
            if t.have[i] or i in t.storing:
                t.inflight.pop(i, None)
                return        # a duplicate
            t.storing.add(i)
            try:
                await asyncio.to_thread(self._store, t, i, data)
            except BadChunk:
                t.bad += 1
                t.retry.append(i)
                raise
            finally:
                t.storing.discard(i)
                t.inflight.pop(i, None)
                t.wake.set()
        except BadChunk as exc:
            self.chat.refused(peer, CHUNK, exc)
            if t is not None and t.bad > MAX_BAD and t.state == TRANSFERRING:
                self._fail(t, f"{t.bad} bad chunks from the peer")
                await self._tell_end(t, "failed")
            return
        except CoveyError as exc:
            self.chat.refused(peer, CHUNK, exc)
            return
        except OSError as exc:
            if t is not None and t.state == TRANSFERRING:
                self._fail(t, f"cannot write the file: {exc.strerror or exc}")
                await self._tell_end(t, "failed")
            return
        if t is not None and t.state == TRANSFERRING and not t.have[i]:
            t.have[i] = 1
            t.done += 1
            t.last_chunk_at = time.monotonic()
            self._emit(t, force=False)

    @staticmethod
    def _store(t: Transfer, i: int, sealed: bytes) -> None:
        """Open, check and write chunk ``i`` at its offset (a thread)."""
        o = t.offer
        assert t.aead is not None and t.hashes is not None and t.part is not None
        try:
            data = t.aead.decrypt(nonce(i), sealed, _ad(o.id, i))
        except InvalidTag:
            raise BadChunk(f"chunk {i} of file {o.id.hex()[:12]} does not decrypt with the file's key; "
                           f"asked for again") from None
        if len(data) != o.chunk_len(i) or hashlib.sha256(data).digest() != t.hashes[i * HASH:(i + 1) * HASH]:
            raise BadChunk(f"chunk {i} of file {o.id.hex()[:12]} does not match its hash in the manifest; "
                           f"asked for again")
        fd = os.open(t.part, os.O_WRONLY)    # never O_CREAT: a cancelled transfer's part stays gone
        try:
            view = memoryview(data)
            offset = i * o.chunk_size
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
        finally:
            os.close(fd)

    async def _finish(self, t: Transfer) -> None:
        self._set(t, SAVING)
        try:
            await asyncio.to_thread(self._save, t)
        except (CoveyError, OSError) as exc:
            self._fail(t, str(exc))
            await self._tell_end(t, "failed")
            return
        self._set(t, DONE)
        log.info("file %s from %s received (%d bytes)", t.offer.id.hex()[:12], t.peer[:12], t.offer.size)
        await self._tell_end(t, "done")

    @staticmethod
    def _save(t: Transfer) -> None:
        """Every chunk was checked against its hash before it was written: sync the part file,
        then move it to the chosen path (never over a file that appeared meanwhile)."""
        part, target = t.part, t.path
        assert part is not None and target is not None
        if not all(t.have) or os.stat(part).st_size != t.offer.size:
            raise BadChunk("the part file is incomplete")
        fd = os.open(part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(part, target)        # fails, rather than overwrite, if the path was taken meanwhile
        except FileExistsError:
            raise BadRequest(f"{target} appeared meanwhile; the file was not saved") from None
        except OSError:
            if target.exists():
                raise BadRequest(f"{target} appeared meanwhile; the file was not saved") from None
            os.replace(part, target)     # no hard links on this file system
            return
        os.unlink(part)

    # -- ending -----------------------------------------------------------------------
    def cancel(self, ref: str) -> dict:
        """Refuse an offer or stop a transfer, in either direction (the part file is removed)."""
        t = self.find(ref)
        if t.state in FINISHED:
            raise BadRequest(f"file {t.offer.id.hex()[:12]} is already {t.state}")
        self._end(t, CANCELLED, "cancelled here")
        asyncio.ensure_future(self._tell_end(t, "refused" if t.direction == "in" else "cancelled"))
        return t.view()

    def drop_peer(self, peer: str, every: bool = False) -> None:
        """The conversation was closed: end and forget its files (not the ones of a group, which go
        with the group, see :meth:`drop_group`); ``every``: the peer was removed, all of them."""
        self._drop(lambda t: t.peer == peer and (every or t.group is None),
                   "the peer was removed" if every else "the conversation was closed")

    def drop_group(self, group: str) -> None:
        """We are no longer in the group: end and forget its files, telling each peer."""
        for t in self._drop(lambda t: t.group == group, "you are no longer in the group"):
            asyncio.ensure_future(self._tell_end(t, "refused" if t.direction == "in" else "cancelled"))

    def _drop(self, which, why: str) -> list[Transfer]:
        ended = []
        for table in (self.incoming, self.outgoing):
            for fid, t in list(table.items()):
                if which(t):
                    if t.state not in FINISHED:
                        self._end(t, CANCELLED, why)
                        ended.append(t)
                    del table[fid]
        return ended

    def _end(self, t: Transfer, state: str, error: str) -> None:
        if t.task is not None and t.task is not asyncio.current_task():
            t.task.cancel()
            t.task = None
        t.queue.clear()
        t.inflight.clear()
        self._remove_part(t)
        self._set(t, state, error)

    def _fail(self, t: Transfer, error: str) -> None:
        log.warning("file %s with %s failed: %s", t.offer.id.hex()[:12], t.peer[:12], error)
        self._end(t, FAILED, error)

    def _remove_part(self, t: Transfer) -> None:
        part = t.part
        if part is not None:
            try:
                part.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s: %s", part, exc)

    async def _tell_end(self, t: Transfer, reason: str) -> None:
        await self._send_end(t.peer, t.offer.id, reason)

    async def _send_end(self, peer: str, fid: bytes, reason: str) -> None:
        try:
            await self.node.send(peer, END, {"f": fid, "r": reason})
        except PeerUnreachable:
            pass  # a receiver asks again and hears "unknown"; a sender's offer just stays unanswered

    def _on_end(self, peer: str, body: dict) -> None:
        try:
            fid = _file_id(body)
            reason = body.get("r")
            if reason not in END_REASONS:
                raise MalformedMessage(f"file end: the reason must be one of {', '.join(END_REASONS)}")
            t = self.outgoing.get(fid) or self.incoming.get(fid)
            if t is None or t.peer != peer:
                raise UnknownFile(f"{peer[:12]} ended a file transfer this node does not know")
        except CoveyError as exc:
            self.chat.refused(peer, END, exc)
            return
        if t.state in FINISHED:
            return
        if t.direction == "out" and reason == "done":
            t.done = t.offer.chunks
            self._end(t, DONE, "")
        elif t.direction == "in" and reason == "done":
            return    # only the receiver says "done"
        else:
            why = {"changed": "the file changed on the sender's disk", "refused": "the peer refused it",
                   "cancelled": "the peer cancelled it"}.get(reason, "the peer gave up")
            self._end(t, CANCELLED if reason in ("refused", "cancelled") else FAILED, why)


@dataclass(frozen=True)
class _Prepared:
    """A file hashed for offering (to one peer, or to each member of a group)."""
    source: Path
    size: int
    chunk: int
    hashes: bytes
    name: str
    mime: str


def _source(path) -> Path:
    """The file to offer (absolute path, a readable regular file, not too large)."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise BadRequest("give the file's absolute path (the node reads it, not the shell)")
    source = Path(path)
    if source.is_dir():
        raise BadRequest(f"{path} is a directory; send a file")
    if not source.is_file():
        raise BadRequest(f"{path} is not a readable file")
    if source.stat().st_size > MAX_FILE:
        raise BadRequest(f"{path} is larger than {MAX_FILE} bytes")
    return source


async def _prepare(source: Path, mime: str | None) -> _Prepared:
    """Hash the file chunk by chunk in a thread (one chunk in memory)."""
    try:
        size = source.stat().st_size
        chunk = _chunk_size_for(size)
        hashes = await asyncio.to_thread(hash_file, source, chunk)
    except OSError as exc:
        raise BadRequest(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(hashes) != HASH * -(-size // chunk):
        raise FileChanged(f"{source} changed while it was read; try again")
    name = clean_name(source.name)
    return _Prepared(source, size, chunk, hashes, name,
                     mime or mimetypes.guess_type(name)[0] or "application/octet-stream")


def _file_id(body: dict) -> bytes:
    fid = body.get("f")
    if not isinstance(fid, bytes) or len(fid) != ID_BYTES:
        raise MalformedMessage(f"a file message must name a file id of {ID_BYTES} bytes")
    return fid


def _index(i, offer: Offer) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise MalformedMessage("a chunk index must be an integer")
    if not 0 <= i < offer.chunks:
        raise ChunkOutOfRange(f"chunk index {i} is outside file {offer.id.hex()[:12]} "
                              f"(it has {offer.chunks} chunks)")
    return i
