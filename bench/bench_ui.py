"""Web UI benchmark: time to first paint in a real headless Chromium, small database against large.

One run starts PostgreSQL and NATS (tests/services.py) and `python -m noetl.server` with the UI on,
logs a real Chromium (Playwright, /usr/bin/chromium) in with the client token, then measures each
page ``--repeat`` times (a fresh tab each time, the session cookie kept) and takes the median of:
- first-contentful-paint (``performance.getEntriesByType('paint')``): the time to first paint;
- the navigation's responseEnd (the server's HTML fully received) and its load event.
Two rounds on the same server, seeded by bench/seed_ui.py:
- small (the baseline): 100 executions, and one playbook run of ``--small-steps`` steps;
- large: 100,000 executions more, and one playbook run of ``--steps`` (500) steps.
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
from concurrent.futures import ThreadPoolExecutor
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


def measure(context: Any, url: str, repeat: int) -> dict[str, float]:
    """Open ``url`` in a fresh tab ``repeat`` times (one warm-up first); medians in ms."""
    samples: list[dict[str, float]] = []
    for i in range(repeat + 1):
        tab = context.new_page()
        try:
            answer = tab.goto(url, wait_until="load")
            assert answer is not None and answer.status == 200, f"{url}: {answer and answer.status}"
            assert "/ui/login" not in tab.url, f"{url}: sent to the login form"
            timing = tab.evaluate(TIMINGS)
        finally:
            tab.close()
        if i > 0:  # the first opens the connection and warms the server's caches
            samples.append(timing)
    return {
        "fcp_ms": round(statistics.median(s["fcp"] for s in samples), 1),
        "fcp_max_ms": round(max(s["fcp"] for s in samples), 1),
        "response_end_ms": round(statistics.median(s["response_end"] for s in samples), 1),
        "load_ms": round(statistics.median(s["load"] for s in samples), 1),
        "n": len(samples),
    }


async def seed_round(env: dict[str, str], url: str, executions: int, steps: int) -> str:
    """Seed ``executions`` and run a playbook of ``steps`` steps through the server; its id."""
    conn = await asyncpg.connect(dsn(env))
    try:
        start = time.perf_counter()
        counts = await seed_executions(conn, executions)
        print(
            f"  seeded {sum(counts.values())} executions in {time.perf_counter() - start:.1f} s", flush=True
        )
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
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="noetl-bench-ui-") as tmp_dir,
        postgres_server(Path(tmp_dir) / "pg") as pg,
        nats_server(Path(tmp_dir) / "nats") as nats,
    ):
        pg.create_database("noetl_bench_ui")
        env = clean_env(**pg.env("noetl_bench_ui"), NATS_URL=nats.url, NOETL_ENABLE_UI="true")
        server = Server(env=env, log=Path(tmp_dir) / "server.log")
        server.start()
        rounds: dict[str, Any] = {}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
                context.set_default_timeout(60_000)
                login = context.new_page()
                login.goto("/ui/login")
                login.fill("input[name=token]", CLIENT_TOKEN)
                login.click("button[type=submit]")
                login.wait_for_url(lambda u: "/ui/login" not in u)
                login.close()
                for name, count, run_steps in (("small", SMALL, small_steps), ("large", executions, steps)):
                    print(f"{name}: {count} executions more, a run of {run_steps} steps", flush=True)
                    # Playwright's sync API keeps an event loop in this thread: seed from another.
                    with ThreadPoolExecutor(1) as pool:
                        execution_id = pool.submit(
                            asyncio.run, seed_round(env, server.url, count, run_steps)
                        ).result()
                    pages = {
                        "executions list": "/ui/executions",
                        "executions list, one path": "/ui/executions?path=bench/p03",
                        f"one execution of {run_steps} steps": f"/ui/executions/{execution_id}",
                    }
                    rounds[name] = {page: measure(context, url, repeat) for page, url in pages.items()}
                    for page, figures in rounds[name].items():
                        print(f"  {page}: {figures}", flush=True)
                browser.close()
        finally:
            server.stop()
    return rounds


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
        "executions": {"small": SMALL, "large": SMALL + args.executions},
        "steps": {"small": args.small_steps, "large": args.steps},
        "rounds": rounds,
        "ratios": ratios,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ui.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
