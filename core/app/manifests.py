"""`covey cluster compose|k8s`: the seed topology for several machines.

Roles and counts come from :mod:`core.app.cluster_plan`. A node here cannot be
given its peers' keys in advance (each creates its identity on first start), so
it dials its peers by name through ``COVEY_BOOTSTRAP``, and only peers of an
earlier start stage (which are up before it starts, so the one dial succeeds):
bootstrap-k dials the bootstraps before it; aggregators and clients dial the
bootstraps; each worker dials the bootstraps, its group's aggregator and the
next two aggregators (>= 3 peers besides the bootstraps); clients also dial
every aggregator. Aggregators gain their peers from the workers that dial them.

Both outputs are JSON documents, which are YAML (a Kubernetes manifest is a
``---``-separated stream of them), so no YAML library is needed.
"""
from __future__ import annotations

import json

from core.app import cluster_plan
from core.errors import BadRequest

PORT = 8102
SUBNET = "172.30.0.0/24"
HEALTH_PROBE = ("import urllib.request, sys; sys.exit(0 if urllib.request.urlopen("
                f"'http://127.0.0.1:{PORT}/health', timeout=4).status == 200 else 1)")
EXTRA_AGGREGATORS = 2   # aggregators a worker dials besides its own
MIN_NODES = 2


def counts(nodes: int) -> dict[str, int]:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not MIN_NODES <= nodes <= cluster_plan.MAX_NODES:
        raise BadRequest(f"--nodes must be between {MIN_NODES} and {cluster_plan.MAX_NODES}; got {nodes!r}")
    return cluster_plan.role_counts(nodes)


def dial_targets(role: str, index: int, n: dict[str, int]) -> list[tuple[str, int]]:
    """(role, index) pairs a node dials at start: only nodes of earlier stages (module doc)."""
    boots = [("bootstrap", i) for i in range(n["bootstrap"])]
    if role == "bootstrap":
        return boots[:index]
    if role == "worker" and n["aggregator"]:
        group = index % n["aggregator"]
        mine = [("aggregator", (group + k) % n["aggregator"])
                for k in range(min(1 + EXTRA_AGGREGATORS, n["aggregator"]))]
        return boots + mine
    if role == "client":
        return boots + [("aggregator", i) for i in range(n["aggregator"])]
    return boots


# -- compose ---------------------------------------------------------------------------------
def _service_name(role: str, index: int) -> str:
    return f"{role}-{index}"


def compose_spec(nodes: int, image: str = "covey:latest") -> dict:
    """A compose document: one service per node, named by role, on a private network."""
    n = counts(nodes)
    services: dict[str, dict] = {}
    address = 10
    for role in cluster_plan.ROLES:
        for index in range(n[role]):
            name = _service_name(role, index)
            targets = [_service_name(*t) for t in dial_targets(role, index, n)]
            env = {"COVEY_HOME": "/data", "COVEY_NAME": name, "COVEY_DISCOVERY": "0", "COVEY_ROLE": role,
                   "COVEY_MAX_UNKNOWN_CONNECTIONS": str(max(32, 2 * nodes))}
            if targets:
                env["COVEY_BOOTSTRAP"] = ",".join(f"{t}:{PORT}" for t in targets)
            service: dict = {
                "image": image,
                "init": True,   # a Python PID 1 ignores SIGTERM; `down` would wait 10 s a container
                "entrypoint": ["covey", "--headless", "--listen", f"0.0.0.0:{PORT}"],
                "environment": env,
                "volumes": [f"{name}-data:/data"],
                "networks": {"covey": {"ipv4_address": f"172.30.0.{address}"}},
                "healthcheck": {"test": ["CMD", "python", "-c", HEALTH_PROBE], "interval": "5s",
                                "timeout": "4s", "retries": 6, "start_period": "30s"},
                "restart": "unless-stopped",
            }
            if targets:  # staged start: the peers it dials are healthy before it starts
                service["depends_on"] = {t: {"condition": "service_healthy"} for t in targets}
            services[name] = service
            address += 1
    return {"services": services,
            "networks": {"covey": {"driver": "bridge", "ipam": {"config": [{"subnet": SUBNET}]}}},
            "volumes": {f"{name}-data": {} for name in services}}


# -- Kubernetes ------------------------------------------------------------------------------
LABEL = "app.kubernetes.io/name"
SERVICE = "covey"   # the headless Service: pods are <role set>-<ordinal>.covey


