"""What a supervised program is started without (see noetl.supervisor.entry); nothing is spawned."""

from __future__ import annotations

from noetl.supervisor.entry import unused


def test_the_worker_goes_without_aiohttp_and_httpx_s_command_line() -> None:
    assert unused("noetl.worker", "nats://127.0.0.1:4222") == ("aiohttp", "click", "rich", "pygments")


def test_the_server_goes_without_aiohttp_and_pydantic_1_but_keeps_click_for_uvicorn() -> None:
    assert unused("noetl.server", "nats://a:4222,nats://b:4222") == ("aiohttp", "pydantic.v1")


def test_a_websocket_nats_url_keeps_aiohttp_which_carries_it() -> None:
    assert unused("noetl.server", "nats://a:4222, wss://b:443") == ("pydantic.v1",)
    assert "aiohttp" not in unused("noetl.worker", "ws://nats:8080")


def test_other_modules_run_unchanged() -> None:
    assert unused("noetl.supervisor.listener", "nats://a:4222") == ()
