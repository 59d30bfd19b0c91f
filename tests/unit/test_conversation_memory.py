"""Conversation state is bounded by recent activity (issue 11 item 10): idle conversations
are dropped as messages arrive, and by the periodic sweep, without anyone calling for it."""

from __future__ import annotations

from bot.conversation import ConversationMemory


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_idle_conversations_are_dropped_as_new_messages_arrive() -> None:
    clock = Clock()
    memory = ConversationMemory(idle_seconds=60, monotonic=clock)
    for fan in range(1000):
        memory.state(f"fan{fan}", "dm")
    assert len(memory) == 1000
    clock.now += 61
    memory.state("someone new", "dm")  # no explicit expire_idle() call anywhere
    assert len(memory) == 1


def test_active_conversations_stay() -> None:
    clock = Clock()
    memory = ConversationMemory(idle_seconds=60, monotonic=clock)
    memory.state("a", "dm").disclosed = True
    clock.now += 30
    memory.state("b", "dm")
    clock.now += 31
    assert memory.state("b", "dm") is not None and len(memory) == 1  # a expired, b was active 31 s ago
    clock.now += 1
    assert memory.state("a", "dm").disclosed is False  # a is a first contact again
