"""The app in-process with neither PostgreSQL nor NATS (the lifespan is not run): probes, 4xx, 503.

Everything a client can get wrong is answered before the database is needed, so these answers
are the same whether or not PostgreSQL is up.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

from noetl.server.app import create_app
from noetl.settings import load_settings
from tests.auth import TOKEN_ENV, RouteAuth

VALID = {"tool": {"kind": "shell", "command": "echo hi"}}


def call(method: str, path: str, env: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """One call on an app without PostgreSQL or NATS, with the test tokens unless headers are given."""
    settings = load_settings({"POSTGRES_HOST": "127.0.0.1", **TOKEN_ENV, **(env or {})})
    app = create_app(settings)
    if "authorization" not in {k.lower() for k in kwargs.get("headers", {})}:
        kwargs["auth"] = RouteAuth.of(env or {})

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_health_answers_without_dependencies() -> None:
    response = call("GET", "/api/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_is_503_with_the_same_shape() -> None:
    response = call("GET", "/api/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "postgres": False, "nats": False}


def test_writes_and_reads_are_503_while_the_database_is_not_connected() -> None:
    write = call("POST", "/api/executions", json=VALID)
    assert write.status_code == 503
    assert write.headers["retry-after"] == "2"
    assert write.json() == {"detail": "the database is unavailable; retry later"}
    assert call("GET", "/api/executions").status_code == 503


def test_metrics_answer_while_the_database_is_down() -> None:
    response = call("GET", "/metrics")
    assert response.status_code == 200
    assert "noetl_database_up 0.0" in response.text


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"{", "headers": {"content-type": "application/json"}}, 422),
        ({"json": {"tool": {"kind": "nope"}}}, 422),
        ({"json": {}}, 422),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 422),
    ],
)
def test_bad_bodies_are_4xx_with_a_string_detail(kwargs: dict[str, Any], status: int) -> None:
    response = call("POST", "/api/executions", **kwargs)
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)


def test_bad_path_and_query() -> None:
    assert call("GET", "/api/executions/not-a-uuid").status_code == 422
    assert call("GET", "/api/executions", params={"limit": 0}).status_code == 422
    assert call("GET", "/api/executions", params={"status": "lost"}).status_code == 422


def test_body_over_the_limit_is_413() -> None:
    big = {"tool": {"kind": "shell", "command": "x" * 5000}}
    response = call("POST", "/api/executions", env={"NOETL_MAX_BODY_BYTES": "4096"}, json=big)
    assert response.status_code == 413
    assert "4096" in response.json()["detail"]
    # Just under the limit: through to the (absent) database.
    assert (
        call("POST", "/api/executions", env={"NOETL_MAX_BODY_BYTES": "4096"}, json=VALID).status_code == 503
    )


def test_token_guards_every_route_but_the_probes() -> None:
    env = {"NOETL_API_TOKEN": "t0k"}
    assert call("GET", "/api/executions", env=env, headers={"Authorization": ""}).status_code == 401
    missing = call("POST", "/api/executions", env=env, json=VALID, headers={"Authorization": ""})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert call("DELETE", "/api/workers/w", env=env, headers={"Authorization": ""}).status_code == 401
    assert (
        call(
            "POST", "/api/executions", env=env, json=VALID, headers={"Authorization": "Bearer t0"}
        ).status_code
        == 401
    )
    authorized = call("POST", "/api/executions", env=env, json=VALID, headers={"Authorization": "Bearer t0k"})
    assert authorized.status_code == 503  # past the token check, to the database
    assert call("GET", "/api/health", env=env).status_code == 200


def test_openapi_lists_every_resource() -> None:
    paths = set(call("GET", "/openapi.json").json()["paths"])
    assert paths == {
        "/api/health",
        "/api/ready",
        "/api/executions",
        "/api/executions/{execution_id}",
        "/api/commands/{command_id}/claim",
        "/api/commands/{command_id}/heartbeat",
        "/api/commands/{command_id}/events",
        "/api/commands/{command_id}/release",
        "/api/commands/claims",
        "/api/commands/events",
        "/api/workers",
        "/api/workers/{worker_id}/heartbeat",
        "/api/workers/{worker_id}",
        "/api/catalog/register",
        "/api/catalog/list",
        "/api/catalog/resource",
        "/api/catalog",
        "/api/catalog/{path}",
        "/api/execute",
        "/api/executions/{execution_id}/events",
        "/api/executions/{execution_id}/status",
        "/api/executions/{execution_id}/cancel",
    }


def test_openapi_refs_resolve_and_errors_are_problems() -> None:
    document = call("GET", "/openapi.json").json()
    schemas = document["components"]["schemas"]
    text = json.dumps(document)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs and refs <= set(schemas)
    assert schemas["Problem"]["required"] == ["detail"]
    errors = {
        (path, status): answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for status, answer in operation["responses"].items()
        if status.startswith(("4", "5"))
    }
    assert len(errors) > 50
    # Every error answer is a Problem, but readiness: its 503 carries what is not ready.
    assert {key: name for key, name in errors.items() if name != "Problem"} == {
        ("/api/ready", "503"): "Readiness"
    }
