"""Packaging for people who ship Covey: the PyInstaller spec and entry, the Dockerfile and the
resources lookup. Fast: nothing is built here (tests/bundle and tests/containers build)."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path


from desktop import resources_path

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def test_spec_is_python_that_names_the_launcher_resources_and_lazy_learning_modules():
    tree = ast.parse((PACKAGING / "covey.spec").read_text())
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
               and isinstance(node.value, str)}
    assert {"covey_entry.py", "desktop.launcher", "resources", "desktop"} <= strings
    assert {"core.learning.commands", "core.learning.service"} <= strings
    calls = {node.func.id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= calls
    assert "scipy" not in strings  # scikit-learn needs it: it must not be excluded
    assert (ROOT / "resources" / "covey.qss").is_file()


def test_frozen_entry_calls_the_console_script_target_as_a_package_module():
    tree = ast.parse((PACKAGING / "covey_entry.py").read_text())
    imports = [(node.module, [a.name for a in node.names]) for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom)]
    assert ("desktop.launcher", ["main"]) in imports  # absolute: the launcher's relative imports work
    assert 'covey = "desktop.launcher:main"' in (ROOT / "pyproject.toml").read_text()


def test_dockerfile_runs_the_headless_node_as_a_non_root_user():
    lines = [line.strip() for line in (PACKAGING / "Dockerfile").read_text().splitlines()]
    # The base `packaging/podman.sh base` makes locally when no registry is reachable.
    assert lines[[i for i, line in enumerate(lines) if line.startswith("FROM")][0]] == "FROM debian:bookworm-slim"
    assert 'ENTRYPOINT ["covey", "--headless", "--listen", "0.0.0.0:8102"]' in lines
    assert "USER covey" in lines and "VOLUME /data" in lines and "ENV COVEY_HOME=/data" in lines
    assert "EXPOSE 8102" in lines
    torch_lines = [i for i, line in enumerate(lines) if "torch==2.13.0" in line]
    project_line = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install ."))
    assert torch_lines and max(torch_lines) < project_line   # CPU torch first: no CUDA pulled in
    assert any("download.pytorch.org/whl/cpu" in lines[i] for i in torch_lines)
    assert not any("[gui]" in line for line in lines)


def test_resources_are_found_in_the_source_tree():
    found = resources_path.resources_dir()
    assert found == ROOT / "resources"
    assert (found / "covey.qss").read_text(encoding="utf-8").strip()


def test_resources_are_found_in_a_pyinstaller_bundle(tmp_path, monkeypatch):
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "covey.qss").write_text("QWidget {}")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    monkeypatch.delenv("COVEY_RESOURCES", raising=False)
    assert resources_path.resources_dir() == tmp_path / "resources"


def test_an_explicit_resources_dir_wins_but_an_empty_one_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("COVEY_RESOURCES", str(tmp_path))
    assert resources_path.resources_dir() == ROOT / "resources"
    (tmp_path / "covey.qss").write_text("QWidget {}")
    assert resources_path.resources_dir() == tmp_path


def load_entry():
    spec = importlib.util.spec_from_file_location("covey_frozen_entry", PACKAGING / "covey_entry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frozen_entry_runs_only_the_nodes_own_child_modules():
    entry = load_entry()
    # What the task runner starts as sys.executable, which in a bundle is the bundle itself.
    assert entry.child_module(["-s", "-P", "-m", "core.delegation.child", '{"cpu": 1}']) == (
        "core.delegation.child", ['{"cpu": 1}'])
    assert entry.child_module(["-m", "core.delegation.child"]) == ("core.delegation.child", [])
    # Anything else is a normal covey command line (which then refuses what it does not know).
    assert entry.child_module(["-m", "http.server"]) is None
    assert entry.child_module(["-s", "-c", "print(1)"]) is None
    assert entry.child_module(["--headless", "-m", "core.delegation.child"]) is None
    assert entry.child_module(["peers", "list"]) is None
