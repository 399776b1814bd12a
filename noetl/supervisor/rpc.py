"""XML-RPC calls to supervisord over its unix socket, without xmlrpc.client or supervisor's client.

`noetl ctl status` is one call that takes supervisord ~1 ms to answer; importing ``xmlrpc.client``
(``http.client``, ``email.*``, ``decimal``) and ``supervisor.xmlrpc`` took ~60 ms, several times the
rest of the command. supervisord's API needs a small, fixed subset of XML-RPC: calls carry strings,
integers and booleans; answers are strings, integers, booleans, doubles, arrays and structs, or a
fault. This module encodes and decodes exactly that (with the C parser ``pyexpat``) and sends one
HTTP/1.0 request per call on a new connection, with its own timeout.
"""

from __future__ import annotations

import binascii
import socket
from xml.parsers import expat

TYPE_CHECKING = False  # typing costs ~4 ms to import; mypy and ruff read this name as its
if TYPE_CHECKING:
    from typing import Any

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_MAX_ANSWER = 64 * 1024 * 1024  # a tail of a log is the largest answer; refuse anything absurd


class Fault(Exception):
    """supervisord refused the call: ``code`` is one of ``supervisor.xmlrpc.Faults``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class HttpError(Exception):
    """supervisord answered with an HTTP status other than 200 (401: wrong credentials)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class BadAnswer(Exception):
    """The answer is not the XML-RPC this module reads."""


def _param(value: object) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return f"<boolean>{int(value)}</boolean>"
    if isinstance(value, int):
        return f"<int>{value}</int>"
    if isinstance(value, str):
        return f"<string>{value.translate(_ESCAPES)}</string>"
    raise TypeError(f"cannot send {type(value).__name__} to supervisord")


def request_body(method: str, params: tuple[object, ...]) -> bytes:
    """An XML-RPC methodCall, as ``xmlrpc.client.dumps`` writes one for these parameter types."""
    values = "".join(f"<param><value>{_param(value)}</value></param>\n" for value in params)
    text = (
        "<?xml version='1.0'?>\n<methodCall>\n"
        f"<methodName>{method.translate(_ESCAPES)}</methodName>\n<params>\n{values}</params>\n</methodCall>\n"
    )
    return text.encode("utf-8")


class _Node:
    __slots__ = ("children", "tag", "text")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.children: list[_Node] = []
        self.text: list[str] = []


def _tree(body: bytes) -> _Node:
    root = _Node("")
    stack = [root]

    def start(tag: str, attrs: object) -> None:
        node = _Node(tag)
        stack[-1].children.append(node)
        stack.append(node)

    def end(tag: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        stack[-1].text.append(data)

    parser = expat.ParserCreate("utf-8")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise BadAnswer(f"not XML: {exc}") from None
    if len(root.children) != 1:
        raise BadAnswer("not one XML document")
    return root.children[0]


def _value(node: _Node) -> Any:
    """A ``<value>`` element as Python data."""
    if not node.children:  # an untyped value is a string
        return "".join(node.text)
    typed = node.children[0]
    text = "".join(typed.text)
    if typed.tag == "string":
        return text
    if typed.tag in ("int", "i4", "i8"):
        return int(text)
    if typed.tag == "boolean":
        return text.strip() == "1"
    if typed.tag == "double":
        return float(text)
    if typed.tag == "nil":
        return None
    if typed.tag == "array":
        data = typed.children[0] if typed.children else _Node("data")
        return [_value(child) for child in data.children]
    if typed.tag == "struct":
        found = {}
        for member in typed.children:
            parts = {child.tag: child for child in member.children}
            found["".join(parts["name"].text)] = _value(parts["value"])
        return found
    if typed.tag == "base64":
        return binascii.a2b_base64(text)
    if typed.tag == "dateTime.iso8601":
        return text
    raise BadAnswer(f"unexpected XML-RPC type <{typed.tag}>")


def parse_response(body: bytes) -> Any:
    """The value of a methodResponse; ``Fault`` when it is a fault."""
    response = _tree(body)
    try:
        first = response.children[0]
        if first.tag == "fault":
            fault = _value(first.children[0])
            raise Fault(int(fault["faultCode"]), str(fault["faultString"]))
        return _value(first.children[0].children[0])  # params > param > value
    except (IndexError, KeyError, ValueError) as exc:
        raise BadAnswer(f"not an XML-RPC answer ({exc!r})") from None


def _split_http(answer: bytes) -> bytes:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        raise BadAnswer("no complete HTTP answer")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise BadAnswer("no HTTP status line")
    status = int(status_line[1])
    if status != 200:
        raise HttpError(status)
    return body


def call(
    socket_path: str, username: str, password: str, method: str, *params: object, timeout: float = 10.0
) -> Any:
    """Call ``method`` on the supervisord listening on ``socket_path``; its answer as Python data.

    Raises ``Fault``, ``HttpError``, ``BadAnswer``, or ``OSError`` (no socket, refused, timed out).
    """
    body = request_body(method, params)
    credentials = binascii.b2a_base64(f"{username}:{password}".encode(), newline=False).decode("ascii")
    request = (
        "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
        f"Authorization: Basic {credentials}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("ascii") + body
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(request)
        chunks = []
        received = 0
        while True:  # HTTP/1.0: supervisord closes the connection after its answer
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
            if received > _MAX_ANSWER:
                raise BadAnswer(f"answer larger than {_MAX_ANSWER} bytes")
    return parse_response(_split_http(b"".join(chunks)))
