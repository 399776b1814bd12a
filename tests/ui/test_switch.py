"""NOETL_ENABLE_UI in-process (no database needed): off, `/` is the API's 404; on, the UI's gate
answers `/` and `/ui/...` while every API answer stays what it was."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from noetl.server.app import create_app
from noetl.settings import load_settings
from tests.auth import CLIENT_TOKEN, TOKEN_ENV, bearer


def call(enable_ui: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    settings = load_settings({"POSTGRES_HOST": "127.0.0.1", "NOETL_ENABLE_UI": enable_ui, **TOKEN_ENV})
    app = create_app(settings)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_without_the_setting_there_is_no_ui() -> None:
    for path in ("/", "/ui/login", "/ui/static/ui.js", "/ui/executions"):
        answer = call("false", "GET", path, headers=bearer(CLIENT_TOKEN))
        assert answer.status_code == 404, path
        assert answer.json() == {"detail": "Not Found"}


def test_with_the_setting_the_ui_answers_and_the_api_does_not_change() -> None:
    home = call("true", "GET", "/")
    assert (home.status_code, home.headers["location"]) == (303, "/ui/login?next=%2F")
    login = call("true", "GET", "/ui/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    assert "default-src 'self'" in login.headers["content-security-policy"]
    script = call("true", "GET", "/ui/static/ui.js")
    assert script.status_code == 200 and "EventSource" in script.text
    for enable_ui in ("true", "false"):
        assert call(enable_ui, "GET", "/api/health").json() == {"status": "ok"}
        refused = call(enable_ui, "GET", "/api/executions")
        assert refused.status_code == 401 and "missing or wrong API token" in refused.json()["detail"]
        assert call(enable_ui, "GET", "/openapi.json", headers=bearer(CLIENT_TOKEN)).status_code == 200
    on = call("true", "GET", "/openapi.json", headers=bearer(CLIENT_TOKEN)).json()
    off = call("false", "GET", "/openapi.json", headers=bearer(CLIENT_TOKEN)).json()
    assert on == off  # the API's schema is the same with the UI on


def test_without_auth_the_ui_needs_no_login_but_forms_still_need_their_origin() -> None:
    settings = load_settings(
        {
            "POSTGRES_HOST": "127.0.0.1",
            "NOETL_ENABLE_UI": "true",
            "NOETL_AUTH": "none",
            "NOETL_HOST": "127.0.0.1",
        }
    )
    app = create_app(settings)

    async def go() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            login = await client.get("/ui/login?next=/ui/workers")
            post = await client.post(
                "/ui/run", data={"path": "x", "version": "1"}, headers={"Origin": "http://evil"}
            )
            return login, post

    login, post = asyncio.run(go())
    assert (login.status_code, login.headers["location"]) == (303, "/ui/workers")
    assert post.status_code == 403
