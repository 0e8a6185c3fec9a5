"""Commands are declared once, collected by one loader, and both surfaces use it."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types

import aiohttp
import pytest

from core.app.cli import build_parser
from core.app.commands import NODE_COMMANDS, command_modules, load_commands
from core.commands import CommandSet, Param
from core.config import Settings
from core.identity import Identity
from core.node import Node
from core.service import REGISTRY, Registration

CLI_ONLY = {"init", "crypto.self-test", "demo", "cluster.up", "cluster.status", "cluster.down",
            "cluster.kill", "cluster.start", "cluster.compose", "cluster.k8s"}


def cli_commands(parser: argparse.ArgumentParser) -> set[str]:
    """Every leaf subcommand of the CLI parser, as the dotted name it sends."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                name = sub.get_default("command")
                if name is not None:
                    found.add(name)
                found |= cli_commands(sub)
    return found


def test_every_node_command_in_the_cli_comes_from_the_loader():
    loaded = load_commands()
    assert cli_commands(build_parser()) - CLI_ONLY == set(loaded)
    assert {"id", "peers.add", "crypto.mode", "proxy.set", "ml.start", "ml.budget"} <= set(loaded)


def test_the_loader_reads_the_node_module_and_each_registered_services_module():
    assert command_modules() == [NODE_COMMANDS] + [r.commands for r in REGISTRY if r.commands]
    assert "core.learning.commands" in command_modules()


def test_importing_the_declarations_loads_no_service():
    code = ("import sys, core.commands; "
            "print(sorted(m for m in sys.modules if m.startswith(('core.learning', 'core.app'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def echo_commands(monkeypatch):
    """A new service's commands module, registered by one line."""
    module = types.ModuleType("covey_test_echo_commands")
    module.COMMANDS = CommandSet()

    @module.COMMANDS.command("echo.say", "say something back", Param("text", "what to say", max_len=64))
    async def _say(node, text):
        return {"said": text}

    monkeypatch.setitem(sys.modules, "covey_test_echo_commands", module)
    registry = REGISTRY + (Registration("echo", "covey_test_echo:EchoService", "covey_test_echo_commands"),)
    monkeypatch.setattr("core.service.REGISTRY", registry)
    return module


def test_a_services_commands_reach_the_cli_from_its_registry_line(echo_commands):
    assert "echo.say" in load_commands()
    args = build_parser().parse_args(["echo", "say", "hello"])
    assert args.command == "echo.say" and args.text == "hello"


def test_a_command_declared_twice_or_a_module_without_declarations_is_an_error(monkeypatch):
    twice = types.ModuleType("covey_test_twice")
    twice.COMMANDS = CommandSet()
    twice.COMMANDS.command("id", "a second `covey id`")(lambda node: None)
    monkeypatch.setitem(sys.modules, "covey_test_twice", twice)
    with pytest.raises(ValueError, match="'id'"):
        load_commands((Registration("twice", "x:Y", "covey_test_twice"),))
    monkeypatch.setitem(sys.modules, "covey_test_bare", types.ModuleType("covey_test_bare"))
    with pytest.raises(TypeError, match="COMMANDS"):
        load_commands((Registration("bare", "x:Y", "covey_test_bare"),))
    with pytest.raises(ValueError, match="twice"):
        twice.COMMANDS.command("id", "and a third")(lambda node: None)


async def test_the_control_api_serves_every_loaded_command_and_nothing_else(tmp_path, echo_commands):
    from core.app.control import ControlServer
    Identity.generate("a").save(tmp_path)
    node = Node(tmp_path, Identity.load(tmp_path), Settings(listen="127.0.0.1:0", discovery=False))
    server = ControlServer(node, unix=True)
    await server.start()
    try:
        control = json.loads((tmp_path / "control.json").read_text())
        headers = {"Authorization": f"Bearer {control['token']}"}
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=control["socket"])) as http:
            async def post(name: str, args: dict) -> dict:
                async with http.post(f"http://localhost/v1/{name}", json=args, headers=headers) as resp:
                    return await resp.json()

            for name in load_commands():
                # an argument no command declares: every served command refuses it without running
                answer = await post(name, {"no_such_argument": 1})
                assert answer["error"]["code"] == "bad_request"
                assert "unknown argument(s) no_such_argument" in answer["error"]["message"], name
            assert (await post("echo.say", {"text": "hi"})) == {"result": {"said": "hi"}}
            for name in CLI_ONLY:
                assert "unknown command" in (await post(name, {}))["error"]["message"]
    finally:
        await server.stop()
