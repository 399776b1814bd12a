"""The lean XML-RPC client reads and writes what the standard library's xmlrpc.client does."""

from __future__ import annotations

import xmlrpc.client

import pytest

from noetl.supervisor import rpc

# Shaped like supervisord's getAllProcessInfo answer, with text that needs escaping.
PROCESS_INFO = [
    {
        "name": "worker_00",
        "group": "workers",
        "start": 1764500000,
        "stop": 0,
        "now": 1764500012,
        "state": 20,
        "statename": "RUNNING",
        "spawnerr": "",
        "exitstatus": 0,
        "logfile": "/run/logs/worker_00-stdout.log",
        "stdout_logfile": "/run/logs/worker_00-stdout.log",
        "stderr_logfile": "",
        "pid": 4223,
        "description": "pid 4223, uptime 0:00:12 <&> é",
    },
    {"name": "listener", "group": "listener", "pid": 0, "statename": "STOPPED", "description": "Not started"},
]


@pytest.mark.parametrize(
    "value",
    [PROCESS_INFO, True, False, 0, -7, 2.5, "", "a < b && c > d", [], {}, [[1, "x"], {"k": [True]}]],
    ids=repr,
)
def test_answers_decode_as_xmlrpc_client_decodes_them(value: object) -> None:
    body = xmlrpc.client.dumps((value,), methodresponse=True).encode()
    assert rpc.parse_response(body) == xmlrpc.client.loads(body)[0][0] == value


def test_a_fault_carries_supervisor_s_code() -> None:
    body = xmlrpc.client.dumps(xmlrpc.client.Fault(10, "BAD_NAME: nope")).encode()
    with pytest.raises(rpc.Fault) as raised:
        rpc.parse_response(body)
    assert (raised.value.code, raised.value.text) == (10, "BAD_NAME: nope")


def test_calls_encode_as_xmlrpc_client_reads_them() -> None:
    params = ("workers:worker_00", 0, 4000, True, "<&>")
    body = rpc.request_body("supervisor.tailProcessStdoutLog", params)
    assert xmlrpc.client.loads(body) == (params, "supervisor.tailProcessStdoutLog")


@pytest.mark.parametrize("body", [b"", b"<methodResponse>", b"<methodResponse/>", b"not xml"])
def test_what_is_not_an_answer_is_refused(body: bytes) -> None:
    with pytest.raises(rpc.BadAnswer):
        rpc.parse_response(body)
