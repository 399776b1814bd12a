"""Group commit of submissions: the ones that arrive while an insert is in flight go in the next one.

An idle server inserts a submission at once, in a statement of its own. Under a burst, the
requests that arrive while that statement runs wait for it and are then inserted together, up to
``MAX_BATCH`` in one statement and one transaction: one round trip, one commit and one wake-up of
the outbox for the lot instead of one each. Nothing waits for a timer; the batch is whatever queued
up during the previous insert, so a batch grows only when PostgreSQL is the bottleneck.

Each submission is validated before it is queued, so the database should accept every batch. When
it refuses one anyway (a value validation let through), the batch is inserted again one
submission at a time: only the offending one fails, with its own error; the others get their ids.
When the database is unreachable every waiting submission gets that error (503).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from noetl.protocol.nats import Notice
from noetl.server.db import Database, DatabaseBusy, DatabaseUnavailable
from noetl.server.metrics import ServerMetrics
from noetl.server.outbox import Outbox
from noetl.server.queries import submissions
from noetl.server.queries.submissions import Submission

log = logging.getLogger(__name__)

# Submissions in one statement at most: a few hundred rows is still one quick statement, and the
# arrays of tool specs stay far below a statement's size limits (bodies are capped by
# NOETL_MAX_BODY_BYTES).
MAX_BATCH = 200

_Waiting = tuple[Submission, "asyncio.Future[Notice]"]


class Submitter:
    """``submit`` returns the submission's notice once its statement has committed."""

    def __init__(self, db: Database, outbox: Outbox, metrics: ServerMetrics) -> None:
        self.db = db
        self.outbox = outbox
        self.metrics = metrics
        self._queue: list[_Waiting] = []
        self._inserting: asyncio.Task[None] | None = None

    async def submit(self, submission: Submission) -> Notice:
        """Insert ``submission`` (with whatever else is waiting); raises what its insert raised:
        ``DatabaseUnavailable`` / ``DatabaseBusy``, or the database's refusal of this one."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Notice] = loop.create_future()
        self._queue.append((submission, done))
        if self._inserting is None:
            self._inserting = loop.create_task(self._insert_queued(), name="noetl-submit")
        # A caller cancelled (client gone) cancels only its own future: if its batch was taken
        # already it is inserted anyway, as a request cancelled mid-statement would have been.
        return await done

    async def _insert_queued(self) -> None:
        batch: list[_Waiting] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                batch = [(s, f) for s, f in batch if not f.done()]
                if batch:
                    await self._insert(batch)
        finally:
            self._inserting = None
            # Only when cancelled (the server stopping) is anyone still waiting: answer them.
            left, self._queue = batch + self._queue, []
            _fail(left, DatabaseUnavailable("the server is stopping"))

    async def _insert(self, batch: list[_Waiting]) -> None:
        try:
            notices = await self._create([s for s, _ in batch])
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            log.warning("submit: PostgreSQL refused a batch of %d (%s); one by one now", len(batch), exc)
            for one in batch:
                await self._insert([one])
            return
        except DatabaseUnavailable as exc:
            # A fresh exception per waiter: each request raises (and annotates) its own.
            kind = DatabaseBusy if isinstance(exc, DatabaseBusy) else DatabaseUnavailable
            for _, future in batch:
                if not future.done():
                    future.set_exception(kind(str(exc)))
            return
        except Exception as exc:
            # Answered as the request's own error would have been (a 500, logged); the queue goes on.
            log.exception("submit: inserting a batch of %d failed", len(batch))
            _fail(batch, exc)
            return
        self.metrics.submit_batch.observe(len(batch))
        self.outbox.notify(*notices)
        for (_, future), notice in zip(batch, notices, strict=True):
            if not future.done():
                future.set_result(notice)

    async def _create(self, batch: list[Submission]) -> list[Notice]:
        async with self.db.connection() as conn:
            return await submissions.create_executions(conn, batch)


def _fail(batch: list[_Waiting], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
