"""The typed refusals of chat (each with a stable code for the control API).

They live in :mod:`core.errors` with every other typed error; this module names
them for the chat package. They subclass the foundation's errors where the meaning
matches, so code that handles e.g. ``InvalidSignature`` or ``ReplayDetected``
handles these.
"""
from __future__ import annotations

from core.errors import (  # noqa: F401  (re-exported)
    ChatError,
    BadBundle,
    KeyAgreementFailed,
    ForgedSender,
    DecryptFailed,
    ReplayedMessage,
    TooManySkipped,
    NewSession,
    SessionClosed,
    PrekeysExhausted,
    CorruptPrekeyFile,
    OutboxFull,
    UnknownSession,
    BadReceipt,
    KeyChanged,
    ConversationClosing,
    UnknownFile,
    BadChunk,
    ChunkOutOfRange,
    ChunkTooLarge,
    BadFileOffer,
    FileChanged,
    TooManyFiles,
    MailboxFull,
    BlobExpired,
    UnknownGroup,
    NotGroupMember,
    NotGroupCreator,
    NoInvitation,
    InvitationExpired,
    TooManyInvitations,
)

__all__ = ["ChatError", "BadBundle", "KeyAgreementFailed", "ForgedSender", "DecryptFailed", "ReplayedMessage", "TooManySkipped", "NewSession", "SessionClosed", "PrekeysExhausted", "CorruptPrekeyFile", "OutboxFull", "UnknownSession", "BadReceipt", "KeyChanged", "ConversationClosing", "UnknownFile", "BadChunk", "ChunkOutOfRange", "ChunkTooLarge", "BadFileOffer", "FileChanged", "TooManyFiles", "MailboxFull", "BlobExpired", "UnknownGroup", "NotGroupMember", "NotGroupCreator", "NoInvitation", "InvitationExpired", "TooManyInvitations"]
