"""The event listener's result handler: runs inside supervisord and writes the listener's lines.

supervisord calls ``result_handler(event, result)`` with the body of each ``RESULT`` the listener
sends. The body is ``OK`` (nothing to write) or a channel line (``stdout`` or ``stderr``) followed by
the text to write there. Writing from inside supervisord puts program output on the container's own
stdout/stderr without another pipe in between.
"""

from __future__ import annotations

import sys
from typing import Any

OK = "OK"


def encode(channel: str, text: str) -> str:
    """A RESULT body that asks supervisord to write ``text`` to ``channel``."""
    return f"{channel}\n{text}"


def result_handler(event: Any, result: bytes | str) -> None:
    # supervisord hands over the RESULT body as it read it: bytes.
    body = result.encode() if isinstance(result, str) else result
    if body == OK.encode():
        return
    channel, _, text = body.partition(b"\n")
    stream = sys.stderr if channel == b"stderr" else sys.stdout
    try:
        stream.buffer.write(text)
        stream.flush()
    except (OSError, ValueError):
        # A closed console must not make supervisord mark the listener UNKNOWN; the line is lost.
        pass
