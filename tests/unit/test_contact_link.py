"""Contact links (covey://HOST:PORT#ID): built from a node's address and id, parsed strictly."""
from __future__ import annotations

import pytest

from core.contact_link import (MAX_LINK, ContactLink, best_addresses, contact_link, looks_like_link,
                               parse_contact_link)
from core.errors import BadRequest
from core.identity import Identity

ID = Identity.generate("x").id
ONION = "a" * 50 + "234567"


@pytest.mark.parametrize("address", ["192.168.1.20:8102", "127.0.0.1:1", "[::1]:8102", "[fe80::1]:65535",
                                     "node.example.org:8102", "localhost:9000", f"{ONION}.onion:8102"])
def test_a_built_link_parses_back_to_the_same_peer(address):
    link = contact_link(address, ID)
    assert link == f"covey://{address}#{ID}"
    assert parse_contact_link(link) == ContactLink(address, ID)
    assert looks_like_link(link)


def test_parsing_tolerates_surrounding_space_and_upper_case_but_stores_lower_case():
    parsed = parse_contact_link(f"  COVEY://Node.Example.ORG:8102#{ID.upper()}\n")
    assert parsed == ContactLink("node.example.org:8102", ID)
    assert str(parsed) == f"covey://node.example.org:8102#{ID}"


def test_ipv6_is_written_in_its_short_form():
    assert parse_contact_link(f"covey://[0:0:0:0:0:0:0:1]:8102#{ID}").address == "[::1]:8102"


@pytest.mark.parametrize("text, words", [
    ("", "must start with covey://"),
    (f"http://1.2.3.4:8102#{ID}", "must start with covey://"),
    (f"1.2.3.4:8102#{ID}", "must start with covey://"),
    ("covey://1.2.3.4:8102", "id is missing"),
    ("covey://1.2.3.4:8102#", "64 hex digits"),
    (f"covey://1.2.3.4:8102#{ID[:-1]}", "64 hex digits"),
    (f"covey://1.2.3.4:8102#{ID}00", "64 hex digits"),
    (f"covey://1.2.3.4:8102#{ID[:-1]}g", "64 hex digits"),
    (f"covey://1.2.3.4:8102#{ID}#{ID}", "64 hex digits"),
    (f"covey://#{ID}", "no address"),
    (f"covey://1.2.3.4#{ID}", "must be HOST:PORT"),
    (f"covey://:8102#{ID}", "must be HOST:PORT"),
    (f"covey://1.2.3.4:0#{ID}", "from 1 to 65535"),
    (f"covey://1.2.3.4:65536#{ID}", "from 1 to 65535"),
    (f"covey://1.2.3.4:-1#{ID}", "from 1 to 65535"),
    (f"covey://1.2.3.4:80a#{ID}", "from 1 to 65535"),
    (f"covey://1.2.3.4:8102/#{ID}", "just HOST:PORT"),
    (f"covey://user@1.2.3.4:8102#{ID}", "just HOST:PORT"),
    (f"covey://1.2.3.4:8102?x=1#{ID}", "just HOST:PORT"),
    (f"covey://1.2 .3.4:8102#{ID}", "just HOST:PORT"),
    (f"covey://1.2.3.256:8102#{ID}", "not an IPv4 address"),
    (f"covey://1.2.3:8102#{ID}", "not an IPv4 address"),
    (f"covey://0.0.0.0:8102#{ID}", "not an address a peer can connect to"),
    (f"covey://224.0.0.1:8102#{ID}", "not an address a peer can connect to"),
    (f"covey://::1:8102#{ID}", "in brackets"),
    (f"covey://[::1:8102#{ID}", "[IPv6]:PORT"),
    (f"covey://[::1]8102#{ID}", "[IPv6]:PORT"),
    (f"covey://[zz::1]:8102#{ID}", "not an IPv6 address"),
    (f"covey://[::]:8102#{ID}", "not an address a peer can connect to"),
    (f"covey://short.onion:8102#{ID}", "not an onion address"),
    (f"covey://{'a' * 56}1.onion:8102#{ID}", "not an onion address"),
    (f"covey://-bad.example:8102#{ID}", "not a host name"),
    (f"covey://bad..example:8102#{ID}", "not a host name"),
    (f"covey://{'a' * 64}.example:8102#{ID}", "not a host name"),
    (f"covey://b_ad.example:8102#{ID}", "not a host name"),
    (f"covey://{'a.' * 130}x:8102#{ID}", "longer than"),
])
def test_anything_else_is_refused_saying_what_is_wrong(text, words):
    with pytest.raises(BadRequest) as caught:
        parse_contact_link(text)
    assert words in str(caught.value)


def test_non_text_and_oversized_input_are_refused_without_work():
    with pytest.raises(BadRequest, match="is text"):
        parse_contact_link(b"covey://1.2.3.4:1#" + ID.encode())   # type: ignore[arg-type]
    with pytest.raises(BadRequest, match=f"longer than {MAX_LINK}"):
        parse_contact_link("covey://" + "a" * 10_000_000)


def test_building_checks_the_address_and_the_id_the_same_way():
    with pytest.raises(BadRequest, match="from 1 to 65535"):
        contact_link("127.0.0.1:0", ID)
    with pytest.raises(BadRequest, match="64 hex digits"):
        contact_link("127.0.0.1:8102", "abc")
    assert not looks_like_link("192.168.1.20:8102")
    assert not looks_like_link(None)   # type: ignore[arg-type]


def test_the_best_addresses_for_a_link_come_first_and_undialable_ones_are_left_out():
    listen = ["127.0.0.1:8102", "192.168.1.20:8102", "0.0.0.0:8102", "10.0.0.5:0", "[::1]:8102"]
    assert best_addresses(listen) == ["192.168.1.20:8102", "127.0.0.1:8102", "[::1]:8102"]
    onion = f"{ONION}.onion:8102"
    assert best_addresses(listen, onion)[0] == onion
    assert best_addresses(["127.0.0.1:0"]) == []
