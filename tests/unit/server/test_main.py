"""`python -m noetl.server` front door: configuration errors end at once with one line."""

from __future__ import annotations

import socket

import pytest

from noetl.errors import AlreadyRunningError
from noetl.server.__main__ import bind, graceful_timeout, main


def test_graceful_timeout_leaves_room_for_cleanup() -> None:
    assert graceful_timeout(10, 2.0) == 7
    assert graceful_timeout(30, 2.0) == 27
    assert graceful_timeout(2, 2.0) == 1  # never zero: requests in flight get a moment


def test_taken_port_is_already_running_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AlreadyRunningError, match=f"port {port} on 127.0.0.1 is already in use"):
            bind("127.0.0.1", port)


def test_free_port_binds_and_listens_as_tcp() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
        # asyncio turns Nagle off (TCP_NODELAY) on accepted connections only for IPPROTO_TCP
        # sockets; with proto 0 each response waited ~40 ms for the client's delayed ACK.
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_missing_postgres_host_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POSTGRES_HOST", raising=False)
    monkeypatch.delenv("NOETL_CONFIG", raising=False)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("noetl server: POSTGRES_HOST is not set: set POSTGRES_HOST")


def test_bad_setting_is_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NOETL_REAPER_INTERVAL", "often")
    monkeypatch.delenv("NOETL_CONFIG", raising=False)
    assert main([]) == 2
    assert "NOETL_REAPER_INTERVAL='often' is not valid" in capsys.readouterr().err
