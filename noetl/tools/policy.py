"""Policies: ``spec.policy.rules`` on a tool or a task, evaluated on the worker after each attempt.

``rules: [{when: "{{ ... }}", then: {do, attempts, delay, backoff, set, to}}, {else: {then: ...}}]``:
the first rule whose ``when`` is true (or the ``else``) decides what follows an attempt. Inside a
rule ``output`` is ``{status: "ok" | "error", data, error, http: {status}}`` and ``attempt`` the
attempt's number (1, 2, ...). ``do``:

- ``continue``: go on; on an error too (the result is then ``output``, the error as data);
- ``retry``: run again while fewer than ``attempts`` attempts ran (default 3), after ``delay``
  seconds (``backoff: exponential`` doubles it after each attempt); past the limit the attempt's
  own outcome stands;
- ``fail``: fail (on a success too);
- ``break``: end a task list early with success (on a single tool: like ``continue``);
- ``jump``: go on at the task named ``to`` of the list.

``set: {ctx.key: template}`` writes into the execution's context (reported with the outcome).
Without a policy, or when no rule matches: ok continues, error fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from noetl.tools.base import Outcome

Do = Literal["continue", "retry", "fail", "break", "jump"]
DOS: tuple[Do, ...] = ("continue", "retry", "fail", "break", "jump")
BACKOFFS = ("fixed", "exponential")
DEFAULT_ATTEMPTS = 3
# The longest a policy may make a worker wait between two attempts, and the most attempts.
MAX_DELAY = 3600.0
MAX_ATTEMPTS = 100
_THEN_KEYS = ("do", "attempts", "delay", "backoff", "set", "to")


class NoTimeLeft(Exception):
    """Raised by an attempt that cannot start: the command's time is used up. No rule can retry it."""


class PolicyError(ValueError):
    """A policy that cannot be used; ``str(e)`` is one line naming the key."""


