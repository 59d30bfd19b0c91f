"""Socket Mode: apps.connections.open's ws:// link, hello, acks, disconnects."""

from __future__ import annotations

import json
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from .model import _Socket

log = logging.getLogger("standins.slack")


class _SocketModeMixin:
    """Socket Mode: apps.connections.open's ws:// link, hello, acks, disconnects."""

    # ------------------------------------------------------------------ Socket Mode

    async def _handle_link(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        ws = web.WebSocketResponse(timeout=2.0)  # autoping answers the client's pings
        await ws.prepare(request)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets) + 1,
                "debug_info": {"host": "applink-standin", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        socket = _Socket(ws, request.transport)  # type: ignore[arg-type]
        self._sockets.append(socket)
        self.socket_connections += 1
        log.info("Socket Mode client connected (%d open)", len(self._sockets))
        self._notify()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_socket_text(message.data)
        finally:
            self._sockets.remove(socket)
            log.info("Socket Mode client disconnected (%d open)", len(self._sockets))
            self._notify()
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            ack = json.loads(data)
            envelope_id = ack["envelope_id"]
        except (json.JSONDecodeError, KeyError, TypeError):
            log.warning("Socket Mode client sent something that is not an ack")
            return
        self.acks[envelope_id] = ack.get("payload")
        future = self._pending_acks.pop(envelope_id, None)
        if future is not None and not future.done():
            future.set_result(ack.get("payload"))

    async def wait_for_socket(self, timeout: float = 10.0) -> None:
        """Until a Socket Mode client is connected and has had its hello."""
        try:
            await self._wait(lambda: bool(self._open_sockets()), timeout)
        except TimeoutError:
            raise AssertionError(f"no Socket Mode client connected within {timeout:g}s") from None

    async def drop_socket(self) -> None:
        """Cuts the newest connection without a close frame, as a network failure would;
        the client notices on its next ping and reconnects through apps.connections.open."""
        sockets = self._open_sockets()
        if not sockets:
            raise AssertionError("no Socket Mode connection to drop")
        socket = sockets[-1]
        if socket.transport is not None:
            socket.transport.abort()
        await self._wait(lambda: socket not in self._sockets, 5.0)

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's polite "please reconnect": the client opens a new connection, then closes this one."""
        sockets = self._open_sockets()
        if not sockets:
            raise AssertionError("no Socket Mode connection to send a disconnect to")
        await sockets[-1].ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-standin"}})

    def _open_sockets(self) -> list[_Socket]:
        return [s for s in self._sockets if not s.ws.closed]

    async def _close_sockets(self, app: web.Application) -> None:
        for socket in list(self._sockets):
            await socket.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
