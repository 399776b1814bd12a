"""A real server (UI on) with two real workers, and a real headless Chromium driven by Playwright.

One stack and one browser per module; each test gets a fresh browser context (no cookie). The
browser tests skip with one line where Playwright (PyPI) or Chromium (/usr/bin/chromium, Debian's
`chromium`) is missing; `.ci/run` installs both. ``UI_SCREENSHOTS=docs/ui`` makes the tests save
their screenshots there (the README's and docs/ui.md's pictures); unset, nothing is written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.auth import CLIENT_TOKEN
from tests.playbooks.conftest import Playbooks, cluster
from tests.services import Postgres

CHROMIUM = os.environ.get("NOETL_TEST_CHROMIUM", "/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it off this machine's closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; .ci/run does)"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)"
    return None


@pytest.fixture(scope="module")
def stack(pg_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playbooks]:
    """A server with the UI on and two workers, on a database and NATS of this module's own."""
    with cluster(pg_server, tmp_path_factory.mktemp("ui"), concurrency=4, NOETL_ENABLE_UI="true") as found:
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture
def page(browser: Any, stack: Playbooks) -> Iterator[Any]:
    """A fresh browser context on the stack (no cookie yet), 1280 wide for the screenshots."""
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    found = context.new_page()
    try:
        yield found
    finally:
        context.close()


def log_in(page: Any, token: str = CLIENT_TOKEN) -> None:
    """Open the UI, meet the login form and give the token."""
    page.goto("/")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")


def shot(page: Any, name: str) -> None:
    """Save a screenshot as ``$UI_SCREENSHOTS/<name>.png`` when that variable is set."""
    folder = os.environ.get("UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
