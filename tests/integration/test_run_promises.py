"""What `noetl run` and `noetl ctl` promise, tried on one running stack (started once for the
module, in the order below): `--role/--workers/--host/--port` over the environment, the `workers`
group, a non-default NATS stream and subject, NOETL_WORKER_CONCURRENCY, NOETL_LOG_LEVEL,
`ctl tail -f`, `ctl reload` and, last, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.server.conftest import pg_fetch
from tests.services import Postgres, free_port, nats_server, wait_until
from tests.stack import Stack

pytestmark = pytest.mark.integration

STREAM, SUBJECT = "ALT_COMMANDS", "alt.commands"
WORKERS = {"worker_00", "worker_01", "worker_02"}
EVERYTHING = {"server", *WORKERS}


@dataclass
class Running:
    stack: Stack
    nats_url: str
    pg_env: dict[str, str]
    env_port: int  # the port the environment names; the flag's must win
    shared: Path  # a directory the tools (an unprivileged user when run as root) may write


@pytest.fixture(scope="module")
def running(pg_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("promises")
    pg_server.create_database("noetl_run_promises")
    pg_env = pg_server.env("noetl_run_promises")
    shared = Path(tempfile.mkdtemp(prefix="noetl-promises-"))
    os.chmod(shared, 0o777)
    with nats_server(tmp / "nats") as nats:
        env_port = free_port()
        stack = Stack(
            home=tmp / "home",
            env={
                **pg_env,
                "NATS_URL": nats.url,
                # What the flags are given against: each flag must win over its variable.
                "NOETL_ROLE": "worker",
                "NOETL_WORKERS": "1",
                "NOETL_HOST": "127.0.0.2",
                "NOETL_PORT": str(env_port),
                "NOETL_NATS_STREAM": STREAM,
                "NOETL_NATS_SUBJECT": SUBJECT,
                "NOETL_WORKER_CONCURRENCY": "2",
                "NOETL_LOG_LEVEL": "debug",
            },
        )
        flags = ["--role", "all", "--workers", "3", "--host", "127.0.0.1", "--port", str(stack.port)]
        stack.start(*flags, own_group=True)  # a foreground job of its own, as in a terminal
        try:
            stack.wait_running(EVERYTHING)
            stack.wait_ready()
            yield Running(stack, nats.url, pg_env, env_port, shared)
        finally:
            stack.stop()
            subprocess.run(["rm", "-rf", str(shared)], check=False)


def submit(stack: Stack, command: str) -> str:
    status, body = stack.api("POST", "/api/executions", {"tool": {"kind": "shell", "command": command}})
    assert status == 201, body
    return str(body["execution_id"])


def finished(stack: Stack, execution_ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
    views: dict[str, dict[str, Any]] = {}

    def all_done() -> bool:
        for eid in execution_ids:
            if eid not in views:
                view = stack.api("GET", f"/api/executions/{eid}")[1]
                if view["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                    views[eid] = view
        return len(views) == len(execution_ids)

    wait_until(all_done, timeout, f"{len(execution_ids)} executions finished", interval=0.1)
    return [views[eid] for eid in execution_ids]


def states(stack: Stack) -> dict[str, str]:
    return {row["name"]: row["state"] for row in stack.status()}


def pids(stack: Stack) -> dict[str, int]:
    return {row["name"]: int(row["pid"]) for row in stack.status() if row["pid"]}


def test_flags_win_over_the_environment(running: Running) -> None:
    stack = running.stack
    rows = stack.wait_running(
        EVERYTHING
    )  # role all and three workers, where the environment said worker and 1
    (server,) = [row for row in rows if row["name"] == "server"]
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(int(server["pid"])).net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {("127.0.0.1", stack.port)}  # not 127.0.0.2, not the environment's port
    assert f"starting role=all: API on http://127.0.0.1:{stack.port}, 3 worker(s) x 2;" in stack.output()


def test_the_workers_group_stops_and_starts_every_worker(running: Running) -> None:
    stack = running.stack
    stopped = stack.ctl("stop", "workers")
    assert (stopped.returncode, stopped.stdout) == (0, "workers: stop done\n"), stopped.stderr
    assert states(stack) == {"listener": "RUNNING", "server": "RUNNING"} | {w: "STOPPED" for w in WORKERS}
    started = stack.ctl("start", "workers")
    assert (started.returncode, started.stdout) == (0, "workers: start done\n"), started.stderr
    stack.wait_running(EVERYTHING)


def test_notices_travel_on_the_configured_stream_and_subject(running: Running) -> None:
    (view,) = finished(running.stack, [submit(running.stack, "echo over the other stream")])
    assert view["status"] == "COMPLETED", view

    async def streams() -> dict[str, Any]:
        import nats

        nc = await nats.connect(running.nats_url)
        try:
            js = nc.jetstream()
            found = {info.config.name: info for info in await js.streams_info()}
            consumer = await js.consumer_info(STREAM, "noetl-workers")
            return {"streams": found, "delivered": consumer.delivered.stream_seq}
        finally:
            await nc.close()

    seen = asyncio.run(streams())
    assert set(seen["streams"]) == {STREAM}  # no NOETL_COMMANDS beside it
    info = seen["streams"][STREAM]
    assert info.config.subjects == [SUBJECT]
    assert info.state.last_seq >= 1 and seen["delivered"] >= 1  # a work queue: acked notices are gone


def test_a_worker_runs_at_most_its_concurrency_at_once(running: Running) -> None:
    stack = running.stack
    assert stack.ctl("stop", "workers").returncode == 0
    assert stack.ctl("start", "worker_00").returncode == 0  # one worker: its two slots are all there is
    stack.wait_running({"server", "worker_00"})
    log = running.shared / "slots"
    # The first two wait for each other (so two at once must happen); every one then stays 0.5 s,
    # time for a third to start if the limit did not hold.
    command = (
        f"echo start >> {log}; n=0; "
        f"until [ $(grep -c start {log}) -ge 2 ] || [ $n -ge 400 ]; do sleep 0.05; n=$((n+1)); done; "
        f"sleep 0.5; echo end >> {log}"
    )
    try:
        views = finished(stack, [submit(stack, command) for _ in range(6)])
    finally:  # the tests after this one want every worker back
        assert stack.ctl("start", "workers").returncode == 0
        stack.wait_running(EVERYTHING)
    assert [v["status"] for v in views] == ["COMPLETED"] * 6, views
    now = peak = 0
    for line in log.read_text().split():
        now += 1 if line == "start" else -1
        peak = max(peak, now)
    assert log.read_text().split().count("start") == 6
    assert peak == 2


def test_the_log_level_reaches_every_program(running: Running) -> None:
    def debug_from(name: str) -> bool:
        return any(
            line.startswith(f"{name} | ") and " DEBUG " in line
            for line in running.stack.output().splitlines()
        )

    wait_until(
        lambda: debug_from("server") and debug_from("worker_00"), 30, "DEBUG lines from server and worker"
    )


def test_tail_follow_keeps_printing_new_output(running: Running) -> None:
    stack = running.stack
    before = pids(stack)["worker_01"]
    tail = subprocess.Popen(
        [sys.executable, "-m", "noetl", "ctl", "tail", "-f", "--stderr", "worker_01"],
        env=stack.full_env(),
        stdout=subprocess.PIPE,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    seen = bytearray()
    reader = threading.Thread(target=lambda: _copy(tail, seen), daemon=True)
    reader.start()
    try:
        wait_until(lambda: f":worker_01:{before} ready".encode() in seen, 30, "the worker's last lines")
        assert stack.ctl("restart", "worker_01").returncode == 0
        stack.wait_running(EVERYTHING)
        after = pids(stack)["worker_01"]
        assert after != before
        # The new process's lines, written after tail started, reach the same tail.
        wait_until(lambda: f":worker_01:{after} ready".encode() in seen, 30, "the restarted worker's lines")
        assert tail.poll() is None  # still following
    finally:
        tail.send_signal(signal.SIGINT)
        code = tail.wait(10)
    assert code == 130
    # Each line once: what was printed before the new lines came is not printed again with them.
    for pid in (before, after):
        assert seen.count(f":worker_01:{pid} ready".encode()) == 1, seen.decode(errors="replace")


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT's default action in the child, as a shell gives its foreground job: a run of these
    tests as a background job (SIGINT ignored, which children inherit) must not leave the tail
    deaf to the Ctrl-C below (Python installs its KeyboardInterrupt only where SIGINT is not
    ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _copy(proc: subprocess.Popen[bytes], into: bytearray) -> None:
    assert proc.stdout is not None
    while chunk := proc.stdout.read1(65536):
        into.extend(chunk)


def test_reload_restarts_every_program_and_the_run_goes_on(running: Running) -> None:
    stack = running.stack
    before = pids(stack)
    done = stack.ctl("reload")
    assert (done.returncode, done.stdout) == (0, "reloading: supervisord restarts every program\n"), (
        done.stderr
    )

    def all_new() -> bool:
        now = {row["name"]: row for row in stack.status()}
        return set(now) == set(before) and all(
            row["state"] == "RUNNING" and int(row["pid"]) != before[name] for name, row in now.items()
        )

    wait_until(all_new, 60, "every program RUNNING again with a new PID", interval=0.2)
    assert stack.proc is not None and stack.proc.poll() is None  # `noetl run` itself stayed
    stack.wait_ready()
    (view,) = finished(stack, [submit(stack, "echo after the reload")])
    assert view["status"] == "COMPLETED", view


def test_ctrl_c_stops_everything_and_lets_the_running_command_finish(running: Running) -> None:
    stack = running.stack
    assert stack.proc is not None
    marker = running.shared / "ctrl-c"
    eid = submit(stack, f"touch {marker}; sleep 2; echo finished")
    wait_until(marker.exists, 30, "the command running")
    tree = [psutil.Process(stack.proc.pid), *psutil.Process(stack.proc.pid).children(recursive=True)]
    os.killpg(stack.proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole foreground group
    assert stack.wait(timeout=60) == 0, stack.output()[-3000:]
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert alive == []
    (command,) = pg_fetch(
        running.pg_env,
        "SELECT status, attempt, result FROM noetl.commands WHERE execution_id = $1::uuid",
        eid,
    )
    assert (command["status"], command["attempt"]) == ("completed", 1), command
    assert json.loads(command["result"])["stdout"] == "finished\n"
