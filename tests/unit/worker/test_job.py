"""One notice from claim to ack, against the in-memory server (nothing spawned)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from noetl.protocol.nats import parse_notice
from noetl.worker.api import ApiRejected, ServerApi
from noetl.worker.job import Job, JobSettings
from tests.unit.worker.fakes import FakeMsg, FakeServer, ScriptedTools

SETTINGS = JobSettings(worker_id="w1", lease=30.0)


def make_job(server: FakeServer, msg: FakeMsg, tools: ScriptedTools, settings: JobSettings = SETTINGS) -> Job:
    return Job(msg, cast(ServerApi, server), settings, runner=tools)


async def until(predicate: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


def test_parse_notice() -> None:
    assert parse_notice(b'{"command_id": "c1", "attempt": 1}') == "c1"
    assert parse_notice(b"not json") is None
    assert parse_notice(b'["c1"]') is None
    assert parse_notice(b'{"command_id": ""}') is None
    assert parse_notice(b'{"command_id": 7}') is None


def test_claimed_command_runs_reports_started_then_completed_then_acks() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1", {"kind": "shell", "name": "a"})
        msg = FakeMsg.notice("c1")
        job = make_job(server, msg, tools)
        await job.run()
        assert tools.started == ["a"]
        assert server.types("c1") == ["started", "completed"]
        assert server.events[-1][3] == {"result": {"name": "a"}}
        assert msg.settled == ["ack"]
        assert job.outcome == "completed"

    asyncio.run(scenario())


def test_failed_tool_is_reported_failed_with_its_error() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1", {"kind": "shell", "name": "a", "fail": True})
        msg = FakeMsg.notice("c1")
        await make_job(server, msg, tools).run()
        assert server.types("c1") == ["started", "failed"]
        assert server.events[-1][3] == {"error": "it failed"}
        assert msg.settled == ["ack"]

    asyncio.run(scenario())


def test_claim_conflict_acks_and_skips_without_running() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1")
        server.commands["c1"].status = "completed"
        msg = FakeMsg.notice("c1")
        job = make_job(server, msg, tools)
        await job.run()
        assert tools.started == []
        assert server.events == []
        assert msg.settled == ["ack"]
        assert job.outcome == "skipped"

    asyncio.run(scenario())


def test_same_notice_twice_runs_once() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1", {"kind": "shell", "name": "a"})
        first, second = FakeMsg.notice("c1"), FakeMsg.notice("c1")
        await asyncio.gather(make_job(server, first, tools).run(), make_job(server, second, tools).run())
        assert tools.started == ["a"]
        assert server.types("c1") == ["started", "completed"]
        assert first.settled == second.settled == ["ack"]

    asyncio.run(scenario())


def test_malformed_notice_is_acked_and_dropped() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        msg = FakeMsg(b"{oops")
        job = make_job(server, msg, tools)
        await job.run()
        assert server.calls == []
        assert msg.settled == ["ack"]
        assert job.outcome == "malformed"

    asyncio.run(scenario())


def test_release_while_running_kills_the_tool_gives_the_lease_back_and_acks() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        server.add("c1", {"kind": "shell", "name": "slow"})
        msg = FakeMsg.notice("c1")
        job = make_job(server, msg, tools)
        task = asyncio.ensure_future(job.run())
        await until(lambda: tools.running == 1)
        assert job.holds_lease
        job.request_release(until=asyncio.get_running_loop().time() + 5)
        await task
        assert tools.cancelled == ["slow"]
        assert server.types("c1") == ["started", "released"]
        assert server.commands["c1"].status == "pending"
        assert msg.settled == ["ack"]
        assert job.outcome == "released"

    asyncio.run(scenario())


def test_release_requested_before_the_claim_hands_the_notice_back_unclaimed() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1")
        msg = FakeMsg.notice("c1")
        job = make_job(server, msg, tools)
        job.request_release(until=0)
        await job.run()
        assert server.calls == []
        assert msg.settled == ["nak"]

    asyncio.run(scenario())


def test_release_does_not_interrupt_a_command_that_is_reporting() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1", {"kind": "shell", "name": "a"})
        job = make_job(server, FakeMsg.notice("c1"), tools)
        job.phase = "reporting"
        job.request_release(until=0)
        job.phase = "new"
        await job.run()
        assert server.types("c1") == ["started", "completed"]

    asyncio.run(scenario())


def test_lost_lease_stops_the_tool_and_reports_nothing_more() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        server.add("c1", {"kind": "shell", "name": "slow"})
        msg = FakeMsg.notice("c1")
        # Heartbeats every 0.01 s: lease / 3.
        job = make_job(server, msg, tools, JobSettings(worker_id="w1", lease=0.03))
        task = asyncio.ensure_future(job.run())
        await until(lambda: tools.running == 1)
        await until(lambda: server.calls.count("heartbeat") >= 2)
        assert msg.progress >= 1  # the notice is kept from redelivery while the command runs
        server.steal("c1")
        await task
        assert tools.cancelled == ["slow"]
        assert server.types("c1") == ["started"]
        assert "completed" not in server.calls and "release" not in server.calls
        assert msg.settled == ["ack"]
        assert job.outcome == "lost"

    asyncio.run(scenario())


def test_a_result_the_server_refuses_becomes_a_failed_event_saying_why() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1", {"kind": "python", "name": "big"})
        server.reject_completed = ApiRejected(413, "request body too large")
        msg = FakeMsg.notice("c1")
        await make_job(server, msg, tools).run()
        assert server.types("c1") == ["started", "failed"]
        _, _, _, payload, seq = server.events[-1]
        assert "413" in payload["error"] and "too large" in payload["error"]
        assert seq == 2
        assert msg.settled == ["ack"]

    asyncio.run(scenario())


def test_server_unreachable_at_claim_returns_the_notice() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1")
        server.unreachable = True
        msg = FakeMsg.notice("c1")
        job = make_job(server, msg, tools)
        await job.run()
        assert tools.started == []
        assert msg.settled == ["nak"]

    asyncio.run(scenario())


def test_server_unreachable_for_the_result_returns_the_notice_unacked() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        server.add("c1", {"kind": "shell", "name": "a"})
        msg = FakeMsg.notice("c1")
        job = make_job(server, msg, tools)
        task = asyncio.ensure_future(job.run())
        await until(lambda: tools.running == 1)
        server.unreachable = True
        tools.finish("a")
        await task
        assert msg.settled == ["nak"]
        assert job.outcome == "unreported"

    asyncio.run(scenario())


def test_cancelling_the_job_cancels_the_tool() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools()
        server.add("c1", {"kind": "shell", "name": "slow"})
        job = make_job(server, FakeMsg.notice("c1"), tools)
        task = asyncio.ensure_future(job.run())
        await until(lambda: tools.running == 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert tools.cancelled == ["slow"]
        assert tools.running == 0

    asyncio.run(scenario())


def test_a_bug_in_the_runner_fails_nothing_else_and_returns_the_notice() -> None:
    async def broken(tool: Any, ctx: Any) -> Any:
        raise RuntimeError("bug")

    async def scenario() -> None:
        server = FakeServer()
        server.add("c1")
        msg = FakeMsg.notice("c1")
        job = Job(msg, cast(ServerApi, server), SETTINGS, runner=broken)
        await job.run()  # does not raise
        assert msg.settled == ["nak"]
        assert job.phase == "done"

    asyncio.run(scenario())


def test_a_command_handed_in_the_answer_runs_in_the_same_job() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        for cid, name in (("c1", "a"), ("c2", "b"), ("c3", "c")):
            server.add(cid, {"kind": "shell", "name": name})
        server.to_hand = ["c2", "c3"]
        msg = FakeMsg.notice("c1")
        job = Job(msg, cast(ServerApi, server), SETTINGS, runner=tools, wants_more=lambda: True)
        await job.run()
        assert tools.started == ["a", "b", "c"]
        # One claim call (c1's notice); c2 and c3 came in the answers, each completed once.
        assert server.calls.count("claim") == 1
        assert [server.types(c) for c in ("c1", "c2", "c3")] == [["started", "completed"]] * 3
        assert server.takes == [30.0, 30.0, 30.0]  # every end asked, under the worker's lease
        assert msg.settled == ["ack"]  # only the notice is settled: the handed ones had none
        assert (job.command_id, job.outcome) == ("c3", "completed")

    asyncio.run(scenario())


def test_a_worker_that_wants_no_more_asks_for_none() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1")
        server.add("c2")
        server.to_hand = ["c2"]
        await make_job(server, FakeMsg.notice("c1"), tools).run()  # wants_more: False by default
        assert server.takes == [None]
        assert server.commands["c2"].status == "pending"

    asyncio.run(scenario())


def test_a_command_handed_as_the_worker_began_to_stop_is_released() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1", {"kind": "shell", "name": "a"})
        server.add("c2", {"kind": "shell", "name": "b"})
        server.to_hand = ["c2"]
        asked: list[bool] = []

        def wants_more() -> bool:
            # Yes when the report goes out; no by the time its answer is back (a stop came).
            asked.append(not asked)
            return asked[-1]

        job = Job(
            FakeMsg.notice("c1"), cast(ServerApi, server), SETTINGS, runner=tools, wants_more=wants_more
        )
        await job.run()
        assert tools.started == ["a"]  # b never ran here
        assert server.types("c2") == ["started", "released"]
        assert server.commands["c2"].status == "pending"
        assert job.outcome == "released"

    asyncio.run(scenario())


def test_a_server_that_knows_no_take_gets_the_report_without_it() -> None:
    async def scenario() -> None:
        server, tools = FakeServer(), ScriptedTools(instant=True)
        server.add("c1", {"kind": "shell", "name": "a"})
        server.knows_take = False
        msg = FakeMsg.notice("c1")
        job = Job(msg, cast(ServerApi, server), SETTINGS, runner=tools, wants_more=lambda: True)
        await job.run()
        assert server.calls == ["claim", "started", "refused take", "completed"]
        assert server.types("c1") == ["started", "completed"]
        assert server.events[-1][3] == {"result": {"name": "a"}}  # the result, not a failure
        assert (msg.settled, job.outcome) == (["ack"], "completed")

    asyncio.run(scenario())
