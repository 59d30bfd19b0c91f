"""What the assistant says about itself: the first-contact disclosure and the AI labels.

Being plain that this is an AI is a product rule, not a model behaviour, so these texts
live in code and never come from the model.
"""

from __future__ import annotations

from bot.config import AssistantSettings

#: Shown with every assistant message wherever the platform can show it.
AI_LABEL = "AI assistant · automated reply"
#: Shown with a moderator's words relayed to a fan: a person wrote this, not the AI.
HUMAN_LABEL = "Human moderator · written by a person, not the AI"
#: Console rendering of the label, one short prefix per line.
CONSOLE_AI_PREFIX = "[AI assistant]"


def disclosure_text(settings: AssistantSettings) -> str:
    return (
        f"Hi! I'm the {settings.name}, an automated AI assistant for the {settings.community} "
        "fan community, not a human. I can help with subscriptions and billing, logging in, "
        "playback problems, release schedules, live events, merch orders, the community rules "
        "and reporting harassment. Type /human at any time to reach a person. "
        "/privacy explains what I keep about you, /forget-me erases it, and /why explains my last answer."
    )


def bot_challenge_text(settings: AssistantSettings) -> str:
    return (
        f"I'm an AI: the {settings.name} is an automated program, not a human, and no person is "
        "typing these replies. If you'd like to talk to a person, type /human."
    )
