"""Unauthenticated garbage at the Slack HTTP endpoint gets a 401 and one log line, never a
500 or a traceback (issue 11 item 8): the signature is checked on the raw bytes first."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import aiohttp
import pytest

from bot.engine.remote import ModelServerEngine
from bot.privacy.store import TranscriptStore
from connectors.slack_signature import SlackSignature
from tests.integration.test_slack_connector import FAN, SECRET, start_world

pytestmark = pytest.mark.integration
BODY = b'{"type":"event_callback","event_id":"Ev1","event":{"type":"message","text":"secret words"}}'


def signed(body: bytes, stamp: str) -> str:
    return "v0=" + hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()


NOW = str(int(time.time()))  # the tests check signatures against this moment (clock=), not the time they run at
CASES = {
    "no timestamp": ({"X-Slack-Signature": signed(BODY, NOW)}, BODY),
    "no signature": ({"X-Slack-Request-Timestamp": NOW}, BODY),
    "non-numeric timestamp": ({"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": signed(BODY, "soon")}, BODY),
    "5,000-digit timestamp": ({"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=" + "0" * 64}, BODY),
    "negative timestamp": ({"X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": signed(BODY, "-1")}, BODY),
    "non-ASCII signature": ({"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=" + "é" * 64}, BODY),
    "signature of another body": ({"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": signed(b"{}", NOW)}, BODY),
    "body not UTF-8, unsigned": ({"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=" + "a" * 64}, b"\xff\xfe" + BODY),
    "stale": ({"X-Slack-Request-Timestamp": "1000000000", "X-Slack-Signature": signed(BODY, "1000000000")}, BODY),
}


@pytest.mark.parametrize("case", CASES)
def test_the_check_refuses_without_raising(case: str) -> None:
    headers, body = CASES[case]
    assert SlackSignature(SECRET, clock=lambda: float(NOW)).valid(body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")) is False


def test_a_correct_signature_passes() -> None:
    assert SlackSignature(SECRET, clock=lambda: float(NOW)).valid(BODY, NOW, signed(BODY, NOW))


async def test_the_endpoint_answers_401_with_one_line_for_every_case(
    model_engine: ModelServerEngine, store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    async for world in start_world("http", model_engine, store):
        caplog.set_level(logging.INFO)
        async with aiohttp.ClientSession() as session:
            for case, (headers, body) in CASES.items():
                caplog.clear()
                async with session.post(world.standin.http_target, data=body, headers={**headers, "Content-Type": "application/json"}) as answer:
                    assert answer.status == 401, case
                refusals = [r for r in caplog.records if "refused a Slack request" in r.getMessage()]
                assert len(refusals) == 1, case
                assert not any(r.exc_info for r in caplog.records), case
                assert "secret words" not in caplog.text
            stamp = str(int(time.time()))
            for signed_garbage in (b"\xff" + BODY, b"not json at all", b"[1, 2, 3]", b"[" * 50_000 + b"]" * 50_000, b"payload=%7Bnot-json"):
                caplog.clear()
                async with session.post(
                    world.standin.http_target, data=signed_garbage,
                    headers={"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signed(signed_garbage, stamp)},
                ) as answer:
                    assert answer.status < 500, signed_garbage[:20]  # refused or ignored by Bolt (404), never a 500
                assert not any(r.exc_info for r in caplog.records), signed_garbage[:20]
        await world.settled()
        assert world.standin.sent == []


REFUSAL = "Sorry, I don't recognise that button"
MALFORMED_CLICKS = (
    [], [{}], [{"action_id": 5, "value": "secret words"}], {"action_id": "answer_yes"}, "answer_yes",  # QA 17 item 10
    # QA 17b item 5: well-formed enough for Bolt, yet not a button this app sent as it sent it.
    [{"action_id": "feedback_good", "value": None}], [{"action_id": "feedback_good"}], [{"action_id": "feedback_bad", "value": 5}],
    [{"action_id": "consent_yes"}], [{"action_id": "consent_yes", "value": "secret words"}], [{"action_id": "answer_no", "value": "yes"}],
    [{"action_id": "forget_me_confirm", "value": "cancel"}], [{"action_id": "ticket_claim", "value": ""}],
    [{"action_id": "answer_yes", "value": "yes"}, {"action_id": "answer_no", "value": "no"}],
    [{"action_id": "secret_words_button", "value": "secret words"}],
)


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_a_malformed_or_unknown_click_is_acknowledged_refused_in_one_line_and_logged_once(
    mode: str, model_engine: ModelServerEngine, store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    """QA 17 item 10: Bolt's matchers read `actions[0]["action_id"]`; an empty list (or an
    element without a string action_id) got a 500 and a slack-bolt traceback at ERROR.
    QA 17b item 5: a null or unexpected value, two actions, or an unknown action_id got no
    reply and no log line. Each now gets the one-line refusal (ephemeral, to the clicker) and
    one WARNING without content."""
    async for world in start_world(mode, model_engine, store):
        caplog.set_level(logging.INFO)
        for number, actions in enumerate(MALFORMED_CLICKS):
            caplog.clear()
            click = await world.standin.click_button(FAN, "answer_yes", "yes", world.dm(), f"1700000000.00000{number}", actions=actions)
            assert click.acked and (mode == "socket" or click.status == 200), actions
            [refused] = await world.standin.wait_for_sent(lambda m: m.method == "response_url" and REFUSAL in (m.text or ""), timeout=20)
            assert refused.user == FAN and refused.response_type == "ephemeral" and "\n" not in (refused.text or ""), actions
            await world.settled()
            assert not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records), actions
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert [r.getMessage() for r in warnings] == ["refused a Slack click that is not one of this app's buttons as sent"], actions
            assert "secret words" not in caplog.text and FAN not in caplog.text
            assert len(world.standin.sent) == 1, (actions, world.standin.sent)
            world.standin.clear()
