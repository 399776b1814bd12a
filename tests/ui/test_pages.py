"""In a real browser: the login, every page, the executions list (filters, pages, refresh), a
sub-playbook's parent and children, the Run form's one-line refusal of a bad payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.auth import CLIENT_TOKEN
from tests.playbooks.conftest import EXAMPLES, Playbooks
from tests.ui import playbooks
from tests.ui.conftest import log_in, shot
from tests.worker.harness import wait_until


def test_the_ui_asks_for_the_token_once_and_refuses_a_wrong_one(page: Any, stack: Playbooks) -> None:
    page.goto("/ui/executions?status=FAILED")
    assert "/ui/login?next=" in page.url
    shot(page, "login")
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    assert "wrong token" in page.text_content("#login-error")
    assert page.context.cookies() == []
    page.goto("/ui/workers")
    assert "/ui/login" in page.url
    page.fill("input[name=token]", CLIENT_TOKEN)
    page.click("button[type=submit]")
    # Back where the login began (the first page asked for, not the last).
    page.wait_for_url("**/ui/workers")
    (cookie,) = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("noetl_session", True, "Strict")
    assert CLIENT_TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script of the page can read it
    # Asked once: every page opens now.
    for path in ("/", "/ui/catalog", "/ui/executions", "/ui/workers"):
        assert page.goto(path).status == 200
        assert "/ui/login" not in page.url
    page.click("text=Log out")
    page.wait_for_url("**/ui/login")
    page.goto("/ui/catalog")
    assert "/ui/login" in page.url


def test_each_page_opens_with_what_it_shows(page: Any, stack: Playbooks) -> None:
    first = stack.register(playbooks.STEPS.replace("pause: 0.8", "pause: 0.1"))
    second = stack.register(playbooks.STEPS.replace("pause: 0.8", "pause: 0.2"))
    assert (first["version"], second["version"]) == (1, 2)
    done = stack.wait_ended(stack.execute("ui/steps"))
    assert done["status"] == "COMPLETED"
    failed = stack.wait_ended(stack.execute(stack.register(playbooks.FAILS)["path"]))
    assert failed["status"] == "FAILED"
    log_in(page)
    # Overview: this hour's executions by status, the failure with its step, both workers online.
    page.goto("/")
    assert int(page.locator(".card.s-completed .big").text_content()) >= 1
    assert int(page.locator(".card.s-failed .big").text_content()) >= 1
    assert "explode" in page.locator("#failures tbody tr").first.text_content()
    assert page.locator("#workers-online tbody tr").count() == 2
    # Catalog: the playbook with its latest version.
    page.goto("/ui/catalog")
    row = page.locator("#catalog tr", has_text="ui/steps")
    assert "v2" in row.text_content() and "Four steps one after another" in row.text_content()
    shot(page, "catalog")
    # One playbook: highlighted YAML (the same text), its versions, its graph with the `when`.
    page.click("text=ui/steps")
    assert page.text_content("#yaml").strip() == playbooks.STEPS.replace("pause: 0.8", "pause: 0.2").strip()
    assert page.locator("#yaml .y-key", has_text="workflow").count() == 1
    assert page.locator("#yaml .y-tpl").count() >= 3
    assert page.locator("#versions li").all_text_contents()[0].startswith("v2")
    assert page.locator("#versions li").count() == 2
    assert [n.get_attribute("data-step") for n in page.locator("g.node").all()] == [
        "start",
        "greet",
        "check",
        "end",
    ]
    assert page.locator("g.edge").count() == 3
    assert page.text_content('g.edge[data-source="greet"] .when').startswith("{{ greet | length == 3 }}")
    shot(page, "playbook")
    page.click("#versions a")
    assert "0.1" in page.text_content("#yaml")
    # Executions: the two runs above, newest first.
    page.goto("/ui/executions")
    shown = [r.get_attribute("data-id") for r in page.locator("#executions tbody tr").all()]
    assert shown[:2] == [failed["execution_id"], done["execution_id"]]
    shot(page, "executions")


def test_the_executions_list_filters_pages_by_key_and_refreshes_itself(page: Any, stack: Playbooks) -> None:
    stack.register(playbooks.NOOP)
    started = [stack.execute("ui/noop") for _ in range(55)]
    for execution_id in started:
        assert stack.wait_ended(execution_id)["status"] == "COMPLETED"
    failed = stack.execute(stack.register(playbooks.FAILS)["path"])
    assert stack.wait_ended(failed)["status"] == "FAILED"
    log_in(page)
    page.goto("/ui/executions?path=ui/noop")
    first = [r.get_attribute("data-id") for r in page.locator("#executions tbody tr").all()]
    assert len(first) == 50
    page.click("#older")
    rest = [r.get_attribute("data-id") for r in page.locator("#executions tbody tr").all()]
    assert len(rest) == 5
    # Every one exactly once, newest first.
    assert first + rest == list(reversed(started))
    assert page.locator("#older").count() == 0
    page.goto("/ui/executions?status=FAILED")
    rows = page.locator("#executions tbody tr")
    status, body = stack.api("GET", "/api/executions?status=FAILED")
    assert status == 200
    assert [r.get_attribute("data-id") for r in rows.all()] == [e["execution_id"] for e in body["items"]]
    assert rows.first.get_attribute("data-id") == failed
    assert set(page.locator("#executions tbody .badge").all_text_contents()) == {"FAILED"}
    page.select_option("#filters select[name=status]", "COMPLETED")
    page.fill("#filters input[name=path]", "ui/fails")
    page.click("#filters button")
    assert page.locator("#executions tbody tr").all_text_contents()[0].strip() == "No execution matches."
    # The first page refreshes by itself: a new execution appears without a reload.
    page.goto("/ui/executions?path=ui/noop")
    page.evaluate("window.__marker = 'same page'")
    newest = stack.execute("ui/noop")
    page.wait_for_selector(f'#executions tbody tr[data-id="{newest}"]')
    assert page.locator("#executions tbody tr").first.get_attribute("data-id") == newest
    assert page.evaluate("window.__marker") == "same page"


def test_a_sub_playbook_links_its_parent_and_children(page: Any, stack: Playbooks) -> None:
    for name in ("child_a", "child_b", "parent"):
        stack.register((EXAMPLES / f"{name}.yaml").read_text())
    parent = stack.execute("examples/parent")
    assert stack.wait_ended(parent)["status"] == "COMPLETED"
    children = {c["execution_id"] for c in stack.children(parent)}
    assert len(children) == 2
    log_in(page)
    page.goto(f"/ui/executions/{parent}")
    links = page.locator("#children a")
    assert {a.get_attribute("href").rsplit("/", 1)[1] for a in links.all()} == children
    links.first.click()
    page.wait_for_selector("#parent")
    assert page.get_attribute("#parent", "href") == f"/ui/executions/{parent}"


def test_the_run_form_refuses_a_payload_that_is_not_an_object(page: Any, stack: Playbooks) -> None:
    stack.register(playbooks.NOOP)
    log_in(page)
    page.goto("/ui/catalog/ui/noop")
    for text, says in (("{not json", "payload: not JSON"), ("[1, 2]", "payload: give a JSON object")):
        page.fill("#payload", text)
        response = page.expect_navigation()
        with response as answer:
            page.click("#run")
        assert answer.value.status == 422
        assert page.text_content("#run-error").startswith(says)
        assert page.input_value("#payload") == text  # kept, to be fixed


def test_screenshots_land_only_where_asked(
    tmp_path: Path, page: Any, stack: Playbooks, monkeypatch: Any
) -> None:
    log_in(page)
    monkeypatch.delenv("UI_SCREENSHOTS", raising=False)
    shot(page, "nowhere")
    monkeypatch.setenv("UI_SCREENSHOTS", str(tmp_path / "shots"))
    shot(page, "overview")
    wait_until(lambda: (tmp_path / "shots" / "overview.png").exists(), 5, "the screenshot")
    assert (tmp_path / "shots" / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(Path.cwd().glob("nowhere.png"))
