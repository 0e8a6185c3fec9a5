"""Typed errors of the core and the one place that turns them into sentences.

The core raises specific exception types; the CLI, the control API and the
GUI all call :func:`human` so every surface says the same thing.
"""
from __future__ import annotations


class CoveyError(Exception):
    """Base of every error the core raises on purpose.

    ``code`` is a stable machine-readable name (used by the control API);
    the message is what a person reads.
    """

    code = "error"

    def __init__(self, message: str = "", **details):
        super().__init__(message or _first_line(self))
        self.details = details


# -- identity and files -------------------------------------------------------
class NoIdentity(CoveyError):
    """No identity in this home yet: run `covey init` first."""
    code = "no_identity"


class CorruptKeyFile(CoveyError):
    """The identity key file is damaged or not a Covey key file."""
    code = "corrupt_key_file"


class PassphraseRequired(CoveyError):
    """The identity key is protected by a passphrase: give it with --passphrase-file or COVEY_PASSPHRASE."""
    code = "passphrase_required"


class WrongPassphrase(CoveyError):
    """The passphrase does not unlock the identity key."""
    code = "wrong_passphrase"


class StoreCorrupt(CoveyError):
    """The database file is damaged."""
    code = "store_corrupt"


class StoreLocked(CoveyError):
    """The database is locked by another process (is another node running with this home?)."""
    code = "store_locked"


class StoreUnavailable(CoveyError):
    """The database file could not be opened or written."""
    code = "store_unavailable"


# -- signatures and objects ---------------------------------------------------
class InvalidSignature(CoveyError):
    """The signature does not verify."""
    code = "invalid_signature"


class ReplayDetected(CoveyError):
    """This message was seen before (replay)."""
    code = "replay"


class StaleMessage(CoveyError):
    """The message timestamp is outside the allowed clock skew."""
    code = "stale"


class MalformedMessage(CoveyError):
    """The message is malformed."""
    code = "malformed"


class MessageTooLarge(CoveyError):
    """The message is larger than the allowed size."""
    code = "too_large"


class UnsupportedVersion(CoveyError):
    """The peer speaks a protocol version this node does not."""
    code = "unsupported_version"


class Invalid(CoveyError):
    """The object failed validation.

    ``reason`` is a short machine-readable word (e.g. ``shape``, ``late``) a
    service answers the sender with and counts.
    """
    code = "invalid"

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or f"{_first_line(self).rstrip('.')} ({reason})", reason=reason)
        self.reason = reason


class NotAdmitted(CoveyError):
    """A signed object from a peer was not admitted.

    Raised by :mod:`core.admission` once the rejection is recorded (reputation,
    event, log); ``rejection`` says why, ``__cause__`` is the typed error of
    the failed step and ``code`` is that error's code (what the peer is told).
    """
    code = "not_admitted"

    def __init__(self, rejection, cause: CoveyError):
        super().__init__(str(cause) or rejection.message, reason=rejection.reason)
        self.rejection = rejection
        self.code = cause.code


# -- peers and policy ---------------------------------------------------------
class UnknownPeer(CoveyError):
    """No such peer in the peer book."""
    code = "unknown_peer"


class AmbiguousPeer(CoveyError):
    """The peer reference matches more than one peer: give more of the id."""
    code = "ambiguous_peer"


class RefusedByPolicy(CoveyError):
    """The peer's trust tier does not allow this."""
    code = "refused_by_policy"


class PeerBanned(CoveyError):
    """The peer is banned."""
    code = "banned"


class NotTheSender(RefusedByPolicy):
    """The signed object is signed by another identity than the peer that sent it."""


# -- transport ----------------------------------------------------------------
class HandshakeFailed(CoveyError):
    """The authenticated handshake failed."""
    code = "handshake_failed"


class KeyMismatch(HandshakeFailed):
    """The peer at this address presented a different key than the one pinned (possible man in the middle)."""
    code = "key_mismatch"


class PeerRequiresMode(HandshakeFailed):
    """The peer requires an encryption mode this node does not offer."""
    code = "mode_mismatch"


class NetworkKeyMismatch(HandshakeFailed):
    """The peer does not hold the same network key (symmetric mode)."""
    code = "network_key_mismatch"


class PeerUnreachable(CoveyError):
    """The peer could not be reached."""
    code = "unreachable"


