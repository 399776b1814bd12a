"""Real workers against the real server, PostgreSQL and NATS: exactly-once completion, drain on
SIGTERM, SIGKILL recovery, duplicate notices, timeouts, and waiting for what is not up yet.

Workers and the server are separate processes started by the ``Cluster`` and stopped by PID.
Commands that should take long only on their first attempt use a marker file, so a second
attempt (after a release or a lost lease) finishes at once and the tests stay short.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.services import Nats, wait_until
from tests.worker.harness import Cluster, assert_completed_once, event_types, worker_events
from tests.worker.procs import read_pids, wait_gone

pytestmark = pytest.mark.integration


def slow_first_time(marker: Path, seconds: int, pid_file: Path | None = None) -> str:
    """A shell command that sleeps ``seconds`` on its first run and finishes at once after that."""
    record = f"echo $$ >> {pid_file}; " if pid_file else ""
    return (
        f"if [ -e {marker} ]; then echo again; else touch {marker}; {record}sleep {seconds}; echo first; fi"
    )


def started_by(cluster: Cluster, execution_id: str, timeout: float = 20) -> dict:
    """Wait for the first started event of an execution and return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = worker_events(cluster.execution(execution_id), "started")
        if started:
            return started[0]
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} not started: {cluster.execution(execution_id)}")


def test_mixed_commands_with_two_workers_each_complete_exactly_once(cluster: Cluster) -> None:
    # 200 of them run under `noetl run` in test_under_noetl_run; here the workers are bare processes.
    cluster.start_server()
    for name in ("worker_00", "worker_01"):
        cluster.start_worker(name)
    for name in ("worker_00", "worker_01"):
        cluster.wait_worker_ready(name)
    expected: dict[str, object] = {}
    for i in range(40):
        if i % 2:
            eid, _ = cluster.submit({"kind": "python", "code": "result = n * 2", "args": {"n": i}})
            expected[eid] = i * 2
        else:
            eid, _ = cluster.submit({"kind": "shell", "command": f"echo {i}"})
            expected[eid] = {"exit_code": 0, "stdout": f"{i}\n", "stderr": ""}
    views = cluster.wait_finished(expected, timeout=120)
    workers: Counter[str] = Counter()
    for eid, view in views.items():
        assert_completed_once(view)
        assert Counter(event_types(view))["started"] == 1, view
        (command,) = view["commands"]
        assert command["status"] == "completed"
        assert command["attempt"] == 1
        assert command["result"] == expected[eid]
        workers[worker_events(view, "completed")[0]["worker_id"]] += 1
    assert set(workers) == {cluster.worker_id("worker_00"), cluster.worker_id("worker_01")}
    for status in ("RUNNING", "FAILED"):
        assert cluster.api("GET", f"/api/executions?status={status}&limit=1")[1]["total"] == 0


