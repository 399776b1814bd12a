"""Policy rules, one by one, with attempts played in memory: which rule wins, how many attempts
run, what is reported as retried, what the outcome becomes (no processes: tests/worker runs real ones)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from noetl.tools.base import Outcome
from noetl.tools.policy import Applied, PolicyError, output_of, rules_of, run

HTTP_503 = Outcome(ok=False, error="GET x answered 503", output={"status_code": 503, "data": "busy"})
HTTP_200 = Outcome(ok=True, result={"status_code": 200, "data": {"ok": True}})


def play(
    outcomes: Sequence[Outcome], *rules: dict[str, Any], scope: dict[str, Any] | None = None
) -> tuple[Applied, int, list[float]]:
    """Run the rules over attempts that give ``outcomes`` in turn; (applied, attempts made, sleeps)."""
    made: list[int] = []
    slept: list[float] = []

    async def once() -> Outcome:
        made.append(1)
        return outcomes[min(len(made), len(outcomes)) - 1]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    parsed = rules_of({"policy": {"rules": list(rules)}}, "spec") if rules else ()
    applied = asyncio.run(run(once, parsed, scope or {}, "spec", None, sleep=sleep))
    return applied, len(made), slept


RETRY = {
    "when": "{{ output.http.status >= 500 }}",
    "then": {"do": "retry", "attempts": 3, "delay": 1, "backoff": "exponential"},
}


def test_output_has_status_data_error_and_the_http_status() -> None:
    assert output_of(HTTP_503) == {
        "status": "error",
        "data": {"status_code": 503, "data": "busy"},
        "error": "GET x answered 503",
        "http": {"status": 503},
    }
    assert output_of(Outcome(ok=True, result=7)) == {
        "status": "ok",
        "data": 7,
        "error": None,
        "http": {"status": None},
    }


def test_retry_runs_until_the_rule_stops_matching_and_lists_each_retried_attempt() -> None:
    applied, made, slept = play([HTTP_503, HTTP_503, HTTP_200], RETRY)
    assert made == 3 and applied.outcome == HTTP_200
    assert [(r["attempt"], r["status"]) for r in applied.retries] == [(1, 503), (2, 503)]
    assert slept == [1.0, 2.0]  # exponential: doubled after each attempt


def test_retry_stops_at_attempts_and_keeps_the_last_error() -> None:
    applied, made, slept = play([HTTP_503], RETRY)
    assert made == 3 and len(applied.retries) == 2 and slept == [1.0, 2.0]
    assert not applied.outcome.ok and applied.outcome.error == "GET x answered 503 (after 3 attempts)"


def test_a_fixed_delay_stays_the_same_and_no_delay_never_sleeps() -> None:
    fixed = {"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 3, "delay": 0.5}}
    assert play([HTTP_503], fixed)[2] == [0.5, 0.5]
    instant = {"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 2}}
    assert play([HTTP_503], instant)[2] == []


def test_the_first_matching_rule_wins_and_else_catches_the_rest() -> None:
    rules = (
        {
            "when": "{{ output.http.status == 503 }}",
            "then": {"do": "continue", "set": {"ctx.which": "first"}},
        },
        {"when": "{{ output.status == 'error' }}", "then": {"do": "fail", "set": {"ctx.which": "second"}}},
        {"else": {"then": {"do": "continue", "set": {"ctx.which": "else"}}}},
    )
    assert play([HTTP_503], *rules)[0].writes == {"ctx.which": "first"}
    assert play([HTTP_200], *rules)[0].writes == {"ctx.which": "else"}


def test_continue_turns_an_error_into_data() -> None:
    applied, made, _ = play([HTTP_503], {"when": True, "then": {"do": "continue"}})
    assert made == 1 and applied.outcome.ok
    assert applied.outcome.result == output_of(HTTP_503)


def test_fail_fails_a_success() -> None:
    applied, _, _ = play([HTTP_200], {"when": "{{ output.data.data.ok }}", "then": {"do": "fail"}})
    assert not applied.outcome.ok and applied.outcome.error == "a policy failed attempt 1"


def test_break_and_jump_are_reported_for_the_task_list() -> None:
    applied, _, _ = play([HTTP_200], {"when": True, "then": {"do": "break"}})
    assert applied.stop and applied.outcome == HTTP_200
    applied, _, _ = play([HTTP_503], {"when": True, "then": {"do": "jump", "to": "other"}})
    assert applied.jump == "other" and applied.outcome.ok and not applied.stop


def test_without_a_match_ok_continues_and_error_fails_after_one_attempt() -> None:
    never = {"when": "{{ attempt > 5 }}", "then": {"do": "retry"}}
    assert play([HTTP_200], never)[0].outcome == HTTP_200
    applied, made, _ = play([HTTP_503], never)
    assert made == 1 and applied.outcome == HTTP_503 and applied.retries == []


def test_rules_see_the_attempt_number_and_the_callers_scope() -> None:
    rule = {"when": "{{ attempt < limit }}", "then": {"do": "retry", "attempts": 10}}
    applied, made, _ = play([HTTP_503], rule, scope={"limit": 4})
    assert made == 4 and [r["attempt"] for r in applied.retries] == [1, 2, 3]


def test_set_is_rendered_with_output() -> None:
    rule = {"when": True, "then": {"do": "continue", "set": {"ctx.code": "{{ output.http.status }}"}}}
    assert play([HTTP_503], rule)[0].writes == {"ctx.code": 503}


def test_a_when_that_cannot_be_evaluated_fails_naming_the_rule() -> None:
    applied, _, _ = play([HTTP_200], {"when": "{{ nope > 1 }}", "then": {"do": "continue"}})
    assert not applied.outcome.ok
    assert applied.outcome.error == "spec.policy.rules[0].when: 'nope' is undefined"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"policy": {"rules": [{"when": True, "then": {"do": "retry", "delay": -1}}]}},
            "spec.policy.rules[0].then.delay: expected seconds",
        ),
        (
            {"policy": {"rules": [{"when": True, "then": {"do": "retry", "attempts": True}}]}},
            "spec.policy.rules[0].then.attempts",
        ),
        (
            {"policy": {"rules": [{"when": "", "then": {}}]}},
            "spec.policy.rules[0].when: expected an expression",
        ),
        (
            {"policy": {"rules": [{"else": {"then": {}}, "when": True}]}},
            "spec.policy.rules[0].else: expected {then",
        ),
        (
            {"policy": {"rules": [{"when": True, "then": {"do": "continue", "set": ["x"]}}]}},
            "spec.policy.rules[0].then.set",
        ),
        ({"policy": {"rule": []}}, "spec.policy: expected a mapping with `rules`"),
        ([], "spec: expected a mapping with `policy`"),
    ],
)
def test_a_broken_policy_is_refused_with_one_line(spec: Any, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        rules_of(spec, "spec")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
