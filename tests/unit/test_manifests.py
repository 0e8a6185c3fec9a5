"""The seed topology's plan and its compose and Kubernetes forms (validated offline)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from core.app import cluster_plan, manifests
from core.errors import BadRequest

yaml = pytest.importorskip("yaml")


@pytest.mark.parametrize("nodes, expected", [
    (50, {"bootstrap": 3, "aggregator": 5, "worker": 40, "client": 2}),
    (10, {"bootstrap": 2, "aggregator": 1, "worker": 6, "client": 1}),
    (3, {"bootstrap": 1, "aggregator": 1, "worker": 1, "client": 0}),
])
def test_role_counts_are_the_plan_at_50_and_scale_down(nodes, expected):
    assert cluster_plan.role_counts(nodes) == expected
    assert [n.role for n in cluster_plan.plan(nodes)].count("worker") == expected["worker"]


@pytest.mark.parametrize("nodes", [10, 20, 50, 64])
def test_seed_plan_links_everyone_to_the_bootstraps_and_three_more_peers(nodes):
    planned = cluster_plan.plan(nodes, "seed")
    boots = {n.name for n in planned if n.role == "bootstrap"}
    peers = cluster_plan.neighbours(planned)
    for node in planned:
        assert boots - {node.name} <= peers[node.name], node.name
        assert len(peers[node.name] - boots) >= 3, node.name
    workers = [n for n in planned if n.role == "worker"]
    aggs = {n.group: n.name for n in planned if n.role == "aggregator"}
    assert all(aggs[w.group] in w.dials for w in workers)


def test_star_and_mesh_plans():
    star = cluster_plan.neighbours(cluster_plan.plan(5, "star"))
    assert star["node-0"] == {f"node-{i}" for i in range(1, 5)} and star["node-3"] == {"node-0"}
    mesh = cluster_plan.neighbours(cluster_plan.plan(4, "mesh"))
    assert all(len(v) == 3 for v in mesh.values())


@pytest.mark.parametrize("nodes, topology", [(0, "seed"), (65, "seed"), (3, "ring")])
def test_bad_plans_are_refused(nodes, topology):
    with pytest.raises(BadRequest):
        cluster_plan.plan(nodes, topology)


def covey(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop.launcher", "cluster", *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)


@pytest.fixture(scope="module")
def compose50(tmp_path_factory):
    path = tmp_path_factory.mktemp("compose") / "covey-50.yml"
    proc = covey(path.parent, "compose", "--nodes", "50", "--topology", "seed", "--out", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["wrote"] == str(path)
    return path, yaml.safe_load(path.read_text())


def test_compose_has_the_roles_on_the_private_network_with_health_checks(compose50):
    _, doc = compose50
    services = doc["services"]
    roles = [s["environment"]["COVEY_ROLE"] for s in services.values()]
    assert {r: roles.count(r) for r in set(roles)} == {"bootstrap": 3, "aggregator": 5, "worker": 40, "client": 2}
    assert doc["networks"]["covey"]["ipam"]["config"] == [{"subnet": "172.30.0.0/24"}]
    addresses = [s["networks"]["covey"]["ipv4_address"] for s in services.values()]
    assert len(set(addresses)) == 50 and all(a.startswith("172.30.0.") for a in addresses)
    for name, service in services.items():
        assert "http://127.0.0.1:8102/health" in service["healthcheck"]["test"][3], name
        assert service["init"] is True


def test_compose_start_is_staged_and_every_dial_waits_for_a_healthy_peer(compose50):
    _, doc = compose50
    services = doc["services"]
    assert "depends_on" not in services["bootstrap-0"]
    for name, service in services.items():
        targets = [t.rsplit(":", 1)[0] for t in service["environment"].get("COVEY_BOOTSTRAP", "").split(",") if t]
        assert set(targets) == set(service.get("depends_on", {})), name
        assert all(c == {"condition": "service_healthy"} for c in service.get("depends_on", {}).values())
        if not name.startswith("bootstrap"):
            assert {"bootstrap-0", "bootstrap-1", "bootstrap-2"} <= set(targets), name
        if name.startswith("worker"):
            assert len([t for t in targets if t.startswith("aggregator")]) == 3, name


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) is not installed")
def test_docker_compose_accepts_the_seed_file(compose50):
    path, _ = compose50
    proc = subprocess.run(["docker-compose", "-f", str(path), "config", "-q"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def k8s50(tmp_path_factory):
    proc = covey(tmp_path_factory.mktemp("k8s"), "k8s", "--nodes", "50", "--topology", "seed")
    assert proc.returncode == 0, proc.stderr
    return list(yaml.safe_load_all(proc.stdout))


def test_k8s_manifests_validate_against_the_kubernetes_schemas(k8s50):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in k8s50:
        kubernetes_validate.validate(doc, "1.30", strict=True)  # raises on any schema error


def test_k8s_has_a_statefulset_per_role_a_headless_service_pvcs_probes_pdbs_and_a_network_policy(k8s50):
    kinds = {}
    for doc in k8s50:
        kinds.setdefault(doc["kind"], []).append(doc)
    sets = {d["metadata"]["name"]: d for d in kinds["StatefulSet"]}
    assert {k: v["spec"]["replicas"] for k, v in sets.items()} == {
        "covey-bootstrap": 3, "covey-aggregator": 5, "covey-worker": 40, "covey-client": 2}
    (service,) = kinds["Service"]
    assert service["spec"]["clusterIP"] == "None"
    for st in sets.values():
        spec = st["spec"]
        assert spec["serviceName"] == service["metadata"]["name"]
        assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        (container,) = spec["template"]["spec"]["containers"]
        assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": 8102}
    assert {d["metadata"]["name"] for d in kinds["PodDisruptionBudget"]} == set(sets)
    (policy,) = kinds["NetworkPolicy"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8102}]
    assert rule["from"] == [{"podSelector": policy["spec"]["podSelector"]}]


def test_k8s_worker_entry_dials_the_bootstraps_and_three_aggregators(k8s50):
    sts = next(d for d in k8s50 if d.get("metadata", {}).get("name") == "covey-worker")
    script = sts["spec"]["template"]["spec"]["containers"][0]["command"][2]
    script = script.replace("exec covey", "echo $COVEY_BOOTSTRAP #")
    out = subprocess.run(["sh", "-c", script], env={"HOSTNAME": "covey-worker-7", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=10).stdout.strip().split(",")
    assert out == [f"covey-bootstrap-{i}.covey:8102" for i in range(3)] + [
        f"covey-aggregator-{i}.covey:8102" for i in (2, 3, 4)]


def test_manifests_refuse_bad_node_counts():
    with pytest.raises(BadRequest, match="between 2"):
        manifests.render("k8s", 1)
