"""The fault suite's judge: side effects counted in files, compared with the server's record.

Every command the suite submits carries a **token** unique to that submission (``tok_`` and 32 hex
digits) and appends one line to the file ``<ledger>/<token>`` each time its tool runs. So the
ledger, written by the work itself, says how many times each submission really ran, whatever the
server recorded. Each try of a submission gets a new token: a submission whose HTTP answer was
lost (the server may or may not have created it) is then told apart from a duplicate, because a
token the server holds twice, or a file with no execution behind it, is a defect.

The rule every fault test asserts (``judge``), per command:
- it ended: ``completed`` with exactly one ``completed`` event, by its final attempt, and no
  ``failed`` one; or ``failed``/``dead`` with one ``failed`` event that says why;
- recorded once, executed at least once: a completed command's tool ran (``runs`` >= 1);
- each run was an attempt the server saw start: ``runs`` <= ``started`` events;
- and once unless a lease was lost: every run after the first cost an attempt, one that lost its
  lease (``lost_leases``) or was handed back (``released``).
Scenarios then assert their exact outcome (ran once, or twice because the lease expired).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from noetl.protocol.words import EXECUTION_STATUSES
from tests.auth import RouteAuth

FINISHED = ("completed", "failed", "dead")
# The execution's status (NoETL's words) once its one command ended this way.
EXECUTION_OF = {"completed": "COMPLETED", "failed": "FAILED", "dead": "FAILED"}
TOKEN = re.compile(r"tok_[0-9a-f]{32}")

Tool = dict[str, Any]
Work = Callable[[str], Tool]  # a token -> the tool of one submission


class Ledger:
    """A directory of side-effect files, one per token, writable by the workers' user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # As root, `noetl run` runs the workers as an unprivileged user: they must write here.
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o777)

    @staticmethod
    def token() -> str:
        return f"tok_{uuid.uuid4().hex}"

    def path(self, token: str) -> Path:
        return self.root / token

    def shell(self, token: str, seconds: float = 0) -> Tool:
        """A shell command: one line (its PID) into the token's file, then ``seconds`` of work;
        it fails if the line cannot be written."""
        work = f" && sleep {seconds:g}" if seconds else ""
        return {"kind": "shell", "command": f"echo $$ >> {self.path(token)}{work}"}

    def python(self, token: str, seconds: float = 0) -> Tool:
        """The same in the python tool; its result is the token."""
        code = (
            "import time, uuid\n"
            "with open(path, 'a') as f:\n"
            "    f.write(uuid.uuid4().hex + '\\n')\n"
            "time.sleep(seconds)\n"
            "result = token\n"
        )
        return {
            "kind": "python",
            "code": code,
            "args": {"path": str(self.path(token)), "seconds": seconds, "token": token},
        }

    def runs(self, token: str) -> int:
        """Lines in the token's file: how many times its tool ran."""
        path = self.path(token)
        return len(path.read_text().splitlines()) if path.exists() else 0

    def tokens(self) -> set[str]:
        """Every token whose tool ran at least once."""
        return {p.name for p in self.root.iterdir() if TOKEN.fullmatch(p.name)}

    def wait_runs(self, token: str, count: int, timeout: float) -> None:
        """Wait until the token's tool has run (started) ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.runs(token) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{token} ran {self.runs(token)} times, not {count}, within {timeout}s")
            time.sleep(0.05)

    def mixed(self, index: int, seconds: float = 1) -> Work:
        """The suite's mix: a quick shell command, a shell command that works ``seconds``, a python one."""
        choice = index % 3
        if choice == 0:
            return lambda token: self.shell(token)
        if choice == 1:
            return lambda token: self.shell(token, seconds)
        return lambda token: self.python(token)


def token_of(value: Any) -> str:
    """The one token in a tool (as the server stores it)."""
    found = set(TOKEN.findall(json.dumps(value)))
    assert len(found) == 1, f"not one token in {value}: {found}"
    return found.pop()


@dataclass
class Verdict:
    """What the server's record and the ledger say about one command; ``problem`` is None when it
    ended properly within the bound."""

    execution_id: str
    command_id: str
    token: str
    status: str
    runs: int  # lines in the ledger: times the tool ran
    started: int  # `started` events: attempts that began the tool
    completed_events: int
    failed_events: int
    lost_leases: int
    lease_expired: int  # `lease_expired` events: leases the reaper took back
    released: int
    attempts: int
    problem: str | None
    error: str | None = None  # the command's error, when it did not complete (for the reader)


