"""End-to-end encrypted, ephemeral chat: the cryptographic and delivery core.

- ``x3dh_adapter``: :class:`ChatKeys` (X3DH on the node's Ed25519 seed; only
  prekey private halves persist, ``<home>/chat_prekeys.json`` 0600),
  ``bundle_for(peer)`` (signed envelope) and :func:`verify_bundle`.
- ``ratchet``: the double-ratchet configuration and the message wire format.
- ``session``: :class:`Session` — ``initiate``/``accept``/``encrypt``/
  ``decrypt``/``wipe``; memory only, one lock per session.
- ``delivery``: :class:`Delivery` — seqs, outbox with backoff, acks as
  delivery receipts, read receipts, in-order exactly-once release (no I/O).
- ``safety``: 60-digit safety numbers (libsignal's algorithm) and their QR.
- ``errors``: the typed refusals (each with a control-API code).
"""
