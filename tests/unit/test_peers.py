"""Peer book: the policy table, resolving references, tiers, bans and reputation."""
from __future__ import annotations

import pytest

from core import events as ev
from core.errors import AmbiguousPeer, BadRequest, PeerBanned, RefusedByPolicy, UnknownPeer
from core.events import EventBus
from core.identity import Identity
from core.peers import Capability, PeerBook, Tier, allows
from core.store import Store

# docs/design.md section 2, transcribed cell by cell (yes = 1). Columns: CORE, SANDBOX,
# EXTERNAL, UNKNOWN, BANNED.
TABLE = {
    Capability.CONNECT:             (1, 1, 1, 1, 0),
    Capability.CHAT:                (1, 1, 1, 0, 0),
    Capability.CONTACT_REQUEST:     (1, 1, 1, 1, 0),
    Capability.KNOWLEDGE_ACCEPT:    (1, 1, 0, 0, 0),
    Capability.KNOWLEDGE_PROPAGATE: (1, 0, 0, 0, 0),
    Capability.QUERY:               (1, 1, 1, 0, 0),
    Capability.LEARN_CONTRIBUTE:    (1, 1, 0, 0, 0),
    Capability.DELEGATE_TASKS:      (1, 0, 0, 0, 0),
    Capability.RELAY:               (1, 0, 0, 0, 0),
}
COLUMNS = (Tier.CORE, Tier.SANDBOX, Tier.EXTERNAL, Tier.UNKNOWN, "banned")
CELLS = [(cap, col, bool(row[i])) for cap, row in TABLE.items() for i, col in enumerate(COLUMNS)]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "covey.db")
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorded() -> tuple[EventBus, list]:
    bus = EventBus()
    seen: list = []
    bus.on(None, seen.append)
    return bus, seen


@pytest.fixture
def book(store, recorded, clock) -> PeerBook:
    return PeerBook(store, recorded[0], clock=clock)


def names(events) -> list[str]:
    return [e.name for e in events]


def new_id() -> str:
    return Identity.generate("x").id


# -- the policy table ------------------------------------------------------------------
def test_table_covers_every_capability():
    assert set(TABLE) == set(Capability)


@pytest.mark.parametrize("capability, column, expected", CELLS,
                         ids=[f"{c.value}-{getattr(col, 'value', col)}" for c, col, _ in CELLS])
def test_policy_table_cell(capability, column, expected):
    if column == "banned":
        assert all(not allows(tier, True, capability) for tier in Tier)
    else:
        assert allows(column, False, capability) is expected


@pytest.mark.parametrize("capability, column, expected",
                         [c for c in CELLS if c[1] != "banned"],
                         ids=[f"{c.value}-{col.value}" for c, col, _ in CELLS if col != "banned"])
def test_check_enforces_the_same_cell_for_a_real_peer(book, capability, column, expected):
    pid = new_id()
    book.add_or_update(pid, name="p")
    book.set_tier(pid, column)
    if expected:
        book.check(pid, capability)
    else:
        with pytest.raises(RefusedByPolicy):
            book.check(pid, capability)


def test_refusal_names_the_tier_and_the_command_that_would_allow_it(book):
    pid = new_id()
    book.add_or_update(pid, name="carol")
    book.set_tier(pid, "sandbox")
    with pytest.raises(RefusedByPolicy) as info:
        book.check(pid, Capability.DELEGATE_TASKS)
    message = str(info.value)
    assert "tier sandbox" in message and "delegate tasks" in message
    assert f"covey peers trust {pid[:16]} core" in message


def test_banned_peer_is_refused_everything_even_at_core(book):
    pid = new_id()
    book.add_or_update(pid)
    book.set_tier(pid, Tier.CORE)
    book.ban(pid)
    for capability in Capability:
        with pytest.raises(PeerBanned, match="unban"):
            book.check(pid, capability)


def test_peer_not_in_the_book_may_only_connect_and_ask_for_contact(book):
    stranger = new_id()
    book.check(stranger, Capability.CONNECT)
    book.check(stranger, Capability.CONTACT_REQUEST)
    with pytest.raises(UnknownPeer):
        book.check(stranger, Capability.CHAT)
    assert book.tier_of(stranger) is Tier.UNKNOWN


# -- adding, tiers ------------------------------------------------------------------------
def test_new_peer_enters_as_unknown_with_start_reputation(book, recorded, clock):
    pid = new_id()
    rec = book.add_or_update(pid, name="dave", address="10.0.0.2:8102", source="lan")
    assert (rec.tier, rec.reputation, rec.banned, rec.source, rec.added_at) == \
        ("unknown", 0.5, False, "lan", clock.now)
    assert names(recorded[1]) == [ev.PEER_ADDED]
    assert recorded[1][0].data["peer"] == pid


