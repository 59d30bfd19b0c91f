"""Minimized events on SQLite and PostgreSQL: an erased fan's pseudonym never stays in them,
even when another process erased the fan before this one's queued events were written;
`/privacy off` leaves only anonymous events; retention deletes old events and records the purge."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from bot.messages import Kind, Outgoing
from bot.privacy import events as ev
from bot.privacy.events import EventLog
from bot.privacy.retention import would_purge
from bot.privacy.schema import conversations, events, ratings
from bot.privacy.store import TranscriptStore
from tests.integration.databases import database_url, stores  # noqa: F401 - the fixtures
from tests.integration.test_delivery import DESK, GENERAL, MODERATOR, slack_world, store  # noqa: F401 - store: the fixture
from tests.integration.test_delivery import FAN as FAN_ID

KEY = b"events-test-pseudonym-key-0123456789abcdef"
FAN = "f" * 64
CONVERSATION = "c" * 64
REPLIES = [Outgoing(Kind.DISCLOSURE, "I am an AI."), Outgoing(Kind.ANSWER, "Friday.", intent="faq_season", confidence=0.9)]


def _start_conversation(store: TranscriptStore, started: float = 1000.0) -> None:
    with store.engine.begin() as connection:
        connection.execute(insert(conversations).values(
            conversation=CONVERSATION, fan=FAN, started_at=started, seen_at=time.time(), disclosed=True, fallbacks=0,
            pending_erasure=False, asked_again=False,
        ))


def _rows(store: TranscriptStore) -> list[dict[str, object]]:
    with store.engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(events).order_by(events.c.id)).mappings()]


async def test_events_written_after_an_erasure_elsewhere_do_not_name_the_fan(stores: tuple[TranscriptStore, TranscriptStore]) -> None:
    here, elsewhere = stores
    log = EventLog(here)
    _start_conversation(here)
    log.replies("slack", FAN, CONVERSATION, 1000.0, REPLIES)
    await log.drain()
    assert [r["fan"] for r in _rows(here)] == [FAN, FAN]  # named while the fan is held

    await elsewhere.erase(FAN)  # another process: its erasure deletes the rows written so far
    await elsewhere.settle()
    assert [r["kind"] for r in _rows(here)] == [ev.ERASURE]
    log.replies("slack", FAN, CONVERSATION, 1000.0, REPLIES)  # this process had not heard of it yet
    await log.drain()
    rows = _rows(here)
    assert [(r["kind"], r["reason"]) for r in rows] == [(ev.ERASURE, "fan"), (ev.REPLY, "disclosure"), (ev.REPLY, "answer")]
    assert all(r["fan"] is None and r["conversation"] is None for r in rows)
    assert rows[0]["seconds"] is not None and rows[0]["seconds"] >= 0  # type: ignore[operator]
    assert rows[2]["intent"] == "faq_season" and rows[2]["platform"] == "slack"

    _start_conversation(here, started=2000.0)  # the fan writes again: a new conversation
    log.replies("slack", FAN, CONVERSATION, 1000.0, REPLIES[:1])  # buffered before the erasure, written after
    log.replies("slack", FAN, CONVERSATION, 2000.0, REPLIES[:1])
    await log.drain()
    assert [r["fan"] for r in _rows(here)[3:]] == [None, FAN]


async def test_privacy_off_keeps_only_anonymous_events(stores: tuple[TranscriptStore, TranscriptStore]) -> None:
    store, _ = stores
    _start_conversation(store)
    await store.set_logging(FAN, False)
    log = EventLog(store)
    log.replies("discord", FAN, CONVERSATION, 1000.0, REPLIES)
    await log.drain()
    rows = _rows(store)
    assert [r["kind"] for r in rows] == [ev.PRIVACY_OFF, ev.REPLY, ev.REPLY]
    assert not [r for r in rows if r["fan"] is not None or r["conversation"] is not None]


async def test_retention_deletes_old_events_and_records_the_purge(stores: tuple[TranscriptStore, TranscriptStore]) -> None:
    store, _ = stores
    old, recent = datetime.utcnow() - timedelta(days=40), datetime.utcnow()
    with store.engine.begin() as connection:
        ev.add(connection, ev.HANDOFF_OPENED, ev.epoch(old), platform="slack", reason="asked")
        ev.add(connection, ev.HANDOFF_OPENED, ev.epoch(recent), platform="slack", reason="asked")
        connection.execute(insert(ratings).values(  # ratings expire with the turns too
            at=ev.epoch(old), fan=FAN, conversation=CONVERSATION, platform="slack", answer="a0", intent="greet", confidence=0.9, rating="good",
        ))
    before = datetime.utcnow() - timedelta(days=30)
    # `bot purge --dry-run` counts what the purge deletes, not only turns (QA 17, item 11), and deletes nothing.
    assert await would_purge(store, before) == {"turns": 0, "events": 1, "tickets": 0, "ratings": 1}
    assert await would_purge(store, before) == {"turns": 0, "events": 1, "tickets": 0, "ratings": 1}
    assert await store.purge(before) == 0
    with store.engine.connect() as connection:
        assert connection.execute(select(ratings)).all() == []
    rows = _rows(store)
    assert [(r["kind"], r["count"]) for r in rows] == [(ev.HANDOFF_OPENED, None), (ev.PURGE, 0)]
    assert rows[0]["at"] == ev.epoch(recent)


async def test_a_handoff_fan_the_app_cannot_reach_is_counted_once(store: TranscriptStore) -> None:
    """Slack through slack-bolt and the stand-in: the fan refuses DMs during a handoff."""
    async with slack_world(store) as world:
        world.router.on_unreachable = world.bot.events.unreachable  # as `bot run` wires it (connectors/launch.py)
        standin = world.standin
        standin.refuse_dm(FAN_ID, "user_not_visible")
        await standin.send_mention(FAN_ID, GENERAL, "/human")
        packet = (await standin.wait_for_sent(lambda m: m.channel == DESK and "Ticket #1 ·" in (m.text or ""), timeout=20))[0]
        await standin.click_button(MODERATOR, "ticket_claim", "1", DESK, packet.ts or "")
        await standin.wait_for_sent(lambda m: m.channel == DESK and "not reaching the fan" in (m.text or ""), timeout=20)
        await standin.send_channel_message(MODERATOR, DESK, "Are you there?", thread_ts=packet.ts)
        await asyncio.sleep(0.5)
        await world.bot.drain()
        steps = [(r["kind"], r["platform"], r["fan"]) for r in _rows(store) if str(r["kind"]).startswith("handoff")]
    # Two messages to the fan were undeliverable (the moderator joined, the moderator's reply): counted once.
    assert sorted(steps) == sorted((kind, "slack", None) for kind in (
        ev.HANDOFF_OPENED, ev.HANDOFF_CLAIMED, ev.HANDOFF_FIRST_REPLY, ev.HANDOFF_UNREACHABLE,
    ))
