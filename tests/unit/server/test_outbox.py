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

    async def publish(self, notices: list[Notice]) -> list[bool]:
        return [self._publish(n) for n in notices]

    def _publish(self, notice: Notice) -> bool:
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


class CountingConn(FakeConn):
    sweeps = 0

    async def fetch(self, query: str, limit: int) -> list[dict[str, Any]]:
        CountingConn.sweeps += 1
        return await super().fetch(query, limit)


class CountingDb(FakeDb):
    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[FakeConn]:
        yield CountingConn(self.rows)


class DownPublisher:
    """Connected, but JetStream refuses every publish until ``up``."""

    connected = True

    def __init__(self) -> None:
        self.up = False
        self.attempts = 0
        self.published: list[str] = []

    async def publish(self, notices: list[Notice]) -> list[bool]:
        self.attempts += len(notices)
        if self.up:
            self.published.extend(n.msg_id for n in notices)
        return [self.up] * len(notices)


def test_failing_publishes_back_off_instead_of_sweeping_on_every_submission() -> None:
    submissions = 100

    async def scenario() -> tuple[CountingDb, DownPublisher, int, int]:
        db = CountingDb()
        publisher = DownPublisher()
        outbox = Outbox(db, publisher, ServerMetrics(), interval=0.1)  # type: ignore[arg-type]
        task = asyncio.create_task(outbox.run())
        try:
            for _ in range(submissions):
                outbox.notify(db.add())  # every submission wakes the outbox
                await asyncio.sleep(0.01)
            sweeps, attempts = CountingConn.sweeps, publisher.attempts
            publisher.up = True
            outbox.sweep_soon()  # NATS is back
            async with asyncio.timeout(5):
                while len(publisher.published) < submissions:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return db, publisher, sweeps, attempts

    CountingConn.sweeps = 0
    db, publisher, sweeps, attempts = asyncio.run(scenario())
    # Without backoff each of the 100 submissions brought a publish and a sweep of the whole backlog
    # (thousands of attempts); with it, the sweeps are spaced 0.1, 0.2, 0.4, ... seconds apart.
    assert sweeps <= 8, sweeps
    assert attempts <= 8 * submissions // 2, attempts
    # Nothing was lost while publishing failed: every notice went out once NATS came back.
    assert sorted(publisher.published) == sorted(n.msg_id for n in map(_notice, db.rows.items()))
    assert all(row[2] for row in db.rows.values())


def _notice(item: tuple[uuid.UUID, list[Any]]) -> Notice:
    cid, row = item
    return Notice(cid, row[0], row[1] + 1)
