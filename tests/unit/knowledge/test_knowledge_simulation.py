"""In-memory federations of engines on real SQLite files: catch-up and live spread.

Messages are carried by the test (no network) in a random interleaving, so
the in-flight table has to keep concurrent pulls from asking twice.
"""
from __future__ import annotations

import random
from collections import Counter

import pytest
from knowhelp import NOW, FakeClock, make

from core.identity import Identity
from core.knowledge import protocol as proto
from core.knowledge.db import KnowledgeDB
from core.knowledge.engine import KnowledgeEngine
from core.peers import Tier
from core.store import Store

CORE = Tier.CORE


class SimNode:
    def __init__(self, path, identity):
        self.identity = identity
        self.id = identity.id
        self.store = Store(path)
        self.engine = KnowledgeEngine(KnowledgeDB(self.store), self.id, clock=lambda: NOW,
                                      monotonic=FakeClock(), pull_batch=7)
        self.deliveries: Counter[str] = Counter()  # packet id -> times its bytes reached us

    def close(self):
        self.store.close()


@pytest.fixture
def make_nodes(tmp_path):
    made = []

    def factory(n):
        nodes = [SimNode(tmp_path / f"n{i}.db", Identity.generate(f"n{i}")) for i in range(n)]
        made.extend(nodes)
        return nodes
    yield factory
    for node in made:
        node.close()


def seed_random_holdings(rng, nodes, authors, lengths):
    """Each node starts with a random part of each author's log: a prefix, a gappy subset or nothing."""
    logs = {a.id: [make(a, s, now=NOW - 1000 + s) for s in range(1, n + 1)] for a, n in zip(authors, lengths)}
    union: dict[str, set[int]] = {a: set() for a in logs}
    for node in nodes:
        for author, log in logs.items():
            mode = rng.choice(["prefix", "gappy", "none"])
            if mode == "prefix":
                held = log[:rng.randint(0, len(log))]
            elif mode == "gappy":
                held = [p for p in log if rng.random() < 0.5]
            else:
                held = []
            for p in held:
                node.engine.db.insert(p, hops=1, received_from="f" * 64, tier="core", relay=True, now=NOW)
                union[author].add(p.seq)
    return logs, union


def contiguous(seqs: set[int]) -> int:
    head = 0
    while head + 1 in seqs:
        head += 1
    return head


def exchange_round(rng, nodes):
    """Every node exchanges have-vectors with every other and pulls, all pulls interleaved at random."""
    pulls = []
    for x in nodes:
        for y in nodes:
            if x is not y:
                reply = y.engine.answer_have(x.id, CORE, False, x.engine.have())
                pull = x.engine.start_pull(y.id, CORE, False, reply)
                pulls.append([x, y, pull, None])  # last: the want in flight
    moved = 0
    while pulls:
        entry = rng.choice(pulls)
        x, y, pull, asked = entry
        if asked is None:  # ask the next batch
            batch = pull.next_batch()
            if not batch:
                pulls.remove(entry)
                continue
            entry[3] = batch
        else:  # the answer arrives
            reply = y.engine.answer_want(x.id, CORE, False, proto.ranges_body(asked))
            for item in reply["packets"]:
                x.deliveries[item["id"]] += 1
            verdicts, _ = x.engine.admit_reply(y.id, CORE, False, reply, pull)
            assert all(v.status == "accepted" for v in verdicts), [v.message for v in verdicts]
            moved += len(verdicts)
            entry[3] = None
    return moved


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_five_node_catch_up_converges_without_double_delivery(make_nodes, seed):
    rng = random.Random(seed)
    nodes = make_nodes(5)
    outsiders = [Identity.generate(f"o{i}") for i in range(2)]
    authors = [n.identity for n in nodes] + outsiders
    _, union = seed_random_holdings(rng, nodes, authors, [rng.randint(5, 25) for _ in authors])
    for _ in range(10):  # a gap filled in one round can extend heads in the next: bounded repeats
        if exchange_round(rng, nodes) == 0:
            break
    else:
        pytest.fail("catch-up did not settle in 10 rounds")
    expected = {a: contiguous(s) for a, s in union.items() if contiguous(s)}
    for node in nodes:
        assert node.engine.db.have_vector() == expected
        for author, head in expected.items():
            assert node.engine.db.held(author, 1, head) == list(range(1, head + 1))
        assert max(node.deliveries.values(), default=0) <= 1, "a packet reached a node twice"
        assert node.engine.counters.view()["total"]["duplicates"] == 0
    # Packets beyond a gap nobody can fill stay where they were (kept, not counted contiguous).
    for author, seqs in union.items():
        beyond = {s for s in seqs if s > contiguous(seqs)}
        for node in nodes:
            held_beyond = set(node.engine.db.held(author, contiguous(seqs) + 1, proto.MAX_SEQ))
            assert held_beyond <= beyond


