"""The Knowledge tab: signed packets, publishing, the signature check and the gossip counters."""
