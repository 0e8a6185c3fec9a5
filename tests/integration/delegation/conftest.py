"""Two real nodes on 127.0.0.1 for the delegation service: alice delegates, bob executes."""
from __future__ import annotations

import pytest

from ..conftest import address, wait_until


@pytest.fixture
async def core_pair(make_node):
    """(alice, bob): connected; bob holds alice as CORE, so alice may delegate tasks to bob."""
    alice = await make_node("alice")
    bob = await make_node("bob")
    await alice.add_peer(address(bob), name="bob")
    await wait_until(lambda: alice.identity.id in bob.connections)
    bob.trust(alice.identity.id, "core")
    return alice, bob


def mlp_weights(hidden: int = 16) -> bytes:
    """safetensors bytes of a seeded mlp for the digits dataset (64 features, 10 classes)."""
    from core.learning import tensors
    from core.learning.models import build_model, get_weights
    return tensors.encode(get_weights(build_model("mlp", 64, 10, (8, 8), seed=7, hidden=hidden)))
