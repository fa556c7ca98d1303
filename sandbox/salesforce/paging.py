"""SOQL result cursors: the 2,000-row pages of `query`/`queryAll`, `nextRecordsUrl` locators, and the
`odd_record` fault that corrupts one row of a page."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.soql import Query, render_row
from healthsync.sandbox.salesforce.store import OrgStore, Record

DEFAULT_BATCH = 2000
MIN_BATCH = 200
MAX_OPEN_CURSORS = 50  # the real org keeps a bounded number of open locators per user and evicts the oldest
CURSOR_IDLE = timedelta(minutes=15)


@dataclass
class Cursor:
    query: Query
    rows: list[Record]  # references to the matched records: copy-on-write makes this a snapshot
    batch: int
    version: str
    endpoint: str  # "query" | "queryAll" (the path nextRecordsUrl uses)
    last_used: datetime


class Cursors:
    def __init__(self) -> None:
        self._open: OrderedDict[str, Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, cursor: Cursor) -> str:
        locator = ids.to18("01gHs0" + "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
                                               for _ in range(9)))
        with self._lock:
            self._open[locator] = cursor
            while len(self._open) > MAX_OPEN_CURSORS:
                self._open.popitem(last=False)
        return locator

    def take(self, locator: str, now: datetime) -> Cursor:
        with self._lock:
            cursor = self._open.get(locator)
            if cursor is None or now - cursor.last_used > CURSOR_IDLE:
                self._open.pop(locator, None)
                raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cursor.last_used = now
            self._open.move_to_end(locator)
            return cursor

    def close(self, locator: str) -> None:
        with self._lock:
            self._open.pop(locator, None)

    def clear(self) -> None:
        with self._lock:
            self._open.clear()


def batch_size(header: str | None) -> int:
    """`Sforce-Query-Options: batchSize=N` — honoured between 200 and 2,000, as the real API does."""
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(MIN_BATCH, min(DEFAULT_BATCH, int(value)))
    return DEFAULT_BATCH


def split_locator(value: str) -> tuple[str, int]:
    locator, _, start = value.partition("-")
    if not start.isdigit():
        raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return locator, int(start)


def page(cursors: Cursors, cursor: Cursor, locator: str | None, start: int, store: OrgStore,  # noqa: PLR0913 (the query cursor's state and where this page starts)
         odd_record: bool) -> dict[str, Any]:
    """One page of a cursor starting at row `start`; opens a locator when more rows follow."""
    rows = cursor.rows[start:start + cursor.batch]
    records = [render_row(cursor.query, row, store, cursor.version, cursor.last_used) for row in rows]
    if odd_record and records:
        corrupt(records[len(records) // 2])
    following = start + len(rows)
    done = following >= len(cursor.rows)
    body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": done}
    if done:
        if locator:
            cursors.close(locator)
    else:
        locator = locator or cursors.open(cursor)
        body["nextRecordsUrl"] = f"/services/data/v{cursor.version}/{cursor.endpoint}/{locator}-{following}"
    body["records"] = records
    return body


def corrupt(record: dict[str, Any]) -> None:
    """Break one record the way real data goes wrong: a null system stamp, a number where a name belongs,
    or a field missing altogether."""
    if "SystemModstamp" in record:
        record["SystemModstamp"] = None
    elif "Name" in record:
        record["Name"] = 12345
    else:
        droppable = [k for k in record if k not in {"attributes", "Id"}]
        if droppable:
            del record[droppable[-1]]
