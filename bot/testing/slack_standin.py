"""Moved to `standins.slack`; this name stays so existing imports keep working."""

from standins.slack import Delivery, SentMessage, SlackStandIn

__all__ = ["Delivery", "SentMessage", "SlackStandIn"]
