"""Discord's answers to a send, in the outbox's terms (see connectors/outbox.py).

discord.py already waits out 429s itself (up to 5 tries, honouring `retry_after`) and
retries 5xx; what still fails is either worth another try later (`Retry`) or a refusal
that will not change for that recipient (`Unreachable`). Codes: Discord's JSON error codes
(discord.com/developers/docs/topics/opcodes-and-status-codes#json).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import discord

from connectors.base import NETWORK_ERRORS
from connectors.outbox import Retry, Unreachable

#: Discord JSON error code -> the outbox's reason code.
REFUSED = {
    50007: "dms_closed",  # Cannot send messages to this user (closed DMs, blocked, no shared server)
    50013: "no_permission",  # Missing Permissions
    50001: "no_permission",  # Missing Access
    10003: "conversation_gone",  # Unknown Channel
    10013: "user_disabled",  # Unknown User
    10015: "reply_link_expired",  # Unknown Webhook: an interaction token past its 15 minutes
    10062: "reply_link_expired",  # Unknown interaction
    50027: "reply_link_expired",  # Invalid Webhook Token
}


@contextlib.contextmanager
def delivery_errors() -> Iterator[None]:
    try:
        yield
    except discord.RateLimited as error:  # a wait longer than the client's max_ratelimit_timeout
        raise Retry("rate limited", error.retry_after) from None
    except discord.HTTPException as error:
        if error.code in REFUSED:
            raise Unreachable(REFUSED[error.code]) from None
        if error.status == 429 or error.status >= 500:
            raise Retry(f"HTTP {error.status}") from None
        raise
    except NETWORK_ERRORS as error:
        raise Retry(type(error).__name__) from None
