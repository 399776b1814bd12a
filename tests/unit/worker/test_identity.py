"""Who a worker says it is, and what its tools' children may see."""

from __future__ import annotations

import os

from noetl.worker.registry import Identity
from noetl.worker.run import tool_environment


def test_worker_id_is_host_name_pid() -> None:
    identity = Identity(host="node-1", name="worker_03", pid=4242, concurrency=4)
    assert identity.worker_id == "node-1:worker_03:4242"
    assert identity.registration() == {
        "worker_id": "node-1:worker_03:4242",
        "name": "worker_03",
        "host": "node-1",
        "pid": 4242,
        "concurrency": 4,
    }


def test_identity_of_this_process_uses_its_pid() -> None:
    identity = Identity.of_this_process("worker", 2)
    assert identity.pid == os.getpid()
    assert identity.worker_id.endswith(f":worker:{os.getpid()}")


def test_tool_environment_keeps_only_the_allow_list() -> None:
    env = tool_environment(
        {
            "PATH": "/bin",
            "HOME": "/home/n",
            "LANG": "C.UTF-8",
            "LC_ALL": "C",
            "TZ": "UTC",
            "NOETL_API_TOKEN": "t0ken",
            "NOETL_HOME": "/var/lib/noetl",
            "POSTGRES_PASSWORD": "pw",
            "NATS_URL": "nats://secret@x:4222",
            "NOETL_CONFIG": "/etc/noetl.toml",
            "SUPERVISOR_SERVER_URL": "unix:///run/supervisor.sock",
            "SUPERVISOR_PROCESS_NAME": "worker_00",
            "PYTHONPATH": "/x",
        }
    )
    assert env == {
        "PATH": "/bin",
        "HOME": "/home/n",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "SUPERVISOR_SERVER_URL": "unix:///run/supervisor.sock",
    }
