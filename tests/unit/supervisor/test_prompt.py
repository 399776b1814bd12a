"""How long supervisord's loop may wait in poll(): not at all when there is work, else until the next
deadline. Real supervisor objects from a rendered config; nothing is spawned."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from supervisor import events
from supervisor.states import ProcessStates, SupervisorStates

from noetl.settings import load_settings
from noetl.supervisor.prompt import PAST_DEADLINE, PromptSupervisor, next_wait
from noetl.supervisor.render import ControlAuth
from tests.unit.supervisor.conftest import parse_with_supervisor, render

NOW = 1_000_000.0


def supervisor_of(tmp_path: Path) -> Any:
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    settings = load_settings(
        {"NOETL_RUN_DIR": str(run_dir), "POSTGRES_HOST": "db", "NOETL_ROLE": "worker", "NOETL_WORKERS": "2"}
    )
    options = parse_with_supervisor(render(settings, ControlAuth("u", "p"), "python"), tmp_path)
    supervisor = PromptSupervisor(options)
    for config in options.process_group_configs:
        supervisor.add_process_group(config)
    events.clear()
    return supervisor


def workers(supervisor: Any) -> list[Any]:
    return sorted(supervisor.process_groups["workers"].processes.values(), key=lambda p: p.config.name)


def test_a_change_of_state_means_another_pass_at_once_then_the_next_deadline(tmp_path: Path) -> None:
    supervisor = supervisor_of(tmp_path)
    # First pass: nothing seen yet, so the programs are spawned without waiting.
    wait, seen = next_wait(supervisor, NOW, None)
    assert wait == 0.0
    # Nothing changed and nothing has a deadline: supervisord's own timeout (1 s) applies.
    wait, seen = next_wait(supervisor, NOW, seen)
    assert wait == float("inf")

    first, second = workers(supervisor)
    first.state, first.laststart = ProcessStates.STARTING, NOW - 0.5
    second.state, second.laststart = ProcessStates.STARTING, NOW - 0.2
    wait, seen = next_wait(supervisor, NOW, seen)
    assert wait == 0.0  # spawned: one more pass now
    wait, seen = next_wait(supervisor, NOW, seen)
    # startsecs (2) runs out first for the worker started 0.5 s ago.
    assert abs(wait - (1.5 + PAST_DEADLINE)) < 1e-9

    first.state, first.delay = ProcessStates.STOPPING, NOW + 0.25  # SIGKILL due in 0.25 s
    wait, seen = next_wait(supervisor, NOW, seen)
    assert wait == 0.0
    wait, seen = next_wait(supervisor, NOW, seen)
    assert abs(wait - (0.25 + PAST_DEADLINE)) < 1e-9


def test_a_signal_or_a_shutdown_means_a_pass_at_once(tmp_path: Path) -> None:
    supervisor = supervisor_of(tmp_path)
    _, seen = next_wait(supervisor, NOW, None)
    supervisor.options.signal_receiver.receive(signal.SIGCHLD, None)
    assert next_wait(supervisor, NOW, seen)[0] == 0.0
    assert supervisor.options.get_signal() == signal.SIGCHLD
    _, seen = next_wait(supervisor, NOW, seen)
    supervisor.options.mood = SupervisorStates.SHUTDOWN
    assert next_wait(supervisor, NOW, seen)[0] == 0.0
