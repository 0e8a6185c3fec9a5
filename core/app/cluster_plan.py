"""Who is who in a cluster, and who dials whom: the roles and links of a topology.

Pure data, shared by `covey cluster up` (local processes), `cluster compose` and
`cluster k8s` (manifests), so every form of a topology has the same shape.

- ``star``: node-0 is the seed; every other node dials it.
- ``mesh``: every node dials every other.
- ``seed``: the planned deployment. At N=50: 3 bootstrap, 5 aggregators,
  40 workers, 2 clients. For other N (see :func:`role_counts`): bootstrap 3 from
  N>=20 (2 from N>=6, else 1), aggregators N//10 (at least 1), clients 2 from N>=20
  (1 from N>=4, else 0), the rest workers. Links: the bootstraps form a mesh and
  every other node dials each of them; workers are dealt round-robin into one
  group per aggregator, dial their aggregator, the next group's aggregator (to
  move to if theirs dies) and the next worker of their group (a ring); aggregators form a mesh; clients dial every aggregator and each other.
  Then every node short of ``MIN_OTHER_PEERS`` peers besides the bootstraps dials
  its nearest non-bootstrap neighbours until it has them (or the cluster has no more).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import BadRequest

TOPOLOGIES = ("star", "mesh", "seed")
ROLES = ("bootstrap", "aggregator", "worker", "client")
MIN_OTHER_PEERS = 3   # peers a seed-topology node has besides the bootstraps
MAX_NODES = 64        # one machine's worth of node processes


@dataclass
class PlannedNode:
    name: str
    role: str
    group: int | None = None        # a worker's or aggregator's group (= its aggregator's index)
    dials: list[str] = field(default_factory=list)   # names this node dials


def role_counts(nodes: int) -> dict[str, int]:
    """How many nodes of each role the seed topology has at ``nodes`` (50 -> 3/5/40/2)."""
    bootstrap = 3 if nodes >= 20 else 2 if nodes >= 6 else 1
    clients = 2 if nodes >= 20 else 1 if nodes >= 4 else 0
    aggregators = min(max(1, nodes // 10), nodes - bootstrap)
    workers = nodes - bootstrap - aggregators - clients
    return {"bootstrap": bootstrap, "aggregator": aggregators, "worker": max(workers, 0), "client": clients}


def check(nodes: int, topology: str) -> None:
    if topology not in TOPOLOGIES:
        raise BadRequest(f"--topology must be one of {', '.join(TOPOLOGIES)}; got {topology!r}")
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise BadRequest(f"--nodes must be between 1 and {MAX_NODES} (one machine); got {nodes!r}")


def plan(nodes: int, topology: str = "seed") -> list[PlannedNode]:
    """The nodes ``node-0`` .. ``node-(N-1)`` with their roles and the names each dials."""
    check(nodes, topology)
    if topology == "star":
        out = [PlannedNode("node-0", "seed")] + [PlannedNode(f"node-{i}", "peer", dials=["node-0"])
                                                  for i in range(1, nodes)]
        return out
    if topology == "mesh":
        return [PlannedNode(f"node-{i}", "peer", dials=[f"node-{j}" for j in range(i)]) for i in range(nodes)]
    return _seed(nodes)


def _seed(nodes: int) -> list[PlannedNode]:
    counts = role_counts(nodes)
    out: list[PlannedNode] = []
    for role in ROLES:
        for _ in range(counts[role]):
            out.append(PlannedNode(f"node-{len(out)}", role))
    by_role = {role: [n for n in out if n.role == role] for role in ROLES}
    boots, aggs = by_role["bootstrap"], by_role["aggregator"]
    links: set[frozenset[str]] = set()

    def link(dialer: PlannedNode, target: PlannedNode) -> None:
        key = frozenset((dialer.name, target.name))
        if dialer is not target and key not in links:
            links.add(key)
            dialer.dials.append(target.name)

    for i, node in enumerate(out):
        for boot in boots[:i] if node.role == "bootstrap" else boots:
            link(node, boot)
    for i, agg in enumerate(aggs):
        agg.group = i
        for other in aggs[:i]:
            link(agg, other)
    groups: list[list[PlannedNode]] = [[] for _ in aggs]
    for i, worker in enumerate(by_role["worker"]):
        worker.group = i % len(aggs)
        groups[worker.group].append(worker)
    for g, (agg, group) in enumerate(zip(aggs, groups, strict=True)):
        for i, worker in enumerate(group):
            link(worker, agg)
            link(worker, aggs[(g + 1) % len(aggs)])   # a second aggregator, should its own die
            if len(group) > 1:
                link(worker, group[(i + 1) % len(group)])
    for i, client in enumerate(by_role["client"]):
        for agg in aggs:
            link(client, agg)
        for other in by_role["client"][:i]:
            link(client, other)
    _fill(out, links, {b.name for b in boots}, link)
    return out


def _fill(out: list[PlannedNode], links: set[frozenset[str]], boots: set[str], link) -> None:
    others = [n for n in out if n.name not in boots]
    want = min(MIN_OTHER_PEERS, len(others) - 1)
    for i, node in enumerate(others):
        step = 1
        while _other_peers(node.name, links, boots) < want and step < len(others):
            candidate = others[(i + step) % len(others)]
            link(node, candidate)
            step += 1


def _other_peers(name: str, links: set[frozenset[str]], boots: set[str]) -> int:
    return sum(1 for pair in links if name in pair and not (pair - {name}) <= boots)


def neighbours(planned: list[PlannedNode]) -> dict[str, set[str]]:
    """Every node's expected peers (both directions of each link)."""
    out: dict[str, set[str]] = {n.name: set() for n in planned}
    for node in planned:
        for target in node.dials:
            out[node.name].add(target)
            out[target].add(node.name)
    return out