def test_update_keeps_tier_and_source_and_emits_nothing_new(book, recorded):
    pid = new_id()
    book.add_or_update(pid, source="manual")
    book.set_tier(pid, "core")
    recorded[1].clear()
    rec = book.add_or_update(pid, address="10.0.0.9:1", source="lan", pinned=True, mode="none")
    assert (rec.tier, rec.source, rec.address, rec.pinned, rec.mode) == \
        ("core", "manual", "10.0.0.9:1", True, "none")
    assert recorded[1] == []


def test_names_from_the_network_are_cleaned_and_bounded(book):
    rec = book.add_or_update(new_id(), name="  eve\x1b[31m\n" + "x" * 100)
    assert rec.name.startswith("eve[31m") and len(rec.name) == 64 and "\n" not in rec.name


def test_add_refuses_a_malformed_id(book):
    with pytest.raises(BadRequest, match="64 lowercase hex"):
        book.add_or_update("ABCD")


def test_set_tier_emits_the_change_with_the_previous_tier(book, recorded):
    pid = new_id()
    book.add_or_update(pid)
    rec = book.set_tier(pid, "Sandbox")
    assert rec.tier == "sandbox" and book.tier_of(pid) is Tier.SANDBOX
    changed = [e for e in recorded[1] if e.name == ev.TIER_CHANGED]
    assert [e.data for e in changed] == [{"peer": pid, "tier": "sandbox", "previous": "unknown"}]


def test_invalid_tier_lists_the_valid_ones(book):
    pid = new_id()
    book.add_or_update(pid)
    with pytest.raises(BadRequest, match="core, sandbox, external, unknown"):
        book.set_tier(pid, "friend")


def test_set_tier_of_an_absent_peer_is_unknown_peer(book):
    with pytest.raises(UnknownPeer):
        book.set_tier(new_id(), "core")


# -- resolving references -----------------------------------------------------------------
def test_resolve_by_full_id_prefix_and_name(book):
    pid = new_id()
    book.add_or_update(pid, name="frank")
    assert book.resolve(pid).id == pid
    assert book.resolve(pid.upper()).id == pid
    assert book.resolve(pid[:6]).id == pid
    assert book.resolve("frank").id == pid


def test_resolve_ambiguous_prefix_lists_the_candidates(book):
    a, b = "abcd" + "0" * 60, "abcd" + "1" * 60
    book.add_or_update(a, name="one")
    book.add_or_update(b, name="two")
    with pytest.raises(AmbiguousPeer) as info:
        book.resolve("abcd")
    assert "one" in str(info.value) and "two" in str(info.value)
    assert info.value.details["candidates"] == sorted([a, b])
    assert book.resolve("abcd1").id == b


def test_resolve_ambiguous_name(book):
    book.add_or_update(new_id(), name="twin")
    book.add_or_update(new_id(), name="twin")
    with pytest.raises(AmbiguousPeer):
        book.resolve("twin")


def test_resolve_refuses_too_short_prefixes_and_unknown_refs(book):
    pid = "abcd" + "0" * 60
    book.add_or_update(pid)
    with pytest.raises(UnknownPeer, match="at least 4"):
        book.resolve("abc")
    with pytest.raises(UnknownPeer):
        book.resolve("nobody")
    with pytest.raises(UnknownPeer):
        book.resolve("")


# -- reputation, bans ---------------------------------------------------------------------
def test_accepted_contributions_raise_reputation_by_a_hundredth_up_to_one(book):
    pid = new_id()
    book.add_or_update(pid)
    values = [book.record_outcome(pid, True) for _ in range(10)]
    assert values[0] == 0.51 and values[-1] == 0.6
    for _ in range(60):
        book.record_outcome(pid, True)
    assert book.get(pid).reputation == 1.0


def test_a_rounds_outcomes_are_written_in_one_transaction_and_skip_an_unknown_peer(book, store, recorded):
    peers = [new_id() for _ in range(3)]
    for pid in peers:
        book.add_or_update(pid)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    recorded[1].clear()
    book.record_outcomes([*peers, new_id()], True, "ml update accepted")
    store.conn.set_trace_callback(None)
    assert [book.get(pid).reputation for pid in peers] == [0.51] * 3
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert sum("INSERT INTO peers" in sql for sql in statements) == 3 and statements.count("COMMIT") == 1
    assert names(recorded[1]) == [ev.REPUTATION_CHANGED] * 3


