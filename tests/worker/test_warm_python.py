"""Warm python templates under a real worker, server, PostgreSQL and NATS: every command is forked
from the worker's template and nothing of one command reaches the next; the template survives
what its commands do, is replaced when it dies, and dies with its worker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from noetl.supervisor.ctl_status import rows
from noetl.tools.warm_mark import is_spare, is_template
from noetl.worker.run import tool_environment
from tests.services import wait_until
from tests.worker.harness import Cluster, event_types
from tests.worker.procs import alive, read_pids, wait_gone

pytestmark = pytest.mark.integration

# The command's pid and its parent's (the template's), one line each, to `path`.
RECORD_PIDS = "import os\nopen(path, 'a').write(f'{os.getpid()}\\n{os.getppid()}\\n')\n"


def started(cluster: Cluster, name: str = "worker_00", **env: str) -> subprocess.Popen[bytes]:
    """A worker whose template has loaded (it starts once the worker is registered)."""
    cluster.start_server()
    worker = cluster.start_worker(name, **env)
    cluster.wait_worker_ready(name)
    wait_until(lambda: serving(worker), 30, "the python template loaded")
    return worker


def serving(worker: subprocess.Popen[bytes]) -> bool:
    """Whether the worker's template has loaded: it forks its spare child once it serves."""
    templates = [c for c in psutil.Process(worker.pid).children() if is_template(c.cmdline())]
    return len(templates) == 1 and any(is_spare(c.name()) for c in templates[0].children())


def python(cluster: Cluster, code: str, timeout: float = 30, **tool: Any) -> dict[str, Any]:
    """Run one python command to its end; its command row."""
    eid, _ = cluster.submit({"kind": "python", "code": code, **tool}, timeout=timeout)
    view = cluster.wait_finished([eid], timeout=timeout + 30)[eid]
    assert event_types(view).count("started") == 1, view
    return dict(view["commands"][0])


def template_of(worker: subprocess.Popen[bytes]) -> psutil.Process:
    """The worker's one warm template, checked to be its child and marked as a template."""
    templates = [c for c in psutil.Process(worker.pid).children() if is_template(c.cmdline())]
    assert len(templates) == 1, templates
    return templates[0]


def test_nothing_a_command_sets_is_seen_by_the_next(cluster: Cluster) -> None:
    worker = started(cluster)
    first = python(
        cluster,
        "global leaked\nleaked = 'first'\njson.leaked = 'first'\nos.environ['LEAKED'] = 'first'\n"
        "result = os.getppid()",
    )
    second = python(
        cluster,
        "result = {'global': 'leaked' in globals(), 'module': hasattr(json, 'leaked'), "
        "'environ': 'LEAKED' in os.environ, 'parent': os.getppid()}",
    )
    template = template_of(worker).pid
    assert first["result"] == template  # both forked from the same template ...
    assert second["result"] == {"global": False, "module": False, "environ": False, "parent": template}


def test_a_module_one_command_imports_is_not_imported_in_the_next(cluster: Cluster) -> None:
    started(cluster)
    # colorsys: in the standard library, imported by nothing the template loads.
    imports = python(cluster, "import colorsys, sys\nresult = 'colorsys' in sys.modules")
    with_libs = python(cluster, "result = c.rgb_to_hsv(1, 0, 0)", libs={"c": "colorsys"})
    after = python(cluster, "import sys\nresult = 'colorsys' in sys.modules")
    assert imports["result"] is True
    assert with_libs["result"] == [0.0, 1.0, 1]
    # Neither the import nor `libs` ran in the template: the next fork does not have it.
    assert after["result"] is False


