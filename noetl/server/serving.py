"""uvicorn's ``Server``, stopping as soon as it is told to.

uvicorn 0.5x notices a stop request only at its next tick: its main loop sleeps 0.1 s between
looks at ``should_exit`` (a SIGTERM waited 0.05 s on average). Its shutdown then pauses a fixed
0.1 s for the connections it asked to close, even when there are none, as when `noetl run` stops
the server after its workers. Under `noetl run` both sat on the path of every stop.

``PromptServer`` changes only those two waits:
- the signal handler wakes the main loop at once (the tick stays for the Date header, once a second);
- with no connection and no request task left, the shutdown stops listening and runs the
  lifespan's shutdown without the pause; otherwise it is uvicorn's, pause and graceful wait included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from types import FrameType

import uvicorn

logger = logging.getLogger("uvicorn.error")

TICK = 0.1  # uvicorn's own: the Date header is refreshed every tenth tick


class PromptServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_requested = asyncio.Event()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:  # from a signal handler: the loop may be waiting in select()
            self._loop.call_soon_threadsafe(self._exit_requested.set)

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self._exit_requested.wait()
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        logger.info("Shutting down")
        # Nothing runs between the check above and this close: no connection can come in between.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()
