"""`/healthz` and `/readyz` for process supervisors and load balancers.

`/healthz`: the process is alive and its event loop answers. `/readyz`: it can serve fans now:
the store is usable (the last check of `bot.privacy.health` passed) and a model server
answers. Problems are named by part only ("store", "model server"): details, which may name
files or hosts, go to the log. Off unless `[health] port` is set; loopback by default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from aiohttp import web

from bot.engine.remote import ModelServerEngine

logger = logging.getLogger(__name__)


@dataclass
class Readiness:
    """What `/readyz` reports; `store_problem` is set by the store's health watch."""

    engine: ModelServerEngine
    store_problem: Optional[str] = "not checked yet"

    async def problems(self) -> list[str]:
        found = []
        if self.store_problem is not None:
            found.append("store not usable")
        if self.engine.starting or not await self.engine.ready():
            found.append("model server not ready")
        return found


class HealthServer:
    def __init__(self, readiness: Readiness, host: str, port: int) -> None:
        self._readiness = readiness
        self._host, self._port = host, port
        self._runner: Optional[web.AppRunner] = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = await self._readiness.problems()
        return web.json_response({"ready": not problems, "problems": problems}, status=503 if problems else 200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