def test_preloaded_modules_are_there_without_an_import_and_a_bad_one_is_one_log_line(
    cluster: Cluster,
) -> None:
    started(cluster, NOETL_PYTHON_PRELOAD="colorsys,surely_not_a_module")
    command = python(
        cluster, "import sys\nresult = ['colorsys' in sys.modules, 'surely_not_a_module' in sys.modules]"
    )
    assert command["result"] == [True, False]
    log = cluster.output("worker_00")
    assert (
        "NOETL_PYTHON_PRELOAD: cannot import 'surely_not_a_module' "
        "(ModuleNotFoundError: No module named 'surely_not_a_module'); commands run without it preloaded"
    ) in log
    assert "Traceback" not in log


def test_a_command_leaking_memory_is_killed_at_its_timeout_and_the_template_is_unaffected(
    cluster: Cluster, tmp_path: Path
) -> None:
    worker = started(cluster)
    # Measured once the template has imported everything and served a command: a template still
    # starting grows by itself (10 -> 16 MiB seen under load).
    assert python(cluster, "result = 1")["result"] == 1
    template = template_of(worker)
    before = template.memory_info().rss
    pids = tmp_path / "pids"
    code = RECORD_PIDS + (
        "import time\nhog = []\nwhile True:\n    hog.append(b'x' * (4 * 2**20))\n    time.sleep(0.02)\n"
    )
    eid, _ = cluster.submit({"kind": "python", "code": code, "args": {"path": str(pids)}}, timeout=3)
    leaker, parent = read_pids(pids, 2)
    assert parent == template.pid
    # It really leaks: well past the template's whole size before the timeout ends it.
    wait_until(lambda: psutil.Process(leaker).memory_info().rss > 200 * 2**20, 10, "the leak to grow")
    view = cluster.wait_finished([eid], timeout=30)[eid]
    assert view["commands"][0]["error"] == "timed out after 3s: killed"
    assert wait_gone([leaker]) == []
    assert template.is_running() and template_of(worker).pid == template.pid
    assert template.memory_info().rss < before + 4 * 2**20
    assert python(cluster, "result = os.getppid()")["result"] == template.pid


def test_sigkill_of_the_template_fails_its_commands_cleanly_and_the_next_starts_in_a_new_one(
    cluster: Cluster, tmp_path: Path
) -> None:
    worker = started(cluster)
    old = template_of(worker).pid
    pids = tmp_path / "pids"
    code = RECORD_PIDS + "import time\ntime.sleep(300)\nresult = 'slept'"
    running = [
        cluster.submit({"kind": "python", "code": code, "args": {"path": str(pids)}})[0] for _ in range(2)
    ]
    recorded = read_pids(pids, 4)
    commands, parents = recorded[0::2], recorded[1::2]
    assert parents == [old, old]
    psutil.Process(old).send_signal(signal.SIGKILL)
    views = cluster.wait_finished(running, timeout=30)  # not after their 300 s
    for view in views.values():
        assert view["status"] == "FAILED"
        assert view["commands"][0]["error"] == (
            "the python process was killed with its warm template (the template process died) "
            "before giving a result"
        )
    assert wait_gone(commands) == []
    assert worker.poll() is None
    new = python(cluster, "result = os.getppid()")["result"]
    assert new != old and new == template_of(worker).pid


def test_a_timeout_kills_the_commands_whole_process_group(cluster: Cluster, tmp_path: Path) -> None:
    worker = started(cluster)
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess\n"
        "sleeper = subprocess.Popen(['sleep', '300'])\n"
        "open(path, 'w').write(f'{os.getpid()}\\n{sleeper.pid}\\n')\n"
        "sleeper.wait()\n"
    )
    command = python(cluster, code, timeout=1, args={"path": str(pids)})
    assert command["error"] == "timed out after 1s: killed"
    assert wait_gone(read_pids(pids, 2)) == []
    assert template_of(worker).is_running()