def test_a_node_that_was_away_gets_everything_it_missed_once(make_nodes):
    rng = random.Random(7)
    nodes = make_nodes(4)
    away = nodes[3]
    for i, node in enumerate(nodes[:3]):
        for _ in range(20):
            node.engine.publish(node.identity, text=f"from {i}")
    for _ in range(3):
        exchange_round(rng, nodes[:3])
    exchange_round(rng, nodes)
    everyone = {n.id: 20 for n in nodes[:3]}
    assert away.engine.db.have_vector() == everyone
    assert away.engine.db.count == 60 and max(away.deliveries.values()) == 1


NEIGHBOURS = {
    "mesh": lambda i, j, n: i != j,
    "ring": lambda i, j, n: (i - j) % n in (1, n - 1),
    "line": lambda i, j, n: abs(i - j) == 1,
}


@pytest.mark.parametrize("topology", sorted(NEIGHBOURS))
def test_live_spread_in_a_ten_node_core_federation_delivers_each_packet_at_most_twice(make_nodes, topology):
    """Eager push by the author, lazy announcements by relays, pulls through the in-flight table.

    The line has MAX_HOPS + 1 nodes: its far end is exactly as far as a packet may travel.
    """
    rng = random.Random(11)
    nodes = make_nodes(10 if topology != "line" else proto.MAX_HOPS + 1)
    index = {n.id: i for i, n in enumerate(nodes)}
    by_id = {n.id: n for n in nodes}
    queue: list[tuple] = []

    def peers_of(node):
        i = index[node.id]
        return [(n.id, CORE, False) for j, n in enumerate(nodes) if NEIGHBOURS[topology](i, j, len(nodes))]

    def forward(node, verdict_or_plan, packet):
        for target in verdict_or_plan.eager:
            queue.append(("push", node.id, target, proto.push_body(packet, 1)))
        if verdict_or_plan.lazy:
            announce = proto.ranges_body({packet.author: [(packet.seq, packet.seq)]})
            for target in verdict_or_plan.lazy:
                queue.append(("ihave", node.id, target, announce))

    published = []
    for _ in range(40):
        node = rng.choice(nodes)
        packet, plan = node.engine.publish(node.identity, peers=peers_of(node), text="live")
        published.append(packet.id)
        forward(node, plan, packet)
    steps = 0
    while queue:
        steps += 1
        assert steps < 100_000
        kind, src, dst, body = queue.pop(rng.randrange(len(queue)))
        x, y = by_id[dst], by_id[src]
        if kind == "push":
            x.deliveries[body["id"]] += 1
            verdict = x.engine.admit(src, CORE, False, body, peers=peers_of(x))
            if verdict.status == "accepted":
                forward(x, verdict.forward, verdict.packet)
        elif kind == "ihave":
            pull = x.engine.on_ihave(src, CORE, False, body)
            batch = pull.next_batch() if pull else {}
            if batch:
                queue.append(("want", dst, src, (pull, batch)))
        else:  # want: y answers x ... here x is the server, y the asker
            pull, batch = body
            reply = x.engine.answer_want(src, CORE, False, proto.ranges_body(batch))
            for item in reply["packets"]:
                y.deliveries[item["id"]] += 1
            verdicts, _ = y.engine.admit_reply(dst, CORE, False, reply, pull, peers=peers_of(y))
            for verdict in verdicts:
                if verdict.status == "accepted":
                    forward(y, verdict.forward, verdict.packet)
    for node in nodes:
        assert node.engine.db.count == len(published)
        assert max(node.deliveries.values(), default=0) <= 2
    per_node = sum(sum(n.deliveries.values()) for n in nodes) / (len(nodes) * len(published))
    assert per_node <= 2
