"""Guards for the desktop's shape (read from the source with ast: no Qt needed).

- every ``on_event_<name>`` in desktop/ names an event that core/events.py declares;
- desktop area packages import only what desktop/__init__.py allows them.
"""
from __future__ import annotations

import ast
from pathlib import Path

import core.events

ROOT = Path(__file__).resolve().parents[1]
DESKTOP = ROOT / "desktop"
TOOLKIT = {"desktop.actions", "desktop.bridge", "desktop.style", "desktop.resources_path", "desktop.wording"}
CORE_FOR_EVERY_AREA = {"core.errors", "core.events", "core.config", "core.node", "core.contact_link"}
FORBIDDEN_EVERYWHERE = ("torch",)
SHELL = "shell"   # desktop/shell/: part of the shell (menus, status bar, tray...), not an area


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def desktop_modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"), str(p))
            for p in sorted(DESKTOP.rglob("*.py"))}


def imports(module: str, tree: ast.Module, is_package: bool) -> set[str]:
    """Absolute names of every module ``tree`` imports (relative imports resolved; lazy ones too)."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            found.add(target)
            if not node.module:   # `from . import x`: x is a module
                found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def areas() -> set[str]:
    return {p.name for p in DESKTOP.iterdir()
            if p.is_dir() and (p / "__init__.py").exists() and p.name != SHELL}


def area_services() -> dict[str, str]:
    """area -> the core service its tab renders, read from the Panel(...) lines of desktop/tabs.py."""
    tree = ast.parse((DESKTOP / "tabs.py").read_text(encoding="utf-8"))
    origin = {}   # imported name -> area
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                origin[alias.asname or alias.name] = node.module.split(".")[0]
    services = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Panel":
            service = next((k.value.value for k in node.keywords if k.arg == "service"), None)
            factory = node.args[1] if len(node.args) > 1 else next(k.value for k in node.keywords if k.arg == "factory")
            if service is not None:
                services[origin[factory.id]] = service
    return services


def allowed(area: str, name: str, service: str | None) -> bool:
    if name == f"desktop.{area}" or name.startswith(f"desktop.{area}."):
        return True
    if name == "desktop" or name.startswith("desktop."):
        return name in TOOLKIT
    if name == "core" or name.startswith("core."):
        return name in CORE_FOR_EVERY_AREA or (service is not None and name == f"core.{service}.protocol")
    return not name.startswith(FORBIDDEN_EVERYWHERE)


def handler_names(tree: ast.Module) -> set[str]:
    """``on_event_*`` methods and class-level aliases (``on_event_a = on_event_b``) of every class."""
    names = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(stmt.name)
            elif isinstance(stmt, ast.Assign):
                names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
    return {n for n in names if n.startswith("on_event_")}


def test_every_on_event_handler_names_an_event_the_core_declares():
    declared = {v for k, v in vars(core.events).items() if k.isupper() and isinstance(v, str)}
    seen, unknown = set(), []
    for module, tree in desktop_modules().items():
        for handler in sorted(handler_names(tree)):
            seen.add(handler)
            if handler.removeprefix("on_event_") not in declared:
                unknown.append(f"{module}.{handler}")
    assert len(seen) >= 10, f"the scan found too few handlers to be looking in the right place: {seen}"
    assert not unknown, f"handlers for events core/events.py does not declare: {unknown}"


def test_area_packages_import_only_their_area_the_toolkit_and_the_core_facade():
    services = area_services()
    assert services.get("training") == "learning"
    modules = desktop_modules()
    found_areas = areas()
    assert {"node", "peers", "encryption", "training"} <= found_areas
    wrong = []
    for module, tree in modules.items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in found_areas:
            continue
        area = parts[1]
        is_package = (DESKTOP / Path(*parts[1:]) / "__init__.py").exists()
        for name in sorted(imports(module, tree, is_package)):
            if not allowed(area, name, services.get(area)):
                wrong.append(f"{module} imports {name}")
    assert not wrong, "area imports outside the rule in desktop/__init__.py:\n  " + "\n  ".join(wrong)


def test_the_toolkit_imports_no_area_and_nothing_of_the_shell():
    wrong = []
    for module, tree in desktop_modules().items():
        if module not in TOOLKIT:
            continue
        for name in sorted(imports(module, tree, False)):
            if name.startswith("desktop.") and name not in TOOLKIT:
                wrong.append(f"{module} imports {name}")
            if name.startswith(FORBIDDEN_EVERYWHERE):
                wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_shell_package_imports_no_area_and_no_torch():
    """desktop/shell/ works on the widgets the window hands it; it never reaches into an area."""
    found_areas = areas()
    wrong = []
    for module, tree in desktop_modules().items():
        if not module.startswith(f"desktop.{SHELL}"):
            continue
        is_package = module == f"desktop.{SHELL}"
        for name in sorted(imports(module, tree, is_package)):
            parts = name.split(".")
            if (len(parts) > 1 and parts[0] == "desktop" and parts[1] in found_areas) \
                    or name.startswith(FORBIDDEN_EVERYWHERE):
                wrong.append(f"{module} imports {name}")
    assert any(m.startswith(f"desktop.{SHELL}.") for m in desktop_modules()), "the scan missed desktop/shell"
    assert not wrong, "\n".join(wrong)


def test_the_import_scan_resolves_relative_imports():
    tree = ast.parse("from ..style import grouped\nfrom .peer_details import X\nfrom . import peers_model\n"
                     "def f():\n    from core.learning import protocol\n")
    assert imports("desktop.peers.peers_panel", tree, False) == {
        "desktop.style", "desktop.peers.peer_details", "desktop.peers", "desktop.peers.peers_model",
        "core.learning"}
    assert not allowed("peers", "desktop.node.identity_panel", None)
    assert not allowed("peers", "desktop.window", None)
    assert not allowed("peers", "core.net.transport", None)
    assert not allowed("peers", "core.learning.protocol", None)
    assert allowed("training", "core.learning.protocol", "learning")
    assert not allowed("training", "torch", "learning")
