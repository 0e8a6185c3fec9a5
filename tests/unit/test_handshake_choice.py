"""The initiator's reading of a responder's mode refusal: a malformed refusal is still a clear error."""
from __future__ import annotations

import pytest

from core.errors import PeerRequiresMode
from core.identity import Identity
from core.net import wire
from core.net.handshake import LocalEndpoint, parse_choice


@pytest.fixture(scope="module")
def local() -> LocalEndpoint:
    return LocalEndpoint.create(Identity.generate("dialer"), "asymmetric", "asymmetric", None)


@pytest.mark.parametrize("refusal", [
    {"min": ["asymmetric"], "modes": ["symmetric"]},   # an unhashable minimum
    {"min": {"x": 1}, "modes": [["symmetric"]]},       # unhashable offered modes too
    {"min": 7, "modes": 7},                            # neither a mode nor a list
])
def test_a_malformed_mode_refusal_is_read_as_the_default_minimum(local, refusal):
    reply = wire.pack_plain({"error": "mode_mismatch", **refusal})
    with pytest.raises(PeerRequiresMode) as info:
        parse_choice(reply, local, peer="bob")
    assert info.value.details["required"] in ("symmetric", "asymmetric")
    assert "bob" in str(info.value)


def test_a_well_formed_mode_refusal_names_what_the_peer_requires(local):
    reply = wire.pack_plain({"error": "mode_mismatch", "min": "symmetric", "modes": ["symmetric"]})
    with pytest.raises(PeerRequiresMode, match="bob requires at least symmetric") as info:
        parse_choice(reply, local, peer="bob")
    assert info.value.details["required"] == "symmetric"
