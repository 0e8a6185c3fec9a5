"""The surfaces in core/app (issue 7, item 3): no import cycle among them, one control-API
client, one runtime for the headless mode and the desktop, one place that creates an identity."""
from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest

from core.errors import WrongPassphrase
from core.identity import Identity, ensure_identity

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def app_graph() -> dict[str, set[str]]:
    modules = {f"core.app.{p.stem}": p for p in (ROOT / "core" / "app").glob("*.py") if p.stem != "__init__"}
    return {name: imports_of(path) & set(modules) for name, path in modules.items()}


def test_the_app_modules_import_each_other_without_a_cycle():
    graph = app_graph()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        for target in graph[name]:
            visit(target, path + (name,))

    for name in graph:
        visit(name, ())


def test_cli_cluster_and_demo_reach_the_node_through_the_client():
    graph = app_graph()
    for name in ("core.app.cli", "core.app.cluster", "core.app.demo"):
        assert "core.app.client" in graph[name], name
    assert "core.app.cli" not in graph["core.app.cluster"] | graph["core.app.demo"]


def test_headless_and_desktop_share_one_runtime():
    for path in (ROOT / "core" / "app" / "headless.py", ROOT / "desktop" / "app.py"):
        imported = imports_of(path)
        assert "core.app.runtime" in imported, path
        assert "core.app.control" not in imported, f"{path} starts the control API itself"


def test_only_core_identity_writes_an_identity():
    writers = []
    for path in [*(ROOT / "core").rglob("*.py"), *(ROOT / "desktop").rglob("*.py")]:
        text = path.read_text()
        if path != ROOT / "core" / "identity.py" and "Identity.generate(" in text and ".save(" in text:
            writers.append(str(path.relative_to(ROOT)))
    assert writers == []


def test_ensure_identity_creates_once_then_loads(tmp_path):
    home = tmp_path / "a" / "home"
    identity, created = ensure_identity(home, "ivy", b"pw")
    assert created and identity.name == "ivy"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    again, created = ensure_identity(home, "other name", b"pw")
    assert not created and again.id == identity.id and again.name == "ivy"
    with pytest.raises(WrongPassphrase):
        ensure_identity(home, "ivy", b"wrong")
    assert Identity.load(home, b"pw").id == identity.id
