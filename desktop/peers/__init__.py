"""Peers: the peer book table, the selected peer's details and the add-peer dialog."""
