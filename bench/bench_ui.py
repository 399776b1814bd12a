"""Web UI benchmark: time to first paint in a real headless Chromium, small database against large.

One run starts PostgreSQL and NATS (tests/services.py) and `python -m noetl.server` with the UI on,
logs a real Chromium (Playwright, /usr/bin/chromium) in with the client token, then measures each
page ``--repeat`` times (a fresh tab each time, the session cookie kept) and takes the median of:
- first-contentful-paint (``performance.getEntriesByType('paint')``): the time to first paint;
- the navigation's responseEnd (the server's HTML fully received) and its load event;
against the floor: the login form (no database read, the same stylesheet and script).
Two servers, each on its own database of the same PostgreSQL, seeded by bench/seed_ui.py, and
measured in turns (page by page, one load each), so that a busy machine slows both alike:
- small (the baseline): 100 executions, and one playbook run of ``--small-steps`` steps;
- large: 100 + 100,000 executions, and one playbook run of ``--steps`` (500) steps.
Pages: the executions list (newest first), the list filtered by a path, and the one execution
(the step graph, the step table and the first events). Results are printed and written to
bench/results/ui.json.

Run: `.venv/bin/python bench/bench_ui.py [--repeat 7] [--executions 100000] [--steps 500]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.seed_ui import run_long_playbook, seed_executions  # noqa: E402
from tests.auth import CLIENT_TOKEN, WORKER_TOKEN, bearer  # noqa: E402
from tests.server.conftest import Server, clean_env  # noqa: E402
from tests.server.test_bounds import dsn  # noqa: E402
from tests.services import nats_server, postgres_server  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, browser_missing  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SMALL = 100
# The floor: the login form, a page that reads no database (the browser's and the server's share).
LOGIN = "/ui/login"

# First paint, and when the page's HTML and everything it loads have arrived (ms from navigation).
TIMINGS = """() => new Promise((resolve) => {
    const read = () => {
        const paint = performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint');
        const nav = performance.getEntriesByType('navigation')[0];
        if (paint && nav && nav.loadEventEnd > 0) {
            resolve({fcp: paint.startTime, response_end: nav.responseEnd, load: nav.loadEventEnd,
                     html_bytes: nav.transferSize});
        } else {
            setTimeout(read, 10);
        }
    };
    read();
})"""


def load(context: Any, url: str) -> dict[str, float]:
    """Open ``url`` in a fresh tab; its timings in ms from the navigation's start."""
    tab = context.new_page()
    try:
        answer = tab.goto(url, wait_until="load")
        assert answer is not None and answer.status == 200, f"{url}: {answer and answer.status}"
        assert "/ui/login" not in tab.url or url == LOGIN, f"{url}: sent to the login form"
        timing: dict[str, float] = tab.evaluate(TIMINGS)
        return timing
    finally:
        tab.close()


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {
        "fcp_ms": round(statistics.median(s["fcp"] for s in samples), 1),
        "fcp_max_ms": round(max(s["fcp"] for s in samples), 1),
        "response_end_ms": round(statistics.median(s["response_end"] for s in samples), 1),
        "load_ms": round(statistics.median(s["load"] for s in samples), 1),
        "n": len(samples),
    }


def measure(loads: list[tuple[Any, str]], repeat: int) -> list[dict[str, float]]:
    """Each (context, url) ``repeat`` times, taking turns (one warm-up round first), so that the
    machine's changing load falls on all of them alike; medians per url."""
    samples: list[list[dict[str, float]]] = [[] for _ in loads]
    for i in range(repeat + 1):
        for j, (context, url) in enumerate(loads):
            timing = load(context, url)
            if i > 0:  # the first opens the connection and warms the server's caches
                samples[j].append(timing)
    return [medians(s) for s in samples]


async def seed_round(env: dict[str, str], url: str, batches: list[int], steps: int) -> str:
    """Seed executions in ``batches`` and run a playbook of ``steps`` steps through the server; its id."""
    conn = await asyncpg.connect(dsn(env))
    try:
        for executions in batches:
            start = time.perf_counter()
            counts = await seed_executions(conn, executions)
            took = time.perf_counter() - start
            print(f"  seeded {sum(counts.values())} executions in {took:.1f} s", flush=True)
        async with (
            httpx.AsyncClient(base_url=url, headers=bearer(CLIENT_TOKEN), timeout=30) as api,
            httpx.AsyncClient(base_url=url, headers=bearer(WORKER_TOKEN), timeout=30) as workers,
        ):
            start = time.perf_counter()
            execution_id = await run_long_playbook(api, workers, conn, steps)
            print(f"  ran {steps} steps in {time.perf_counter() - start:.1f} s", flush=True)
        total = await conn.fetchval("SELECT count(*) FROM noetl.executions")
        print(f"  {total} executions in the database", flush=True)
        return execution_id
    finally:
        await conn.close()


