"""A container from the image runs the stack as the manifests run it: server and worker
Deployments as two containers (their user, read-only root, emptyDirs, memory limit and
environment), against a real PostgreSQL and NATS JetStream on the host."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.image.processes import PROBE, not_running_as, parse, split_at_pid1
from tests.image.stack import Backends, Stack, manifest_stack, run_as, submit, wait_status

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def stack(image: str, backends: Backends, run_id: str) -> Iterator[Stack]:
    with manifest_stack(image, backends, f"noetl-test-{run_id}-stack") as running:
        running.server.wait_healthy()
        running.worker.wait_healthy()
        yield running


def status_rows(output: str) -> dict[str, str]:
    """`noetl ctl status` table -> {process name: state}."""
    lines = output.strip().splitlines()
    assert lines and lines[0].split()[:2] == ["NAME", "STATE"], output
    return {line.split()[0]: line.split()[1] for line in lines[1:]}


def test_both_containers_become_healthy(stack: Stack) -> None:
    # The HEALTHCHECK: /api/health in the server, supervisord's process states in the worker.
    assert stack.server.health() == "healthy"
    assert stack.worker.health() == "healthy"


def test_ctl_status_shows_everything_running(stack: Stack) -> None:
    server = stack.server.exec("noetl", "ctl", "status")
    assert server.returncode == 0, server.stdout
    assert status_rows(server.stdout) == {"listener": "RUNNING", "server": "RUNNING"}
    worker = stack.worker.exec("noetl", "ctl", "status")
    assert worker.returncode == 0, worker.stdout
    # NOETL_WORKERS=2 in the ConfigMap.
    assert status_rows(worker.stdout) == {
        "listener": "RUNNING",
        "worker_00": "RUNNING",
        "worker_01": "RUNNING",
    }


def test_a_command_submitted_through_the_published_port_completes(stack: Stack) -> None:
    execution = submit(stack.port, "echo hello from the image; id -u")
    done = wait_status(stack.port, execution, {"COMPLETED", "FAILED", "CANCELLED"})
    assert done["status"] == "COMPLETED", done
    assert "hello from the image" in str(done)


def test_every_process_of_the_image_runs_as_the_non_root_user(stack: Stack) -> None:
    # PID 1 and everything under it; what `docker exec` and the HEALTHCHECK enter from outside
    # (root for a moment while runc sets them up) is named, not judged: see tests/image/processes.py.
    for container in (stack.server, stack.worker):
        status = container.exec("noetl", "ctl", "status", "--json")
        assert status.returncode == 0, status.stdout
        programs = {row["name"]: row["pid"] for row in json.loads(status.stdout)}
        done = container.exec("python", "-c", PROBE)
        assert done.returncode == 0, done.stdout
        snapshot = parse(done.stdout)
        image, outside = split_at_pid1(snapshot.processes)
        print(
            f"\n{container.name}: entered from outside PID 1:", *(p.describe() for p in outside), sep="\n  "
        )

        pids = {p.pid for p in image}
        assert 1 in pids and set(programs.values()) <= pids, (programs, [p.describe() for p in image])
        assert snapshot.probe in {p.pid for p in outside}
        wrong = not_running_as(*run_as(container.deployment), image)
        assert not wrong, (container.name, [p.describe() for p in wrong])


def test_the_root_filesystem_is_read_only_as_in_the_manifests(stack: Stack) -> None:
    done = stack.worker.exec("sh", "-c", "touch /opt/venv/x 2>&1; touch /tmp/x && echo tmp-ok")
    assert "Read-only file system" in done.stdout
    assert "tmp-ok" in done.stdout
