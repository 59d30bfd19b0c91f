"""Live figures for operations: Prometheus metrics served at `/metrics` on the `[health]` port.

Counters are per process (each worker serves its own `/metrics`; Prometheus sums them). No
label names a fan, a moderator, a conversation or an intent: labels are the platform (one
per connector), the reply kind (`bot.messages.Kind`) and the handoff step, all bounded.
Counts come from the minimized events this process records (`bot.privacy.events`), so a
handoff move decided by another worker is counted there, once. The queue length is read
from the database when scraped. Scrape config: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.privacy import events
from bot.privacy.events import Event

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds; a reply waits on the model server (about 15 ms) and the store, an ack on nothing.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0)
HANDOFF_STEPS = {
    events.HANDOFF_OPENED: "opened",
    events.HANDOFF_CLAIMED: "claimed",
    events.HANDOFF_RESOLVED: "resolved",
    events.HANDOFF_CANCELLED: "cancelled",
    events.HANDOFF_TIMEOUT: "timeout",
    events.HANDOFF_UNREACHABLE: "unreachable",
}


class Metrics:
    """This process's figures, in a registry of its own (not the library's global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter("fan_assistant_messages", "Assistant messages sent to fans, by platform and kind", ["platform", "kind"], registry=r)
        self.fallbacks = Counter("fan_assistant_fallbacks", "Fallback answers (the model was unsure), by platform", ["platform"], registry=r)
        self.handoffs = Counter("fan_assistant_handoffs", "Handoff steps decided by this process", ["step"], registry=r)
        self.erasures = Counter("fan_assistant_erasures", "Erasures completed by this process", registry=r)
        self.exports = Counter("fan_assistant_exports", "Data exports served by this process", registry=r)
        self.model_server_errors = Counter("fan_assistant_model_server_errors", "Messages the model server did not answer", registry=r)
        self.queue_length = Gauge("fan_assistant_handoff_queue_length", "Open handoff tickets nobody has claimed (read at scrape)", registry=r)
        self.reply_latency = Histogram(
            "fan_assistant_reply_latency_seconds", "From a fan's message reaching the core to its replies being ready",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ack_latency = Histogram(
            "fan_assistant_ack_latency_seconds", "From a platform event reaching the connector to its acknowledgement",
            ["platform"], buckets=ACK_BUCKETS, registry=r,
        )  # fmt: skip
        events.observe(self.count)

    def count(self, event: Event) -> None:
        if event.kind == events.REPLY:
            platform = event.platform or "unknown"
            self.messages.labels(platform, event.reason or "unknown").inc()
            if event.reason == "fallback":
                self.fallbacks.labels(platform).inc()
        elif event.kind in HANDOFF_STEPS:
            self.handoffs.labels(HANDOFF_STEPS[event.kind]).inc()
        elif event.kind == events.ERASURE:
            self.erasures.inc()
        elif event.kind == events.EXPORT:
            self.exports.inc()

    def replied(self, seconds: float) -> None:
        self.reply_latency.observe(seconds)

    def acked(self, platform: str, seconds: float) -> None:
        self.ack_latency.labels(platform).observe(seconds)

    async def exposition(self, queue_length: Optional[Callable[[], Awaitable[int]]] = None) -> bytes:
        """The text format; the queue length is read first when a reader is given."""
        if queue_length is not None:
            try:
                self.queue_length.set(await queue_length())
            except Exception:  # the store is down: /readyz says so; the gauge keeps its last value
                pass
        return generate_latest(self.registry)


METRICS = Metrics()
