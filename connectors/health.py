"""`/healthz` and `/readyz` for process supervisors and load balancers.

`/healthz`: the process is alive and its event loop answers. `/readyz`: it can serve fans now:
the store is usable (the last check of `bot.privacy.health` passed), a model server answers,
and each connector this worker runs is connected. A Discord connector standing by while
another worker holds the gateway (`connectors.discord_gateway`) is ready, not connected, and
says so. Problems are named by part only ("store", "model server", "discord"): details, which
may name files or hosts, go to the log. `/metrics`: Prometheus text format (`bot.metrics`,
docs/metrics.md). Off unless `[health] port` is set; loopback by default.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol

from aiohttp import web

from bot.engine.remote import ModelServerEngine
from bot.metrics import CONTENT_TYPE, METRICS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    """A connector's connection to its platform, as `/readyz` shows it."""

    connected: bool
    #: Not connected on purpose: another worker serves this platform's connection.
    standby: bool = False
    note: str = ""

    @property
    def ready(self) -> bool:
        return self.connected or self.standby


class Linked(Protocol):
    name: str

    async def link(self) -> Link: ...


@dataclass
class Readiness:
    """What `/readyz` reports; `store_problem` is set by the store's health watch."""

    engine: ModelServerEngine
    store_problem: Optional[str] = "not checked yet"
    connectors: Sequence[Linked] = field(default_factory=list)

    async def links(self) -> dict[str, Link]:
        return {connector.name: await connector.link() for connector in self.connectors}

    async def report(self) -> dict[str, Any]:
        """The JSON body: `ready`, `problems`, and each connector's link."""
        found = []
        if self.store_problem is not None:
            found.append("store not usable")
        if self.engine.starting or not await self.engine.ready():
            found.append("model server not ready")
        links = await self.links()
        found.extend(f"{name} not connected" for name, link in links.items() if not link.ready)
        return {
            "ready": not found,
            "problems": found,
            "connectors": {name: {k: v for k, v in asdict(link).items() if v or k == "connected"} for name, link in links.items()},
        }

    async def problems(self) -> list[str]:
        problems: list[str] = (await self.report())["problems"]
        return problems


class HealthServer:
    def __init__(
        self, readiness: Readiness, host: str, port: int, queue_length: Optional[Callable[[], Awaitable[int]]] = None
    ) -> None:
        self._readiness = readiness
        self._queue_length = queue_length
        self._host, self._port = host, port
        self._runner: Optional[web.AppRunner] = None
        self.port: Optional[int] = None  # the bound port (useful with port 0)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        report = await self._readiness.report()
        return web.json_response(report, status=200 if report["ready"] else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await METRICS.exposition(self._queue_length)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        self.port = self._runner.addresses[0][1] if self._runner.addresses else self._port

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
