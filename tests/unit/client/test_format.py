"""How `noetl status` prints a playbook's steps: a loop step shows its iterations done/total."""

from __future__ import annotations

from noetl.client.format import iterations, playbook_text


def test_a_loop_step_shows_done_over_total() -> None:
    assert iterations({"total": 2000, "done": 1500, "failed": 0, "running": 50}) == "1500/2000"
    assert iterations({"total": 3, "done": 1, "failed": 1, "running": 0}) == "1/3, 1 failed"
    assert iterations(None) == ""


def test_the_step_table_has_an_iterations_column() -> None:
    text = playbook_text(
        {
            "execution_id": "e1",
            "status": "RUNNING",
            "path": "tests/loop",
            "version": 1,
            "steps": [
                {"name": "start", "status": "done", "attempts": 1},
                {
                    "name": "each",
                    "status": "running",
                    "attempts": 1,
                    "iterations": {"total": 10, "done": 4, "failed": 0, "running": 2},
                },
            ],
        }
    )
    lines = text.splitlines()
    assert lines[2].split() == ["STEP", "STATUS", "DURATION", "ATTEMPTS", "ITERATIONS"]
    assert lines[3].split() == ["start", "done", "-", "1"]
    assert lines[4].split() == ["each", "running", "-", "1", "4/10"]
