"""Transport level: wire format, handshake, connections, discovery, outbound routes, tor."""
