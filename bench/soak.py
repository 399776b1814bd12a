"""The soak: `make soak` (or `.venv/bin/python bench/soak.py [--minutes M] [--every S]`).

`noetl run` (two workers) on a PostgreSQL and a NATS of its own, fed for ``--minutes``
(``SOAK_MINUTES``, default 30) with a mix of commands (shell and python, quick and 1 s long) and
playbooks (a chain, a fan-in, a parallel loop), while every ``--every`` seconds (default 20) one
process chosen at random is SIGKILLed: PostgreSQL (postmaster and backends; started again on the
same data directory: crash recovery), NATS (started again on the same store), supervisord (the
whole run dies; a new `noetl run` starts), the server or a worker (supervisord restarts them).

Every command and every step writes its side effect into the fault suite's ledger. At the end
the feeding stops, the run settles, and the fault suite's judges audit everything the database
holds: nothing lost, each command and step recorded once and run within its bound (a second run
only where a lease was lost). Prints a summary, writes bench/results/soak.json, and exits 1 on
any violation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.auth import RouteAuth  # noqa: E402
from tests.faults.crash import crash_nats, crash_postgres, recoveries  # noqa: E402
from tests.faults.ledger import Ledger, Load, runs_summary  # noqa: E402
from tests.faults.steps import judge_playbook, playbook, step  # noqa: E402
from tests.services import Nats, Postgres, nats_server, postgres_server  # noqa: E402
from tests.stack import Stack  # noqa: E402

TARGETS = ("postgres", "nats", "supervisord", "server", "worker")
SETTINGS = {
    "NOETL_WORKERS": "2",
    "NOETL_WORKER_CONCURRENCY": "4",
    "NOETL_WORKER_LEASE": "10",
    "NOETL_REAPER_INTERVAL": "0.5",
    "NOETL_STOP_TIMEOUT": "5",
    "NOETL_WORKER_STOP_TIMEOUT": "6",
    "NOETL_LOG_LEVEL": "warning",
}
PLAYBOOKS = {
    "soak/chain": playbook("soak/chain", [step("start", 0.5, "b"), step("b", 0, "c"), step("c", 0.5)]),
    "soak/fan_in": playbook(
        "soak/fan_in",
        [
            {
                "step": "start",
                "next": {"spec": {"mode": "inclusive"}, "arcs": [{"step": "a1"}, {"step": "b1"}]},
            },
            step("a1", 1, "reduce"),
            step("b1", 0, "b2"),
            step("b2", 0.5, "reduce"),
            step("reduce"),
        ],
    ),
    "soak/loop": playbook(
        "soak/loop",
        [
            {
                **step("start", 0.3, ledger_name="start.{{ loop_index }}"),
                "loop": {
                    "in": "{{ workload.items }}",
                    "iterator": "x",
                    "spec": {"mode": "parallel", "max_in_flight": 3},
                },
            }
        ],
    ),
}
LOOP_ITEMS = 6


class Soak:
    def __init__(self, stack: Stack, pg: Postgres, nats: Nats, ledger: Ledger) -> None:
        self.stack = stack
        self.pg = pg
        self.nats = nats
        self.ledger = ledger
        self.load = Load(stack.url, ledger)
        self.playbooks: dict[str, str] = {}  # token -> execution id
        self.playbook_tries = 0
        self.kills: Counter[str] = Counter()
        self.run_exits: Counter[int] = Counter()  # `noetl run` exit codes seen (a supervisord kill: 1)
        self.stop = threading.Event()
        self.errors: list[str] = []

    # --- feeding ---------------------------------------------------------------------------------

    def feed_commands(self, pace: float) -> None:
        index = 0
        while not self.stop.is_set():
            try:
                self.load.submit(self.ledger.mixed(index), patience=120)
            except AssertionError as exc:
                self.errors.append(f"submit: {exc}")
            index += 1
            self.stop.wait(pace)

    def feed_playbooks(self, pace: float) -> None:
        paths = list(PLAYBOOKS)
        index = 0
        while not self.stop.is_set():
            path = paths[index % len(paths)]
            self.execute(path)
            index += 1
            self.stop.wait(pace)

    def execute(self, path: str) -> None:
        """Execute a playbook, trying again (a new token each try) while the server is away."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            token = self.ledger.token()
            payload = {"ledger": str(self.ledger.root), "token": token, "items": list(range(LOOP_ITEMS))}
            self.playbook_tries += 1
            try:
                response = httpx.post(
                    f"{self.stack.url}/api/execute",
                    json={"path": path, "payload": payload},
                    timeout=10,
                    auth=RouteAuth(),
                )
                if response.status_code == 200:
                    self.playbooks[token] = str(response.json()["execution_id"])
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.errors.append(f"could not execute {path} for 120s")

    # --- killing ---------------------------------------------------------------------------------

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL one of the targets, chosen at random, and start again what supervisord does not."""
        target = rng.choice(TARGETS)
        if target == "postgres":
            crash_postgres(self.pg)
            time.sleep(rng.uniform(0, 5))  # the outage's length, chosen at random
            self.pg.start()
        elif target == "nats":
            crash_nats(self.nats)
            time.sleep(rng.uniform(0, 5))
            self.nats.start()
        elif target == "supervisord":
            assert self.stack.proc is not None
            children = psutil.Process(self.stack.proc.pid).children()
            for proc in children:
                if "supervisord" in " ".join(proc.cmdline()):
                    proc.kill()
            self.run_exits[self.stack.wait(timeout=60)] += 1
            self.restart_run()
        else:
            names = ["server"] if target == "server" else ["worker_00", "worker_01"]
            name = rng.choice(names)
            pids = [r["pid"] for r in self.stack.status() if r["name"] == name and r["state"] == "RUNNING"]
            if not pids or not pids[0]:
                return  # not up right now (being restarted): no kill this time
            psutil.Process(int(pids[0])).kill()
            target = name
        self.kills[target] += 1

    def restart_run(self) -> None:
        self.stack.start()
        self.stack.wait_ready(timeout=120)

    def keep_running(self) -> None:
        """A `noetl run` that ended by itself (not by our kill) is a finding: count it, start again."""
        assert self.stack.proc is not None
        code = self.stack.proc.poll()
        if code is not None:
            self.run_exits[code] += 1
            self.errors.append(f"noetl run exited {code} by itself: {self.stack.output()[-300:]}")
            self.restart_run()

    # --- judging ---------------------------------------------------------------------------------

    def settle(self, timeout: float) -> None:
        self.load.wait_settled(timeout)

    def audit(self) -> dict[str, Any]:
        verdicts = self.load.audit()
        step_runs: Counter[int] = Counter()
        statuses: Counter[str] = Counter()
        step_lost = 0
        steps = 0
        for token, execution_id in self.playbooks.items():
            view = self.load.get(f"/api/executions/{execution_id}")
            statuses[view["status"]] += 1
            assert view["status"] == "COMPLETED", view
            for verdict in judge_playbook(self.stack.env, self.ledger, execution_id, token).values():
                steps += 1
                step_runs[verdict.runs] += 1
                step_lost += verdict.lost_leases
        # Every playbook execution in the database is one we started and judged.
        total_playbooks = sum(1 for item in self._all() if item.get("path"))
        assert total_playbooks >= len(self.playbooks), (total_playbooks, len(self.playbooks))
        return {
            "commands": len(verdicts),
            "commands_accepted": len(self.load.accepted),
            "commands_unanswered_tries": len(self.load.unanswered),
            "commands_unanswered_created": len(verdicts) - len(self.load.accepted),
            "commands_by_status": dict(Counter(v.status for v in verdicts)),
            "command_runs": {str(k): n for k, n in sorted(runs_summary(verdicts).items())},
            "command_lost_leases": sum(v.lost_leases for v in verdicts),
            "command_released": sum(v.released for v in verdicts),
            "playbooks": len(self.playbooks),
            "playbook_tries": self.playbook_tries,
            "playbooks_by_status": dict(statuses),
            "playbooks_in_database": total_playbooks,
            "step_commands": steps,
            "step_runs": {str(k): n for k, n in sorted(step_runs.items())},
            "step_lost_leases": step_lost,
        }

    def _all(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = self.load.get(f"/api/executions?limit=500{cursor}")
            items.extend(page["items"])
            if not page["next"]:
                return items
            cursor = f"&cursor={page['next']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30")))
    parser.add_argument("--every", type=float, default=20.0, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    among = ", ".join(TARGETS)
    print(f"soak: {args.minutes:g} min, a SIGKILL every {args.every:g} s among {among} (seed {args.seed})")

    with (
        tempfile.TemporaryDirectory(prefix="noetl-soak-pg-") as pg_tmp,
        tempfile.TemporaryDirectory(prefix="noetl-soak-") as tmp,
        tempfile.TemporaryDirectory(prefix="noetl-soak-ledger-") as ledger_dir,
        postgres_server(Path(pg_tmp)) as pg,
        nats_server(Path(tmp) / "nats") as nats,
    ):
        pg.create_database("noetl")
        stack = Stack(home=Path(tmp) / "home", env={**pg.env("noetl"), "NATS_URL": nats.url, **SETTINGS})
        soak = Soak(stack, pg, nats, Ledger(Path(ledger_dir)))
        started = time.monotonic()
        try:
            soak.restart_run()
            for content in PLAYBOOKS.values():
                status, body = stack.api("POST", "/api/catalog/register", {"content": content})
                assert status == 200, body
            feeders = [
                threading.Thread(target=soak.feed_commands, args=(0.5,), daemon=True),
                threading.Thread(target=soak.feed_playbooks, args=(4.0,), daemon=True),
            ]
            for feeder in feeders:
                feeder.start()
            end = started + args.minutes * 60
            next_kill = time.monotonic() + args.every
            while time.monotonic() < end:
                soak.keep_running()
                if time.monotonic() >= next_kill:
                    soak.kill_one(rng)
                    next_kill += args.every
                    elapsed = (time.monotonic() - started) / 60
                    print(
                        f"  {elapsed:5.1f} min  kills {dict(soak.kills)}  accepted {len(soak.load.accepted)}"
                        f"  playbooks {len(soak.playbooks)}",
                        flush=True,
                    )
                time.sleep(0.5)
            loaded = time.monotonic() - started
            soak.stop.set()
            for feeder in feeders:
                feeder.join(180)
            soak.keep_running()
            soak.settle(timeout=600)
            figures = soak.audit()
        finally:
            soak.stop.set()
            stack.stop()
        figures.update(
            load_minutes=round(loaded / 60, 1),
            minutes=round((time.monotonic() - started) / 60, 1),
            kills=dict(soak.kills),
            postgres_crash_recoveries=recoveries(pg),
            run_exit_codes={str(k): n for k, n in soak.run_exits.items()},
            errors=soak.errors,
            seed=args.seed,
        )
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    if soak.errors:
        print(f"soak: {len(soak.errors)} problem(s): {soak.errors[:3]}")
        return 1
    print("soak: nothing lost; every command and step recorded once, run within its bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
