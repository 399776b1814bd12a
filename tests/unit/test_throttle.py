"""The throttled warning: a new problem at once, the same one at most every few seconds."""

from __future__ import annotations

import logging

import pytest

from noetl.throttle import Throttle
from tests.unit.clock import FakeClock

LOG = logging.getLogger("noetl.test.throttle")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


def test_the_same_problem_is_logged_again_only_after_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    warn = Throttle(LOG, prefix="nats: ", every=5.0, clock=clock)
    logged = []
    for now in (0.0, 1.0, 4.9, 5.0, 6.0, 10.1):
        clock.now = now
        logged.append(warn("connection refused"))
    assert logged == [True, False, False, True, False, True]
    assert lines(caplog) == ["nats: connection refused"] * 3
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_a_different_problem_is_logged_at_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    warn = Throttle(LOG, clock=clock)
    assert warn("refused") and warn("timed out") and warn("refused")
    assert not warn("refused")
    assert lines(caplog) == ["refused", "timed out", "refused"]


def test_clear_lets_the_same_problem_be_logged_at_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    warn = Throttle(LOG, clock=clock)
    assert warn("refused")
    clock.now = 1.0
    warn.clear()  # it worked for a while, then failed the same way again
    assert warn("refused")
    assert lines(caplog) == ["refused", "refused"]


def test_the_first_line_is_logged_whatever_the_clock_says(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    clock.now = -100.0  # time.monotonic() may be any number, small ones included
    assert Throttle(LOG, clock=clock)("")
    assert lines(caplog) == [""]
