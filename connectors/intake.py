"""Fans' messages between the platform's event and the pipeline, held as compact records:
each fan's in arrival order, at most `concurrency` of them in the pipeline at once.

Why (issue 11, `bench/soak.py`): a burst of thousands of fans arrives faster than the model
answers (one model server answers some 80 messages a second on this machine). Each message
used to wait as its own task, holding the SDK's payload dicts, the SDK's objects and every
frame between the event and the model's queue: some 10 KB each, 60 MB for 5,000 fans, which
the allocators kept after the burst (pymalloc frees an arena only when every object in it is
gone). Held here as a record of a few hundred bytes while it waits, the burst costs a few MB.

Only messages for the model wait here: slash commands, button clicks and the desk's messages
take their own path (acknowledged within the platforms' 3 seconds, and never behind a burst).
Logs carry counts and the error's type, never content or ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from bot.engine import ARRIVED

logger = logging.getLogger(__name__)

R = TypeVar("R")

#: Messages of different fans in the pipeline at once, per connector: enough to keep the model
#: server's places (`[engine] max_in_flight`, 4 by default) and the store's group commits full.
CONCURRENCY = 32
#: Messages waiting, per connector, before a fan is told to write again later: some 20 minutes
#: of a model server's full speed, and a few MB (`bench/soak.py`).
CAPACITY = 100_000
#: What a fan gets when the intake is full: honest, and itself says an AI is answering
#: (nothing else may reach a fan before the disclosure).
BUSY_TEXT = (
    "I'm the community's AI assistant, and more messages are reaching me than I can answer right now. "
    "Please send yours again in a few minutes, or use /human to reach a person."
)


class Intake(Generic[R]):
    """A queue per fan, and a few workers taking fans in the order their first waiting message
    came; a worker answers all of a fan's waiting messages, one after another, before the next
    fan, so one fan's messages are never handled out of order. Event loop only."""

    def __init__(
        self,
        handle: Callable[[R], Awaitable[None]],
        *,
        concurrency: int = CONCURRENCY,
        capacity: int = CAPACITY,
        platform: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1 or capacity < 1:
            raise ValueError("an intake needs at least one worker and one place")
        self._handle = handle
        self._concurrency = concurrency
        self._capacity = capacity
        self._platform = platform
        self._clock = clock
        # A fan's waiting messages with the time each arrived; one record is the usual case,
        # so a list (64 bytes), not a deque (600). A fan being answered keeps their entry.
        self._waiting: dict[Hashable, list[tuple[float, R]]] = {}
        self._turns: deque[Hashable] = deque()  # fans whose turn has not come yet, in order
        self._workers: set[asyncio.Task[None]] = set()  # referenced, so none is collected mid-way
        self._working = 0  # counted by the workers themselves: a finished task's callback comes later
        self._size = 0
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        """Messages taken and not yet answered (waiting, or in the pipeline)."""
        return self._size

    def offer(self, fan: Hashable, record: R) -> bool:
        """Queues `record` behind the fan's earlier messages; False when `capacity` messages
        already wait (the connector tells the fan to write again later). Synchronous: an SDK's
        handler returns at once, and what it held is freed."""
        if self._size >= self._capacity:
            return False
        queue = self._waiting.get(fan)
        if queue is None:
            queue = self._waiting[fan] = []
            self._turns.append(fan)
        queue.append((self._clock(), record))
        self._size += 1
        self._empty.clear()
        if self._working < self._concurrency and self._turns:
            self._working += 1
            worker = asyncio.create_task(self._work(), name=f"intake-{self._platform}")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        return True

    async def drain(self, timeout: float) -> int:
        """Waits up to `timeout` seconds for every message taken to be answered (shutdown);
        returns how many were not."""
        if self._size:
            try:
                await asyncio.wait_for(self._empty.wait(), timeout)
            except TimeoutError:
                pass
        return self._size

    async def _work(self) -> None:
        try:
            await self._take_turns()
        finally:
            self._working -= 1

    async def _take_turns(self) -> None:
        while self._turns:
            fan = self._turns.popleft()
            queue = self._waiting[fan]
            try:
                while queue:
                    arrived, record = queue[0]
                    ARRIVED.set(arrived)  # for the handler: when the message came (bot.engine.ARRIVED)
                    try:
                        await self._handle(record)
                    except asyncio.CancelledError:
                        task = asyncio.current_task()
                        if task is not None and task.cancelling():
                            raise  # this worker is being cancelled (shutdown)
                        logger.error("handling a waiting %s message failed: CancelledError", self._platform)
                    except Exception as error:  # the handler answers its own failures; this is a last resort
                        logger.error("handling a waiting %s message failed: %s", self._platform, type(error).__name__)
                    finally:
                        queue.pop(0)
                        self._size -= 1
            finally:
                if queue:  # cancelled midway: the fan's turn comes again, for the next worker
                    self._turns.appendleft(fan)
                else:
                    del self._waiting[fan]
                if not self._size:
                    self._waiting = {}  # after a burst: a dict keeps its grown table until rebuilt
                    self._empty.set()
