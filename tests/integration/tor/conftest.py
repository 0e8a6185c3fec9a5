"""The private Tor network the tor tests share, started once per session.

Safety: tor here must never reach the public network. Every test in this
directory is skipped unless the process runs in a loopback-only network
namespace, and the network itself refuses to start outside one::

    unshare -n sh -c 'ip link set lo up && .venv/bin/python -m pytest -q -m tor tests/integration/tor'
"""
from __future__ import annotations

import pytest

from .network import PrivateTorNetwork, TorNode, in_loopback_only_namespace, tor_available


@pytest.fixture(scope="session", autouse=True)
def loopback_namespace_guard() -> None:
    """Skip every tor test unless tor is installed and we are in a loopback-only namespace."""
    if not tor_available():
        pytest.skip("tor is not installed (`make debs` installs it)")
    if not in_loopback_only_namespace():
        pytest.skip("tor tests run only in a loopback-only network namespace: "
                    "unshare -n sh -c 'ip link set lo up && .venv/bin/python -m pytest -m tor tests/integration/tor'")


@pytest.fixture(scope="session")
def tor_network(loopback_namespace_guard, tmp_path_factory) -> PrivateTorNetwork:
    """3 authorities and 4 relays with a complete consensus; every tor is stopped at the end."""
    network = PrivateTorNetwork(tmp_path_factory.mktemp("tor") / "net")
    network.start()
    try:
        yield network
    finally:
        network.stop()


@pytest.fixture(scope="session")
def network_torrc(tor_network, tmp_path_factory):
    """The config file a TorController gives its own tor to join the private network."""
    return tor_network.write_client_config(tmp_path_factory.mktemp("tor-client") / "network.torrc")


@pytest.fixture(scope="session")
def running_tor(tor_network) -> TorNode:
    """A tor someone else runs (SOCKS + control port, cookie auth): the 'attach' case."""
    return tor_network.launch_client("system-tor")
