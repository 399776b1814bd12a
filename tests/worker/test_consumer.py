"""The worker's NATS side on a real NATS server with JetStream: when a fetch is followed by a batch
pull (more notices waiting) and when by a single one (a notice that came alone)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from noetl.protocol.nats import Notice
from noetl.settings import load_settings
from noetl.worker.consumer import Notices
from tests.services import Nats
from tests.worker.harness import clean_env

pytestmark = pytest.mark.integration


async def _publish(notices: Notices, count: int) -> None:
    for _ in range(count):
        notice = Notice(command_id=uuid.uuid4(), execution_id=uuid.uuid4(), attempt=1)
        await notices.js.publish(notices.subject, notice.payload())


def test_a_batch_follows_a_notice_only_while_more_are_waiting(nats: Nats) -> None:
    async def scenario() -> list[tuple[int, bool]]:
        notices = Notices(load_settings(clean_env(NATS_URL=nats.url)), name="test-consumer")
        await notices.connect()
        try:
            await notices.ready()
            seen = []
            await _publish(notices, 3)
            for count in (1, 4):  # a first notice, then what was waiting behind it, in one pull
                msgs = await notices.fetch(count, 5.0)
                seen.append((len(msgs), notices.busy))
                for msg in msgs:
                    await msg.ack()
            await _publish(notices, 1)  # one alone: nothing behind it, no batch pull next
            msgs = await notices.fetch(1, 5.0)
            seen.append((len(msgs), notices.busy))
            await msgs[0].ack()
            return seen
        finally:
            await notices.close()

    assert asyncio.run(scenario()) == [(1, True), (2, False), (1, False)]
