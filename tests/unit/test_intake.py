"""The intake (connectors.intake): fans' messages wait as records, each fan's in order, at
most `concurrency` in the pipeline, a bounded number waiting."""

from __future__ import annotations

import asyncio

import pytest

from bot.engine import ARRIVED
from connectors.intake import Intake


async def test_each_fans_messages_are_handled_in_order_and_at_most_concurrency_at_once() -> None:
    running, most, done = 0, 0, []
    gate = asyncio.Event()

    async def handle(record: tuple[str, int]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        await asyncio.sleep(0)
        done.append(record)
        running -= 1

    intake: Intake[tuple[str, int]] = Intake(handle, concurrency=3)
    for n in range(5):
        for fan in ("a", "b", "c", "d", "e", "f"):
            assert intake.offer(fan, (fan, n))
    await asyncio.sleep(0.01)
    assert len(intake) == 30
    # Only the workers exist: the waiting messages are records, not tasks of their own.
    assert running == 3 and len([t for t in asyncio.all_tasks() if t.get_name() == "intake-"]) == 3
    gate.set()
    assert await intake.drain(5) == 0
    assert most == 3 and len(done) == 30
    for fan in ("a", "b", "c", "d", "e", "f"):
        assert [n for who, n in done if who == fan] == [0, 1, 2, 3, 4]


async def test_a_fan_writing_again_while_being_answered_waits_for_the_first_answer() -> None:
    order: list[str] = []
    first_started = asyncio.Event()
    release = asyncio.Event()

    async def handle(record: str) -> None:
        order.append(f"start {record}")
        if record == "1":
            first_started.set()
            await release.wait()
        order.append(f"end {record}")

    intake: Intake[str] = Intake(handle, concurrency=4)
    intake.offer("fan", "1")
    await first_started.wait()
    intake.offer("fan", "2")  # more workers are free, yet the fan's second message waits
    await asyncio.sleep(0.01)
    assert order == ["start 1"]
    release.set()
    await intake.drain(5)
    assert order == ["start 1", "end 1", "start 2", "end 2"]


async def test_past_capacity_an_offer_is_refused_and_nothing_taken_is_lost() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(record: int) -> None:
        await gate.wait()
        handled.append(record)

    intake: Intake[int] = Intake(handle, concurrency=1, capacity=3)
    assert [intake.offer(n, n) for n in range(5)] == [True, True, True, False, False]
    gate.set()
    assert await intake.drain(5) == 0
    assert sorted(handled) == [0, 1, 2]
    assert intake.offer(9, 9)  # room again
    assert await intake.drain(5) == 0


async def test_a_failing_message_is_logged_by_type_and_stops_nothing(caplog: pytest.LogCaptureFixture) -> None:
    handled: list[str] = []

    async def handle(record: str) -> None:
        if record == "bad":
            raise ValueError("the fan's words must not reach the log")
        handled.append(record)

    intake: Intake[str] = Intake(handle, concurrency=1, platform="slack")
    for record in ("bad", "good", "also good"):
        intake.offer("fan", record)
    assert await intake.drain(5) == 0
    assert handled == ["good", "also good"]
    assert "handling a waiting slack message failed: ValueError" in caplog.text
    assert "fan's words" not in caplog.text


async def test_drain_says_how_many_were_not_answered_in_time() -> None:
    never = asyncio.Event()

    async def handle(record: int) -> None:
        await never.wait()

    intake: Intake[int] = Intake(handle, concurrency=2)
    for n in range(5):
        intake.offer(n, n)
    assert await intake.drain(0.05) == 5


async def test_the_handler_sees_when_its_message_arrived() -> None:
    now = [100.0]
    seen: list[float | None] = []
    gate = asyncio.Event()

    async def handle(record: int) -> None:
        await gate.wait()
        seen.append(ARRIVED.get())

    intake: Intake[int] = Intake(handle, concurrency=1, clock=lambda: now[0])
    intake.offer("a", 1)
    now[0] = 130.0
    intake.offer("b", 2)
    gate.set()
    await intake.drain(5)
    assert seen == [100.0, 130.0]  # what waited while its fan was erased is dropped by these (bot.core)
    assert ARRIVED.get() is None  # the workers' own context, not the caller's


async def test_a_handler_raising_cancelled_error_stops_no_one() -> None:
    handled: list[str] = []

    async def handle(record: str) -> None:
        if record == "boom":
            raise asyncio.CancelledError  # e.g. awaiting a future someone cancelled
        handled.append(record)

    intake: Intake[str] = Intake(handle, concurrency=1)
    for fan, record in (("a", "boom"), ("a", "second"), ("b", "other")):
        intake.offer(fan, record)
    assert await intake.drain(2) == 0
    assert handled == ["second", "other"]


async def test_a_worker_cancelled_at_shutdown_leaves_the_fans_turn_for_the_next() -> None:
    handled: list[str] = []
    started = asyncio.Event()
    never = asyncio.Event()

    async def handle(record: str) -> None:
        if record == "stuck":
            started.set()
            await never.wait()
        handled.append(record)

    intake: Intake[str] = Intake(handle, concurrency=1)
    intake.offer("fan", "stuck")
    intake.offer("fan", "second")
    await started.wait()
    (worker,) = [t for t in asyncio.all_tasks() if t.get_name() == "intake-"]
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    intake.offer("fan", "third")  # a new worker takes the fan's turn again
    assert await intake.drain(2) == 0
    assert handled == ["second", "third"]
