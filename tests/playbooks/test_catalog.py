"""The catalog on a real server: versions, NoETL's request and answer shapes, and every kind of
broken playbook refused at registration with one line naming the step and the key."""

from __future__ import annotations

import base64

import pytest

from tests.playbooks.conftest import Playbooks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def playbook(path: str, steps: str, extra: str = "") -> str:
    return f"""apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: {path.rsplit("/", 1)[-1]}
  path: {path}
  description: a test playbook
workload:
  n: 1
{extra}workflow:
{steps}"""


NOOP = """  - step: start
    tool: {kind: noop, input: {n: "{{ n }}"}}
"""


def test_versions_grow_with_content_and_repeat_for_the_same(playbooks: Playbooks) -> None:
    first = playbooks.register(playbook("tests/versions", NOOP))
    assert (first["status"], first["kind"], first["path"], first["version"]) == (
        "success",
        "Playbook",
        "tests/versions",
        1,
    )
    assert isinstance(first["catalog_id"], str) and first["message"]
    again = playbooks.register(playbook("tests/versions", NOOP))
    assert (again["version"], again["catalog_id"]) == (1, first["catalog_id"])
    changed = playbooks.register(playbook("tests/versions", NOOP.replace("n: ", "m: ")))
    assert changed["version"] == 2 and changed["catalog_id"] != first["catalog_id"]
    # The first content again is still version 1: a version names one content forever.
    assert playbooks.register(playbook("tests/versions", NOOP))["version"] == 1


def test_base64_content_is_accepted(playbooks: Playbooks) -> None:
    text = playbook("tests/base64", NOOP)
    encoded = base64.b64encode(text.encode()).decode()
    registered = playbooks.register(encoded)
    assert (registered["path"], registered["version"]) == ("tests/base64", 1)
    _, entry = playbooks.api("POST", "/api/catalog/resource", {"path": "tests/base64"})
    assert entry["content"] == text


def test_list_and_read_entries(playbooks: Playbooks) -> None:
    playbooks.register(playbook("tests/listed", NOOP))
    playbooks.register(playbook("tests/listed", NOOP.replace("n: ", "k: ")))
    status, listed = playbooks.api("POST", "/api/catalog/list", {"resource_type": "Playbook"})
    assert status == 200
    entry = next(e for e in listed["entries"] if e["path"] == "tests/listed")
    assert entry["version"] == 2  # the latest only
    assert set(entry) == {"path", "version", "kind", "name", "description", "created_at", "catalog_id"}
    assert (entry["kind"], entry["name"], entry["description"]) == ("Playbook", "listed", "a test playbook")
    assert playbooks.api("GET", "/api/catalog")[1] == listed
    for version, key in ((1, "n: "), (2, "k: ")):
        for answer in (
            playbooks.api("POST", "/api/catalog/resource", {"path": "tests/listed", "version": version}),
            playbooks.api("GET", f"/api/catalog/tests/listed?version={version}"),
        ):
            assert answer[0] == 200 and answer[1]["version"] == version and key in answer[1]["content"]
    latest = playbooks.api("POST", "/api/catalog/resource", {"path": "tests/listed", "version": "latest"})
    assert latest[1]["version"] == 2
    assert playbooks.api("GET", "/api/catalog/tests/listed")[1]["version"] == 2
    missing = playbooks.api("POST", "/api/catalog/resource", {"path": "tests/listed", "version": 9})
    assert missing == (404, {"detail": "playbook 'tests/listed' has no version 9 (latest is 2)"})
    assert playbooks.api("GET", "/api/catalog/tests/nothing")[0] == 404


BAD = [
    ("yaml", "apiVersion: noetl.io/v2\nkind: Playbook\nworkflow: [\n", ["yaml", "line"]),
    ("no start", playbook("tests/bad", "  - step: begin\n    tool: {kind: noop}\n"), ["start"]),
    (
        "duplicate",
        playbook("tests/bad", NOOP + "    next: twice\n  - step: twice\n  - step: twice\n"),
        ["twice", "duplicate"],
    ),
    ("missing arc target", playbook("tests/bad", NOOP + "    next: nope\n"), ["start", "nope"]),
    (
        "unknown kind",
        playbook("tests/bad", "  - step: start\n    tool: {kind: teleport}\n"),
        ["start", "teleport"],
    ),
    (
        "template",
        playbook("tests/bad", '  - step: start\n    tool: {kind: noop, input: {x: "{{ n + }}"}}\n'),
        ["start", "input"],
    ),
    (
        "workbook entry",
        playbook("tests/bad", "  - step: start\n    tool: {kind: workbook, name: ghost}\n"),
        ["start", "ghost"],
    ),
]


@pytest.mark.parametrize(("case", "content", "words"), BAD, ids=[b[0] for b in BAD])
def test_broken_playbooks_are_refused_with_one_line(
    playbooks: Playbooks, case: str, content: str, words: list[str]
) -> None:
    detail = playbooks.refused(content)
    for word in words:
        assert word in detail.lower() or word in detail, (case, detail)
    # Nothing was stored.
    assert playbooks.api("POST", "/api/catalog/resource", {"path": "tests/bad"})[0] == 404


def test_execute_requests(playbooks: Playbooks) -> None:
    playbooks.register(playbook("tests/execute", NOOP))
    # payload, its synonym workload, catalog_id, and version "latest" all start it.
    catalog_id = playbooks.register(playbook("tests/execute", NOOP))["catalog_id"]
    for body in (
        {"path": "tests/execute", "payload": {"n": 5}},
        {"path": "tests/execute", "workload": {"n": 5}, "version": "latest"},
        {"catalog_id": catalog_id, "payload": {"n": 5}},
    ):
        status, started = playbooks.api("POST", "/api/execute", body)
        assert status == 200 and started["status"] == "started", started
        done = playbooks.wait_ended(started["execution_id"])
        assert (done["status"], done["result"], done["workload"]) == ("COMPLETED", {"n": 5}, {"n": 5})
    assert playbooks.api("POST", "/api/execute", {"path": "tests/ghost"}) == (
        404,
        {"detail": "no playbook 'tests/ghost' in the catalog (register it first)"},
    )
    status, body = playbooks.api("POST", "/api/execute", {"payload": {}})
    assert status == 422 and "path" in body["detail"]
    status, body = playbooks.api(
        "POST", "/api/execute", {"path": "tests/execute", "payload": {}, "workload": {}}
    )
    assert status == 422 and "not both" in body["detail"]
