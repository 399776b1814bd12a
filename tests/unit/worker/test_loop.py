"""The fetch loop and the drain, with notices from a queue and the in-memory server (nothing spawned)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from noetl.worker.api import ServerApi
from noetl.worker.drain import DrainBudget
from noetl.worker.job import JobSettings
from noetl.worker.loop import WorkerLoop
from noetl.worker.signals import StopRequest
from tests.unit.worker.fakes import FakeMsg, FakeServer, QueueSource, ScriptedTools


def make_loop(
    server: FakeServer, tools: ScriptedTools, concurrency: int = 2, budget: DrainBudget | None = None
) -> tuple[WorkerLoop, QueueSource, StopRequest]:
    source, stop = QueueSource(), StopRequest()
    loop = WorkerLoop(
        source,
        cast(ServerApi, server),
        JobSettings(worker_id="w1", lease=30.0),
        concurrency,
        stop,
        budget or DrainBudget(drain=5.0, leave=6.0),
        runner=tools,
        fetch_timeout=0.05,
    )
    return loop, source, stop


async def until(predicate: Any, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


def test_runs_every_notice_and_never_more_than_concurrency_at_once() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        loop, source, stop = make_loop(server, tools, concurrency=3)
        msgs = []
        for i in range(10):
            server.add(f"c{i}", {"kind": "shell", "name": f"c{i}"})
            msgs.append(source.put(FakeMsg.notice(f"c{i}")))
        task = asyncio.ensure_future(loop.run())
        await until(lambda: tools.running == 3)
        await asyncio.sleep(0.05)  # the loop had every chance to start a fourth
        assert tools.running == 3
        assert source.queue.qsize() == 7  # and it did not even fetch one it could not run
        for i in range(10):
            tools.finish(f"c{i}")
        await until(lambda: all(m.settled for m in msgs))
        stop.request()
        await asyncio.wait_for(task, 3)
        assert tools.most_at_once == 3
        assert sorted(tools.started) == sorted(f"c{i}" for i in range(10))
        assert all(m.settled == ["ack"] for m in msgs)
        assert all(server.types(f"c{i}") == ["started", "completed"] for i in range(10))

    asyncio.run(scenario())


def test_idle_fetches_are_not_errors() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        loop, source, stop = make_loop(server, tools)
        task = asyncio.ensure_future(loop.run())
        await asyncio.sleep(0.2)  # several fetch timeouts: several empty fetches
        server.add("c1", {"kind": "shell", "name": "late"})
        msg = source.put(FakeMsg.notice("c1"))
        await until(lambda: msg.settled == ["ack"])
        stop.request()
        await asyncio.wait_for(task, 3)
        assert tools.started == ["late"]

    asyncio.run(scenario())


def test_stop_lets_running_commands_finish_within_the_drain() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        loop, source, stop = make_loop(server, tools)
        server.add("c1", {"kind": "shell", "name": "a"})
        msg = source.put(FakeMsg.notice("c1"))
        task = asyncio.ensure_future(loop.run())
        await until(lambda: tools.running == 1)
        stop.request()
        # A notice that arrives after the stop is not taken.
        server.add("c2", {"kind": "shell", "name": "b"})
        late = source.put(FakeMsg.notice("c2"))
        await asyncio.sleep(0.05)
        assert not task.done()  # still draining: c1 runs
        tools.finish("a")
        await asyncio.wait_for(task, 3)
        assert server.types("c1") == ["started", "completed"]
        assert msg.settled == ["ack"]
        assert "b" not in tools.started
        assert late.settled in ([], ["nak"])  # never claimed: left for another worker

    asyncio.run(scenario())


def test_commands_still_running_at_the_drain_deadline_are_released() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        loop, source, stop = make_loop(server, tools, budget=DrainBudget(drain=0.2, leave=2.0))
        server.add("c1", {"kind": "shell", "name": "forever"})
        msg = source.put(FakeMsg.notice("c1"))
        task = asyncio.ensure_future(loop.run())
        await until(lambda: tools.running == 1)
        stop.request()
        await asyncio.wait_for(task, 3)
        assert tools.cancelled == ["forever"]
        assert server.types("c1") == ["started", "released"]
        assert server.commands["c1"].status == "pending"
        assert msg.settled == ["ack"]

    asyncio.run(scenario())


def test_a_second_stop_releases_at_once() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        # A drain of an hour: only the second stop can end this promptly.
        loop, source, stop = make_loop(server, tools, budget=DrainBudget(drain=3600, leave=3601))
        server.add("c1", {"kind": "shell", "name": "long"})
        source.put(FakeMsg.notice("c1"))
        task = asyncio.ensure_future(loop.run())
        await until(lambda: tools.running == 1)
        stop.request("SIGTERM")
        await asyncio.sleep(0.05)
        assert not task.done()
        stop.request("SIGTERM")
        await asyncio.wait_for(task, 3)
        assert tools.cancelled == ["long"]
        assert server.types("c1") == ["started", "released"]

    asyncio.run(scenario())


def test_running_lists_the_commands_this_worker_holds() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        loop, source, stop = make_loop(server, tools)
        server.add("c1", {"kind": "shell", "name": "a"})
        source.put(FakeMsg.notice("c1"))
        task = asyncio.ensure_future(loop.run())
        await until(lambda: tools.running == 1)
        assert loop.running() == ["c1"]
        tools.finish("a")
        await until(lambda: loop.running() == [])
        stop.request()
        await asyncio.wait_for(task, 3)

    asyncio.run(scenario())
