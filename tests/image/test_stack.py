"""A container from the image runs the stack as the manifests run it: server and worker
Deployments as two containers (their user, read-only root, emptyDirs, memory limit and
environment), against a real PostgreSQL and NATS JetStream on the host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.image.stack import Backends, Stack, manifest_stack, submit, wait_status

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


def test_every_process_runs_as_the_non_root_user(stack: Stack) -> None:
    probe = "import psutil; print(sorted({p.uids().real for p in psutil.process_iter()}))"
    for container in (stack.server, stack.worker):
        done = container.exec("python", "-c", probe)
        assert done.stdout.strip() == "[10001]", (container.name, done.stdout)
        assert container.exec("cat", "/proc/1/status").stdout.count("10001") >= 2


def test_the_root_filesystem_is_read_only_as_in_the_manifests(stack: Stack) -> None:
    done = stack.worker.exec("sh", "-c", "touch /opt/venv/x 2>&1; touch /tmp/x && echo tmp-ok")
    assert "Read-only file system" in done.stdout
    assert "tmp-ok" in done.stdout
