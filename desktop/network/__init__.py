"""The Network tab: how the node reaches its peers (directly, a SOCKS5 proxy, or Tor)."""
