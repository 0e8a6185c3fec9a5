"""Encryption: preferred and minimum mode, the network key, and the warning banner."""
