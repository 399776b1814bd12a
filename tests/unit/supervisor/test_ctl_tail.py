"""`noetl ctl tail -f` against supervisord's own tail (``supervisor.options.tailFile``, what
``tailProcessStderrLog`` answers with) over a log that grows: each byte printed once, in order."""

from __future__ import annotations

from pathlib import Path

from supervisor.options import tailFile

from noetl.cli.ctl import FOLLOW_CHUNK, beyond


def tail(path: Path, offset: int, length: int) -> tuple[bytes, int, bool]:
    text, size, overflow = tailFile(str(path), offset, length)
    return text.encode(), int(size), bool(overflow)


def follow(path: Path, printed: bytearray, offset: int) -> int:
    """One poll of the follow loop: what it prints goes to ``printed``; the next offset."""
    answer, size, overflow = tail(path, offset, FOLLOW_CHUNK)
    printed.extend(beyond(answer, offset, size, overflow))
    return size


def test_following_a_growing_log_prints_each_line_once(tmp_path: Path) -> None:
    log = tmp_path / "worker_00-stderr.log"
    log.write_bytes(b"".join(b"old line %d\n" % i for i in range(1000)))
    before = log.stat().st_size
    first, offset, _ = tail(log, 0, 4000)  # what `tail` prints before it follows
    printed = bytearray(first)
    offset = follow(log, printed, offset)  # nothing new yet
    for batch in range(5):
        with log.open("ab") as out:
            out.write(b"".join(b"batch %d line %d \xc3\xa9\n" % (batch, i) for i in range(20)))
        offset = follow(log, printed, offset)
        offset = follow(log, printed, offset)  # and nothing new since
    whole = log.read_bytes()
    # The last 4,000 bytes there were, then every byte written since, once each, in order.
    assert bytes(printed) == whole[before - 4000 :]
    assert printed.count(b"batch 0 line 0 ") == 1 and printed.count(b"old line 999\n") == 1


def test_more_than_a_poll_asks_for_prints_the_end_of_it(tmp_path: Path) -> None:
    log = tmp_path / "server-stderr.log"
    log.write_bytes(b"start\n")
    printed = bytearray(tail(log, 0, 4000)[0])
    offset = log.stat().st_size
    with log.open("ab") as out:
        out.write(b"x" * (3 * FOLLOW_CHUNK) + b"\nlast\n")
    offset = follow(log, printed, offset)
    assert offset == log.stat().st_size
    assert bytes(printed) == b"start\n" + log.read_bytes()[-FOLLOW_CHUNK:]
