"""The one backoff loop: delays grow and cap, the deadline is kept, other errors are not retried.

The clock and the sleep are fakes, so nothing waits."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from noetl.retry import Backoff, retry
from tests.unit.clock import FakeClock


class Flaky:
    """Raises ``error`` for the first ``failures`` calls, then returns how many calls it took."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("refused")
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


def test_delays_double_from_first_up_to_the_cap() -> None:
    delays = list(itertools.islice(Backoff(first=0.1, cap=1.0).delays(), 7))
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_delays_grow_by_the_given_factor() -> None:
    delays = list(itertools.islice(Backoff(first=1.0, cap=3.0, factor=1.5).delays(), 5))
    assert delays == pytest.approx([1.0, 1.5, 2.25, 3.0, 3.0])


def test_retry_returns_the_first_success_after_sleeping_each_delay_once() -> None:
    clock, flaky = FakeClock(), Flaky(failures=4)
    seen: list[BaseException] = []
    result = asyncio.run(
        retry(
            flaky,
            errors=(ConnectionError,),
            backoff=Backoff(first=0.2, cap=0.5),
            on_error=seen.append,
            clock=clock,
            sleep=clock.sleep,
        )
    )
    assert result == 5 and flaky.calls == 5
    assert clock.sleeps == pytest.approx([0.2, 0.4, 0.5, 0.5])
    assert len(seen) == 4 and all(isinstance(e, ConnectionError) for e in seen)


def test_a_success_at_once_never_sleeps() -> None:
    clock = FakeClock()
    result = asyncio.run(
        retry(Flaky(failures=0), errors=(ConnectionError,), backoff=Backoff(1, 1), sleep=clock.sleep)
    )
    assert result == 1 and clock.sleeps == []


def test_an_error_not_listed_ends_the_loop_at_once() -> None:
    clock, flaky = FakeClock(), Flaky(failures=3, error=ValueError("a bug, not an outage"))
    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(retry(flaky, errors=(ConnectionError,), backoff=Backoff(1, 1), sleep=clock.sleep))
    assert flaky.calls == 1 and clock.sleeps == []


def test_the_deadline_raises_the_last_error_instead_of_sleeping_past_it() -> None:
    clock, flaky = FakeClock(), Flaky(failures=1000)
    seen: list[BaseException] = []
    with pytest.raises(ConnectionError):
        asyncio.run(
            retry(
                flaky,
                errors=(ConnectionError,),
                backoff=Backoff(first=1.0, cap=1.0),
                on_error=seen.append,
                until=3.5,
                clock=clock,
                sleep=clock.sleep,
            )
        )
    # Attempts at 0, 1, 2 and 3; a fifth would start at 4, after the deadline.
    assert flaky.calls == 4 and clock.sleeps == [1.0, 1.0, 1.0]
    assert clock.now <= 3.5
    assert len(seen) == 3  # the error that ends the loop is raised, not reported as retried


def test_a_deadline_already_past_makes_one_attempt() -> None:
    clock, flaky = FakeClock(), Flaky(failures=1)
    clock.now = 10.0
    with pytest.raises(ConnectionError):
        asyncio.run(
            retry(
                flaky,
                errors=(ConnectionError,),
                backoff=Backoff(0.1, 1),
                until=5.0,
                clock=clock,
                sleep=clock.sleep,
            )
        )
    assert flaky.calls == 1
