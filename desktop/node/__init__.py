"""This node: who it is (name, fingerprint, id, listen addresses)."""
