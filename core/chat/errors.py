"""Typed errors of the chat core (each with a stable code for the control API).

They subclass the foundation's errors where the meaning matches, so code that
already handles e.g. ``InvalidSignature`` or ``ReplayDetected`` handles these.
"""
from __future__ import annotations

from core.errors import CorruptKeyFile, CoveyError, InvalidSignature, ReplayDetected


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
