"""The service's per-peer outbox: announcements fit the know.ihave bounds and nothing is lost or unbounded."""
from __future__ import annotations

from core.identity import Identity
from core.knowledge import protocol as proto
from core.knowledge.service import MAX_ANNOUNCE, MAX_QUEUED_PUSHES, _Link


def test_announcements_split_into_bodies_the_receiver_accepts_and_cover_everything():
    link = _Link("peer")
    authors = [Identity.generate(f"a{i}").id for i in range(proto.MAX_RANGE_AUTHORS + 10)]
    wanted = {a: {1, 2, 3} for a in authors}
    wanted[authors[0]] = set(range(1, 2 * proto.MAX_RANGES * 2 + 1, 2))   # 2 x MAX_RANGES separate runs
    for author, seqs in wanted.items():
        for seq in seqs:
            assert link.queue_announce(author, seq)
    bodies = link.take_announcements()
    got: dict[str, set[int]] = {}
    for ranges in bodies:
        parsed = proto.parse_ranges(proto.ranges_body(ranges), "know.ihave")   # within every bound
        for author, pairs in parsed.items():
            for lo, hi in pairs:
                got.setdefault(author, set()).update(range(lo, hi + 1))
    assert got == wanted
    assert link.take_announcements() == [] and link.announced == 0


def test_the_outbox_is_bounded_and_counts_what_it_drops():
    link = _Link("peer")
    author = Identity.generate("a").id
    assert all(link.queue_announce(author, seq) for seq in range(1, MAX_ANNOUNCE + 1))
    assert not link.queue_announce(author, MAX_ANNOUNCE + 1)
    assert all(link.queue_push(f"{n:064x}") for n in range(MAX_QUEUED_PUSHES))
    assert not link.queue_push("f" * 64)
    assert link.dropped == 2 and len(link.pushes) == MAX_QUEUED_PUSHES
