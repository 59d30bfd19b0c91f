"""Slack's answers to a send, in the outbox's terms (see connectors/outbox.py).

Why a module: the connector's sends and the Slack desk's posts both go through the outbox,
and both must tell a rate limit (retry after Slack's Retry-After) from a refusal that will
not change (a deactivated fan, an archived channel).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from slack_sdk.errors import SlackApiError

from connectors.base import NETWORK_ERRORS
from connectors.outbox import Retry, Unreachable

#: Slack errors after which a message to that recipient cannot pass by retrying, as the
#: outbox's reason codes (chat.postMessage, chat.postEphemeral and conversations.open
#: references on docs.slack.dev: their "Errors" tables).
REFUSED = {
    "user_disabled": "user_disabled",
    "account_inactive": "user_disabled",
    "user_not_found": "user_disabled",
    "user_not_visible": "user_not_visible",
    "cannot_dm_bot": "cannot_dm_bot",
    "channel_not_found": "conversation_gone",
    "is_archived": "conversation_gone",
    "not_in_channel": "conversation_gone",
    "user_not_in_channel": "conversation_gone",
    "restricted_action": "no_permission",
    "restricted_action_read_only_channel": "no_permission",
    "restricted_action_thread_only_channel": "no_permission",
}
#: Slack errors that may pass later: its rate limit (HTTP 429 with Retry-After) and its own outages.
TRANSIENT = frozenset({"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


def retry_after(headers: Mapping[str, Any]) -> Optional[float]:
    """Slack's Retry-After (whole seconds) from a response's headers, whatever their shape
    (aiohttp's multidict, or slack-sdk's dict of lists)."""
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            value = value[0] if isinstance(value, (list, tuple)) else value
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def check_response_url(status: int, headers: Mapping[str, Any]) -> None:
    """bolt's `respond()` returns the webhook's answer instead of raising: a response_url
    takes 5 posts within 30 minutes (Slack's interactivity docs), then answers 404."""
    if status == 429:
        raise Retry("rate limited", retry_after(headers))
    if status >= 500:
        raise Retry(f"HTTP {status}")
    if status in (403, 404, 410):
        raise Unreachable("reply_link_expired")


@contextlib.contextmanager
def delivery_errors() -> Iterator[None]:
    """Slack's answer to a send, in the outbox's terms: `Retry` (rate limit, outage, network)
    or `Unreachable` (a refusal that will not change); anything else is a bug and propagates."""
    try:
        yield
    except SlackApiError as error:
        code = str(error.response.get("error") or "")
        status = int(getattr(error.response, "status_code", 0) or 0)
        if status == 429 or code in TRANSIENT or status >= 500:
            raise Retry(code or f"HTTP {status}", retry_after(getattr(error.response, "headers", None) or {})) from None
        if code in REFUSED:
            raise Unreachable(REFUSED[code]) from None
        raise
    except NETWORK_ERRORS as error:
        raise Retry(type(error).__name__) from None