def test_a_cancel_kills_the_commands_whole_process_group(cluster: Cluster, tmp_path: Path) -> None:
    started(cluster)
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess\n"
        "sleeper = subprocess.Popen(['sleep', '300'])\n"
        "open(path, 'w').write(f'{os.getpid()}\\n{sleeper.pid}\\n')\n"
        "sleeper.wait()\n"
    )
    eid, _ = cluster.submit({"kind": "python", "code": code, "args": {"path": str(pids)}})
    recorded = read_pids(pids, 2)
    status, body = cluster.api("POST", f"/api/executions/{eid}/cancel", {})
    assert status == 200, body
    assert wait_gone(recorded) == []


def test_the_template_and_its_commands_die_with_the_worker(cluster: Cluster, tmp_path: Path) -> None:
    worker = started(cluster)
    pids = tmp_path / "pids"
    cluster.submit(
        {"kind": "python", "code": RECORD_PIDS + "import time\ntime.sleep(300)", "args": {"path": str(pids)}}
    )
    command, template = read_pids(pids, 2)
    worker.send_signal(signal.SIGKILL)
    assert wait_gone([template, command]) == []


def test_a_commands_grandchild_dies_with_the_worker_too(cluster: Cluster, tmp_path: Path) -> None:
    # The template dies with the worker and the command with its template, but a grandchild
    # (the command's own subprocess) only goes because the worker's keeper kills the group.
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess\n"
        "sleeper = subprocess.Popen(['sleep', '300'])\n"
        "open(path, 'w').write(f'{os.getpid()}\\n{sleeper.pid}\\n')\n"
        "sleeper.wait()\n"
    )
    worker = started(cluster)
    cluster.submit({"kind": "python", "code": code, "args": {"path": str(pids)}})
    recorded = read_pids(pids, 2)
    worker.send_signal(signal.SIGKILL)
    assert wait_gone(recorded) == []


def test_a_command_gets_the_environment_a_fresh_interpreter_got_and_the_template_no_secret(
    cluster: Cluster,
) -> None:
    worker = started(cluster, NOETL_API_TOKEN="worker-secret-4711", LC_TIME="C")
    seen = python(cluster, "result = dict(os.environ)")["result"]
    # What `python -c` started with the tool environment (the allow-list of the worker's) has.
    allowed = tool_environment(cluster.full_env({"SUPERVISOR_PROCESS_NAME": "worker_00", "LC_TIME": "C"}))
    fresh = subprocess.run(
        [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        env=allowed,
        capture_output=True,
        text=True,
        check=True,
    )
    assert seen == json.loads(fresh.stdout)
    assert "LC_TIME" in seen
    template = template_of(worker).environ()
    assert set(template) == set(allowed)
    assert not [value for value in template.values() if "worker-secret-4711" in value]


def test_ctl_status_counts_the_template_in_the_workers_memory(cluster: Cluster) -> None:
    worker = started(cluster)
    template = template_of(worker)
    info = {"name": "worker_00", "group": "workers", "statename": "RUNNING", "pid": worker.pid, "start": 0}
    (row,) = rows([info])
    assert row.rss is not None
    own = psutil.Process(worker.pid).memory_info().rss
    # Idle processes: their sizes hardly move between the two readings.
    assert abs(row.rss - (own + template.memory_info().rss)) < 2 * 2**20
    assert template.memory_info().rss > 4 * 2**20
    assert alive(template.pid)


def test_the_template_starts_once_the_worker_is_registered(cluster: Cluster) -> None:
    # At `noetl run`'s start the server is still importing while the workers wait to register:
    # a template importing then would take CPU from the server, so it starts after the worker
    # registered.
    worker = cluster.start_worker("worker_00")
    wait_until(lambda: " starting: " in cluster.output("worker_00"), 30, "worker_00 starting")
    waiting = psutil.Process(worker.pid).children()
    assert not [c for c in waiting if is_template(c.cmdline())], [c.cmdline() for c in waiting]
    assert "registered as" not in cluster.output("worker_00")
    cluster.start_server()
    cluster.wait_worker_ready("worker_00")
    assert template_of(worker).is_running()
