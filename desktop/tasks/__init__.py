"""The Tasks tab: delegate tasks to peers and see the signed proofs (core.delegation)."""