@dataclass(frozen=True)
class Then:
    do: Do = "continue"
    attempts: int = DEFAULT_ATTEMPTS
    delay: float = 0.0
    backoff: str = "fixed"
    set: Mapping[str, Any] = field(default_factory=dict)
    to: str | None = None

    def wait(self, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1-based)."""
        if self.backoff == "exponential":
            return min(MAX_DELAY, self.delay * 2 ** (attempt - 1))
        return self.delay


@dataclass(frozen=True)
class Rule:
    # None: the ``else`` rule.
    when: str | bool | None
    then: Then


def rules_of(spec: Any, where: str) -> tuple[Rule, ...]:
    """The rules of a tool's ``spec`` (``{policy: {rules: [...]}}``); () without a policy. Raises
    PolicyError naming ``where`` and the key. Registration and the worker both use it."""
    if spec is None:
        return ()
    if not isinstance(spec, Mapping):
        raise PolicyError(f"{where}: expected a mapping with `policy`")
    unknown = [key for key in spec if key != "policy"]
    if unknown:
        raise PolicyError(f"{where}.{unknown[0]}: unknown key; expected policy")
    policy = spec.get("policy")
    if not isinstance(policy, Mapping) or set(policy) - {"rules"}:
        raise PolicyError(f"{where}.policy: expected a mapping with `rules`")
    rules = policy.get("rules")
    if not isinstance(rules, list) or not rules:
        raise PolicyError(f"{where}.policy.rules: expected a non-empty list of {{when, then}}")
    parsed = []
    for i, item in enumerate(rules):
        at = f"{where}.policy.rules[{i}]"
        if not isinstance(item, Mapping):
            raise PolicyError(f"{at}: expected {{when, then}} or {{else: {{then}}}}")
        if "else" in item:
            body = item["else"]
            if set(item) != {"else"} or not isinstance(body, Mapping) or set(body) != {"then"}:
                raise PolicyError(f"{at}.else: expected {{then: {{do, ...}}}} and nothing beside it")
            parsed.append(Rule(when=None, then=_then(body["then"], f"{at}.else.then")))
            continue
        if set(item) - {"when", "then"} or "when" not in item or "then" not in item:
            raise PolicyError(f"{at}: expected exactly `when` and `then`")
        when = item["when"]
        if not isinstance(when, str | bool) or (isinstance(when, str) and not when.strip()):
            raise PolicyError(f"{at}.when: expected an expression or true/false")
        parsed.append(Rule(when=when, then=_then(item["then"], f"{at}.then")))
    return tuple(parsed)


def _then(value: Any, where: str) -> Then:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: expected a mapping with `do`")
    unknown = [key for key in value if key not in _THEN_KEYS]
    if unknown:
        raise PolicyError(f"{where}.{unknown[0]}: unknown key; expected one of: {', '.join(_THEN_KEYS)}")
    do = value.get("do", "continue")
    if do not in DOS:
        raise PolicyError(f"{where}.do: expected one of {', '.join(DOS)}, got {do!r}")
    attempts = value.get("attempts", DEFAULT_ATTEMPTS)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= MAX_ATTEMPTS:
        raise PolicyError(f"{where}.attempts: expected a whole number from 1 to {MAX_ATTEMPTS}")
    delay = value.get("delay", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY:
        raise PolicyError(f"{where}.delay: expected seconds from 0 to {MAX_DELAY:g}")
    backoff = value.get("backoff", "fixed")
    if backoff not in BACKOFFS:
        raise PolicyError(f"{where}.backoff: expected one of {', '.join(BACKOFFS)}, got {backoff!r}")
    writes = value.get("set") or {}
    if not isinstance(writes, Mapping) or not all(isinstance(k, str) and k.strip() for k in writes):
        raise PolicyError(f"{where}.set: expected a mapping of ctx.<key>: value")
    to = value.get("to")
    if do == "jump" and (not isinstance(to, str) or not to):
        raise PolicyError(f"{where}.to: `do: jump` needs the name of the task to go to")
    return Then(do=do, attempts=attempts, delay=float(delay), backoff=backoff, set=dict(writes), to=to)


def output_of(outcome: Outcome) -> dict[str, Any]:
    """What a rule sees as ``output``: status, data (the result, or the failure's output), error,
    and ``http.status`` when the tool answered with an HTTP status."""
    data: Any = outcome.result if outcome.ok else (dict(outcome.output) if outcome.output else None)
    status = None
    if isinstance(data, Mapping) and isinstance(data.get("status_code"), int):
        status = data["status_code"]
    return {
        "status": "ok" if outcome.ok else "error",
        "data": data,
        "error": None if outcome.ok else outcome.error,
        "http": {"status": status},
    }


# Evaluates a rule's ``when`` (scope -> bool) and renders its ``set`` (scope -> writes); the worker
# gives the engine's sandboxed templates (``noetl.engine.templates``), raising ValueError.
Condition = Callable[[str | bool, Mapping[str, Any], str], bool]
Render = Callable[[Any, Mapping[str, Any], str], Any]


@dataclass(frozen=True)
class Verdict:
    """What follows an attempt: ``do`` (``None``: no rule matched), the matching rule, and the
    context writes of its ``set`` (keys as written: ``ctx.key``)."""

    do: Do | None
    then: Then | None
    writes: dict[str, Any]


def judge(
    rules: Sequence[Rule],
    outcome: Outcome,
    attempt: int,
    scope: Mapping[str, Any],
    where: str,
    is_true: Condition,
    render: Render,
) -> Verdict:
    """The first rule that matches ``outcome`` (after attempt number ``attempt``)."""
    seen = {**scope, "output": output_of(outcome), "attempt": attempt, "_attempt": attempt}
    for i, rule in enumerate(rules):
        at = f"{where}.policy.rules[{i}]"
        if rule.when is None or is_true(rule.when, seen, f"{at}.when"):
            writes = render(dict(rule.then.set), seen, f"{at}.then.set") if rule.then.set else {}
            return Verdict(do=rule.then.do, then=rule.then, writes=dict(writes))
    return Verdict(do=None, then=None, writes={})


Attempt = Callable[[], Awaitable[Outcome]]


@dataclass
class Applied:
    """An outcome after its policy: ``jump`` names the task to go on at (task lists only)."""

    outcome: Outcome
    writes: dict[str, Any] = field(default_factory=dict)
    retries: list[dict[str, Any]] = field(default_factory=list)
    stop: bool = False  # ``break``: the list ends here, with success
    jump: str | None = None


async def run(
    attempt_once: Attempt,
    rules: Sequence[Rule],
    scope: Mapping[str, Any],
    where: str,
    task: str | None,
    *,
    is_true: Condition | None = None,
    render: Render | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Applied:
    """Run ``attempt_once`` under ``rules``: retry while a ``retry`` rule matches and attempts
    remain (each retried attempt is listed in ``retries``), then apply the verdict. Templates are
    the engine's sandboxed ones unless ``is_true``/``render`` are given."""
    if rules and (is_true is None or render is None):
        from noetl.engine import templates  # jinja2 only for tools that have a policy

        is_true, render = templates.is_true, templates.render
    applied = Applied(outcome=Outcome(ok=False, error="not run"))
    attempt = 0
    while True:
        attempt += 1
        try:
            outcome = await attempt_once()
        except NoTimeLeft as exc:
            applied.outcome = Outcome(ok=False, error=f"{exc} (after {attempt - 1} attempts)")
            return applied
        if not rules:
            applied.outcome = outcome
            return applied
        try:
            assert is_true is not None and render is not None
            verdict = judge(rules, outcome, attempt, scope, where, is_true, render)
        except ValueError as exc:
            applied.outcome = Outcome(ok=False, error=str(exc), output=outcome.output)
            return applied
        applied.writes.update(verdict.writes)
        then = verdict.then
        if verdict.do == "retry" and then is not None and attempt < then.attempts:
            status = output_of(outcome)["http"]["status"]
            applied.retries.append(
                {"attempt": attempt, "error": outcome.error, "status": status, "task": task}
            )
            delay = then.wait(attempt)
            if delay > 0:
                await sleep(delay)
            continue
        applied.outcome = _after(verdict.do, outcome, attempt)
        applied.stop = verdict.do == "break"
        applied.jump = then.to if verdict.do == "jump" and then is not None else None
        return applied


def _after(do: Do | None, outcome: Outcome, attempt: int) -> Outcome:
    if do in ("continue", "break", "jump") and not outcome.ok:
        # Handled: the step goes on, with the error as its data.
        return Outcome(ok=True, result=output_of(outcome), output=outcome.output)
    if do == "fail" and outcome.ok:
        return Outcome(
            ok=False, error=f"a policy failed attempt {attempt}", output={"result": outcome.result}
        )
    if do == "retry" and not outcome.ok:
        return Outcome(
            ok=False,
            error=f"{outcome.error} (after {attempt} attempt{'s' if attempt > 1 else ''})",
            output=outcome.output,
        )
    return outcome
