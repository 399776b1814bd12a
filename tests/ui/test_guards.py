"""The UI's gate on the real server, without a browser: its session takes only the login, forms
from another site are refused, and the API answers exactly as before."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.auth import CLIENT_TOKEN, WORKER_TOKEN, bearer
from tests.playbooks.conftest import Playbooks
from tests.ui import playbooks


@pytest.fixture
def client(stack: Playbooks) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, follow_redirects=False, timeout=15) as found:
        yield found


def logged_in(client: httpx.Client, stack: Playbooks) -> str:
    """Log ``client`` in (its cookie jar keeps the session); the CSRF token of its pages."""
    answer = client.post(
        "/ui/login", data={"token": CLIENT_TOKEN, "next": "/"}, headers={"Origin": stack.url}
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/ui/catalog")
    found = re.search(r'data-csrf="([0-9a-f]{64})"', page.text)
    assert found, page.text
    return found.group(1)


def executions_of(stack: Playbooks, path: str) -> int:
    status, body = stack.api("GET", "/api/executions?limit=500")
    assert status == 200
    return sum(1 for e in body["items"] if e["path"] == path)


def test_pages_need_the_session_and_take_no_bearer_token(client: httpx.Client, stack: Playbooks) -> None:
    for path in ("/", "/ui/catalog", "/ui/executions?status=FAILED", "/ui/workers"):
        answer = client.get(path, headers=bearer(CLIENT_TOKEN))
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/login?next=%2F"), path
    # The live stream and the step panel are refused outright (no redirect a script would follow).
    live = client.get(
        "/ui/executions/00000000-0000-0000-0000-000000000000/live", headers={"Accept": "text/event-stream"}
    )
    assert live.status_code == 401
    client.cookies.set("noetl_session", "abc.def")
    forged = client.get("/ui/catalog")
    assert forged.status_code == 303
    # The workers' token is no login.
    worker = client.post(
        "/ui/login", data={"token": WORKER_TOKEN, "next": "/"}, headers={"Origin": stack.url}
    )
    assert worker.status_code == 401 and "set-cookie" not in worker.headers
    # Open without a session: the login form and the assets only.
    assert client.get("/ui/login").status_code == 200
    assert client.get("/ui/static/ui.js").status_code == 200
    assert client.get("/ui/static/ui.css").headers["content-type"].startswith("text/css")


def test_forms_from_another_site_or_without_the_csrf_token_are_refused(
    client: httpx.Client, stack: Playbooks
) -> None:
    path = stack.register(playbooks.NOOP)["path"]
    csrf = logged_in(client, stack)
    form = {"path": path, "version": "1", "payload": "{}", "csrf": csrf}
    before = executions_of(stack, path)
    refused = [
        client.post("/ui/run", data=form, headers={"Origin": "http://evil.example"}),
        client.post("/ui/run", data=form, headers={"Referer": "http://evil.example/page"}),
        client.post("/ui/run", data=form),  # neither Origin nor Referer: refused too
        client.post("/ui/run", data={**form, "csrf": ""}, headers={"Origin": stack.url}),
        client.post("/ui/run", data={**form, "csrf": "0" * 64}, headers={"Origin": stack.url}),
    ]
    assert [r.status_code for r in refused] == [403] * 5, [r.text for r in refused]
    assert executions_of(stack, path) == before
    # The same form from this server's page, with its token, starts one.
    accepted = client.post("/ui/run", data=form, headers={"Origin": stack.url})
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"].startswith("/ui/executions/")
    assert executions_of(stack, path) == before + 1
    # Another session's token does not fit this one.
    with httpx.Client(base_url=stack.url, follow_redirects=False, timeout=15) as other:
        theirs = logged_in(other, stack)
    assert theirs != csrf
    crossed = client.post("/ui/run", data={**form, "csrf": theirs}, headers={"Origin": stack.url})
    assert crossed.status_code == 403
    # Cancel and log out are guarded the same way; the login form checks where it comes from.
    execution_id = stack.execute(stack.register(playbooks.SLEEPS)["path"])
    cancel = f"/ui/executions/{execution_id}/cancel"
    assert (
        client.post(cancel, data={"csrf": csrf}, headers={"Origin": "http://evil.example"}).status_code == 403
    )
    assert client.post(cancel, data={"csrf": theirs}, headers={"Origin": stack.url}).status_code == 403
    assert stack.execution(execution_id)["status"] == "RUNNING"
    assert client.post(cancel, data={"csrf": csrf}, headers={"Origin": stack.url}).status_code == 303
    assert stack.execution(execution_id)["status"] == "CANCELLED"
    again = client.post(cancel, data={"csrf": csrf}, headers={"Origin": stack.url})
    assert again.status_code == 409 and "already ended" in again.text
    login = {"token": CLIENT_TOKEN, "next": "/"}
    assert client.post("/ui/login", data=login, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/ui/logout", data={}, headers={"Origin": stack.url}).status_code == 403


def test_the_api_keeps_its_shape_and_its_own_auth(client: httpx.Client, stack: Playbooks) -> None:
    logged_in(client, stack)
    # The session cookie is no API credential.
    assert client.get("/api/executions").status_code == 401
    answer = client.get("/api/executions?limit=1", headers=bearer(CLIENT_TOKEN))
    assert answer.status_code == 200
    assert set(answer.json()) == {"items", "total", "total_capped", "limit", "offset", "next"}
    assert client.get("/api/health").json() == {"status": "ok"}


def test_a_bad_page_request_is_one_line_4xx(client: httpx.Client, stack: Playbooks) -> None:
    logged_in(client, stack)
    missing = client.get("/ui/executions/6f1c2d3e-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and "no execution 6f1c2d3e-0000-4000-8000-000000000000" in missing.text
    assert client.get("/ui/executions/not-a-uuid").status_code == 422
    assert client.get("/ui/executions?status=SOMETIMES").status_code == 422
    assert client.get("/ui/executions?cursor=garbage").status_code == 422
    unknown = client.get("/ui/catalog/no/such/playbook")
    assert unknown.status_code == 404 and "no playbook &#39;no/such/playbook&#39;" in unknown.text


def test_a_submitted_command_shows_its_tool_and_result(client: httpx.Client, stack: Playbooks) -> None:
    execution_id, _ = stack.submit({"kind": "shell", "command": "echo '<b>bold</b>'"})
    assert stack.wait_finished([execution_id], 60)[execution_id]["status"] == "COMPLETED"
    logged_in(client, stack)
    page = client.get(f"/ui/executions/{execution_id}")
    assert page.status_code == 200
    assert "echo &#39;&lt;b&gt;bold&lt;/b&gt;&#39;" in page.text  # the tool, escaped
    assert "&lt;b&gt;bold&lt;/b&gt;\\n" in page.text  # its result's stdout, escaped
    assert "<b>bold</b>" not in page.text
    assert 'id="graph"' not in page.text and "data-live=" not in page.text  # no steps; it has ended