def beyond_bound(runs: int, started: list[int], lost_leases: int, released: int) -> str | None:
    """What is wrong with a command's run count, given the attempts that ``started`` and the
    leases it lost or handed back; None when it is within the at-least-once bound."""
    if len(set(started)) != len(started):
        return f"an attempt started twice: {started}"
    if runs > len(started):
        return f"ran {runs} times, but {len(started)} started events"
    if runs - 1 > lost_leases + released:
        return f"ran {runs} times with {lost_leases} lost and {released} released leases"
    return None


def judge(execution: Mapping[str, Any], ledger: Ledger) -> Verdict:
    """Check one execution (GET /api/executions/{id}) against the rule above."""
    (command,) = execution["commands"]
    events = [e for e in execution["events"] if e["command_id"] == command["command_id"]]
    kinds = Counter(e["type"] for e in events)
    token = token_of(command["tool"])
    runs = ledger.runs(token)
    status = command["status"]
    started = [e["attempt"] for e in events if e["type"] == "started"]
    problem: str | None = None
    if status not in FINISHED or execution["status"] != EXECUTION_OF[status]:
        problem = f"left {status} (execution {execution['status']})"
    elif status == "completed":
        done = [e for e in events if e["type"] == "completed"]
        if len(done) != 1:
            problem = f"recorded {len(done)} times"
        elif kinds["failed"]:
            problem = "completed, but a failed event too"
        elif done[0]["attempt"] != command["attempt"]:
            problem = f"completed by attempt {done[0]['attempt']}, command at attempt {command['attempt']}"
        elif runs < 1:
            problem = "completed, but its tool never ran"
    else:
        failed = [e for e in events if e["type"] == "failed"]
        if kinds["completed"]:
            problem = f"{status}, but {kinds['completed']} completed event(s)"
        elif len(failed) != 1 or not str(failed[0]["payload"].get("error") or "").strip():
            problem = f"{status} with {len(failed)} failed events and no reason"
        elif status == "dead" and command["lost_leases"] < command["max_attempts"]:
            problem = f"dead after {command['lost_leases']} of {command['max_attempts']} attempts"
    if problem is None:
        problem = beyond_bound(runs, started, int(command["lost_leases"]), kinds["released"])
    return Verdict(
        execution_id=str(execution["execution_id"]),
        command_id=str(command["command_id"]),
        token=token,
        status=status,
        runs=runs,
        started=len(started),
        completed_events=kinds["completed"],
        failed_events=kinds["failed"],
        lost_leases=int(command["lost_leases"]),
        lease_expired=kinds["lease_expired"],
        released=kinds["released"],
        attempts=int(command["attempt"]),
        problem=problem,
        error=command.get("error"),
    )


