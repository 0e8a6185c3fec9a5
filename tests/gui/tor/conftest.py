"""The private Tor network for the Network tab's Tor part: the same session fixtures as
tests/integration/tor (3 authorities, 4 relays), and the same guard: every test here is
skipped unless it runs inside a loopback-only network namespace (`make test` does that)."""
from tests.integration.tor.conftest import (  # noqa: F401  (fixtures)
    loopback_namespace_guard, network_torrc, running_tor, tor_network)
