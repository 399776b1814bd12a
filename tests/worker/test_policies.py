"""Policies (``spec.policy.rules``) evaluated on the worker after each attempt, with real tools: an
http call against a real local server that fails twice then succeeds, python tasks in real child
processes. Each test asserts the attempts the server saw, the retries reported and the result."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from noetl.tools.registry import Outcome, ToolContext, run_tool
from tests.services import free_port

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


class Flaky(ThreadingHTTPServer):
    """``/flaky/N`` answers 503 N times, then 200; ``/status/CODE`` answers CODE. Counts hits."""

    hits: dict[str, int]


class Handler(BaseHTTPRequestHandler):
    server: Flaky

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        hit = self.server.hits[self.path]
        _, kind, arg = self.path.split("/", 2)
        status = (503 if hit <= int(arg) else 200) if kind == "flaky" else int(arg)
        body = json.dumps({"hit": hit}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Flaky]:
    httpd = Flaky(("127.0.0.1", free_port()), Handler)
    httpd.hits = {}
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def url(server: Flaky, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def run(tool: dict[str, Any], timeout: float = 30) -> Outcome:
    return asyncio.run(run_tool(tool, ToolContext(timeout, ENV)))


def policy(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"policy": {"rules": list(rules)}}


RETRY_5XX = {"when": "{{ output.http.status >= 500 }}", "then": {"do": "retry", "attempts": 4, "delay": 0.05}}


def test_retry_runs_the_http_call_again_until_it_succeeds_and_reports_each_retried_attempt(
    server: Flaky,
) -> None:
    outcome = run({"kind": "http", "url": url(server, "/flaky/2"), "spec": policy(RETRY_5XX)})
    assert outcome.ok, outcome.error
    assert outcome.result["status_code"] == 200 and outcome.result["data"] == {"hit": 3}
    assert server.hits["/flaky/2"] == 3
    assert [(r["attempt"], r["status"], r["task"]) for r in outcome.retries] == [
        (1, 503, None),
        (2, 503, None),
    ]
    assert outcome.payload()["retries"][0]["error"].endswith("answered 503 Service Unavailable")


def test_retry_stops_after_attempts_and_the_last_error_stands(server: Flaky) -> None:
    rule = {"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 3}}
    outcome = run({"kind": "http", "url": url(server, "/flaky/9"), "spec": policy(rule)})
    assert not outcome.ok
    assert server.hits["/flaky/9"] == 3
    assert outcome.error is not None and outcome.error.endswith(
        "answered 503 Service Unavailable (after 3 attempts)"
    )
    assert [r["attempt"] for r in outcome.retries] == [1, 2]


def test_exponential_backoff_doubles_the_delay(server: Flaky) -> None:
    from noetl.tools.policy import Then

    then = Then(do="retry", attempts=5, delay=0.5, backoff="exponential")
    assert [then.wait(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert Then(do="retry", delay=0.5).wait(3) == 0.5
    rule = {
        "when": "{{ output.http.status == 503 }}",
        "then": {"do": "retry", "delay": 0.01, "backoff": "exponential"},
    }
    assert run({"kind": "http", "url": url(server, "/flaky/1"), "spec": policy(rule)}).ok


def test_continue_on_an_error_makes_the_error_the_data(server: Flaky) -> None:
    rule = {
        "when": "{{ output.http.status == 404 }}",
        "then": {"do": "continue", "set": {"ctx.missing": True}},
    }
    outcome = run({"kind": "http", "url": url(server, "/status/404"), "spec": policy(rule)})
    assert outcome.ok
    assert outcome.result["status"] == "error"
    assert outcome.result["http"] == {"status": 404}
    assert outcome.result["data"]["data"] == {"hit": 1}
    assert outcome.ctx == {"ctx.missing": True}
    assert outcome.payload()["ctx"] == {"ctx.missing": True}


def test_fail_fails_a_success_and_else_catches_the_rest(server: Flaky) -> None:
    rules = (
        {"when": "{{ output.data.data.hit > 0 }}", "then": {"do": "fail"}},
        {"else": {"then": {"do": "continue"}}},
    )
    outcome = run({"kind": "http", "url": url(server, "/status/200"), "spec": policy(*rules)})
    assert not outcome.ok and outcome.error == "a policy failed attempt 1"


def test_without_a_matching_rule_ok_continues_and_error_fails(server: Flaky) -> None:
    rule = {"when": "{{ output.http.status == 418 }}", "then": {"do": "continue"}}
    assert run({"kind": "http", "url": url(server, "/status/200"), "spec": policy(rule)}).ok
    failed = run({"kind": "http", "url": url(server, "/status/500"), "spec": policy(rule)})
    assert not failed.ok and failed.retries == ()
    assert server.hits["/status/500"] == 1


def test_a_rule_that_cannot_be_evaluated_fails_naming_the_rule(server: Flaky) -> None:
    rule = {"when": "{{ output.nope.deeper }}", "then": {"do": "continue"}}
    outcome = run({"kind": "http", "url": url(server, "/status/200"), "spec": policy(rule)})
    assert not outcome.ok
    assert outcome.error is not None and outcome.error.startswith("spec.policy.rules[0].when:")


def python_task(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "python", "code": code, **extra}


def tasks(items: list[dict[str, Any]]) -> Outcome:
    scope = {"execution_id": "e", "workload": {}, "ctx": {}, "results": {}, "not_run": []}
    return run({"kind": "tasks", "tasks": items, "scope": scope})


def test_break_ends_a_task_list_early_with_success() -> None:
    stop = policy({"when": "{{ output.data > 1 }}", "then": {"do": "break"}})
    outcome = tasks(
        [
            python_task("a", "result = 2", spec=stop),
            python_task("b", "raise SystemExit('never runs')"),
        ]
    )
    assert outcome.ok and outcome.result == 2


def test_jump_goes_to_a_named_task_and_set_is_seen_by_later_tasks(tmp_path: Any) -> None:
    # `count` appends to a file each run: a loop through jump, ended by the rule when it ran 3 times.
    counter = tmp_path / "runs"
    again = policy(
        {
            "when": "{{ output.data < 3 }}",
            "then": {"do": "jump", "to": "count", "set": {"ctx.last": "{{ output.data }}"}},
        }
    )
    outcome = tasks(
        [
            python_task(
                "count",
                "open(path, 'a').write('x'); result = len(open(path).read())",
                input={"path": str(counter)},
            ),
            python_task("check", "result = n", input={"n": "{{ count }}"}, spec=again),
            python_task(
                "after",
                "result = {'runs': runs, 'last': last}",
                input={"runs": "{{ check }}", "last": "{{ ctx.last }}"},
            ),
        ]
    )
    assert outcome.ok, outcome.error
    assert counter.read_text() == "xxx"
    assert outcome.result == {"runs": 3, "last": 2}
    assert outcome.ctx == {"ctx.last": 2}


def test_a_task_retried_by_its_policy_reports_its_attempts_by_task(tmp_path: Any) -> None:
    marker = tmp_path / "tries"
    code = (
        "n = len(open(p).read()) if os.path.exists(p) else 0\n"
        "open(p, 'a').write('x')\n"
        "if n < 2: raise ValueError(n)\n"
        "result = n"
    )
    retry = policy({"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 5}})
    outcome = tasks([python_task("flaky", code, input={"p": str(marker)}, spec=retry)])
    assert outcome.ok and outcome.result == 2
    assert [(r["task"], r["attempt"], r["error"]) for r in outcome.retries] == [
        ("flaky", 1, "ValueError (line 3): 0"),
        ("flaky", 2, "ValueError (line 3): 1"),
    ]
    assert outcome.payload()["retries"][1]["attempt"] == 2


def test_retried_attempts_share_the_commands_time() -> None:
    # Every attempt fails after 1 s; the rule would allow 50 of them, the command's 2.5 s do not.
    retry = policy({"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 50}})
    tool = {"kind": "python", "code": "import time; time.sleep(1); raise ValueError('slow')", "spec": retry}
    outcome = run(tool, timeout=2.5)
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.startswith("no time left of the command's 2.5s for another attempt (after ")
    # Two or three attempts ran (the third is cut short by the time left), each one listed.
    assert 2 <= len(outcome.retries) <= 3
