"""`python -m noetl.worker` refuses bad settings with one line and exit code 2, before connecting."""

from __future__ import annotations

import pytest

from noetl.errors import EXIT_CONFIG
from noetl.worker.__main__ import main


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--concurrency", "0"], "--concurrency='0' is not valid"),
        (["--nats-url", "http://x"], "--nats-url='http://x' is not valid"),
        (["--server-url", "nats://x:1"], "--server-url='nats://x:1' is not valid"),
    ],
)
def test_bad_flag_is_one_line_and_exit_2(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert named in err


def test_bad_environment_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOETL_WORKER_LEASE", "0.1")
    assert main([]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "NOETL_WORKER_LEASE='0.1' is not valid" in err
    assert "Traceback" not in err
