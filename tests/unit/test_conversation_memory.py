"""Conversation state lives in the database (issue 16): an idle conversation is a new one,
a first contact again, and idle rows are swept; no content is kept."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.conversation import ConversationMemory, ConversationState, Explanation
from bot.privacy.schema import conversations


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_state_round_trips_through_the_table(store) -> None:  # type: ignore[no-untyped-def]
    memory = ConversationMemory(idle_seconds=60, clock=Clock())
    memory.bind(store)
    state = await memory.load("fan", "dm")
    assert state == ConversationState(started=1000.0)
    state.disclosed, state.consecutive_fallbacks, state.handoff_offered = True, 1, "complaint"
    state.last_answer = Explanation("fallback", "nlu_fallback", 0.31, "faq_billing")
    await memory.save("fan", "dm", state)
    assert await memory.load("fan", "dm") == state
    assert await memory.load("someone else", "dm") == ConversationState(started=1000.0)  # keyed by the fan too


async def test_idle_conversations_start_afresh_and_are_swept(store) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    memory = ConversationMemory(idle_seconds=60, clock=clock)
    memory.bind(store)
    for fan in ("a", "b"):
        await memory.save(fan, f"dm-{fan}", ConversationState(disclosed=True, started=clock.now))
    clock.now += 30
    await memory.save("b", "dm-b", await memory.load("b", "dm-b"))
    clock.now += 31  # a idle 61 s, b 31 s
    assert (await memory.load("a", "dm-a")).disclosed is False  # a first contact again
    assert (await memory.load("b", "dm-b")).disclosed is True
    assert await memory.count("a") == 0 and await memory.count("b") == 1
    assert await memory.sweep() == 1
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(conversations)).scalar() == 1
