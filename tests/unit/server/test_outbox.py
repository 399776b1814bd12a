"""The outbox loop with a small in-memory database and publisher (the real ones are exercised in
tests/server): a notice whose publish failed is swept again even while new notices keep arriving."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from noetl.protocol.nats import Notice
from noetl.server.metrics import ServerMetrics
from noetl.server.outbox import Outbox


class FakeConn:
    """Answers the two outbox queries from a dict command_id -> (execution_id, attempt, published)."""

    def __init__(self, rows: dict[uuid.UUID, list[Any]]) -> None:
        self.rows = rows

    async def fetch(self, query: str, limit: int) -> list[dict[str, Any]]:
        assert "published_at IS NULL" in query
        unpublished = [(cid, r) for cid, r in self.rows.items() if not r[2]]
        return [{"command_id": cid, "execution_id": r[0], "attempt": r[1]} for cid, r in unpublished][:limit]

    async def execute(self, query: str, ids: list[uuid.UUID], attempts: list[int]) -> None:
        assert query.lstrip().startswith("UPDATE noetl.commands c SET published_at")
        for cid, attempt in zip(ids, attempts, strict=True):
            if self.rows[cid][1] == attempt - 1:
                self.rows[cid][2] = True


class FakeDb:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, list[Any]] = {}

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[FakeConn]:
        yield FakeConn(self.rows)

    def add(self) -> Notice:
        cid = uuid.uuid4()
        self.rows[cid] = [uuid.uuid4(), 0, False]
        return Notice(cid, self.rows[cid][0], 1)


class FlakyPublisher:
    """Connected; refuses the first publish of each notice in ``fail_once``."""

    connected = True

    def __init__(self, fail_once: set[str]) -> None:
        self.fail_once = fail_once
        self.published: list[str] = []

    async def publish(self, notice: Notice) -> bool:
        if notice.msg_id in self.fail_once:
            self.fail_once.discard(notice.msg_id)
            return False
        self.published.append(notice.msg_id)
        return True


def test_failed_publish_is_retried_by_the_sweep_under_steady_load() -> None:
    async def scenario() -> tuple[FakeDb, FlakyPublisher, Notice]:
        db = FakeDb()
        publisher = FlakyPublisher(set())
        outbox = Outbox(db, publisher, ServerMetrics(), interval=0.2)  # type: ignore[arg-type]
        task = asyncio.create_task(outbox.run())
        await asyncio.sleep(0.3)  # one idle interval: the first sweep ran (nothing unpublished yet)
        first = db.add()  # committed, then its publish is refused: it stays unpublished
        publisher.fail_once.add(first.msg_id)
        outbox.notify(first)
        try:
            async with asyncio.timeout(5):
                while first.msg_id not in publisher.published:
                    # A new notice every 0.05 s: the loop never sits idle for a whole interval.
                    outbox.notify(db.add())
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return db, publisher, first

    db, publisher, first = asyncio.run(scenario())
    assert db.rows[first.command_id][2] is True
    assert publisher.published.count(first.msg_id) == 1