def test_an_outcome_at_the_bound_writes_nothing_and_emits_nothing(book, store, recorded):
    """A peer at 1.0 that delivers again (every verified task proof) or at 0.0 and banned that
    fails again: nothing changes, so no row is written and no event claims a change."""
    good, bad = new_id(), new_id()
    book.add_or_update(good)
    book.add_or_update(bad)
    for _ in range(60):
        book.record_outcome(good, True)
    for _ in range(6):
        book.record_outcome(bad, False)
    assert book.get(good).reputation == 1.0 and book.get(bad).reputation == 0.0 and book.get(bad).banned
    writes = []
    store.conn.set_trace_callback(lambda sql: writes.append(sql) if "peers" in sql else None)
    recorded[1].clear()
    assert book.record_outcome(good, True, "verified proof") == 1.0
    assert book.record_outcome(bad, False, "replay") == 0.0
    store.conn.set_trace_callback(None)
    assert writes == [] and recorded[1] == []
    assert store.get_peer(good).reputation == 1.0 and store.get_peer(bad).banned


def test_rejections_lower_reputation_and_ban_at_the_threshold(book, recorded):
    pid = new_id()
    book.add_or_update(pid)
    assert book.record_outcome(pid, False, "bad signature") == 0.4
    assert book.record_outcome(pid, False, "replay") == 0.3
    assert not book.get(pid).banned
    assert book.record_outcome(pid, False, "outlier") == 0.2  # exactly at the threshold
    assert book.get(pid).banned
    bans = [e for e in recorded[1] if e.name == ev.PEER_BANNED]
    assert len(bans) == 1 and bans[0].data["peer"] == pid and "outlier" in bans[0].data["reason"]
    changes = [e.data["reputation"] for e in recorded[1] if e.name == ev.REPUTATION_CHANGED]
    assert changes == [0.4, 0.3, 0.2]


def test_reputation_never_goes_below_zero(book):
    pid = new_id()
    book.add_or_update(pid)
    for _ in range(8):
        book.record_outcome(pid, False)
    assert book.get(pid).reputation == 0.0


def test_unban_lifts_the_ban_above_the_threshold(book, recorded):
    pid = new_id()
    book.add_or_update(pid)
    for _ in range(3):
        book.record_outcome(pid, False)
    rec = book.unban(pid)
    assert not rec.banned and rec.reputation == pytest.approx(0.3)
    book.check(pid, Capability.CONNECT)
    assert ev.PEER_UNBANNED in names(recorded[1])
    assert book.record_outcome(pid, True) == pytest.approx(0.31)
    assert not book.get(pid).banned


def test_manual_ban_and_unban_keep_a_good_reputation(book, recorded):
    pid = new_id()
    book.add_or_update(pid)
    book.ban(pid, "spam")
    assert book.get(pid).banned
    assert [e.data["reason"] for e in recorded[1] if e.name == ev.PEER_BANNED] == ["spam"]
    assert book.unban(pid).reputation == 0.5


def test_reputation_and_ban_persist_across_reopen(tmp_path, recorded):
    path = tmp_path / "covey.db"
    pid = new_id()
    with Store(path) as store:
        book = PeerBook(store, recorded[0])
        book.add_or_update(pid, name="gina")
        book.set_tier(pid, "external")
        for _ in range(3):
            book.record_outcome(pid, False)
    with Store(path) as store:
        rec = PeerBook(store, EventBus()).get(pid)
        assert (rec.name, rec.tier, rec.reputation, rec.banned) == ("gina", "external", 0.2, True)


def test_remove_forgets_the_peer(book, recorded):
    pid = new_id()
    book.add_or_update(pid)
    book.remove(pid)
    assert book.get(pid) is None and book.list() == []
    assert names(recorded[1])[-1] == ev.PEER_REMOVED
    with pytest.raises(UnknownPeer):
        book.remove(pid)


# -- last seen -------------------------------------------------------------------------------
def test_seen_writes_at_most_once_per_interval_unless_the_mode_changes(book, clock):
    pid = new_id()
    book.add_or_update(pid)
    book.seen(pid)
    first = clock.now
    clock.now += 3
    book.seen(pid)
    assert book.get(pid).last_seen == first  # throttled
    clock.now += 1
    book.seen(pid, mode="symmetric")
    assert (book.get(pid).last_seen, book.get(pid).mode) == (clock.now, "symmetric")
    clock.now += 10
    book.seen(pid)
    assert book.get(pid).last_seen == clock.now
