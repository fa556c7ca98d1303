"""Bulk API 2.0 query jobs: create (the job completes at once), poll, and CSV result pages with
`Sforce-Locator` / `Sforce-NumberOfRecords`, as `sf.bulk2.<Object>.query(...)` consumes them."""

from __future__ import annotations

import base64
import csv
import io
import threading
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from werkzeug.wrappers import Response

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.soql import column_names, compile_soql, execute, resolve
from healthsync.sandbox.salesforce.store import OrgStore, format_datetime

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
DAILY_QUERY_JOBS = 10000


@dataclass
class QueryJob:
    id: str
    operation: str
    sobject: str
    created: datetime
    delimiter: str
    line_ending: str
    header: list[str]
    rows: list[list[str]]
    version: str
    created_by: str
    state: str = "JobComplete"

    def info(self, state: str | None = None) -> dict[str, Any]:
        stamp = format_datetime(self.created)
        return {
            "id": self.id, "operation": self.operation, "object": self.sobject, "createdById": self.created_by,
            "createdDate": stamp, "systemModstamp": stamp, "state": state or self.state,
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(self.version),
            "jobType": "V2Query", "lineEnding": self.line_ending, "columnDelimiter": self.delimiter,
            "numberRecordsProcessed": len(self.rows), "retries": 0, "totalProcessingTime": 0,
        }


class BulkQueries:
    def __init__(self) -> None:
        self.jobs: dict[str, QueryJob] = {}
        self._lock = threading.Lock()
        self._counter = 0

    def create(self, body: Any, store: OrgStore, now: datetime, version: str, odd_record: bool) -> QueryJob:
        if not isinstance(body, dict) or body.get("operation") not in {"query", "queryAll"}:
            raise SfError(400, "INVALIDJOB", "InvalidJob : operation must be 'query' or 'queryAll'")
        delimiter = str(body.get("columnDelimiter") or "COMMA")
        line_ending = str(body.get("lineEnding") or "LF")
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise SfError(400, "INVALIDJOB", f"InvalidJob : unsupported columnDelimiter {delimiter!r} or "
                                             f"lineEnding {line_ending!r}")
        query = compile_soql(str(body.get("query") or ""), store)
        if query.is_aggregate or query.offset or len(query.paths) != len(query.items):
            # "Bulk API 2.0 Query Considerations": no aggregate functions, GROUP BY, OFFSET, TYPEOF, nested
            # subqueries or function-wrapped fields (Bulk API 2.0 and Bulk API Developer Guide)
            raise SfError(400, "API_ERROR", "Aggregate queries, OFFSET, TYPEOF, relationship subqueries and "
                                            "functions are not supported by Bulk API 2.0 query")
        matched = execute(query, store, include_deleted=body["operation"] == "queryAll", now=now)
        rows = [[csv_cell(resolve(path, record, store)) for path in query.paths] for record in matched]
        if odd_record and rows:
            _corrupt(column_names(query), rows[len(rows) // 2])
        with self._lock:
            self._counter += 1
            job_id = ids.to18(f"750Hs0{self._counter:09d}")
            job = QueryJob(job_id, body["operation"], query.sobject, now, delimiter, line_ending,
                           column_names(query), rows, version, store.acting_user_id or "")
            self.jobs[job_id] = job
        return job

    def get(self, job_id: str) -> QueryJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def results(self, job_id: str, locator: str | None, max_records: str | None) -> Response:
        job = self.get(job_id)
        if job.state != "JobComplete":
            raise SfError(400, "API_ERROR", f"The job {job_id} is not complete (state {job.state})")
        start = _decode_locator(locator)
        size = len(job.rows) - start
        if max_records:
            if not max_records.isdigit() or int(max_records) < 1:
                raise SfError(400, "INVALIDREQUEST", f"maxRecords must be a positive integer: {max_records}")
            size = min(size, int(max_records))
        chunk = job.rows[start:start + size]
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=DELIMITERS[job.delimiter], lineterminator=LINE_ENDINGS[job.line_ending],
                            quoting=csv.QUOTE_MINIMAL)
        writer.writerow(job.header)
        writer.writerows(chunk)
        following = start + len(chunk)
        next_locator = _encode_locator(following) if following < len(job.rows) else "null"
        headers = {"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(len(chunk))}
        return Response(buffer.getvalue(), status=200, headers=headers, content_type="text/csv; charset=UTF-8")

    def abort(self, job_id: str) -> QueryJob:
        job = self.get(job_id)
        job.state = "Aborted"
        return job

    def delete(self, job_id: str) -> None:
        self.get(job_id)
        self.jobs.pop(job_id, None)

    def jobs_today(self, now: datetime) -> int:
        return sum(1 for job in self.jobs.values() if (now - job.created).total_seconds() < 86400)


def csv_cell(value: Any) -> str:
    """A value as Bulk API CSV writes it (empty for null, lowercase booleans, UTC datetimes with milliseconds)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _corrupt(header: list[str], row: list[str]) -> None:
    if "SystemModstamp" in header:
        row[header.index("SystemModstamp")] = ""
    elif "Name" in header:
        row[header.index("Name")] = "12345"
    elif len(row) > 1:
        row[-1] = "#N/A"


def _encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str | None) -> int:
    if not locator or locator == "null":
        return 0
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except ValueError:
        raise SfError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None

