"""Issue 17's small parts: rating tokens fit the platforms' limits and carry what a rating
stores; the renders put the rating buttons on rateable answers only and Yes/No on the consent
question; the notice's version changes with its facts."""

from __future__ import annotations

from bot.config import PrivacySettings
from bot.feedback import Feedback
from bot.messages import Kind, Outgoing
from bot.privacy.notice import PLACEHOLDER, PrivacyNotice
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from connectors import discord_render, slack_render

FAN, CONVERSATION = "f" * 64, "c" * 64


def test_a_token_fits_a_discord_custom_id_and_names_its_answer(store: TranscriptStore) -> None:
    feedback = Feedback(store, Pseudonymizer(b"k" * 32))
    token = feedback.token(FAN, CONVERSATION, 1700000000.25, "i" * 48, 0.12345)
    assert token is not None and len(f"{discord_render.RATE_PREFIX}good:{token}") <= 100
    rated = feedback.check(FAN, CONVERSATION, 1700000000.25, token)
    assert rated is not None and rated.intent == "i" * 48 and rated.confidence == 0.123
    assert feedback.check("g" * 64, CONVERSATION, 1700000000.25, token) is None and feedback.check(FAN, "d" * 64, 1700000000.25, token) is None
    assert feedback.check(FAN, CONVERSATION, 1700000100.0, token) is None  # a later conversation of the same place
    assert feedback.token(FAN, CONVERSATION, 0.0, "not an intent!", 0.5) is None  # no buttons rather than a broken payload


def test_rating_buttons_only_on_rateable_answers_and_yes_no_on_the_consent_question() -> None:
    rated = Outgoing(Kind.ANSWER, "an answer", intent="faq_login", confidence=0.9, rate="faq_login:900:abc.0123456789abcdef")
    [message] = slack_render.render(rated)
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        (slack_render.RATE_GOOD, rated.rate), (slack_render.RATE_BAD, rated.rate)
    ]
    view = discord_render.buttons(rated)
    assert view is not None and [getattr(i, "custom_id", None) for i in view.children] == [f"fb:good:{rated.rate}", f"fb:bad:{rated.rate}"]
    for unrated in (Outgoing(Kind.ANSWER, "declined", intent="deny"), Outgoing(Kind.FALLBACK, "sorry")):
        assert not [b for b in slack_render.render(unrated)[0]["blocks"] if b["type"] == "actions"]
        assert discord_render.buttons(unrated) is None
    question = Outgoing(Kind.CONSENT_REQUEST, "may I store?")
    [asked] = [b for b in slack_render.render(question)[0]["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in asked["elements"]] == [slack_render.CONSENT_YES, slack_render.CONSENT_NO]
    consent_view = discord_render.buttons(question)
    assert consent_view is not None and [getattr(i, "custom_id", None) for i in consent_view.children] == ["consent:yes", "consent:no"]


def test_the_notice_version_follows_its_facts_and_placeholders_are_labelled() -> None:
    plain = PrivacyNotice(PrivacySettings(), 30)
    assert PLACEHOLDER.format(key="controller") in plain.text(True)
    named = PrivacyNotice(PrivacySettings(controller="A Ltd", contact="a@x", dpo_contact="d@x"), 30)
    assert named.version != plain.version and named.version == PrivacyNotice(PrivacySettings(controller="A Ltd", contact="a@x", dpo_contact="d@x"), 30).version
    assert PrivacyNotice(PrivacySettings(controller="A Ltd", contact="a@x", dpo_contact="d@x", retention_days=7), 30).version != named.version
