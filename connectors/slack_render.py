"""Block Kit for the assistant's messages on Slack, each with a plain `text` fallback.

Every message carries a context block saying who wrote it (the AI, or a human moderator
relayed by it), since Slack shows context blocks under the message wherever it appears.
"""

from __future__ import annotations

from typing import Any

from bot.disclosure import AI_LABEL, HUMAN_LABEL
from bot.messages import Kind, Outgoing
from connectors.splitting import split_text

#: Slack caps a section block's text at 3,000 characters; leave room for escaping.
SECTION_CHARS = 2800
#: Sections per message: well under Slack's 50 blocks and 40,000 characters of `text`.
SECTIONS_PER_MESSAGE = 10
DESK_LABEL = "AI assistant · for moderators"

CONFIRM_ERASURE = "forget_me_confirm"
CANCEL_ERASURE = "forget_me_cancel"
CLAIM_TICKET = "ticket_claim"
ANSWER_YES = "answer_yes"  # a pending yes/no question: the click is the fan saying "yes" / "no"
ANSWER_NO = "answer_no"
CONSENT_YES = "consent_yes"  # the consent question's own Yes / No: answers it even once it lapsed as a pending question
CONSENT_NO = "consent_no"
RESOLVE_TICKET = "ticket_resolve"
RATE_GOOD = "feedback_good"  # a model answer's "Helpful" / "Not helpful": the value is its rating token
RATE_BAD = "feedback_bad"


def escape(text: str) -> str:
    """Slack's three control characters; this also keeps `<!channel>` pings out of relays."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": label}, "action_id": action_id, "value": value}
    if style:
        button["style"] = style
    return button


def _actions(message: Outgoing) -> list[dict[str, Any]]:
    if message.kind is Kind.ERASURE_CONFIRM_REQUEST:
        buttons = [_button("Erase everything", CONFIRM_ERASURE, "confirm", "danger"), _button("Keep my data", CANCEL_ERASURE, "cancel")]
    elif message.kind is Kind.CONSENT_REQUEST:
        buttons = [_button("Yes", CONSENT_YES, "yes", "primary"), _button("No", CONSENT_NO, "no")]
    elif message.kind in (Kind.HANDOFF_OFFER, Kind.ASK_BACK):
        buttons = [_button("Yes", ANSWER_YES, "yes", "primary"), _button("No", ANSWER_NO, "no")]
    elif message.kind is Kind.HANDOFF_TICKET and message.to == "desk" and message.ticket:
        buttons = [_button("Claim", CLAIM_TICKET, message.ticket, "primary"), _button("Resolve", RESOLVE_TICKET, message.ticket)]
    elif message.kind is Kind.ANSWER and message.rate:
        buttons = [_button("Helpful", RATE_GOOD, message.rate), _button("Not helpful", RATE_BAD, message.rate)]
    else:
        return []
    return [{"type": "actions", "block_id": f"{message.kind.value}-{message.ticket or ''}", "elements": buttons}]


def label_of(message: Outgoing) -> str:
    if message.to == "desk":
        return DESK_LABEL
    return AI_LABEL if message.from_ai else HUMAN_LABEL


def render(message: Outgoing) -> list[dict[str, Any]]:
    """The Slack messages (`text` + `blocks`) for one reply, split cleanly when long."""
    label = label_of(message)
    code = message.kind is Kind.DATA_EXPORT
    limit = SECTION_CHARS - (8 if code else 0)
    pieces = split_text(escape(message.text), limit)
    rendered = []
    for start in range(0, len(pieces), SECTIONS_PER_MESSAGE):
        group = pieces[start : start + SECTIONS_PER_MESSAGE]
        sections = [{"type": "section", "text": {"type": "mrkdwn", "text": f"```{piece}```" if code else piece}} for piece in group]
        last = start + SECTIONS_PER_MESSAGE >= len(pieces)
        blocks = sections + (_actions(message) if last else []) + [{"type": "context", "elements": [{"type": "mrkdwn", "text": label}]}]
        rendered.append({"text": f"{label}: " + "\n".join(group), "blocks": blocks})
    return rendered
