"""Packaging for people who ship Covey: the compose generator, the PyInstaller spec, the
Dockerfile and the resources lookup. Fast: nothing is built here (see packaging/README.md)."""
from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop import resources_path

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def load_compose():
    spec = importlib.util.spec_from_file_location("covey_packaging_compose", PACKAGING / "compose.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compose = load_compose()


def generate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PACKAGING / "compose.py"), *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)


def _scalar(text: str):
    if text == "{}":
        return {}
    if text.startswith('"'):
        return json.loads(text)
    if text in ("true", "false"):
        return text == "true"
    return int(text)


def read_block_yaml(text: str) -> dict:
    """A reader for the block-YAML subset compose.py writes (mappings, lists of scalars,
    quoted strings, ints, ``{}``); anything outside it fails the test."""
    root: dict = {}
    stack: list[tuple[int, object]] = [(-1, root)]  # (indent, container)
    pending: tuple[int, dict, str] | None = None    # a "key:" whose value is on the next lines
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if pending is not None:
            p_indent, parent, key = pending
            assert indent > p_indent, f"line {number}: key {key!r} has no value"
            parent[key] = [] if body.startswith("- ") else {}
            stack.append((p_indent, parent[key]))
            pending = None
        while indent <= stack[-1][0] and not (body.startswith("- ") and indent == stack[-1][0]):
            stack.pop()
        container = stack[-1][1]
        if body.startswith("- "):
            assert isinstance(container, list), f"line {number}: list item outside a list"
            container.append(_scalar(body[2:]))
            continue
        assert isinstance(container, dict), f"line {number}: mapping entry inside a list"
        key, sep, rest = body.partition(":")
        assert sep and key and " " not in key, f"line {number}: not 'key: value': {line!r}"
        assert key not in container, f"line {number}: duplicate key {key!r}"
        rest = rest.strip()
        if rest:
            container[key] = _scalar(rest)
        else:
            pending = (indent, container, key)
    assert pending is None, "the file ends with a key that has no value"
    return root


@pytest.fixture(scope="module")
def four(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("compose") / "covey-compose.yml"
    proc = subprocess.run([sys.executable, str(PACKAGING / "compose.py"), "--nodes", "4", "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return out, read_block_yaml(out.read_text())


def test_compose_file_has_one_seed_and_n_minus_one_peers(four):
    _, doc = four
    assert list(doc["services"]) == ["seed", "peer-1", "peer-2", "peer-3"]


def test_compose_file_reads_back_as_the_generated_document(four):
    path, doc = four
    assert doc == compose.compose_spec(4)
    assert path.read_text() == compose.render(4)


def test_every_node_runs_headless_on_8102_with_discovery_off(four):
    _, doc = four
    for name, service in doc["services"].items():
        assert service["entrypoint"] == ["covey", "--headless", "--listen", "0.0.0.0:8102"], name
        assert service["environment"]["COVEY_DISCOVERY"] == "0", name
        assert service["environment"]["COVEY_HOME"] == "/data", name


def test_every_node_has_its_own_named_volume_as_home(four):
    _, doc = four
    mounts = [service["volumes"] for service in doc["services"].values()]
    assert all(len(m) == 1 and m[0].endswith(":/data") for m in mounts)
    volumes = [m[0].split(":")[0] for m in mounts]
    assert len(set(volumes)) == len(doc["services"])
    assert set(volumes) == set(doc["volumes"])


def test_peers_bootstrap_to_the_seed_by_service_name_and_the_seed_to_nobody(four):
    _, doc = four
    services = doc["services"]
    assert "COVEY_BOOTSTRAP" not in services["seed"]["environment"]
    for name in ("peer-1", "peer-2", "peer-3"):
        assert services[name]["environment"]["COVEY_BOOTSTRAP"] == "seed:8102"
        assert services[name]["depends_on"] == {"seed": {"condition": "service_healthy"}}


def test_every_node_has_a_healthcheck_on_get_health(four):
    _, doc = four
    for name, service in doc["services"].items():
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        assert "http://127.0.0.1:8102/health" in test[3], name
        compile(test[3], "<healthcheck>", "exec")  # the probe is valid Python


def test_only_the_seed_is_published_on_the_host_and_can_be_kept_private():
    published = compose.compose_spec(3)["services"]
    assert published["seed"]["ports"] == ["8102:8102"]
    assert all("ports" not in published[n] for n in ("peer-1", "peer-2"))
    private = compose.compose_spec(3, seed_port=0)["services"]
    assert "ports" not in private["seed"]


def test_compose_writes_to_stdout_without_out(tmp_path):
    proc = generate(tmp_path, "--nodes", "2")
    assert proc.returncode == 0, proc.stderr
    assert list(read_block_yaml(proc.stdout)["services"]) == ["seed", "peer-1"]


@pytest.mark.parametrize("value, says", [
    ("0", "between 2"), ("1", "between 2"), ("-3", "between 2"), ("65", "and 64"),
    ("many", "whole number"), ("2.5", "whole number"),
])
def test_bad_node_counts_are_refused_with_a_clear_message(tmp_path, value, says):
    proc = generate(tmp_path, "--nodes", value, "--out", "x.yml")
    assert proc.returncode == 2
    assert "argument --nodes" in proc.stderr and says in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.yml").exists()


def test_the_compose_api_refuses_bad_node_counts_too():
    with pytest.raises(ValueError, match="between 2"):
        compose.compose_spec(1)


def test_pyyaml_reads_the_same_document(four):
    yaml = pytest.importorskip("yaml")
    path, doc = four
    assert yaml.safe_load(path.read_text()) == doc


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_accepts_the_file(four):
    path, _ = four
    proc = subprocess.run(["docker-compose", "-f", str(path), "config", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


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
