"""The in-memory mirror of each active fan's last stored turns (`RecentTurns`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.privacy.store import RecentTurns, Turn

T0 = datetime(2026, 1, 1)


def turn(fan: str, minute: int, kind: str = "message", text: str = "hi") -> Turn:
    return Turn(fan, "c", "fan", kind, T0 + timedelta(minutes=minute), text)


def test_keeps_the_last_turns_of_fans_it_mirrors_only() -> None:
    recent = RecentTurns(limit=3, idle_seconds=60)
    recent.start("ann")
    recent.add([turn("ann", m, text=f"t{m}") for m in range(5)] + [turn("bob", 0)])
    turns, disclosed = recent.get("ann", 3) or ([], None)
    assert [t["text"] for t in turns] == ["t2", "t3", "t4"] and disclosed is None
    assert [t["text"] for t in (recent.get("ann", 2) or ([], None))[0]] == ["t3", "t4"]
    assert recent.get("ann", 4) is None  # more than it keeps: read the store
    assert "bob" not in recent and recent.get("bob", 3) is None  # never started: it may have older turns


def test_the_first_disclosure_stays_even_when_its_turn_scrolls_out() -> None:
    recent = RecentTurns(limit=2, idle_seconds=60)
    recent.start("ann")
    recent.add([turn("ann", 0, "disclosure"), turn("ann", 1), turn("ann", 2), turn("ann", 3, "disclosure")])
    assert (recent.get("ann", 2) or ([], None))[1] == T0


def test_idle_fans_and_the_least_recent_beyond_the_bound_are_dropped() -> None:
    now = [0.0]
    recent = RecentTurns(limit=2, idle_seconds=60, max_fans=2, monotonic=lambda: now[0])
    recent.start("ann")
    now[0] = 30
    recent.start("bob")
    now[0] = 61
    assert "ann" not in recent and "bob" in recent  # ann idle for 61 s
    recent.start("cy")
    recent.start("dee")
    assert "bob" not in recent and len(recent) == 2


def test_a_purge_drops_entries_that_reach_back_past_the_cutoff() -> None:
    recent = RecentTurns(limit=5, idle_seconds=60)
    for fan, minute in (("ann", 0), ("bob", 10)):
        recent.start(fan)
        recent.add([turn(fan, minute)])
    recent.start("cy", [], disclosed=T0)
    recent.drop_before(T0 + timedelta(minutes=5))
    assert "ann" not in recent and "cy" not in recent and "bob" in recent


def test_keeps_nothing_when_not_asked_to() -> None:
    recent = RecentTurns()
    recent.start("ann")
    recent.add([turn("ann", 0)])
    assert "ann" not in recent and recent.get("ann", 0) is None