class ProxyUnreachable(CoveyError):
    """The configured proxy is not reachable; connections fail closed and never go direct."""
    code = "proxy_unreachable"


class TorError(CoveyError):
    """Tor could not be started or controlled."""
    code = "tor_error"


class ForeignBeacon(CoveyError):
    """The beacon's fingerprint does not belong to its id."""
    code = "fingerprint_mismatch"


class TooManyPeers(CoveyError):
    """Too many nodes announce themselves on this LAN; new ones are ignored."""
    code = "too_many_peers"


class TimedOut(CoveyError):
    """The operation timed out."""
    code = "timeout"


class RateLimited(CoveyError):
    """Too many requests or connections: slow down."""
    code = "rate_limited"


class BadRequest(CoveyError):
    """The request is invalid."""
    code = "bad_request"


class NotRunning(CoveyError):
    """No node is running with this home: start one with `covey --headless` (or `covey`)."""
    code = "not_running"


class Unauthorized(CoveyError):
    """Missing or wrong control token."""
    code = "unauthorized"


# -- learning -----------------------------------------------------------------
class UnknownTask(CoveyError):
    """No such training task on this node."""
    code = "unknown_task"


class UpdateRejected(Invalid):
    """The model update was rejected."""
    code = "update_rejected"


class NotEnoughParticipants(CoveyError):
    """Too few workers are left for secure aggregation to finish this round (fewer than the threshold)."""
    code = "secagg_too_few"


class UnmaskRefused(RefusedByPolicy):
    """Refused to reveal secure-aggregation shares: the request could expose a single worker's update."""
    code = "secagg_refused"


class CorruptShare(BadRequest):
    """A secure-aggregation share blob failed authentication (corrupted, or not addressed to this worker)."""
    code = "secagg_corrupt_share"


class RosterRefused(RefusedByPolicy):
    """The secure-aggregation roster is not made of enough known, signed participants."""


# -- task delegation ---------------------------------------------------------------
class UnknownTaskType(CoveyError):
    """This executor does not run tasks of that type."""
    code = "unknown_task_type"


class ExecutorBusy(CoveyError):
    """The executor is busy: its queue is full; try again later."""
    code = "executor_busy"


class TaskTimedOut(TimedOut):
    """The task ran past its time limit and was stopped."""
    code = "task_timeout"


class MemoryLimitExceeded(CoveyError):
    """The task exceeded its memory limit and was stopped."""
    code = "memory_limit"


class TaskFailed(CoveyError):
    """The task failed while it ran."""
    code = "task_failed"


class ProofMismatch(CoveyError):
    """The execution proof does not match this request, executor or result."""
    code = "proof_mismatch"
# -- knowledge ----------------------------------------------------------------
class Equivocation(CoveyError):
    """The author signed two different packets with the same sequence number."""
    code = "equivocation"


class UnknownPacket(CoveyError):
    """No such knowledge packet on this node."""
    code = "unknown_packet"


class AmbiguousPacket(CoveyError):
    """The packet id prefix matches more than one packet: give more of the id."""
    code = "ambiguous_packet"


class StoreFull(CoveyError):
    """The knowledge store is full: no new packets are kept."""
    code = "store_full"


# -- chat (core/chat) -----------------------------------------------------------
class ChatError(CoveyError):
    """The chat message was refused."""
    code = "chat_error"


class BadBundle(InvalidSignature):
    """The prekey bundle is not validly signed by the peer it claims to come from."""
    code = "chat_bad_bundle"


class KeyAgreementFailed(ChatError):
    """The X3DH key agreement failed (unknown or already used prekey, or a bad key)."""
    code = "chat_key_agreement"


class ForgedSender(ChatError):
    """The message claims a sender other than the peer it came from."""
    code = "chat_forged_sender"


class DecryptFailed(ChatError):
    """The message does not decrypt: tampered, or not for this conversation."""
    code = "chat_decrypt_failed"


class ReplayedMessage(ReplayDetected):
    """This chat message was decrypted before (replay)."""
    code = "chat_replay"


class TooManySkipped(ChatError):
    """The message skips more message keys than the bound allows."""
    code = "chat_skip_bound"


class NewSession(ChatError):
    """The message starts a new session (it carries another X3DH header): accept it as such."""
    code = "chat_new_session"


