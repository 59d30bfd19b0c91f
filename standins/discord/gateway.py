"""The gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME with replay, dispatches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any, Optional

from aiohttp import WSMsgType, web

from .model import (
    _INTENT_NAMES,
    API_VERSION,
    MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
    Json,
    _Connection,
    _required_intent,
    _send_quietly,
    _Session,
)

log = logging.getLogger("standins.discord")


class _GatewayMixin:
    """The gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME with replay, dispatches."""

    # ---------------------------------------------------------------- gateway control

    async def drop_gateway(self, code: Optional[int] = 4000, *, hold: bool = False) -> None:
        """Close the client's gateway connection (code None: drop TCP without a close frame).

        With a resumable code the client reconnects and RESUMEs; events dispatched in
        between are buffered and replayed. `hold=True` keeps new connections waiting for
        HELLO until `release_gateway()`, so a test can dispatch while the client is away."""
        if hold and self._gateway_open is not None:
            self._gateway_open.clear()
        session = self._session
        if session is None or session.ws is None:
            return
        async with session.lock:
            ws, session.ws, session.live = session.ws, None, False
        log.info("dropping the gateway connection (code %s)", code)
        conn = self._connections.get(ws)
        if code is None:
            transport = conn.request.transport if conn is not None else None
            if transport is not None:
                transport.abort()
        else:
            await self._close_ws(ws, code, b"stand-in drop")

    def release_gateway(self) -> None:
        """Let held connections get HELLO (see `drop_gateway(hold=True)`)."""
        if self._gateway_open is not None:
            self._gateway_open.set()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and resumes."""
        await self._send_op(7, None)

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION. Not resumable: discord.py waits 5 s, then IDENTIFYs again."""
        session = self._session
        if session is not None and not resumable:
            self._sessions.pop(session.id, None)
        await self._send_op(9, resumable)

    # ---------------------------------------------------------------- gateway internals

    def _require_session(self) -> _Session:
        if self._session is None:
            raise RuntimeError("no discord client is connected to the stand-in yet "
                               "(in tests: await standin.wait_until_connected())")
        return self._session

    async def _send_op(self, op: int, data: Any) -> None:
        session = self._require_session()
        if session.ws is not None:
            await self._send_frame(session, session.ws, {"op": op, "d": data, "s": None, "t": None})

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = self._connections[ws] = _Connection(ws=ws, request=request)
        try:
            assert self._gateway_open is not None
            await self._gateway_open.wait()
            if ws.closed:
                return ws
            hello = {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval, "_trace": ["discord-standin"]},
                     "s": None, "t": None}
            await _send_quietly(ws, hello)
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    payload = json.loads(msg.data)
                except (ValueError, UnicodeDecodeError):
                    await self._close_ws(ws, 4002, b"Error while decoding payload.")
                    break
                await self._on_op(conn, payload)
        finally:
            if conn.closing is not None:
                # Returning first would let aiohttp close with 1000 before our code goes out.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(conn.closing.wait(), 6.0)
            self._connections.pop(ws, None)
            session = conn.session
            if session is not None and session.ws is ws:
                session.ws, session.live = None, False
        return ws

    async def _on_op(self, conn: _Connection, payload: Json) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            self.heartbeats += 1
            await _send_quietly(conn.ws, {"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(conn, data or {})
        elif op == 6:
            await self._resume(conn, data or {})
        elif op == 8:
            await self._request_members(conn, data or {})
        elif op in (3, 4):
            log.debug("ignoring gateway op %s", op)
        else:
            log.warning("unknown gateway op %s", op)

    async def _identify(self, conn: _Connection, data: Json) -> None:
        if conn.session is not None:
            await self._close_ws(conn.ws, 4005, b"Already authenticated.")
            return
        if data.get("token") != self.token:
            log.info("IDENTIFY with a wrong token: closing with 4004")
            await self._close_ws(conn.ws, 4004, b"Authentication failed.")
            return
        intents = int(data.get("intents") or 0)
        if self.allowed_intents is not None and intents & PRIVILEGED_INTENTS & ~self.allowed_intents:
            log.info("IDENTIFY asks for privileged intents that are not enabled: closing with 4014")
            await self._close_ws(conn.ws, 4014, b"Disallowed intent(s).")
            return
        self.identifies += 1
        self.identified_intents = intents
        session = _Session(id=secrets.token_hex(16), intents=intents, shard=data.get("shard"), ws=conn.ws)
        conn.session = session
        self._sessions[session.id] = session
        self._session = session
        self._pending.clear()  # READY and GUILD_CREATE carry the current state
        log.info("client identified (intents %s), session %s", intents, session.id[:8])
        async with session.lock:
            ready: Json = {
                "v": API_VERSION, "user": self._bot_user(), "guilds": [{"id": str(g), "unavailable": True} for g in self._guilds],
                "session_id": session.id, "session_type": "normal", "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.app_id), "flags": self._application_flags()},
                "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
                "user_settings": {}, "geo_ordered_rtc_regions": [], "auth": {}, "_trace": ["discord-standin"],
            }
            if session.shard is not None:
                ready["shard"] = session.shard
            session.live = True
            await self._emit(session, "READY", ready)
            for guild in self._guilds.values():
                await self._emit(session, "GUILD_CREATE", self._guild_create(guild))
        assert self._connected is not None
        self._connected.set()

    async def _resume(self, conn: _Connection, data: Json) -> None:
        if data.get("token") != self.token:
            await self._close_ws(conn.ws, 4004, b"Authentication failed.")
            return
        session = self._sessions.get(str(data.get("session_id")))
        if session is None:
            log.info("RESUME of an unknown session: invalid session")
            await _send_quietly(conn.ws, {"op": 9, "d": False, "s": None, "t": None})
            return
        seq = int(data.get("seq") or 0)
        if seq > session.seq:
            await self._close_ws(conn.ws, 4007, b"Invalid seq.")
            return
        async with session.lock:
            old = session.ws
            session.ws, conn.session, self._session = conn.ws, session, session
            if old is not None and old is not conn.ws:
                asyncio.get_running_loop().create_task(self._close_ws(old, 4000, b"resumed elsewhere"))
            await self._flush_pending(session)
            missed = [frame for frame in session.frames if frame["s"] > seq]
            for frame in missed:
                await self._send_frame(session, conn.ws, frame)
            session.live = True
            self.resumes += 1
            log.info("client resumed session %s, replayed %d event(s)", session.id[:8], len(missed))
            await self._emit(session, "RESUMED", {"_trace": ["discord-standin"]})

    async def _request_members(self, conn: _Connection, data: Json) -> None:
        session = conn.session
        guild = self._guilds.get(int(data.get("guild_id") or 0))
        if session is None or guild is None:
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        query = str(data.get("query") or "").lower()
        members = [self._member_with_user(guild, uid) for uid in guild.members
                   if (not wanted or uid in wanted) and self._users[uid]["username"].lower().startswith(query)]
        chunk = {"guild_id": str(guild.id), "members": members, "chunk_index": 0, "chunk_count": 1, "not_found": []}
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        async with session.lock:
            await self._emit(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _dispatch(self, session: _Session, event: str, data: Json) -> bool:
        async with session.lock:
            await self._flush_pending(session)
            return await self._emit(session, event, data)

    async def _dispatch_if_connected(self, event: str, data: Json) -> None:
        if self._session is not None:
            await self._dispatch(self._session, event, data)

    def _queue_event(self, event: str, build: Callable[[], Json]) -> None:
        """World changes after a client connected reach it as events, in order with the rest."""
        if self._session is None:
            return
        self._pending.append((event, build()))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        session = self._session
        loop.create_task(self._dispatch_pending(session))

    async def _dispatch_pending(self, session: _Session) -> None:
        async with session.lock:
            await self._flush_pending(session)

    async def _flush_pending(self, session: _Session) -> None:
        pending, self._pending = self._pending, []
        for event, data in pending:
            await self._emit(session, event, data)

    async def _emit(self, session: _Session, event: str, data: Json) -> bool:
        """Sequence, buffer and (when connected) send one dispatch. Hold `session.lock`."""
        needed = _required_intent(event, data)
        if needed and not session.intents & needed:
            log.info("not dispatching %s: the client did not ask for the %s intent", event, _INTENT_NAMES[needed])
            return False
        data = self._as_seen_by(session, event, data)
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.frames.append(frame)
        if session.ws is not None and session.live:
            await self._send_frame(session, session.ws, frame)
        else:
            log.debug("buffered %s (s=%d) for the next RESUME", event, session.seq)
        return True

    async def _send_frame(self, session: _Session, ws: web.WebSocketResponse, frame: Json) -> None:
        try:
            await ws.send_str(json.dumps(frame))
        except Exception as exc:  # the connection went away: the frame stays in the replay buffer
            log.debug("gateway send failed (%s); keeping the event for RESUME", type(exc).__name__)
            if session.ws is ws:
                session.ws, session.live = None, False

    def _as_seen_by(self, session: _Session, event: str, data: Json) -> Json:
        """Without MESSAGE_CONTENT, guild messages lose their content unless they mention the bot."""
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or session.intents & MESSAGE_CONTENT:
            return data
        if "guild_id" not in data or int(data.get("author", {}).get("id", 0)) == self.bot_user_id:
            return data
        if any(int(u["id"]) == self.bot_user_id for u in data.get("mentions", [])):
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    async def _close_ws(self, ws: web.WebSocketResponse, code: int, message: bytes) -> None:
        conn = self._connections.get(ws)
        done = asyncio.Event()
        if conn is not None and conn.closing is None:
            conn.closing = done
        try:
            await asyncio.wait_for(ws.close(code=code, message=message), 5.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            done.set()
