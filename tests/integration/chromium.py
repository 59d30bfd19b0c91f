"""Debian's Chromium, headless, driven over the DevTools protocol (CDP) with aiohttp: opens a
file, records every network request the page makes (`Network.requestWillBeSent`, which
also lists `data:` and `file:` loads), evaluates an expression and takes a screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--remote-debugging-port=0",
]


def available() -> bool:
    return Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is not None


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    value: Any = None  # the evaluated expression
    screenshot: bytes = b""


async def visit(page: Path, expression: str, profile: Path, width: int = 1000, height: int = 1400) -> PageVisit:
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        endpoint = await _devtools_url(process.stderr)
        async with aiohttp.ClientSession() as session, session.ws_connect(endpoint, max_msg_size=0) as socket:
            return await _drive(socket, page, expression, width, height)
    finally:
        process.terminate()
        await process.wait()


async def _devtools_url(stderr: asyncio.StreamReader) -> str:
    async def read() -> str:
        while line := await stderr.readline():
            found = re.search(rb"DevTools listening on (ws://\S+)", line)
            if found:
                return found.group(1).decode()
        raise RuntimeError("chromium exited before opening the DevTools port")

    return await asyncio.wait_for(read(), 60)


async def _drive(socket: aiohttp.ClientWebSocketResponse, page: Path, expression: str, width: int, height: int) -> PageVisit:
    ids = itertools.count(1)
    visit = PageVisit()
    loaded = asyncio.Event()
    pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def listen() -> None:
        async for message in socket:
            data = json.loads(message.data)
            if "id" in data and data["id"] in pending:
                pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Network.requestWillBeSent":
                visit.requests.append(data["params"]["request"]["url"])
            elif data.get("method") == "Page.loadEventFired":
                loaded.set()

    async def call(method: str, session: Optional[str] = None, **params: Any) -> dict[str, Any]:
        number = next(ids)
        pending[number] = asyncio.get_running_loop().create_future()
        await socket.send_json({"id": number, "method": method, "params": params, **({"sessionId": session} if session else {})})
        answer = await asyncio.wait_for(pending[number], 60)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    listener = asyncio.create_task(listen())
    try:
        target = (await call("Target.createTarget", url="about:blank"))["targetId"]
        session = (await call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
        await call("Network.enable", session)
        await call("Page.enable", session)
        await call("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", session, url=page.resolve().as_uri())
        await asyncio.wait_for(loaded.wait(), 60)
        result = await call("Runtime.evaluate", session, expression=expression, returnByValue=True, awaitPromise=True)
        visit.value = result["result"].get("value")
        shot = await call("Page.captureScreenshot", session, format="png")
        visit.screenshot = base64.b64decode(shot["data"])
        return visit
    finally:
        listener.cancel()
