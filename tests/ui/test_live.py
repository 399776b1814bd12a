"""In a real browser: start a playbook from its catalog page and watch its graph change live;
a failed step's error; cancel a running execution; markup in outputs stays text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from tests.playbooks.conftest import Playbooks
from tests.ui import playbooks
from tests.ui.conftest import log_in, shot

# The steps of ui/steps in the order they finish.
ORDER = ["start", "greet", "check", "end"]
# ui/steps whose first step waits for the test to create the file `gate` names: the page below
# watches every step change, none of them done before it looks. (With no gate the page could come
# up after greet had ended on a loaded machine, seeing only two of the four changes.)
START = 'command: "sleep {{ workload.pause }}; echo started"'
GATED_STEPS = playbooks.STEPS.replace(
    START, 'command: "until [ -e {{ workload.gate }} ]; do sleep 0.05; done; ' + START[len('command: "') :]
).replace("  pause: 0.8\n", "  pause: 0.8\n  gate: /nonexistent\n")

# Records every change of a graph node's status, in order, in window.__seen (set before the
# first live update arrives; a reload would lose it and the marker with it).
WATCH = """() => {
  window.__marker = "same page";
  window.__seen = [];
  for (const node of document.querySelectorAll("g.node")) {
    new MutationObserver(() => window.__seen.push([node.dataset.step, node.dataset.status]))
      .observe(node, {attributes: true, attributeFilter: ["data-status"]});
  }
  return Array.from(document.querySelectorAll("g.node")).map(n => [n.dataset.step, n.dataset.status]);
}"""


def node(page: Any, step: str) -> Any:
    return page.locator(f'g.node[data-step="{step}"]')


def test_run_from_the_catalog_and_watch_each_step_turn_done(
    page: Any, stack: Playbooks, tmp_path: Path
) -> None:
    assert GATED_STEPS != playbooks.STEPS
    stack.register(GATED_STEPS)
    gate = tmp_path / "gate"
    log_in(page)
    page.goto("/ui/catalog")
    page.click("text=ui/steps")
    # The form is prefilled from the workload; a shorter list goes in the payload.
    payload = page.input_value("#payload")
    assert '"cities"' in payload and '"Paris"' in payload
    page.fill("#payload", json.dumps({"pause": 1.0, "cities": ["Paris", "Oslo", "Rome"], "gate": str(gate)}))
    page.click("#run")
    page.wait_for_url("**/ui/executions/*")
    first = dict(page.evaluate(WATCH))
    gate.touch()
    execution_id = page.get_attribute("#execution", "data-id")
    for step in ORDER:
        page.wait_for_selector(f'g.node[data-step="{step}"][data-status="done"]')
    assert page.evaluate("window.__marker") == "same page"
    seen = page.evaluate("window.__seen")
    finished = [step for step, status in seen if status == "done"]
    # None was done at first paint; each turned done on its own update, in order.
    assert "done" not in first.values(), first
    assert finished == ORDER, (first, seen)
    assert ["check", "running"] in seen and ["end", "running"] in seen, seen
    page.wait_for_selector("#execution[data-ended=true]")
    assert page.text_content("#exec-status") == "COMPLETED"
    assert node(page, "greet").locator(".count").text_content() == "3/3"
    assert stack.execution(str(execution_id))["status"] == "COMPLETED"
    assert page.is_hidden("#cancel-form")
    # The events table got every event live: the same as the API's, in order.
    api_events = [e["event_id"] for e in stack.events(str(execution_id))]
    shown = [int(t) for t in page.locator("#events tbody tr td:first-child").all_text_contents()]
    assert shown == api_events
    # Filters: only greet's call.done rows remain (one per city).
    page.select_option("#event-filters select[name=type]", "call.done")
    page.select_option("#event-filters select[name=step]", "greet")
    visible = page.locator("#events tbody tr:visible")
    assert visible.count() == 3
    page.select_option("#event-filters select[name=type]", "")
    page.select_option("#event-filters select[name=step]", "")
    node(page, "greet").click()
    page.wait_for_selector("#step-name:text('greet')")
    assert "hello Rome" in page.text_content("#step-result")
    assert page.locator("#step-commands tbody tr").count() == 3
    shot(page, "execution")


def test_a_failed_step_shows_its_error(page: Any, stack: Playbooks) -> None:
    path = stack.register(playbooks.FAILS)["path"]
    execution_id = stack.execute(path)
    assert stack.wait_ended(execution_id)["status"] == "FAILED"
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    assert page.text_content("#exec-status") == "FAILED"
    # An execution that had ended before its page was drawn is marked ended at once (no stream).
    assert page.get_attribute("#execution", "data-ended") == "true"
    assert page.get_attribute("#execution", "data-live") is None
    assert node(page, "explode").get_attribute("data-status") == "failed"
    assert node(page, "start").get_attribute("data-status") == "done"
    assert node(page, "end").get_attribute("data-status") == "skipped"  # never reached
    node(page, "explode").click()
    page.wait_for_selector("#step-error")
    assert "the disk is full at /data (42 bytes left)" in page.text_content("#step-error")
    shot(page, "execution-failed")
    # The overview lists it at the top of the failures, with the step and the error.
    page.goto("/")
    first = page.locator("#failures tbody tr").first
    assert execution_id[:8] in first.text_content()
    assert "explode" in first.text_content() and "the disk is full" in first.text_content()


def test_cancel_a_running_execution(page: Any, stack: Playbooks) -> None:
    path = stack.register(playbooks.SLEEPS)["path"]
    execution_id = stack.execute(path)
    log_in(page)
    # The workers page links the command a worker runs to its execution.
    page.goto("/ui/workers")
    page.wait_for_selector(f'#workers a[href="/ui/executions/{execution_id}"]')
    page.reload()
    assert page.locator("#workers tbody tr").count() == 2
    shot(page, "workers")
    page.click(f'#workers a[href="/ui/executions/{execution_id}"]')
    page.wait_for_selector('g.node[data-step="start"][data-status="running"]')
    page.click("#cancel")
    page.wait_for_selector("#exec-status .s-cancelled")
    assert stack.execution(execution_id)["status"] == "CANCELLED"
    assert node(page, "start").get_attribute("data-status") == "cancelled"
    assert page.locator("#cancel-form").count() == 0
    assert node(page, "after").get_attribute("data-status") == "skipped"


def test_markup_in_outputs_shows_as_text_and_never_runs(page: Any, stack: Playbooks) -> None:
    path = stack.register(playbooks.INJECTS)["path"]
    log_in(page)
    page.goto("/ui/catalog")
    assert "<script>" in page.text_content("#catalog")
    page.click("text=ui/injects")
    page.click("#run")
    page.wait_for_url("**/ui/executions/*")
    page.wait_for_selector("#execution[data-ended=true]")
    node(page, "start").click()
    page.wait_for_selector("#step-result")
    assert "<script>window.__pwned = 1</script>" in page.text_content("#step-result")
    # The live events table got the same text, set as text.
    assert "<script>" in page.text_content("#events")
    page.reload()  # and the server-rendered table too
    assert "<script>" in page.text_content("#events")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#events script, #detail script, #events img, #detail img").count() == 0
    assert path == "ui/injects"


def test_a_late_commit_and_a_cancel_from_elsewhere_reach_the_open_page(page: Any, stack: Playbooks) -> None:
    execution_id = stack.execute(stack.register(playbooks.SLEEPS)["path"])
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    page.wait_for_selector('g.node[data-step="start"][data-status="running"]')
    env = stack.env
    dsn = (
        " ".join(
            f"{key}={env[name]}"
            for key, name in (("host", "POSTGRES_HOST"), ("port", "POSTGRES_PORT"), ("user", "POSTGRES_USER"))
        )
        + f" dbname={env['POSTGRES_DB']}"
    )
    insert = (
        "INSERT INTO noetl.events (execution_id, type, node_name, status, payload) "
        "VALUES (%s, 'step.enter', 'start', %s, '{}') RETURNING event_id"
    )
    with psycopg.connect(dsn) as slow, psycopg.connect(dsn, autocommit=True) as fast:
        (late,) = slow.execute(insert, (execution_id, "LATE")).fetchone()  # its transaction stays open
        (early,) = fast.execute(insert, (execution_id, "EARLY")).fetchone()
        assert late < early
        page.wait_for_selector("#events td:text-is('EARLY')")
        slow.commit()
    page.wait_for_selector("#events td:text-is('LATE')")
    ids = [int(t) for t in page.locator("#events tbody tr td:first-child").all_text_contents()]
    assert ids == sorted(ids) and ids.count(late) == 1 and ids.count(early) == 1
    # Cancelled elsewhere (the API): the page follows, and the step never reached shows skipped.
    page.evaluate("window.__marker = 'same page'")
    assert stack.api("POST", f"/api/executions/{execution_id}/cancel", {})[0] == 200
    page.wait_for_selector("#execution[data-ended=true]")
    assert node(page, "start").get_attribute("data-status") == "cancelled"
    assert node(page, "after").get_attribute("data-status") == "skipped"
    assert page.text_content("#exec-status") == "CANCELLED"
    assert page.evaluate("window.__marker") == "same page"
