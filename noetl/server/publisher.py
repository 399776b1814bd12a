"""Command notices to NATS JetStream, surviving NATS outages.

``Publisher.keep_connected`` (a background task) connects with unlimited reconnects, so the
server starts while NATS is down; nats-py then reconnects by itself. Each notice is published with
the JetStream message id ``<command_id>:<attempt>``, so a notice published twice (the fast path and
the outbox racing, or a retry after a lost ack) is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from noetl.protocol.nats import NATS_ERRORS, Notice, ensure_stream
from noetl.retry import RECONNECT, retry
from noetl.settings import Settings, mask_url
from noetl.throttle import Throttle

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 2.0  # seconds to wait for JetStream's acks of a batch of notices
PIPELINE = 1000  # notices sent before their acks are awaited


class Publisher:
    """One NATS connection for the server; ``publish`` answers False for a notice instead of raising."""

    def __init__(self, settings: Settings, on_connected: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_connected = on_connected
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.stream_ready = False
        self._warn = Throttle(log, prefix="nats: ")
        self._preparing: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected and self.stream_ready

    async def keep_connected(self) -> None:
        """Connect (retrying forever) and make sure the stream exists; for a background task."""
        nc = Client()
        await nc.connect(
            servers=self.settings.nats_url.split(","),
            name="noetl-server",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self.nc = nc
        self.js = nc.jetstream(timeout=PUBLISH_TIMEOUT)
        log.info("nats %s: connected", mask_url(nc.connected_url.geturl() if nc.connected_url else ""))
        await self._prepare_stream()

    async def _prepare_stream(self) -> None:
        async def attempt() -> None:
            if self.js is not None:  # None: closed meanwhile
                await ensure_stream(self.js, self.settings.nats_stream, self.settings.nats_subject)
                self.stream_ready = True

        def not_ready(exc: BaseException) -> None:
            self._warn(f"stream {self.settings.nats_stream} not ready: {exc!r}")

        if self.stream_ready:
            return
        await retry(attempt, errors=NATS_ERRORS, backoff=RECONNECT, on_error=not_ready)
        if self.stream_ready:
            self._warn.clear()
            if self.on_connected is not None:
                self.on_connected()

    async def publish(self, notices: Sequence[Notice]) -> list[bool]:
        """Publish ``notices`` back to back, then wait for JetStream's acks together (at most
        ``PUBLISH_TIMEOUT`` after the last one went out); per notice, True when it was stored.

        Pipelined: one wait for the lot instead of a request, a task and a timer per notice. A
        notice without an ack counts as not stored (the outbox's sweep publishes it again; its
        message id makes a second copy a duplicate JetStream drops).
        """
        stored: list[bool] = []
        for start in range(0, len(notices), PIPELINE):
            stored += await self._publish_some(notices[start : start + PIPELINE])
        return stored

    async def _publish_some(self, notices: Sequence[Notice]) -> list[bool]:
        js = self.js
        if js is None or not self.connected:
            return [False] * len(notices)
        sent: list[asyncio.Future[Any]] = []
        try:
            for notice in notices:
                # No wait_stall: with one it would wait on a task per message and hand the loop to
                # nats-py's flusher between messages (a socket write each). Without, the batch is
                # written at once; it never stalls: at most PIPELINE acks are pending, far below
                # nats-py's limit (publish_async_max_pending).
                sent.append(
                    await js.publish_async(
                        self.settings.nats_subject,
                        notice.payload(),
                        headers={"Nats-Msg-Id": notice.msg_id},
                    )
                )
        except NATS_ERRORS as exc:
            self._warn(f"publish failed: {exc!r}")
        if sent:
            await asyncio.wait(sent, timeout=PUBLISH_TIMEOUT)
        stored = [self._stored(ack) for ack in sent]
        return stored + [False] * (len(notices) - len(sent))

    def _stored(self, ack: asyncio.Future[Any]) -> bool:
        if not ack.done():
            ack.cancel()  # no ack in time; frees its slot in nats-py's pending table
            self._warn(f"publish failed: no ack within {PUBLISH_TIMEOUT:g}s")
            return False
        if ack.cancelled():
            return False
        exc = ack.exception()
        if exc is None:
            return True
        self._warn(f"publish failed: {exc!r}")
        if isinstance(exc, nats.js.errors.NoStreamResponseError) and self.stream_ready:
            # The stream is gone (a NATS with a fresh store): create it again.
            self.stream_ready = False
            self._spawn_prepare()
        return False

    async def close(self, timeout: float = 1.0) -> None:
        nc, self.nc, self.js = self.nc, None, None
        self.stream_ready = False
        if self._preparing is not None:
            self._preparing.cancel()
        if nc is None:
            return
        with contextlib.suppress(*NATS_ERRORS):
            await asyncio.wait_for(nc.close(), timeout)

    async def _on_error(self, exc: Exception) -> None:
        self._warn(f"{type(exc).__name__}: {exc}")

    async def _on_disconnected(self) -> None:
        if self.nc is not None:
            log.warning("nats: disconnected; reconnecting in the background")

    async def _on_reconnected(self) -> None:
        log.info("nats: reconnected")
        self._warn.clear()
        # The server may have come back with an empty store. Not awaited here: this callback runs
        # inside nats-py's reconnect task.
        self.stream_ready = False
        self._spawn_prepare()

    def _spawn_prepare(self) -> None:
        if self._preparing is None or self._preparing.done():
            self._preparing = asyncio.get_running_loop().create_task(self._prepare_stream())
