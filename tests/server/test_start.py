"""A request that reaches the server while it starts is answered once its database is open.

The server binds its socket before its imports, so a client (a worker registering) connects at
once and waits in the queue; the server answers after its first attempt to open the database.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import Server

pytestmark = pytest.mark.integration

REGISTRATION = {"worker_id": "vm:worker_00:1", "name": "worker_00", "host": "vm", "pid": 1, "concurrency": 4}


def test_a_worker_registering_while_the_server_starts_gets_no_503(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    server = Server(env=server_env, log=tmp_path / "server.log")
    answers: list[httpx.Response] = []

    def register() -> None:
        with server.client() as client:
            while not answers:
                with contextlib.suppress(httpx.ConnectError):  # not bound yet: still starting
                    answers.append(client.post("/api/workers", json=REGISTRATION))
                time.sleep(0.01)

    registering = threading.Thread(target=register, daemon=True)
    registering.start()
    try:
        server.start(wait_ready=False)
        registering.join(timeout=60)
        assert answers, "no answer"
        # The only request that got an answer was sent before the server answered anything.
        assert answers[0].status_code == 200, answers[0].text
        body: dict[str, Any] = answers[0].json()
        assert (body["worker_id"], body["status"]) == ("vm:worker_00:1", "online")
        assert "database unavailable" not in server.log.read_text()
    finally:
        server.stop()
