"""Fixtures for the knowledge tests: identities and a real SQLite store."""
from __future__ import annotations

import pytest
from knowhelp import FakeClock

from core.identity import Identity
from core.knowledge.db import KnowledgeDB
from core.store import Store


@pytest.fixture
def ids():
    """Five generated identities: a (us), b, c, d, e."""
    return {name: Identity.generate(name) for name in "abcde"}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "covey.db") as s:
        yield s


@pytest.fixture
def kdb(store):
    return KnowledgeDB(store)


@pytest.fixture
def clock():
    return FakeClock()