def _pod(role: str, index: int) -> str:
    return f"covey-{role}-{index}.{SERVICE}:{PORT}"


def _entry_script(role: str, n: dict[str, int]) -> str:
    """The container command: the pod's ordinal (from its stable name) picks what it dials."""
    boots = [_pod("bootstrap", i) for i in range(n["bootstrap"])]
    if role == "bootstrap":  # bootstrap-k dials bootstrap-0..k-1
        pick = ('i=${HOSTNAME##*-}; B=""; k=0; while [ "$k" -lt "$i" ]; do '
                f'B="$B,covey-bootstrap-$k.{SERVICE}:{PORT}"; k=$((k+1)); done; B="${{B#,}}"')
    elif role == "worker" and n["aggregator"]:
        a, extra = n["aggregator"], min(1 + EXTRA_AGGREGATORS, n["aggregator"])
        pick = (f'i=${{HOSTNAME##*-}}; B="{",".join(boots)}"; k=0; while [ "$k" -lt {extra} ]; do '
                f'B="$B,covey-aggregator-$(( (i % {a} + k) % {a} )).{SERVICE}:{PORT}"; k=$((k+1)); done')
    else:
        targets = [*boots, *([_pod("aggregator", i) for i in range(n["aggregator"])] if role == "client" else [])]
        pick = f'B="{",".join(targets)}"'
    return (f'{pick}; export COVEY_BOOTSTRAP="$B" COVEY_NAME="$HOSTNAME"; '
            f'exec covey --headless --listen 0.0.0.0:{PORT}')


def _statefulset(role: str, replicas: int, n: dict[str, int], image: str, nodes: int) -> dict:
    labels = {LABEL: "covey", "covey/role": role}
    probe = {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 10, "timeoutSeconds": 4}
    container = {
        "name": "covey", "image": image,
        "command": ["sh", "-c", _entry_script(role, n)],
        "ports": [{"name": "covey", "containerPort": PORT, "protocol": "TCP"}],
        "env": [{"name": "COVEY_HOME", "value": "/data"}, {"name": "COVEY_DISCOVERY", "value": "0"},
                {"name": "COVEY_ROLE", "value": role},
                {"name": "COVEY_MAX_UNKNOWN_CONNECTIONS", "value": str(max(32, 2 * nodes))}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "readinessProbe": {**probe, "initialDelaySeconds": 5},
        "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 6},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    }
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": f"covey-{role}", "labels": labels},
        "spec": {
            "serviceName": SERVICE, "replicas": replicas,
            "podManagementPolicy": "OrderedReady",   # bootstrap-k starts after 0..k-1 are ready
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"securityContext": {"runAsUser": 10001, "fsGroup": 10001},
                                  "terminationGracePeriodSeconds": 10, "containers": [container]}},
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    }


def k8s_documents(nodes: int, image: str = "covey:latest") -> list[dict]:
    """StatefulSet and PodDisruptionBudget per role, a headless Service, a NetworkPolicy."""
    n = counts(nodes)
    docs: list[dict] = [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "labels": {LABEL: "covey"}},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {LABEL: "covey"},
                 "ports": [{"name": "covey", "port": PORT, "targetPort": PORT, "protocol": "TCP"}]},
    }]
    for role in cluster_plan.ROLES:
        if not n[role]:
            continue
        docs.append(_statefulset(role, n[role], n, image, nodes))
        docs.append({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": f"covey-{role}"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {LABEL: "covey", "covey/role": role}}},
        })
    docs.append({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "covey-peers-only"},
        "spec": {"podSelector": {"matchLabels": {LABEL: "covey"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {LABEL: "covey"}}}],
                              "ports": [{"protocol": "TCP", "port": PORT}]}]},
    })
    return docs


def render(kind: str, nodes: int, image: str = "covey:latest") -> str:
    """The file text: compose (one JSON document) or k8s (a ``---`` stream)."""
    if kind == "compose":
        n = counts(nodes)
        head = (f"# Covey seed topology, {nodes} nodes ({', '.join(f'{v} {k}' for k, v in n.items())}).\n"
                "# Written by `covey cluster compose`; JSON is YAML. Build the image with\n"
                "#   docker build -f packaging/Dockerfile -t covey .\n")
        return head + json.dumps(compose_spec(nodes, image), indent=2) + "\n"
    if kind == "k8s":
        return "".join("---\n" + json.dumps(doc, indent=2) + "\n" for doc in k8s_documents(nodes, image))
    raise BadRequest(f"unknown manifest kind {kind!r}")
