"""Issue 17 item 1 on the platforms: "Helpful" / "Not helpful" under each model answer, one
click, an ephemeral acknowledgement, through the real slack-bolt and discord.py clients
against the stand-ins (which refuse clicks on buttons a message does not carry), the real
model server and a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.config import PrivacySettings
from bot.engine.remote import ModelServerEngine
from bot.messages import Kind
from bot.metrics import METRICS
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import consents, events, ratings
from bot.privacy.store import TranscriptStore
from tests.integration.test_discord_connector import FAN as DISCORD_FAN
from tests.integration.test_discord_connector import KEY as DISCORD_KEY
from tests.integration.test_discord_connector import DiscordWorld, discord_world
from tests.integration.test_slack_connector import FAN, OTHER_FAN, SlackWorld, start_world

pytestmark = pytest.mark.integration
OPT_IN = PrivacySettings(consent="opt-in", controller="C Ltd", contact="c@x.test", dpo_contact="d@x.test")
SLACK_KEY = b"slack-test-pseudonym-key-0123456789abcdef"


@pytest.fixture(params=["socket", "http"])
async def slack(request: pytest.FixtureRequest, model_engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[SlackWorld]:
    async for running in start_world(request.param, model_engine, store):
        yield running


@pytest.fixture
async def discord(model_engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[DiscordWorld]:
    async with discord_world(model_engine, store) as running:
        yield running


async def stored(store: TranscriptStore) -> list[tuple[str, str, str]]:
    def read() -> list[tuple[str, str, str]]:
        with store.engine.connect() as connection:
            return [(r.fan, r.rating, r.intent) for r in connection.execute(select(ratings))]

    return await store.run(read)


async def test_slack_answers_carry_rating_buttons_and_a_click_is_stored_once(slack: SlackWorld, store: TranscriptStore) -> None:
    await slack.standin.send_dm(FAN, "how do I cancel my subscription?")
    _, answer = await slack.sent_to(slack.dm(), count=2)
    buttons = [e for b in answer.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["text"]["text"]) for b in buttons] == [("feedback_good", "Helpful"), ("feedback_bad", "Not helpful")]
    token = buttons[1]["value"]
    click = await slack.standin.click_button(FAN, "feedback_bad", token, slack.dm(), answer.ts)
    assert click.acked
    thanks = await slack.standin.wait_for_sent(lambda m: m.method == "response_url" and "did not help" in (m.text or ""), timeout=20)
    assert thanks[0].response_type == "ephemeral" and "/human" in (thanks[0].text or "")
    fan = Pseudonymizer(SLACK_KEY).fan("slack", FAN)
    [(who, rating, intent)] = await stored(store)
    assert (who, rating) == (fan, "bad") and intent

    with pytest.raises(LookupError):  # Slack only sends a value the message's button carries
        await slack.standin.click_button(FAN, "feedback_good", token + "x", slack.dm(), answer.ts)
    # A payload replayed by another fan (from a message the stand-in does not hold: as if forged).
    await slack.standin.click_button(OTHER_FAN, "feedback_good", token, slack.standin.dm_channel(OTHER_FAN), "1700000000.000042")
    refused = await slack.standin.wait_for_sent(lambda m: m.method == "response_url" and "nothing was stored" in (m.text or ""), timeout=20)
    assert refused[0].user == OTHER_FAN and refused[0].response_type == "ephemeral"
    await slack.settled()
    assert len(await stored(store)) == 1


async def test_discord_answers_carry_rating_buttons_and_a_click_is_answered_ephemerally(
    discord: DiscordWorld, store: TranscriptStore
) -> None:
    await discord.standin.send_dm(DISCORD_FAN, "how do I cancel my subscription?")
    _, answer = await discord.sent(discord.dm(), count=2)
    custom_ids = [c["custom_id"] for row in answer.components for c in row["components"]]
    assert [c.split(":")[:2] for c in custom_ids] == [["fb", "good"], ["fb", "bad"]]
    assert all(len(c) <= 100 for c in custom_ids)
    acks, acknowledged = _discord_acks(), _messages("feedback")
    await discord.standin.click_button(DISCORD_FAN, custom_ids[0], answer.message_id, discord.dm(), guild=False)
    thanks = await discord.sent(kind="followup", contains="helped")
    assert thanks[-1].ephemeral
    # The deferral is an ack like a slash command's; the acknowledgement a reply like any other (QA 17, item 7).
    assert _discord_acks() == acks + 1 and _messages("feedback") == acknowledged + 1
    deferred = [m for m in discord.standin.sent if m.kind == "interaction_response"]
    assert deferred and deferred[-1].ephemeral  # flags 64: only the fan sees it
    fan = Pseudonymizer(DISCORD_KEY).fan("discord", str(DISCORD_FAN))
    assert [(who, rating) for who, rating, _ in await stored(store)] == [(fan, "good")]

    with pytest.raises(LookupError):  # Discord only sends a custom_id the message carries
        await discord.standin.click_button(DISCORD_FAN, custom_ids[0] + "0", answer.message_id, discord.dm(), guild=False)
    forged = custom_ids[1][:-1] + ("0" if custom_ids[1][-1] != "0" else "1")
    await discord.standin.click_button(DISCORD_FAN, forged, None, discord.dm(), guild=False)  # a message it does not hold
    await discord.sent(kind="followup", contains="nothing was stored")
    await discord.settled()
    assert [(who, rating) for who, rating, _ in await stored(store)] == [(fan, "good")]
    with store.engine.connect() as connection:
        written = connection.execute(select(events.c.reason, events.c.fan).where(events.c.reason == "feedback")).all()
    assert (Kind.FEEDBACK.value, fan) in written  # in the report and in /my-data

    # A custom_id the bot does not understand is answered (never "This interaction failed"): one
    # ephemeral line, a CHANNEL_MESSAGE_WITH_SOURCE (type 4) callback within Discord's 3 seconds.
    for custom_id in ("fb", "fb:good", "fb:meh:" + custom_ids[0].split(":", 2)[2], "xx:good:abc", "ticket:claim"):
        acks = _discord_acks()
        interaction = await discord.standin.click_button(DISCORD_FAN, custom_id, None, discord.dm(), guild=False)
        [answered] = await discord.standin.wait_for_sent(lambda m, i=interaction: m.interaction_id == i, timeout=20)  # type: ignore[misc]
        assert (answered.kind, answered.callback_type, answered.ephemeral) == ("interaction_response", 4, True), custom_id
        assert "don't recognise that button" in (answered.content or "") and "\n" not in (answered.content or "")
        await discord.settled()  # the connector observes the ack once the callback's HTTP response is back
        assert _discord_acks() == acks + 1, custom_id


def _discord_acks() -> float:
    return METRICS.registry.get_sample_value("fan_assistant_ack_latency_seconds_count", {"platform": "discord"}) or 0.0


def _messages(kind: str) -> float:
    return METRICS.registry.get_sample_value("fan_assistant_messages_total", {"platform": "discord", "kind": kind}) or 0.0


async def choices(store: TranscriptStore) -> list[str]:
    def read() -> list[str]:
        with store.engine.connect() as connection:
            return list(connection.execute(select(consents.c.choice)).scalars())

    return await store.run(read)


async def test_slack_consent_buttons_answer_after_other_messages_then_say_what_is_recorded(
    model_engine: ModelServerEngine, store: TranscriptStore
) -> None:
    """QA 17 item 3 on Slack: the consent question's own buttons still answer it after the fan
    wrote something else; a later click on the other one changes nothing and says so."""
    async for slack in start_world("socket", model_engine, store, privacy=OPT_IN):
        await slack.standin.send_dm(FAN, "how do I cancel my subscription?")
        *_, question = await slack.sent_to(slack.dm(), count=3)
        buttons = [(e["action_id"], e["value"]) for b in question.blocks if b["type"] == "actions" for e in b["elements"]]
        assert buttons == [("consent_yes", "yes"), ("consent_no", "no")]
        await slack.standin.send_dm(FAN, "when is the next episode?")
        await slack.sent_to(slack.dm(), count=4)
        await slack.standin.click_button(FAN, "consent_yes", "yes", slack.dm(), question.ts)
        await slack.standin.wait_for_sent(lambda m: m.method == "response_url" and "Thank you" in (m.text or ""), timeout=20)
        await slack.standin.click_button(FAN, "consent_no", "no", slack.dm(), question.ts)
        recorded = await slack.standin.wait_for_sent(lambda m: m.method == "response_url" and "already recorded: yes" in (m.text or ""), timeout=20)
        assert recorded[0].response_type == "ephemeral" and "/privacy off" in (recorded[0].text or "")
        await slack.settled()
        assert await choices(store) == ["yes"]


async def test_discord_consent_buttons_answer_after_other_messages_then_say_what_is_recorded(
    model_engine: ModelServerEngine, store: TranscriptStore
) -> None:
    async with discord_world(model_engine, store, privacy=OPT_IN) as discord:
        await discord.standin.send_dm(DISCORD_FAN, "how do I cancel my subscription?")
        *_, question = await discord.sent(discord.dm(), count=3)
        custom_ids = [c["custom_id"] for row in question.components for c in row["components"]]
        assert custom_ids == ["consent:yes", "consent:no"]
        await discord.standin.send_dm(DISCORD_FAN, "when is the next episode?")
        await discord.sent(discord.dm(), count=4)
        await discord.standin.click_button(DISCORD_FAN, "consent:no", question.message_id, discord.dm(), guild=False)
        await discord.sent(kind="followup", contains="keep nothing")
        await discord.standin.click_button(DISCORD_FAN, "consent:yes", question.message_id, discord.dm(), guild=False)
        [recorded] = await discord.sent(kind="followup", contains="already recorded: no")
        assert recorded.ephemeral and "/privacy on" in (recorded.content or "")
        await discord.settled()
        assert await choices(store) == ["no"]
