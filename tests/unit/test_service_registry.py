"""Services are declared once in core.service.REGISTRY; a new one is a package plus one line."""
from __future__ import annotations

import sys
import types

import pytest

from core.config import Settings
from core.errors import BadRequest
from core.identity import Identity
from core.node import Node
from core.service import REGISTRY, Registration, Service


class EchoService:
    """The smallest service: one table, one message type, start and stop."""

    name = "echo"
    migrations = [["CREATE TABLE echo_seen (peer TEXT PRIMARY KEY)"]]

    def __init__(self, node):
        self.node = node
        self.started = self.stopped = False
        node.on_message("echo.say", self._say)

    def _say(self, peer: str, body: dict) -> dict:
        self.node.store.execute("INSERT OR IGNORE INTO echo_seen(peer) VALUES (?)", (peer,))
        return body

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def echo_package(monkeypatch):
    module = types.ModuleType("covey_test_echo")
    module.EchoService = EchoService
    monkeypatch.setitem(sys.modules, "covey_test_echo", module)
    monkeypatch.setattr("core.service.REGISTRY", REGISTRY + (Registration("echo", "covey_test_echo:EchoService"),))


def test_every_registered_service_implements_the_contract(tmp_path):
    Identity.generate("a").save(tmp_path)
    node = Node(tmp_path, Identity.load(tmp_path), Settings(listen="127.0.0.1:0", discovery=False))
    from core.service import build_services
    for name, service in build_services(node).items():
        assert isinstance(service, Service) and service.name == name


async def test_one_registry_line_adds_a_service_with_its_schema_and_handlers(tmp_path, echo_package):
    Identity.generate("a").save(tmp_path)
    node = Node(tmp_path, Identity.load(tmp_path), Settings(listen="127.0.0.1:0", discovery=False))
    await node.start()
    try:
        echo = node.service("echo")
        assert echo.started and node.has_service("echo")
        assert node.store.query("SELECT count(*) AS n FROM echo_seen")[0]["n"] == 0
        assert node.service("learning").name == "learning"
    finally:
        await node.stop()
    assert echo.stopped


def test_asking_for_a_service_the_node_does_not_run_says_so(tmp_path):
    Identity.generate("a").save(tmp_path)
    node = Node(tmp_path, Identity.load(tmp_path), Settings(listen="127.0.0.1:0", discovery=False))
    with pytest.raises(BadRequest, match="runs without the chat service"):
        node.service("chat")
