"""Delivery keys: the platform's ids for one delivery or one message, so a platform's retry
or second delivery never produces a second reply. Whether a key was seen already is asked of
`bot.deliveries.DeliveryKeys` (`Bot.deliveries`), shared by every process through the database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional


def slack_message_key(event: Mapping[str, Any]) -> Optional[str]:
    """One key per Slack message, whatever delivery brought it: its channel and ts (unique in a
    channel) prefixed by the event type, so a mention's `message` and `app_mention` copies stay
    apart. A redelivery under a new event_id keeps both (and the client_msg_id)."""
    channel, ts = event.get("channel"), event.get("ts")
    if channel and ts:
        return f"{event.get('type', 'message')}:{channel}:{ts}"
    msg_id = event.get("client_msg_id")
    return f"{event.get('type', 'message')}:{msg_id}" if msg_id else None
