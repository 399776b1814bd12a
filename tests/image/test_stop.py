"""`docker stop -t <terminationGracePeriodSeconds>` behaves as the kubelet's termination: SIGTERM to
PID 1 (`noetl run`), SIGKILL after the grace period. Each stop must end in time with exit code 0 and
a graceful stop in the logs, also while a worker is running a command."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import pytest

from tests.image.stack import (
    Backends,
    api,
    grace_seconds,
    manifest_stack,
    run_container,
    submit,
    wait_status,
)

pytestmark = pytest.mark.image


def records(logs: str) -> list[dict[str, object]]:
    """The JSON lines of a container's output (NOETL_LOG_FORMAT=json in the ConfigMap)."""
    found = []
    for line in logs.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def messages(logs: str, process_prefix: str) -> list[str]:
    return [
        str(r.get("message", ""))
        for r in records(logs)
        if str(r.get("process", "")).startswith(process_prefix) and "message" in r
    ]


def assert_graceful(logs: str, processes: list[str]) -> None:
    """No process was killed, and each one said it stopped (its own last line after SIGTERM)."""
    assert "SIGKILL" not in logs and "killing" not in logs.lower(), logs[-3000:]
    for name in processes:
        said = messages(logs, name)
        assert any(m == "server stopped" or m.endswith(" stopped") for m in said), (name, said[-5:])


def wait_started(port: int, execution_id: str) -> None:
    """Until a worker has reported the command ``started``: its tool runs from then on."""
    deadline = time.monotonic() + 60
    while not any(
        e["type"] == "started" for e in api(port, "GET", f"/api/executions/{execution_id}")["events"]
    ):
        assert time.monotonic() < deadline, f"{execution_id} not started after 60 s"
        time.sleep(0.2)


def command_fate(backends: Backends, database: str, execution_id: str) -> dict[str, Any]:
    """The execution's one command and its events' types, read from PostgreSQL itself (the
    all-in-one container's server is gone with it)."""

    async def read() -> dict[str, Any]:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=backends.pg.port, user=backends.pg.user, database=database
        )
        try:
            row = await conn.fetchrow(
                "SELECT command_id, status, attempt, lost_leases, result FROM noetl.commands "
                "WHERE execution_id = $1",
                uuid.UUID(execution_id),
            )
            types = await conn.fetch(
                "SELECT type FROM noetl.events WHERE command_id = $1 ORDER BY event_id", row["command_id"]
            )
            return {**dict(row), "events": [t["type"] for t in types]}
        finally:
            await conn.close()

    return asyncio.run(read())


def test_worker_stops_gracefully_while_running_a_command(image: str, backends: Backends, run_id: str) -> None:
    with manifest_stack(image, backends, f"noetl-test-{run_id}-stopw") as stack:
        stack.server.wait_healthy()
        stack.worker.wait_healthy()
        execution = submit(stack.port, "sleep 4; echo finished while draining")
        wait_started(stack.port, execution)

        code, took = stack.worker.stop(grace_seconds("noetl-worker"))

        assert code == 0, stack.worker.logs()[-3000:]
        logs = stack.worker.logs()
        assert_graceful(logs, ["worker_00", "worker_01"])
        assert any("draining" in m for m in messages(logs, "worker_"))
        # The running command was let finish and reported, not cut off.
        done = wait_status(stack.port, execution, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=10)
        assert done["status"] == "COMPLETED", done
        assert "finished while draining" in str(done)
        print(f"\nworker docker stop (command running): {took:.1f} s")

        code, took = stack.server.stop(grace_seconds("noetl-server"))
        assert code == 0, stack.server.logs()[-3000:]
        server_logs = stack.server.logs()
        assert_graceful(server_logs, ["server"])
        print(f"server docker stop: {took:.1f} s")


def test_all_in_one_container_stops_gracefully_while_running_a_command(
    image: str, backends: Backends, run_id: str
) -> None:
    """NOETL_ROLE=all (server and workers in one container), stopped with the longest grace period."""
    with manifest_stack(image, backends, f"noetl-test-{run_id}-stopa") as stack:
        stack.server.remove()
        stack.worker.remove()
        overrides = {
            "NOETL_ROLE": "all",
            "NOETL_SERVER_URL": "http://127.0.0.1:8082",
            "POSTGRES_HOST": backends.gateway,
            "POSTGRES_PORT": str(backends.pg.port),
            "POSTGRES_DB": stack.database,
            "NATS_URL": stack.nats.url,
        }
        both = run_container(
            image, f"noetl-test-{run_id}-all", backends, "noetl-worker", overrides, publish=True
        )
        try:
            both.wait_healthy()
            assert both.published is not None
            status = both.exec("noetl", "ctl", "status")
            assert status.returncode == 0, status.stdout
            execution = submit(both.published, "sleep 3; echo all-in-one")
            wait_started(both.published, execution)

            code, took = both.stop(grace_seconds("noetl-worker"))

            assert code == 0, both.logs()[-3000:]
            assert_graceful(both.logs(), ["server", "worker_00", "worker_01"])
            print(f"\nall-in-one docker stop (command running): {took:.1f} s")
            # The workers stop first, while their server still answers: the running command was
            # let finish and its result reported, in its first attempt, before the server stopped.
            fate = command_fate(backends, stack.database, execution)
            assert (fate["status"], fate["attempt"], fate["lost_leases"]) == ("completed", 1, 0), fate
            assert fate["events"] == ["created", "claimed", "started", "completed"], fate
            assert json.loads(fate["result"])["stdout"] == "all-in-one\n"
        finally:
            both.remove()
