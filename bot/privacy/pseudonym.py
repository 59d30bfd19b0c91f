"""Pseudonyms: the only identity that reaches the store, the logs and Rasa."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    """HMAC-SHA256 of platform-qualified ids: stable per fan, meaningless without the key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _digest(self, *parts: str) -> str:
        message = ":".join(parts).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def fan(self, platform: str, user_id: str) -> str:
        return self._digest(platform, user_id)

    def conversation(self, platform: str, conversation_id: str, user_id: str) -> str:
        """A fan's conversation in one place (a DM, a channel): disclosure is per conversation."""
        return self._digest("conversation", platform, conversation_id, user_id)

    def moderator(self, desk: str, moderator_id: str) -> str:
        """Moderators are named in the audit log and tickets by pseudonym too."""
        return self._digest("moderator", desk, moderator_id)

    def delivery(self, key: str) -> str:
        """A platform delivery (event id, message key) as the dedupe table keeps it."""
        return self._digest("delivery", key)

    def tag(self, *parts: str) -> str:
        """A short keyed tag (64 bits) binding `parts`, e.g. a rated answer to its fan."""
        return self._digest("tag", *parts)[:16]
