"""End-to-end encrypted, ephemeral chat: key agreement, ratchet sessions, delivery, safety numbers."""