@dataclass
class Load:
    """A client of one server's API that submits tokened commands and keeps every try's fate."""

    url: str
    ledger: Ledger
    accepted: dict[str, str] = field(default_factory=dict)  # token -> execution id
    unanswered: set[str] = field(default_factory=set)  # tokens of tries whose answer never came
    refused: int = 0  # tries answered 503 or not at all (the outage, as clients saw it)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # One client for every call (threads share it): a new one per call costs a TLS context each.
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10, auth=RouteAuth()))

    def submit(self, work: Work, patience: float = 90, timeout: float = 120) -> str:
        """Submit one command, trying again (with a new token) while the server is away; the
        accepted try's token."""
        deadline = time.monotonic() + patience
        while True:
            token = self.ledger.token()
            body = {"tool": work(token), "timeout": timeout, "max_attempts": 3}
            try:
                response = self._http.post(f"{self.url}/api/executions", json=body)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 201:
                execution_id = str(response.json()["execution_id"])
                with self._lock:
                    self.accepted[token] = execution_id
                return token
            if response is not None and response.status_code != 503:
                raise AssertionError(f"submit refused: {response.status_code} {response.text}")
            with self._lock:
                self.refused += 1
                if response is None:
                    self.unanswered.add(token)  # the server may have created it: the judge looks
            if time.monotonic() > deadline:
                raise AssertionError(f"could not submit for {patience}s")
            time.sleep(0.2)

    def submit_all(self, works: list[Work], pace: float = 0.0) -> list[str]:
        """Submit each in turn; their tokens."""
        tokens = []
        for work in works:
            tokens.append(self.submit(work))
            if pace:
                time.sleep(pace)
        return tokens

    def in_background(self, works: list[Work], pace: float) -> threading.Thread:
        """Keep submitting ``works`` at ``pace`` seconds apart in a thread (through the fault)."""
        thread = threading.Thread(target=self.submit_all, args=(works, pace), daemon=True)
        thread.start()
        return thread

    def get(self, path: str) -> Any:
        response = self._http.get(f"{self.url}{path}")
        response.raise_for_status()
        return response.json()

    def all_execution_ids(self) -> list[str]:
        """Every execution the database holds."""
        ids: list[str] = []
        cursor = ""
        while True:
            page = self.get(f"/api/executions?limit=500{cursor}")
            ids.extend(str(item["execution_id"]) for item in page["items"])
            if not page["next"]:
                return ids
            cursor = f"&cursor={page['next']}"

    def counts(self) -> Counter[str]:
        """Executions by status."""
        counts: Counter[str] = Counter()
        for status in EXECUTION_STATUSES:
            counts[status] = int(self.get(f"/api/executions?status={status}&limit=1")["total"])
        return counts

    def command_counts(self) -> Counter[str]:
        """Commands by status, from the server's metrics."""
        response = self._http.get(f"{self.url}/metrics")
        response.raise_for_status()
        found = re.findall(r'^noetl_commands\{status="(\w+)"\} ([0-9.]+)$', response.text, re.MULTILINE)
        return Counter({status: int(float(n)) for status, n in found})

    def wait_settled(self, timeout: float) -> Counter[str]:
        """Wait until every accepted submission exists and none is RUNNING."""
        deadline = time.monotonic() + timeout
        counts: Counter[str] = Counter()
        while time.monotonic() < deadline:
            try:
                counts = self.counts()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.3)
                continue
            if sum(counts.values()) >= len(self.accepted) and counts["RUNNING"] == 0:
                return counts
            time.sleep(0.3)
        raise AssertionError(f"not settled after {timeout}s: {dict(counts)} (accepted {len(self.accepted)})")

    def verdicts(self) -> list[Verdict]:
        """The verdict of every command execution (playbooks' are judged by ``steps``)."""
        views = (self.get(f"/api/executions/{eid}") for eid in self.all_execution_ids())
        return [judge(view, self.ledger) for view in views if view.get("path") is None]

    def audit(self) -> list[Verdict]:
        """The rule over every execution the database holds, and the books between tries and
        executions: every accepted try is there once, a try whose answer was lost at most once,
        no token twice, no side effect without an execution. Returns the verdicts."""
        verdicts = self.verdicts()
        by_token = Counter(v.token for v in verdicts)
        twice = [t for t, n in by_token.items() if n > 1]
        assert not twice, f"submissions recorded twice: {twice[:5]}"
        sent = set(self.accepted) | self.unanswered
        unknown = set(by_token) - sent
        assert not unknown, f"executions nobody submitted: {sorted(unknown)[:5]}"
        missing = set(self.accepted) - set(by_token)
        assert not missing, f"acknowledged submissions missing: {sorted(missing)[:5]}"
        for v in verdicts:
            if v.token in self.accepted:
                assert self.accepted[v.token] == v.execution_id, v
        orphans = self.ledger.tokens() - set(by_token)
        assert not orphans, f"side effects of no execution: {sorted(orphans)[:5]}"
        bad = [v for v in verdicts if v.problem]
        assert not bad, f"{len(bad)} command(s) did not end properly: {bad[:5]}"
        return verdicts


def wait_claimed(load: Load, at_least: int, timeout: float) -> None:
    """Wait until at least ``at_least`` commands are claimed (running on workers)."""
    deadline = time.monotonic() + timeout
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        counts = load.command_counts()
        if counts["claimed"] >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} commands claimed after {timeout}s: {dict(counts)}")


def runs_summary(verdicts: list[Verdict]) -> Counter[int]:
    """How many commands ran once, twice, ..."""
    return Counter(v.runs for v in verdicts)
