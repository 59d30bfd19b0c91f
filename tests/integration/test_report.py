"""`bot report` on a replayed month whose true counts the test knows: the real model, the real
store (SQLite and PostgreSQL), moderators acting on a virtual clock, ratings inserted as the
rating buttons would. Then: no pseudonym and no message text in the JSON or the HTML."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from matplotlib.dates import AutoDateFormatter
from matplotlib.figure import Figure
from sqlalchemy import insert, select

from bot.config import AssistantSettings, HandoffSettings, PrivacySettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.handoff.actions import Claim, ModeratorAction, Reply, Resolve
from bot.messages import Incoming, Kind, Outgoing
from bot.privacy import events as ev
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import events, ratings
from bot.privacy.store import TranscriptStore
from bot.report import build, render_text
from bot.report_html import per_day_chart, render_html
from tests.integration.databases import database_url  # noqa: F401 - the fixture

KEY = b"report-test-pseudonym-key-0123456789abcdef"
FANS = [f"report-fan-{n}-5be1" for n in range(6)]
ERASED, PRIVATE, EXPORTER = FANS[3], FANS[2], FANS[1]
WAITS = [60 * (n + 1) for n in range(10)]  # seconds from /human to the claim, ticket by ticket
QUESTIONS = ["hello", "when does the next season start?", "how do I report harassment in the server?", "asdf qwerty zxcv"]


class VirtualClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return ev.epoch(self.now)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_report_of_a_replayed_month_shows_the_true_counts_and_no_fan(
    database_url: str, model_engine: ModelServerEngine, tmp_path: Path  # noqa: F811
) -> None:
    real_now = datetime.utcnow()
    clock = VirtualClock(real_now.replace(microsecond=0) - timedelta(days=30) + timedelta(hours=1))
    start = clock.now
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()), KEY)
    pseudonyms = Pseudonymizer(KEY)
    memory = ConversationMemory(idle_seconds=1800, clock=clock.epoch)
    bot = Bot(model_engine, pseudonyms, AssistantSettings(), memory, store, clock=clock,
              handoff=HandoffSettings(moderators=("mod-1",)))
    sent: defaultdict[str, list[Outgoing]] = defaultdict(list)
    conversations: Counter[str] = Counter()
    texts: set[str] = set()

    async def say(fan: str, text: str) -> list[Outgoing]:
        if not text.startswith("/"):  # command names are the report's own labels, not what a fan wrote
            texts.add(text)
        replies = await bot.handle(Incoming("replay", fan, "direct", text))
        sent[fan] += [r for r in replies if r.from_ai and r.to == "user"]
        texts.update(r.text for r in replies if len(r.text) > 12)
        clock.advance(20)
        return replies

    async def moderate(ticket: int, action: object) -> None:
        replies = await bot.moderate(ModeratorAction("mod-1", action, ticket, authorised=True))  # type: ignore[arg-type]
        assert not [r for r in replies if r.kind is Kind.REFUSED], replies

    try:
        # Before the month: one conversation that retention purges (its turns and events).
        clock.now = start - timedelta(days=40)
        await say("report-old-fan-77e2", "hello")
        early_turns = await store.count_turns(pseudonyms.fan("replay", "report-old-fan-77e2"))
        clock.now = start
        tickets = 0
        for day in range(0, 28, 3):  # ten days with traffic; a day apart, so every chat is a new conversation
            await bot.drain()  # a day passes: the events buffered in memory are written (within a second, live)
            clock.now = start + timedelta(days=day)
            for n, fan in enumerate(FANS):
                conversations[fan] += 1
                for question in QUESTIONS[: 2 + (day + n) % 3]:
                    await say(fan, question)
                if n == 0 and tickets < len(WAITS):  # a handoff: claim, first reply, resolve on the virtual clock
                    replies = await say(fan, "/human")
                    [ticket] = {int(r.ticket) for r in replies if r.ticket}
                    clock.advance(WAITS[tickets] - 20)
                    await moderate(ticket, Claim("Mo"))
                    clock.advance(30)
                    await moderate(ticket, Reply("Hi, a person here."))
                    clock.advance(120)
                    await moderate(ticket, Resolve())
                    tickets += 1
        # One ticket times out and is then cancelled; one is cancelled at once.
        await bot.drain()
        clock.now = start + timedelta(days=28)
        conversations[FANS[4]] += 1
        await say(FANS[4], "/human")
        clock.advance(11 * 60)
        assert [n for n in await bot.expire_handoffs() if n.kind is Kind.HANDOFF_TIMEOUT]
        await say(FANS[4], "/human cancel")
        await say(FANS[5], "/human")
        conversations[FANS[5]] += 1
        await say(FANS[5], "/human cancel")
        # Privacy: an export, /privacy off (in the fan's last conversation), an erasure.
        await bot.drain()
        clock.now = start + timedelta(days=29)
        conversations[EXPORTER] += 1  # PRIVATE's last conversation began with /privacy off: not named in events,
        erased_before = len(sent[ERASED])  # nor ERASED's, whose events were still buffered when they were erased
        await say(EXPORTER, "/my-data")
        await say(PRIVATE, "/privacy off")
        await say(PRIVATE, "hello")
        await say(ERASED, "/forget-me")
        await say(ERASED, "/forget-me confirm")
        await bot.drain()
        assert await store.purge(start - timedelta(days=5)) == early_turns > 0

        fan_ids = {pseudonyms.fan("replay", f) for f in FANS}
        rated = sorted(fan_ids)[0]
        with store.engine.begin() as connection:  # as the rating buttons store them (issue 17, item 1)
            for n, (intent, rating) in enumerate([("faq_season", "good")] * 3 + [("faq_season", "bad")] + [("greet", "bad")] * 2):
                connection.execute(insert(ratings).values(
                    at=clock.epoch(), fan=rated, conversation="c" * 64, platform="replay", answer=f"a{n}",
                    intent=intent, confidence=0.9, rating=rating,
                ))
            session_ids = set(connection.execute(select(events.c.conversation).where(events.c.conversation.is_not(None))).scalars())

        with store.engine.connect() as connection:
            report = build(connection, store.audit_log, since_days=30, now=datetime.utcnow(), retention_days=30)
    finally:
        await store.aclose()

    # The erased fan's events went with them, but for those still buffered at the erasure: kept without the fan.
    kept = [r for fan in FANS if fan != ERASED for r in sent[fan]]
    kept += [r for r in sent[ERASED][erased_before:] if r.kind is not Kind.ERASURE_DONE]
    # Disclosure: every conversation of a fan still named in the events began with it.
    counted = sum(n for fan, n in conversations.items() if fan != ERASED)
    assert report["disclosure"] == {
        "conversations": counted, "disclosed_first": counted, "exceptions": 0, "exceptions_by_first_kind": {}, "coverage": 1.0,
    }
    assert report["replies"]["by_kind"] == dict(sorted(Counter(r.kind.value for r in kept).items()))
    answers = report["answers"]
    assert answers["answers"] == sum(r.kind is Kind.ANSWER for r in kept)
    assert answers["fallbacks"] == sum(r.kind is Kind.FALLBACK for r in kept) > 0
    by_intent = {row["intent"]: row for row in answers["by_intent"]}
    for intent, n in Counter(r.intent for r in kept if r.kind is Kind.ANSWER).items():
        assert by_intent[intent]["answers"] == n
    assert answers["ratings"] == {"good": 3, "bad": 3} and answers["helpful_rate"] == 0.5
    assert [w["intent"] for w in answers["worst_rated"]] == ["greet", "faq_season"]
    assert by_intent["faq_season"]["helpful_rate"] == 0.75

    handoffs = report["handoffs"]
    assert (handoffs["opened"], handoffs["claimed"], handoffs["resolved"], handoffs["timeouts"], handoffs["cancelled"]) == (12, 10, 10, 1, 2)
    assert handoffs["by_reason"] == {"asked": 12} and handoffs["cancelled_while"] == {"open": 2}
    # Nearest-rank percentiles of the replay clock's waits: 60, 120, ... 600 seconds.
    assert handoffs["time_to_claim_seconds"] == {"count": 10, "p50": 300.0, "p90": 540.0, "max": 600.0}
    assert handoffs["time_to_first_moderator_reply_seconds"] == {"count": 10, "p50": 330.0, "p90": 570.0, "max": 630.0}
    assert handoffs["time_to_resolve_seconds"] == {"count": 10, "p50": 450.0, "p90": 690.0, "max": 750.0}

    privacy = report["privacy"]
    assert (privacy["exports"], privacy["erasures"], privacy["privacy_off"], privacy["purge_runs"]) == (1, 1, 1, 1)
    assert privacy["turns_purged"] == early_turns
    assert privacy["erasures_requested_by"] == {"fan": 1} and privacy["erasure_completion_seconds"]["count"] == 1
    assert privacy["oldest_turn"] == start.isoformat(timespec="seconds") + "Z"
    assert privacy["oldest_turn_within_retention"] is True
    assert report["audit_chain"]["intact"] is True and len(report["audit_chain"]["head"]) == 64

    page = render_html(report)
    if os.environ.get("REPORT_HTML_OUT") and database_url.startswith("sqlite"):  # docs/report.png is a screenshot of this
        Path(os.environ["REPORT_HTML_OUT"]).write_text(page, encoding="utf-8")
    scanned = (json.dumps(report) + page).encode()
    secrets = fan_ids | {pseudonyms.conversation("replay", "direct", f) for f in FANS} | session_ids | set(FANS)
    assert not [s for s in secrets if s.encode() in scanned]
    assert not [t for t in texts if t.encode() in scanned or json.dumps(t)[1:-1].encode() in scanned]


async def test_under_opt_in_the_disclosure_before_the_yes_is_counted(
    database_url: str, model_engine: ModelServerEngine  # noqa: F811
) -> None:
    """QA 17, item 1: the replies before the yes are held in memory with the conversation and
    written with the yes (nothing before it: tests/integration/test_fan_voice.py scans the
    bytes), so the report sees the disclosure first; a no drops them."""
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()), KEY)
    privacy = PrivacySettings(consent="opt-in", controller="Fan Club Ltd", contact="privacy@example.org", dpo_contact="dpo@example.org")
    bot = Bot(model_engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, privacy=privacy)
    try:
        for fan, answer in (("optin-yes-fan-41c9", "yes"), ("optin-no-fan-41c9", "no")):
            await bot.drain()
            with store.engine.connect() as connection:
                before = connection.execute(select(events)).all()
            first = await bot.handle(Incoming("replay", fan, "direct", "my stream keeps buffering"))
            assert [r.kind for r in first][0] is Kind.DISCLOSURE and first[-1].kind is Kind.CONSENT_REQUEST
            await bot.drain()
            with store.engine.connect() as connection:
                assert connection.execute(select(events)).all() == before  # nothing before the yes
            await bot.handle(Incoming("replay", fan, "direct", answer))
            await bot.handle(Incoming("replay", fan, "direct", "how do I reset my password"))
        await bot.drain()
        with store.engine.connect() as connection:
            report = build(connection, store.audit_log, since_days=30, now=datetime.utcnow(), retention_days=30)
            named = connection.execute(select(events.c.reason).where(events.c.fan.is_not(None)).order_by(events.c.id)).scalars().all()
    finally:
        await store.aclose()
    assert report["disclosure"]["conversations"] == 1 and report["disclosure"]["coverage"] == 1.0, report["disclosure"]
    assert named[:3] == ["disclosure", "answer", "consent_request"] and "privacy_notice" in named


async def test_an_empty_report_says_no_conversations_neutrally(database_url: str) -> None:  # noqa: F811
    """QA 17, item 11: nothing to check is neither a success (green) nor a failure (red)."""
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()), KEY)
    try:
        with store.engine.connect() as connection:
            report = build(connection, store.audit_log, since_days=30, now=datetime.utcnow(), retention_days=30)
    finally:
        await store.aclose()
    assert "AI disclosure first: no conversations in the period" in render_text(report).splitlines()
    page = render_html(report)
    section = page.split("<h2>AI disclosure</h2>")[1].split("<h2>")[0]
    assert "No conversations in this period" in section and "class=\"ok\"" not in section and "class=\"bad\"" not in section


async def test_the_per_day_chart_is_a_date_axis_where_a_quiet_day_is_a_gap(database_url: str) -> None:  # noqa: F811
    """QA 17b item 2: the chart stood the days with messages side by side, so four silent days
    (an outage) vanished between two adjacent bars. On a date axis over the whole period they
    are a five-day step and a visible gap; `per_day` lists only days with messages."""
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()), KEY)
    now = datetime.utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    try:
        with store.engine.begin() as connection:  # as the running bot records replies
            for days_ago, count in ((6, 2), (1, 3)):
                for n in range(count):
                    ev.add(connection, ev.REPLY, ev.epoch(now - timedelta(days=days_ago)) + n, platform="slack",
                           conversation=ev.conversation_id(f"quiet-{days_ago}-{n}", 0.0), reason="answer", intent="greet", confidence=0.9)
        with store.engine.connect() as connection:
            report = build(connection, store.audit_log, since_days=10, now=now, retention_days=30)
    finally:
        await store.aclose()
    busy = [(now - timedelta(days=d)).date().isoformat() for d in (6, 1)]
    assert report["replies"]["per_day"] == {busy[0]: 2, busy[1]: 3}

    figure = Figure()
    axes = figure.add_subplot()
    per_day_chart(report)(axes)
    bars = sorted((patch.get_x() + patch.get_width() / 2, patch.get_height()) for patch in axes.patches)  # type: ignore[attr-defined]
    assert [height for _, height in bars] == [2, 3]
    assert bars[1][0] - bars[0][0] == 5  # five days apart: the four days between are drawn, empty
    assert isinstance(axes.xaxis.get_major_formatter(), AutoDateFormatter)  # the axis reads as dates
    low, high = axes.get_xlim()
    assert high - low >= 10  # the whole period, quiet days at its start included
