"""The migration list itself: versions start at 1 and grow by one; notices carry their dedupe id."""

from __future__ import annotations

import json
import uuid

from noetl.protocol.nats import Notice
from noetl.server.migrations import MIGRATIONS


def test_versions_are_consecutive_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert all(m.name and m.sql.strip() for m in MIGRATIONS)


def test_notice_id_and_body() -> None:
    cid, eid = uuid.uuid4(), uuid.uuid4()
    notice = Notice(cid, eid, 2)
    assert notice.msg_id == f"{cid}:2"
    assert json.loads(notice.payload()) == {"command_id": str(cid), "execution_id": str(eid), "attempt": 2}
