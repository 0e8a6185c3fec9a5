"""Nodes heard on the LAN appear in the peers table, and leave it when their beacons stop."""
import socket

from core.net.discovery import DEFAULT_GROUP, encode_beacon
from core.identity import Identity

from desktop.peers.peers_model import NAME

from tests.beacons import beacon_sender, free_udp_port


def test_a_discovered_node_appears_then_leaves_when_its_beacons_stop(make_node, qtbot):
    from desktop.window import MainWindow
    group_port = free_udp_port()
    node = make_node("alice", discovery=True, discovery_port=group_port,
                     discovery_interface="127.0.0.1", discovery_interval=0.3)
    win = MainWindow(node)
    qtbot.addWidget(win)
    win.show()
    model = win.peers_panel.model
    carol = Identity.generate("carol")
    with socket.socket() as closed:          # a port nothing listens on: the node cannot connect
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    sock = beacon_sender()
    try:
        sock.sendto(encode_beacon(carol, dead_port), (DEFAULT_GROUP, group_port))
        qtbot.waitUntil(lambda: model.row_of(carol.id) >= 0, timeout=10000)
        assert model.data(model.index(model.row_of(carol.id), NAME)) == "carol"
    finally:
        sock.close()
    qtbot.waitUntil(lambda: model.row_of(carol.id) < 0, timeout=10000)
    assert node.peers.get(carol.id) is None, "showing a LAN node does not add it to the peer book"
