"""Signal handlers only record the request; the second one escalates."""

from __future__ import annotations

import asyncio
import os
import signal

from noetl.worker.signals import StopRequest


def test_first_request_drains_second_escalates() -> None:
    async def scenario() -> None:
        stop = StopRequest(clock=lambda: 42.0)
        assert not stop.drain.is_set()
        stop.request("SIGTERM")
        assert stop.drain.is_set() and not stop.now.is_set()
        assert stop.received_at == 42.0
        stop.request("SIGINT")
        assert stop.now.is_set()
        stop.request("SIGTERM")  # a third changes nothing
        assert stop.received_at == 42.0

    asyncio.run(scenario())


def test_real_sigterm_and_sigint_reach_the_request() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        stop = StopRequest()
        stop.install(loop)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.drain.wait(), 2)
            assert not stop.now.is_set()
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.wait_for(stop.now.wait(), 2)
        finally:
            stop.uninstall(loop)

    asyncio.run(scenario())
