"""Under a real `noetl run` (supervisord, server, workers; PostgreSQL and NATS of the test's own):
the overview shows the supervised programs as `noetl ctl status` does, with its other figures."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_embedded import open_dir
from tests.playbooks.conftest import Playbooks
from tests.services import Postgres, nats_server
from tests.stack import Stack
from tests.ui import playbooks
from tests.ui.conftest import log_in, shot
from tests.worker.harness import wait_until

pytestmark = pytest.mark.integration

PROGRAMS = {"listener", "server", "worker_00", "worker_01"}
_databases = itertools.count()


@pytest.fixture(scope="module")
def run(pg_server: Postgres) -> Iterator[Stack]:
    name = f"noetl_ui_run_{next(_databases)}"
    pg_server.create_database(name)
    # A home the server's user may enter when root runs the launcher (pytest's tmp_path is closed).
    with open_dir("noetl-ui-run-") as base, nats_server(base / "nats") as nats:
        env = {**pg_server.env(name), "NATS_URL": nats.url, "NOETL_WORKERS": "2", "NOETL_ENABLE_UI": "true"}
        found = Stack(home=base / "home", env=env)
        try:
            found.start()
            found.wait_running(PROGRAMS - {"listener"})
            found.wait_ready()
            yield found
        finally:
            found.stop()


@pytest.fixture(scope="module")
def stack(run: Stack) -> Playbooks:
    """The page fixture's stack: the API of the `noetl run` above (its tokens are the tests')."""
    return Playbooks(tmp=run.home, env=run.full_env(), port=run.port)


def test_the_overview_shows_the_supervised_programs(page: Any, stack: Playbooks, run: Stack) -> None:
    done = stack.wait_ended(stack.execute(stack.register(playbooks.STEPS.replace("0.8", "0.1"))["path"]))
    failed = stack.wait_ended(stack.execute(stack.register(playbooks.FAILS)["path"]))
    assert (done["status"], failed["status"]) == ("COMPLETED", "FAILED")
    ctl = {r["name"]: r for r in run.status()}
    assert set(ctl) == PROGRAMS
    log_in(page)

    def listed() -> bool:
        page.goto("/")
        return page.locator("#programs tbody tr").count() == len(PROGRAMS)

    wait_until(listed, 30, "the programs on the overview", interval=0.5)
    rows = {
        cells[0]: cells
        for cells in (r.locator("td").all_text_contents() for r in page.locator("#programs tbody tr").all())
    }
    for name, row in ctl.items():
        _, group, state, pid, _, memory = rows[name]
        assert (group, state, pid) == (row["group"], "RUNNING", str(row["pid"])), rows[name]
        assert memory.endswith(" MiB"), rows[name]
    assert page.locator("#workers-online tbody tr").count() == 2
    assert failed["execution_id"][:8] in page.locator("#failures tbody tr").first.text_content()
    shot(page, "overview")
