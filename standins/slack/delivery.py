"""Delivering to the bot over Socket Mode or as signed HTTP POSTs, with Slack's redelivery of unacked events."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Optional
from urllib.parse import urlencode

import aiohttp

from .model import SLACKBOT_UA, Delivery, SentMessage

log = logging.getLogger("standins.slack")


class _DeliveryMixin:
    """Delivering to the bot over Socket Mode or as signed HTTP POSTs, with Slack's redelivery of unacked events."""

    async def _deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        mode: Optional[str],
        retry: int,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """One delivery, plus Slack's redelivery of an events_api payload nobody acked in time."""
        mode = mode or self.mode
        if mode not in ("socket", "http"):
            raise ValueError(f"mode must be 'socket' or 'http', not {mode!r}")
        attempts = 0
        while True:
            attempts += 1
            if mode == "socket":
                delivery = await self._deliver_socket(kind, payload, retry)
            else:
                delivery = await self._deliver_http(kind, payload, retry, signature, timestamp)
            delivery.attempts = attempts
            self.deliveries.append(delivery)
            self._record_ack_reply(delivery)
            if delivery.status or kind != "events_api" or not self.redeliver_unacked or attempts > self.max_redeliveries:
                return delivery
            retry += 1

    async def _deliver_socket(self, kind: str, payload: dict[str, Any], retry: int) -> Delivery:
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "slash_commands",
        }
        if kind == "events_api":  # Slack sends the retry fields with events only
            envelope.update(retry_attempt=retry, retry_reason="" if retry == 0 else "timeout")
        envelope_id = envelope["envelope_id"]
        future: asyncio.Future[Optional[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = future
        started = await self._send_envelope(envelope)
        event_id = payload.get("event_id")
        try:
            ack = await asyncio.wait_for(future, self.ack_timeout)
        except TimeoutError:  # a late ack still lands in `acks`
            self._pending_acks.pop(envelope_id, None)
            log.info("envelope %s (%s) not acked within %gs", envelope_id, kind, self.ack_timeout)
            return Delivery(kind, "socket", payload, 0, event_id=event_id, envelope_id=envelope_id, retry=retry)
        latency = (time.monotonic() - started) * 1000
        body = json.dumps(ack) if ack is not None else ""
        return Delivery(kind, "socket", payload, 200, body, ack, event_id, envelope_id, latency, retry)

    async def _send_envelope(self, envelope: dict[str, Any]) -> float:
        """Sends to the newest connection, waiting for one if none is open; returns the send time."""
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                await self._wait(lambda: bool(self._open_sockets()), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self._pending_acks.pop(envelope["envelope_id"], None)
                raise AssertionError(f"no Socket Mode client connected within {self.connect_timeout:g}s") from None
            socket = self._open_sockets()[-1]
            started = time.monotonic()
            try:
                await socket.ws.send_str(json.dumps(envelope))
            except (ConnectionError, RuntimeError):
                await socket.ws.close()  # gone under us: wait for the client's next connection
                continue
            self.envelopes.append(envelope)
            log.debug("sent envelope %s (%s)", envelope["envelope_id"], envelope["type"])
            return started

    async def _deliver_http(
        self,
        kind: str,
        payload: dict[str, Any],
        retry: int,
        signature: Optional[str],
        timestamp: Optional[str],
    ) -> Delivery:
        if not self.http_target or self._session is None:
            raise RuntimeError("HTTP mode needs a started stand-in and `http_target`")
        if kind == "events_api":
            body, content_type = json.dumps(payload, ensure_ascii=False).encode(), "application/json"
        elif kind == "slash_commands":
            body, content_type = urlencode(payload).encode(), "application/x-www-form-urlencoded"
        else:
            body = urlencode({"payload": json.dumps(payload, ensure_ascii=False)}).encode()
            content_type = "application/x-www-form-urlencoded"
        timestamp = timestamp or str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "User-Agent": SLACKBOT_UA,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature or str(self._verifier.generate_signature(timestamp=timestamp, body=body)),
        }
        if retry:
            headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
        event_id = payload.get("event_id")
        started = time.monotonic()
        try:
            async with self._session.post(
                self.http_target, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.ack_timeout)
            ) as response:
                text = await response.text()
                status = response.status
        except TimeoutError:
            log.info("%s delivery not answered within %gs", kind, self.ack_timeout)
            return Delivery(kind, "http", payload, 0, event_id=event_id, retry=retry)
        latency = (time.monotonic() - started) * 1000
        ack: Optional[dict[str, Any]] = None
        if text.startswith("{"):
            ack = json.loads(text)
        elif text:
            ack = {"text": text}
        return Delivery(kind, "http", payload, status, text, ack, event_id, None, latency, retry)

    def _record_ack_reply(self, delivery: Delivery) -> None:
        """A slash command's ack with text is shown to the user, like a response_url message."""
        ack = delivery.ack_payload
        if delivery.kind != "slash_commands" or not delivery.acked or not ack:
            return
        if ack.get("text") is None and ack.get("blocks") is None:
            return
        self._record_sent(
            SentMessage(
                "ack",
                delivery.payload.get("channel_id"),
                ack.get("text"),
                ack.get("blocks"),
                user=delivery.payload.get("user_id"),
                response_type=ack.get("response_type", "ephemeral"),
                raw=ack,
            )
        )
