"""The publisher against a real NATS: a batch of notices goes out back to back and each gets its own
answer; a lost stream is created again; NATS away means False for each, never an exception."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats as nats_client
import pytest
from nats.aio.client import Client

from noetl.protocol.nats import Notice
from noetl.server.publisher import Publisher
from noetl.settings import load_settings
from tests.server.conftest import STREAM, clean_env, stream_notices
from tests.services import Nats

pytestmark = pytest.mark.integration


def notices(n: int) -> list[Notice]:
    return [Notice(uuid.uuid4(), uuid.uuid4(), 1) for _ in range(n)]


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def with_publisher(nats_url: str, scenario: Callable[[Publisher], Awaitable[Any]]) -> Any:
    settings = load_settings(clean_env(NATS_URL=nats_url, POSTGRES_HOST="127.0.0.1"))

    async def run() -> Any:
        publisher = Publisher(settings)
        await publisher.keep_connected()
        await until(lambda: publisher.connected)
        try:
            return await scenario(publisher)
        finally:
            await publisher.close()

    return asyncio.run(run())


def test_a_batch_is_stored_once_each_and_answered_per_notice(nats: Nats) -> None:
    batch = notices(100)

    async def scenario(publisher: Publisher) -> tuple[list[bool], list[bool]]:
        first = await publisher.publish(batch)
        again = await publisher.publish(batch[:10])  # a repeat (the sweep racing): acked, dropped
        return first, again

    first, again = with_publisher(nats.url, scenario)
    assert first == [True] * 100
    assert again == [True] * 10
    stored = stream_notices(nats.url)
    assert [msg_id for msg_id, _ in stored] == [n.msg_id for n in batch]
    assert [body["command_id"] for _, body in stored] == [str(n.command_id) for n in batch]


def test_a_lost_stream_fails_the_batch_and_is_created_again(nats: Nats) -> None:
    async def scenario(publisher: Publisher) -> tuple[list[bool], list[bool]]:
        admin = await _connect(nats.url)
        try:
            await admin.jetstream().delete_stream(STREAM)  # NATS came back with an empty store
        finally:
            await admin.close()
        lost = await publisher.publish(notices(5))
        await until(lambda: publisher.connected)  # the stream exists again
        after = await publisher.publish(notices(5))
        return lost, after

    lost, after = with_publisher(nats.url, scenario)
    assert lost == [False] * 5
    assert after == [True] * 5
    assert len(stream_notices(nats.url)) == 5


def test_nats_down_answers_false_for_each(nats: Nats) -> None:
    async def scenario(publisher: Publisher) -> list[bool]:
        nats.stop()
        await until(lambda: not publisher.connected)
        return await publisher.publish(notices(3))

    assert with_publisher(nats.url, scenario) == [False] * 3


async def _connect(url: str) -> Client:
    return await nats_client.connect(url, connect_timeout=2, max_reconnect_attempts=0)