class SessionClosed(ChatError):
    """The chat session was closed and wiped."""
    code = "chat_session_closed"


class PrekeysExhausted(ChatError):
    """No one-time prekey is left to hand out."""
    code = "chat_prekeys_exhausted"


class CorruptPrekeyFile(CorruptKeyFile):
    """The chat prekey file is damaged or belongs to another identity."""
    code = "chat_corrupt_prekey_file"


class OutboxFull(ChatError):
    """Too many messages are waiting for acknowledgement in this conversation."""
    code = "chat_outbox_full"


class UnknownSession(ChatError):
    """The message belongs to no open session (closed, or from before a restart)."""
    code = "chat_unknown_session"


class BadReceipt(ChatError):
    """The peer acknowledged or read a message that was never sent."""
    code = "chat_bad_receipt"


class KeyChanged(ChatError):
    """A verified contact now presents another key: refused until verified again."""
    code = "chat_key_changed"


class ConversationClosing(ChatError):
    """The conversation is being closed; it starts again once the peer has wiped it too."""
    code = "chat_closing"


class UnknownFile(ChatError):
    """No file transfer with this id is in progress with this peer."""
    code = "chat_file_unknown"


class BadChunk(ChatError):
    """A file chunk does not decrypt with the file's key or does not match its hash in the manifest."""
    code = "chat_file_bad_chunk"


class ChunkOutOfRange(ChatError):
    """A file chunk index lies outside the file's manifest."""
    code = "chat_file_chunk_range"


class ChunkTooLarge(MessageTooLarge):
    """A file chunk is larger than the file's chunk size."""
    code = "chat_file_chunk_too_large"


class BadFileOffer(ChatError):
    """A file offer is malformed or over the bounds (size, name, chunk count)."""
    code = "chat_file_bad_offer"


class FileChanged(ChatError):
    """The offered file changed on the sender's disk: its chunks no longer match the manifest."""
    code = "chat_file_changed"


class TooManyFiles(ChatError):
    """Too many file offers or transfers are open; finish or cancel some first."""
    code = "chat_file_too_many"


class MailboxFull(ChatError):
    """The mailbox holds as much as it may for this recipient (or in total): try later."""
    code = "chat_mailbox_full"


class BlobExpired(ChatError):
    """The mailbox blob is past its time to live: it is dropped unread."""
    code = "chat_blob_expired"


class UnknownGroup(ChatError):
    """No such group here (never joined, left, or removed)."""
    code = "chat_unknown_group"


class NotGroupMember(RefusedByPolicy):
    """The peer is not a member of the group (or this node no longer is)."""
    code = "chat_not_member"


class NotGroupCreator(ChatError):
    """The membership change is not signed by the group's creator."""
    code = "chat_not_creator"


class NoInvitation(ChatError):
    """No pending invitation to that group (never invited, declined, withdrawn, or not accepted)."""
    code = "chat_no_invitation"


class InvitationExpired(NoInvitation):
    """The group invitation expired before it was accepted."""
    code = "chat_invitation_expired"


class TooManyInvitations(ChatError):
    """Too many group invitations wait for an answer (from that creator, or in all)."""
    code = "chat_too_many_invitations"


def _first_line(exc: CoveyError) -> str:
    return (type(exc).__doc__ or "").strip().splitlines()[0] if type(exc).__doc__ else type(exc).__name__


def _all_errors(cls: type[CoveyError] = CoveyError) -> dict[str, type[CoveyError]]:
    found: dict[str, type[CoveyError]] = {cls.code: cls}
    for sub in cls.__subclasses__():
        for code, klass in _all_errors(sub).items():
            found.setdefault(code, klass)
    return found


def human(exc: BaseException) -> str:
    """One sentence a person can act on, for any exception."""
    if isinstance(exc, CoveyError):
        return str(exc)
    if isinstance(exc, (ConnectionRefusedError, ConnectionResetError)):
        return f"connection failed: {exc.strerror or exc}"
    if isinstance(exc, TimeoutError):
        return "the operation timed out"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename or exc}"
    return f"unexpected error: {type(exc).__name__}: {exc}"


def from_code(code: str, message: str) -> CoveyError:
    """Rebuild a typed error from the control API's (code, message) pair."""
    return _all_errors().get(code, CoveyError)(message)
