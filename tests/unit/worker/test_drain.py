"""The drain budget nests inside the stop timeout: commands finish, then release, then exit."""

from __future__ import annotations

import pytest

from noetl.worker.drain import drain_budget


def test_default_stop_timeout_leaves_three_seconds_of_margin() -> None:
    budget = drain_budget(20)
    assert budget.drain == 17.0
    assert budget.leave == 19.0


def test_short_stop_timeout_keeps_a_fifth_as_margin() -> None:
    budget = drain_budget(2)
    assert budget.drain == pytest.approx(1.6)
    assert 1.6 < budget.leave < 2


@pytest.mark.parametrize("stop_timeout", [2, 3, 5, 10, 15, 20, 60, 600, 3600])
def test_drain_then_leave_both_before_sigkill(stop_timeout: int) -> None:
    budget = drain_budget(stop_timeout)
    assert 0 < budget.drain < budget.leave < stop_timeout
    # A third of the margin stays as slack between leaving and SIGKILL.
    assert stop_timeout - budget.leave >= min(3.0, stop_timeout * 0.2) / 3 - 0.01
