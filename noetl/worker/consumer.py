"""The worker's side of NATS JetStream: connect (waiting for NATS), ensure the stream and the shared
durable pull consumer, fetch notices.

Every worker shares one durable consumer, ``noetl-workers``, with explicit acks. A notice is only a
hint (the claim decides), so an unacked notice coming back after ``ACK_WAIT`` is harmless: its claim
answers 409 and it is acked then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from noetl.protocol.nats import DURABLE, NATS_ERRORS, ensure_stream
from noetl.retry import RECONNECT, retry
from noetl.settings import Settings, mask_url
from noetl.throttle import Throttle

log = logging.getLogger("noetl.worker")

# A delivered, unacked notice is redelivered after this; running commands send in_progress() well
# within it, so only notices of dead workers come back.
ACK_WAIT = 60.0
# Unacked notices the consumer allows in flight over all workers (64 workers x 256 slots).
MAX_ACK_PENDING = 16384
# Seconds a batch fetch under load waits for notices that are not there yet: at most this much
# later than a worker whose last fetch found nothing would see them.
PREFETCH_WAIT = 0.005


def consumer_config(subject: str) -> ConsumerConfig:
    return ConsumerConfig(
        name=DURABLE,
        durable_name=DURABLE,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ACK_WAIT,
        max_deliver=-1,
        max_ack_pending=MAX_ACK_PENDING,
        filter_subject=subject,
    )


async def ensure_consumer(js: JetStreamContext, stream: str, subject: str) -> None:
    """Create the stream and the durable consumer unless they exist (idempotent, race-safe)."""
    await ensure_stream(js, stream, subject)
    try:
        await js.consumer_info(stream, DURABLE)
        return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_consumer(stream, config=consumer_config(subject))
    except nats.js.errors.BadRequestError:
        await js.consumer_info(stream, DURABLE)  # another worker made it a moment ago


def _more_waiting(msgs: list[Msg]) -> bool:
    """Whether the stream had notices for the consumer beyond the last of ``msgs`` (its metadata
    counts them); True when that is unknown."""
    if not msgs:
        return False
    try:
        return msgs[-1].metadata.num_pending > 0
    except (nats.errors.Error, ValueError, IndexError):  # not a JetStream delivery: assume load
        return True


class Notices:
    """This worker's NATS connection and pull subscription (recreated when the consumer vanished)."""

    def __init__(
        self, settings: Settings, name: str, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self.settings = settings
        self.name = name
        self.stream = settings.nats_stream
        self.subject = settings.nats_subject
        self.sleep = sleep
        self.nc = Client()
        self.js = self.nc.jetstream(timeout=5)
        self.sub: JetStreamContext.PullSubscription | None = None
        self.complain = Throttle(log, prefix="nats: ")
        self.closing = False
        self.connected_once = False
        # Set on reconnect: NATS may have come back with an empty store, without stream or consumer.
        self.recheck = False
        self.busy = False  # the last fetch brought notices: the next asks for a batch

    async def connect(self) -> None:
        """Connect, waiting as long as it takes for NATS to be up (cancel the call to give up).

        nats-py then reconnects by itself, forever, whenever the connection drops.
        """
        await self.nc.connect(
            servers=self.settings.nats_url.split(","),
            name=self.name,
            max_reconnect_attempts=-1,  # also makes the first connect wait for NATS instead of failing
            reconnect_time_wait=1,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self.connected_once = True
        url = self.nc.connected_url.geturl() if self.nc.connected_url else ""
        log.info("nats %s: connected", mask_url(url))

    async def _on_error(self, exc: Exception) -> None:
        self.complain(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if not self.closing:
            log.warning("nats: disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        self.complain.clear()
        self.recheck = True
        log.info("nats: reconnected")

    async def ready(self) -> None:
        """Make sure the stream and consumer exist and subscribe; retries until it works."""

        async def attempt() -> None:
            await ensure_consumer(self.js, self.stream, self.subject)
            if self.sub is None:
                self.sub = await self.js.pull_subscribe_bind(durable=DURABLE, stream=self.stream)

        def not_ready(exc: BaseException) -> None:
            self.complain(f"consumer {DURABLE} on stream {self.stream} not ready: {exc!r}")

        await retry(attempt, errors=NATS_ERRORS, backoff=RECONNECT, on_error=not_ready, sleep=self.sleep)
        self.complain.clear()

    async def fetch(self, count: int, timeout: float) -> list[Msg]:
        """Up to ``count`` notices; none when none came within ``timeout`` (idle) or NATS is away.

        nats-py's batch fetch waits until the batch is full or its timeout is over once no notice
        was waiting, which would hold back a notice that arrives while the worker is idle. So an
        idle worker waits for one notice at a time; after a fetch that brought notices (load),
        it asks for a batch with a short wait (``PREFETCH_WAIT``) when the last notice said more
        were waiting: under load the batch is there at once, one pull for several notices.
        """
        if self.sub is None or self.recheck:
            self.recheck = False
            await self.ready()
        assert self.sub is not None
        busy = self.busy and count > 1
        try:
            msgs = await self.sub.fetch(count if busy else 1, timeout=PREFETCH_WAIT if busy else timeout)
        except TimeoutError:  # nats.errors.TimeoutError is one too
            self.busy = False
            return []  # idle: nothing to do, not an error
        except (nats.js.errors.NotFoundError, nats.js.errors.ServiceUnavailableError) as exc:
            # The consumer or stream is gone (NATS restarted with an empty store): make them again.
            self.complain(f"fetch: {exc!r}; recreating the consumer")
            await self.ready()
            return []
        except NATS_ERRORS as exc:
            self.complain(f"fetch: {exc!r}")
            await self.sleep(min(timeout, 1.0))
            return []
        self.complain.clear()
        # A batch next only when JetStream holds more for us: a notice that came alone (a
        # playbook's steps one after another) would pay a batch pull lingering PREFETCH_WAIT on
        # the server, and its expiry, for nothing.
        self.busy = _more_waiting(msgs)
        return list(msgs)

    async def close(self, timeout: float = 1.0) -> None:
        """Send what is buffered (acks, naks) and close the connection."""
        self.closing = True
        if not self.connected_once:
            return  # nats-py cannot close a client that never connected
        if self.nc.is_connected:
            with contextlib.suppress(*NATS_ERRORS):
                await asyncio.wait_for(self.nc.flush(), timeout)
        with contextlib.suppress(*NATS_ERRORS):
            await asyncio.wait_for(self.nc.close(), timeout)