def test_sigterm_lets_the_running_command_finish_then_exits_0(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_server()
    worker = cluster.start_worker("worker_00", NOETL_WORKER_STOP_TIMEOUT="10")
    cluster.wait_worker_ready("worker_00")
    # Long enough for a registry heartbeat (every 5 s) to show it, and to be running at the SIGTERM.
    eid, cid = cluster.submit({"kind": "shell", "command": "sleep 7; echo finished"})
    started_by(cluster, eid)
    wait_until(
        lambda: cluster.api("GET", "/api/workers")[1]["items"][0]["running"] == [cid],
        10,
        "running in registry",
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0  # within its stop timeout: before supervisord's SIGKILL
    view = cluster.execution(eid)
    assert_completed_once(view)
    assert view["commands"][0]["result"]["stdout"] == "finished\n"
    assert "released" not in event_types(view)
    (registered,) = cluster.api("GET", "/api/workers")[1]["items"]
    assert registered["status"] == "offline"
    assert "draining" in cluster.output("worker_00")


def test_sigterm_past_the_drain_deadline_releases_to_another_worker(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_server()
    first = cluster.start_worker("worker_00", NOETL_WORKER_STOP_TIMEOUT="4")
    cluster.wait_worker_ready("worker_00")
    eid, _ = cluster.submit({"kind": "shell", "command": slow_first_time(tmp_path / "marker", 60)})
    assert started_by(cluster, eid)["worker_id"] == cluster.worker_id("worker_00")
    cluster.start_worker("worker_01")
    cluster.wait_worker_ready("worker_01")
    first.send_signal(signal.SIGTERM)
    # Released and gone by itself. Its deadlines (release at 3.2 s, gone by 3.7 s after the signal)
    # are timed on a fake clock in tests/unit/worker/test_loop.py and test_drain.py; on a loaded
    # machine this process may be seconds late, which a wait bounded at the stop timeout (0.3 s of
    # slack) took for a failure.
    assert first.wait(timeout=30) == 0
    assert "releasing 1 command(s)" in cluster.output("worker_00")
    view = cluster.wait_finished([eid], timeout=30)[eid]
    assert_completed_once(view)
    assert event_types(view).count("released") == 1
    completed = worker_events(view, "completed")[0]
    assert completed["worker_id"] == cluster.worker_id("worker_01")
    assert view["commands"][0]["result"]["stdout"] == "again\n"
    assert view["commands"][0]["lost_leases"] == 0  # a release is not a failed attempt


def test_a_second_sigterm_releases_at_once(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_server()
    first = cluster.start_worker("worker_00", NOETL_WORKER_STOP_TIMEOUT="120")
    cluster.wait_worker_ready("worker_00")
    pids = tmp_path / "pids"
    eid, _ = cluster.submit({"kind": "shell", "command": slow_first_time(tmp_path / "marker", 300, pids)})
    command_pids = read_pids(pids, 1)  # the command runs
    first.send_signal(signal.SIGTERM)
    wait_until(lambda: "draining" in cluster.output("worker_00"), 20, "worker draining")
    assert first.poll() is None  # draining: it would wait up to ~117 s for the command
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    assert wait_gone(command_pids) == []  # the command's process was killed, not orphaned
    view = cluster.wait_command_status(eid, "pending", timeout=10)
    assert event_types(view).count("released") == 1
    cluster.start_worker("worker_01")
    assert_completed_once(cluster.wait_finished([eid], timeout=30)[eid])


def test_sigkill_mid_command_the_lease_expires_and_another_worker_completes_it_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_server()
    lease = {"NOETL_WORKER_LEASE": "2"}
    victim = cluster.start_worker("worker_00", **lease)
    cluster.wait_worker_ready("worker_00")
    pids = tmp_path / "pids"
    eid, _ = cluster.submit({"kind": "shell", "command": slow_first_time(tmp_path / "marker", 300, pids)})
    command_pids = read_pids(pids, 1)  # the command runs
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    # The command dies with its worker instead of running on as an orphan.
    assert wait_gone(command_pids) == []
    cluster.start_worker("worker_01", **lease)
    view = cluster.wait_finished([eid], timeout=60)[eid]
    assert_completed_once(view)
    command = view["commands"][0]
    assert command["attempt"] == 2 and command["lost_leases"] == 1
    assert worker_events(view, "completed")[0]["worker_id"] == cluster.worker_id("worker_01")


async def _publish(nats_url: str, subject: str, payload: bytes, msg_id: str) -> None:
    import nats as nats_py

    nc = await nats_py.connect(nats_url)
    try:
        await nc.jetstream().publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
    finally:
        await nc.close()


async def _unsettled(nats_url: str) -> int:
    import nats as nats_py

    nc = await nats_py.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("NOETL_COMMANDS", "noetl-workers")
        return int(info.num_pending + info.num_ack_pending)
    finally:
        await nc.close()


def test_the_same_notice_delivered_twice_runs_once(cluster: Cluster, nats: Nats, tmp_path: Path) -> None:
    cluster.start_server()
    runs = tmp_path / "runs"
    eid, cid = cluster.submit({"kind": "shell", "command": f"echo ran >> {runs}; sleep 1"})
    notice = json.dumps({"command_id": cid, "execution_id": eid, "attempt": 1}).encode()
    # A second copy under another message id, so JetStream's deduplication does not drop it.
    asyncio.run(_publish(nats.url, "noetl.commands", notice, f"{cid}:copy"))
    for name in ("worker_00", "worker_01"):
        cluster.start_worker(name)
    view = cluster.wait_finished([eid], timeout=30)[eid]
    assert_completed_once(view)
    assert event_types(view).count("started") == 1
    # Both copies were taken and settled; the one that lost the claim was skipped.
    wait_until(lambda: asyncio.run(_unsettled(nats.url)) == 0, 20, "both notices acked")
    assert runs.read_text() == "ran\n"
    logs = cluster.output("worker_00") + cluster.output("worker_01")
    assert f"command {cid} skipped" in logs


def test_timeouts_kill_children_and_python_failures_leave_the_worker_up(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_server()
    worker = cluster.start_worker("worker_00")
    cluster.wait_worker_ready("worker_00")
    pids = tmp_path / "pids"
    slow, _ = cluster.submit(
        {"kind": "shell", "command": f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; sleep 300"}, timeout=1
    )
    raises, _ = cluster.submit({"kind": "python", "code": "raise RuntimeError('no luck')"})
    exits, _ = cluster.submit({"kind": "python", "code": "import os; os._exit(3)"})
    hangs, _ = cluster.submit({"kind": "python", "code": "while True: pass"}, timeout=1)
    views = cluster.wait_finished([slow, raises, exits, hangs], timeout=30)
    assert views[slow]["commands"][0]["error"] == "timed out after 1s: killed"
    assert wait_gone(read_pids(pids, 2)) == []
    assert views[raises]["commands"][0]["error"] == "RuntimeError (line 1): no luck"
    assert (
        views[exits]["commands"][0]["error"] == "the python process exited with code 3 before giving a result"
    )
    assert views[hangs]["commands"][0]["error"] == "timed out after 1s: killed"
    for view in views.values():
        assert view["status"] == "FAILED"
        assert event_types(view).count("failed") == 1
    assert worker.poll() is None
    ok, _ = cluster.submit({"kind": "python", "code": "result = 'still here'"})
    view = cluster.wait_finished([ok], timeout=30)[ok]
    assert view["commands"][0]["result"] == "still here"
    assert worker_events(view, "completed")[0]["worker_id"] == cluster.worker_id("worker_00")


def test_a_stopped_worker_writes_its_last_line_and_skips_the_interpreters_teardown(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The teardown runs the atexit handlers first: one registered at start says if it ran.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import atexit, sys\natexit.register(lambda: print('teardown ran', file=sys.stderr, flush=True))\n"
    )
    cluster.start_server()
    worker = cluster.start_worker("worker_00", PYTHONPATH=str(site))
    cluster.wait_worker_ready("worker_00")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    lines = cluster.output("worker_00").splitlines()
    assert lines[-1].endswith(f"worker {cluster.worker_id('worker_00')} stopped"), lines[-3:]
    assert "teardown ran" not in lines


def test_a_worker_started_before_the_server_and_nats_waits_for_them(cluster: Cluster, nats: Nats) -> None:
    nats.stop()
    worker = cluster.start_worker("worker_00")
    wait_until(lambda: "not answering" in cluster.output("worker_00"), 20, "worker waiting for the server")
    assert worker.poll() is None  # waiting, not crashing (it registers below, as the same process)
    cluster.start_server(wait=False)
    wait_until(lambda: "registered as" in cluster.output("worker_00"), 30, "worker registered")
    assert worker.poll() is None  # now waiting for NATS
    nats.start()
    cluster.wait_worker_ready("worker_00")
    wait_until(cluster._ready, 30, "server ready")
    eid, _ = cluster.submit({"kind": "shell", "command": "echo hi"})
    assert_completed_once(cluster.wait_finished([eid], timeout=30)[eid])


def test_a_worker_stopped_while_waiting_for_the_server_exits_0_at_once(cluster: Cluster) -> None:
    worker = cluster.start_worker("worker_00")
    wait_until(lambda: "starting" in cluster.output("worker_00"), 20, "worker started")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=5) == 0


def test_nats_restart_while_running_is_survived(cluster: Cluster, nats: Nats) -> None:
    cluster.start_server()
    worker = cluster.start_worker("worker_00")
    cluster.wait_worker_ready("worker_00")
    before, _ = cluster.submit({"kind": "shell", "command": "echo before"})
    cluster.wait_finished([before], timeout=30)
    nats.stop()
    # Back only once both noticed it was gone: the worker's client and the server's readiness.
    wait_until(lambda: "nats: disconnected" in cluster.output("worker_00"), 30, "worker saw nats go")
    wait_until(lambda: cluster.api("GET", "/api/ready")[0] == 503, 30, "server not ready without nats")
    nats.start()
    wait_until(lambda: "nats: reconnected" in cluster.output("worker_00"), 30, "worker reconnected")
    wait_until(cluster._ready, 30, "server ready again")
    after, _ = cluster.submit({"kind": "shell", "command": "echo after"})
    assert_completed_once(cluster.wait_finished([after], timeout=30)[after])
    assert worker.poll() is None


def test_nats_back_with_an_empty_store_gets_its_stream_and_consumer_again(
    cluster: Cluster, nats: Nats
) -> None:
    cluster.start_server()
    worker = cluster.start_worker("worker_00")
    cluster.wait_worker_ready("worker_00")
    nats.stop()
    shutil.rmtree(nats.store_dir)
    nats.store_dir.mkdir()
    nats.start()
    wait_until(lambda: "nats: reconnected" in cluster.output("worker_00"), 30, "worker reconnected")
    wait_until(cluster._ready, 30, "server ready again")
    eid, _ = cluster.submit({"kind": "shell", "command": "echo fresh"})
    assert_completed_once(cluster.wait_finished([eid], timeout=30)[eid])
    assert worker.poll() is None


def test_results_are_kept_while_the_server_is_briefly_away(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_server()
    cluster.start_worker("worker_00")
    cluster.wait_worker_ready("worker_00")
    go, ran = tmp_path / "go", tmp_path / "ran"
    eid, _ = cluster.submit(
        {"kind": "shell", "command": f"echo ran >> {ran}; until [ -e {go} ]; do sleep 0.05; done; echo done"}
    )
    started_by(cluster, eid)
    cluster.stop_server()
    answered_before = cluster.output("worker_00").count("not answering")
    go.touch()  # the command finishes while nobody answers...
    wait_until(
        lambda: cluster.output("worker_00").count("not answering") > answered_before,
        30,
        "the worker's report found no server",
    )
    cluster.start_server()  # ...and its report, kept and retried, is what the server gets
    view = cluster.wait_finished([eid], timeout=60)[eid]
    assert_completed_once(view)
    counts = Counter(event_types(view))
    assert (counts["started"], counts["completed"]) == (1, 1), view
    (command,) = view["commands"]
    assert (command["attempt"], command["lost_leases"]) == (1, 0), command
    assert command["result"]["stdout"] == "done\n"
    assert ran.read_text() == "ran\n"  # ran once: no second attempt after the server came back


def test_a_wrong_worker_token_ends_the_worker_with_one_line_and_exit_2(cluster: Cluster) -> None:
    cluster.env["NOETL_API_TOKEN"] = "s3cret-server-token"
    cluster.env["NOETL_WORKER_TOKEN"] = "s3cret-worker-token"
    cluster.start_server()
    worker = cluster.start_worker("worker_00", NOETL_WORKER_TOKEN="wrong-worker-token")
    assert worker.wait(timeout=30) == 2
    output = cluster.output("worker_00")
    assert "the server refused the worker's token (401)" in output
    assert "NOETL_WORKER_TOKEN" in output
    assert "Traceback" not in output
    assert "s3cret" not in output and "wrong-worker-token" not in output
    # The client token is no worker token either: 403, and the same one line.
    client = cluster.start_worker("worker_02", NOETL_WORKER_TOKEN="s3cret-server-token")
    assert client.wait(timeout=30) == 2
    assert "the server refused the worker's token (403)" in cluster.output("worker_02")
    # With the right token the same worker works.
    right = cluster.start_worker("worker_01", NOETL_WORKER_TOKEN="s3cret-worker-token")
    cluster.wait_worker_ready("worker_01")
    submitted = httpx.post(
        cluster.url + "/api/executions",
        json={"tool": {"kind": "shell", "command": "true"}},
        headers={"Authorization": "Bearer s3cret-server-token"},
        timeout=15,
    )
    assert submitted.status_code == 201, submitted.text
    eid = submitted.json()["execution_id"]
    assert_completed_once(cluster.wait_finished([eid], timeout=30)[eid])
    assert right.poll() is None


def test_a_tool_gets_the_allow_list_not_the_workers_settings(cluster: Cluster) -> None:
    # Non-dumpable workers are shown under a root `noetl run`, where the tool is not root:
    # tests/integration/test_lockdown.py. Here the worker is a bare process.
    cluster.start_server()
    # A token the worker holds (the server runs without one, so any bearer passes), a locale
    # setting, and the settings the harness gives it: only the allow-list may reach the tool.
    cluster.start_worker("worker_00", NOETL_API_TOKEN="worker-secret-4711", LC_TIME="C")
    cluster.wait_worker_ready("worker_00")
    eid, _ = cluster.submit({"kind": "shell", "command": "env | sort", "env": {"OWN": "1"}})
    view = cluster.wait_finished([eid], timeout=60)[eid]
    (command,) = view["commands"]
    assert command["status"] == "completed", command
    stdout = command["result"]["stdout"]
    names = {line.split("=", 1)[0] for line in stdout.splitlines()} - {"PWD", "SHLVL", "_"}
    worker_env = cluster.full_env()
    assert names == {"OWN", "LC_TIME"} | {n for n in ("PATH", "HOME", "LANG", "TZ") if n in worker_env}
    assert "worker-secret-4711" not in stdout
    assert not any(
        value in stdout for name, value in worker_env.items() if name.startswith("NOETL_") and len(value) > 6
    )
