"""Sticky routing by pseudonym: each fan keeps one model server, fans spread evenly, and
removing a server moves only its own fans."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.engine.ring import HashRing

SERVERS = ["http://a:5005", "http://b:5005", "http://c:5005"]
FANS = [f"fan-{i:05d}" for i in range(9000)]


def test_a_fan_always_gets_the_same_server_and_every_server_once_in_its_order() -> None:
    ring = HashRing(SERVERS)
    for fan in FANS[:200]:
        order = ring.order(fan)
        assert sorted(order) == sorted(SERVERS)
        assert HashRing(list(reversed(SERVERS))).order(fan) == order  # configuration order does not matter


def test_fans_spread_within_fifteen_per_cent_of_even() -> None:
    ring = HashRing(SERVERS)
    counts = Counter(ring.owner(fan) for fan in FANS)
    assert set(counts) == set(SERVERS)
    assert all(abs(count - len(FANS) / 3) < 0.15 * len(FANS) / 3 for count in counts.values())


def test_removing_a_server_moves_only_its_fans_and_they_go_to_their_failover_server() -> None:
    full, reduced = HashRing(SERVERS), HashRing(SERVERS[:2])
    for fan in FANS[:3000]:
        before = full.order(fan)
        if before[0] != SERVERS[2]:
            assert reduced.owner(fan) == before[0]
        else:
            assert reduced.owner(fan) == before[1]  # the failover order is the ring without it


def test_a_ring_needs_distinct_servers() -> None:
    with pytest.raises(ValueError):
        HashRing([])
    with pytest.raises(ValueError):
        HashRing(["http://a", "http://a"])


def test_two_servers_on_any_ports_split_fans_within_four_per_cent_of_half() -> None:
    """Two model servers on one host differ only in their port: the split of fans between them
    decides how far throughput scales (the larger share is the bottleneck)."""
    fans = FANS[:4000]
    for port in range(5005, 5065, 3):
        ring = HashRing([f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"])
        share = sum(ring.owner(fan) == ring.servers[0] for fan in fans) / len(fans)
        assert abs(share - 0.5) < 0.04, (port, share)