def run(repeat: int, executions: int, steps: int, small_steps: int) -> dict[str, Any]:
    """Two servers on two databases of the same PostgreSQL, measured in turns: the small one
    (``SMALL`` executions, a run of ``small_steps``) and the large one (as many and ``executions``
    more, a run of ``steps``)."""
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="noetl-bench-ui-") as tmp_dir,
        postgres_server(Path(tmp_dir) / "pg") as pg,
        nats_server(Path(tmp_dir) / "nats") as nats,
    ):
        servers: dict[str, Server] = {}
        runs: dict[str, str] = {}
        try:
            for name, seeds, run_steps in (
                ("small", [SMALL], small_steps),
                ("large", [SMALL, executions], steps),
            ):
                pg.create_database(f"noetl_bench_ui_{name}")
                env = clean_env(**pg.env(f"noetl_bench_ui_{name}"), NATS_URL=nats.url, NOETL_ENABLE_UI="true")
                servers[name] = Server(env=env, log=Path(tmp_dir) / f"server-{name}.log")
                servers[name].start()
                print(
                    f"{name}: {' + '.join(map(str, seeds))} executions, a run of {run_steps} steps",
                    flush=True,
                )
                runs[name] = asyncio.run(seed_round(env, servers[name].url, seeds, run_steps))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                contexts = {name: _logged_in(browser, server.url) for name, server in servers.items()}
                # The floor: what a browser without the cookie gets (a fresh context, no login).
                bare = browser.new_context(base_url=servers["small"].url, viewport=VIEWPORT)
                (floor,) = measure([(bare, LOGIN)], repeat)
                print(f"floor, the login form: {floor}", flush=True)
                pages = {
                    "executions list": "/ui/executions",
                    "executions list, one path": "/ui/executions?path=bench/p03",
                    "one execution": "/ui/executions/{}",
                }
                loads = [
                    (contexts[name], url.format(runs[name])) for url in pages.values() for name in servers
                ]
                figures = iter(measure(loads, repeat))
                rounds: dict[str, dict[str, Any]] = {"small": {}, "large": {}}
                for page in pages:
                    for name in servers:
                        shown = f"{page} of {steps if name == 'large' else small_steps} steps"
                        rounds[name][shown if page == "one execution" else page] = next(figures)
                for name, measured in rounds.items():
                    for page, values in measured.items():
                        print(f"{name}: {page}: {values}", flush=True)
                browser.close()
        finally:
            for server in servers.values():
                server.stop()
    return {"floor": floor, **rounds}


VIEWPORT = {"width": 1280, "height": 860}


def _logged_in(browser: Any, url: str) -> Any:
    """A browser context holding the session cookie of the server at ``url``."""
    context = browser.new_context(base_url=url, viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    tab = context.new_page()
    tab.goto(LOGIN)
    tab.fill("input[name=token]", CLIENT_TOKEN)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda u: "/ui/login" not in u)
    tab.close()
    return context


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="page loads measured per page (median)")
    parser.add_argument("--executions", type=int, default=100_000, help="executions of the large round")
    parser.add_argument("--steps", type=int, default=500, help="steps of the large round's run")
    parser.add_argument("--small-steps", type=int, default=10, help="steps of the small round's run")
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        raise SystemExit(f"bench_ui: {missing}")
    rounds = run(args.repeat, args.executions, args.steps, args.small_steps)
    small, large = rounds["small"], rounds["large"]
    ratios = {
        "executions list, large / small fcp": round(
            large["executions list"]["fcp_ms"] / small["executions list"]["fcp_ms"], 2
        ),
        "one execution, large / small fcp": round(
            large[f"one execution of {args.steps} steps"]["fcp_ms"]
            / small[f"one execution of {args.small_steps} steps"]["fcp_ms"],
            2,
        ),
    }
    result = {
        "repeat": args.repeat,
        "floor": rounds["floor"],
        "executions": {"small": SMALL, "large": SMALL + args.executions},
        "steps": {"small": args.small_steps, "large": args.steps},
        "rounds": {"small": small, "large": large},
        "ratios": ratios,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ui.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
