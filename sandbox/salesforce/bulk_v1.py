"""Bulk API 1.0 (`/services/async/{version}/job...`): jobs, batches of CSV/JSON/XML records or of one SOQL
query, batch results, PK chunking, and its own error shape (`exceptionCode` / `exceptionMessage`).

Follows the Bulk API 2.0 and Bulk API Developer Guide, Bulk API 1.0 part
(developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/): "Create a Job", "Close a Job",
"Get Job Details", "Add a Batch to a Job", "Get Information for All Batches in a Job", "Get Batch Results",
"Use Bulk Query" (query results as result ids, then each result), "PK Chunking Header", "JobInfo",
"BatchInfo" and "Errors". Request bodies of job calls are XML or JSON by their Content-Type, answers follow
it; batch answers follow the job's contentType (JSON for JSON jobs, XML for CSV and XML jobs).
"""

from __future__ import annotations

import csv
import io
import json
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Response

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.bulk import csv_cell as _cell
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.soql import column_names, compile_soql, execute, render_row, resolve
from healthsync.sandbox.salesforce.store import OrgStore, format_datetime

NS = "http://www.force.com/2009/06/asyncapi/dataload"
OPERATIONS = {"insert", "update", "upsert", "delete", "hardDelete", "query", "queryAll"}
CONTENT_TYPES = {"CSV", "XML", "JSON"}
MAX_BATCH_RECORDS = 10000  # "Bulk API and Bulk API 2.0 Limits and Allocations": records per batch
DEFAULT_CHUNK, MAX_CHUNK = 100000, 250000  # PK Chunking Header: chunkSize default and maximum


class BulkError(Exception):
    """An error in Bulk API 1.0's own shape: `<error><exceptionCode/><exceptionMessage/></error>` or JSON."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message

    def response(self, as_json: bool) -> Response:
        if as_json:
            return Response(json.dumps({"exceptionCode": self.code, "exceptionMessage": self.message}),
                            status=self.status, content_type="application/json")
        body = (f'<?xml version="1.0" encoding="UTF-8"?><error xmlns="{NS}"><exceptionCode>{self.code}'
                f"</exceptionCode><exceptionMessage>{_escape(self.message)}</exceptionMessage></error>")
        return Response(body, status=self.status, content_type="application/xml")


@dataclass
class Batch:
    id: str
    job_id: str
    created: datetime
    request: bytes
    state: str = "Queued"
    final_state: str = "Completed"
    state_message: str | None = None
    processed: int = 0
    failed: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)  # ingest: one per record
    chunks: list[list[dict[str, Any]]] = field(default_factory=list)  # query: rendered rows per result id
    columns: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        stamp = format_datetime(self.created)
        body: dict[str, Any] = {"id": self.id, "jobId": self.job_id, "state": self.state}
        if self.state_message:
            body["stateMessage"] = self.state_message
        body.update(createdDate=stamp, systemModstamp=stamp, numberRecordsProcessed=self.processed,
                    numberRecordsFailed=self.failed, totalProcessingTime=0, apiActiveProcessingTime=0,
                    apexProcessingTime=0)
        return body

    def observe(self) -> None:
        """A batch is Queued when added and done by the next time anyone looks (the emulator is instant)."""
        self.state = self.final_state


@dataclass
class Job:
    id: str
    operation: str
    sobject: str
    content_type: str
    created: datetime
    created_by: str
    version: str
    external_id: str | None = None
    chunk_size: int | None = None
    state: str = "Open"
    batches: list[str] = field(default_factory=list)

    def info(self, batches: dict[str, Batch]) -> dict[str, Any]:
        mine = [batches[b] for b in self.batches]
        count = {s: sum(1 for b in mine if b.state == s) for s in ("Queued", "InProgress", "Completed", "Failed")}
        stamp = format_datetime(self.created)
        body: dict[str, Any] = {"id": self.id, "operation": self.operation, "object": self.sobject,
                                "createdById": self.created_by, "createdDate": stamp, "systemModstamp": stamp,
                                "state": self.state, "concurrencyMode": "Parallel", "contentType": self.content_type,
                                "numberBatchesQueued": count["Queued"], "numberBatchesInProgress": count["InProgress"],
                                "numberBatchesCompleted": count["Completed"], "numberBatchesFailed": count["Failed"],
                                "numberBatchesTotal": len(mine),
                                "numberRecordsProcessed": sum(b.processed for b in mine), "numberRetries": 0,
                                "apiVersion": float(self.version), "numberRecordsFailed": sum(b.failed for b in mine),
                                "totalProcessingTime": 0, "apiActiveProcessingTime": 0, "apexProcessingTime": 0}
        if self.external_id:
            body["externalIdFieldName"] = self.external_id
        return body


class BulkV1:
    """The jobs and batches of one org; callers hold the emulator's lock for store access."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.batches: dict[str, Batch] = {}
        self._counter = 0
        self._lock = threading.Lock()

    def _mint(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return ids.to18(f"{prefix}Hs1{self._counter:09d}")

    def clear(self) -> None:
        self.jobs.clear()
        self.batches.clear()

    # ---------------------------------------------------------------------------------------- jobs
    def create_job(self, spec: dict[str, Any], store: OrgStore, now: datetime, version: str, user: str,  # noqa: PLR0913 (the request's parts: body, org, clock, API version, caller and PK-chunking header)
                   pk_header: str | None) -> Job:
        operation, sobject = spec.get("operation"), spec.get("object")
        if operation not in OPERATIONS:
            raise BulkError(400, "InvalidJob", f"InvalidJob : Invalid operation: {operation}")
        if not sobject or not store.has(str(sobject)):
            raise BulkError(400, "InvalidEntity", f"InvalidEntity : Entity '{sobject}' is not supported by the "
                                                  "Bulk API.")
        content_type = str(spec.get("contentType") or "XML")
        if content_type not in CONTENT_TYPES:
            raise BulkError(400, "InvalidJob", f"InvalidJob : Unsupported content type: {content_type}")
        external = spec.get("externalIdFieldName")
        if operation == "upsert" and not external:
            raise BulkError(400, "InvalidJob", "InvalidJob : External ID was blank for upsert")
        job = Job(self._mint("750"), operation, store.schema(str(sobject)).name, content_type, now, user, version,
                  external_id=external, chunk_size=_chunk_size(pk_header))
        self.jobs[job.id] = job
        return job

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise BulkError(400, "InvalidJob", f"InvalidJob : Invalid job id: {job_id}")
        return job

    def set_state(self, job_id: str, state: Any) -> Job:
        job = self.job(job_id)
        if state not in ("Closed", "Aborted"):
            raise BulkError(400, "InvalidJobState", f"InvalidJobState : Invalid state: {state}")
        if job.state != "Open":
            raise BulkError(400, "InvalidJobState", f"InvalidJobState : Job is {job.state}, not Open")
        job.state = state
        return job

    # ---------------------------------------------------------------------------------------- batches
    def add_batch(self, job_id: str, body: bytes, store: OrgStore, now: datetime) -> Batch:
        job = self.job(job_id)
        if job.state != "Open":
            raise BulkError(400, "InvalidJobState", "InvalidJobState : Closed" if job.state == "Closed"
                            else f"InvalidJobState : {job.state}")
        batch = Batch(self._mint("751"), job.id, now, body)
        if job.operation in ("query", "queryAll"):
            self._run_query(job, batch, store, now)
        else:
            self._run_ingest(job, batch, store, now)
        self.batches[batch.id] = batch
        job.batches.append(batch.id)
        return batch

    def batch(self, job_id: str, batch_id: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None or batch.job_id != job_id:
            raise BulkError(400, "InvalidBatch", f"InvalidBatch : Invalid batch id: {batch_id}")
        return batch

    def _run_query(self, job: Job, batch: Batch, store: OrgStore, now: datetime) -> None:
        try:
            query = compile_soql(batch.request.decode("utf-8"), store)
        except SfError as error:
            batch.final_state, batch.state_message = "Failed", f"InvalidBatch : Failed to process query: {error}"
            return
        if query.is_aggregate or len(query.paths) != len(query.items) or query.sobject != job.sobject:
            # "Use Bulk Query": no aggregate functions, nested queries or TYPEOF; the query's object is the job's
            batch.final_state = "Failed"
            batch.state_message = "InvalidBatch : Failed to process query: aggregate, nested and TYPEOF queries " \
                                  "(and queries of another object) are not supported by Bulk API query"
            return
        rows = execute(query, store, include_deleted=job.operation == "queryAll", now=now)
        rendered = [_row(query, r, store, job) for r in rows]
        batch.columns, batch.processed = column_names(query), len(rows)
        if job.chunk_size is None:
            batch.chunks = [rendered]
            return
        # PK Chunking Header: the original batch is Not Processed; one batch per chunk of ids does the work
        batch.final_state, batch.processed = "Not Processed", 0
        ordered = sorted(zip(rows, rendered, strict=True), key=lambda pair: pair[0]["Id"])
        for start in range(0, max(len(ordered), 1), job.chunk_size):
            part = [r for _, r in ordered[start:start + job.chunk_size]]
            chunk = Batch(self._mint("751"), job.id, now, batch.request, processed=len(part), chunks=[part],
                          columns=batch.columns)
            self.batches[chunk.id] = chunk
            job.batches.append(chunk.id)

    def _run_ingest(self, job: Job, batch: Batch, store: OrgStore, now: datetime) -> None:
        try:
            records = parse_records(batch.request, job.content_type)
        except ValueError as error:
            batch.final_state, batch.state_message = "Failed", f"InvalidBatch : {error}"
            return
        if len(records) > MAX_BATCH_RECORDS:
            batch.final_state = "Failed"
            batch.state_message = f"InvalidBatch : Records limit of {MAX_BATCH_RECORDS} per batch exceeded"
            return
        for record in records:
            batch.results.append(_write(job, record, store, now))
        batch.processed = len(records)
        batch.failed = sum(1 for r in batch.results if not r["success"])

    # ---------------------------------------------------------------------------------------- results
    def result_answer(self, job: Job, batch: Batch) -> Response:
        """Ingest: one result per record. Query: the list of result ids to fetch."""
        if batch.state in ("Queued", "InProgress"):
            raise BulkError(400, "InvalidBatch", "InvalidBatch : Batch not completed")
        if job.operation in ("query", "queryAll"):
            result_ids = [_result_id(batch.id, i) for i in range(len(batch.chunks))]
            if job.content_type == "JSON":
                return _json(result_ids)
            items = "".join(f"<result>{r}</result>" for r in result_ids)
            return _xml(f'<result-list xmlns="{NS}">{items}</result-list>')
        return _ingest_results(job.content_type, batch.results)

    def query_result(self, job: Job, batch: Batch, result_id: str) -> Response:
        index = next((i for i in range(len(batch.chunks)) if _result_id(batch.id, i) == result_id), None)
        if index is None:
            raise BulkError(400, "InvalidBatch", f"InvalidBatch : Invalid result id: {result_id}")
        rows = batch.chunks[index]
        if job.content_type == "JSON":
            return _json(rows)
        if job.content_type == "XML":
            return _xml(_query_xml(job.sobject, rows))
        return _csv(batch.columns, rows)


# -------------------------------------------------------------------------------------------- rendering


def _row(query: Any, record: dict[str, Any], store: OrgStore, job: Job) -> dict[str, Any]:
    """A result row: CSV/XML cells are strings; JSON rows print dates as epoch milliseconds, as Bulk API 1.0's
    JSON results do."""
    if job.content_type == "JSON":
        row = render_row(query, record, store, job.version)
        return {k: (_epoch_ms(record, k) if _is_date_field(query, k) else v) for k, v in row.items()}
    return {name: _cell(resolve(path, record, store)) for name, path in zip(column_names(query), query.paths,
                                                                          strict=True)}


def _is_date_field(query: Any, name: str) -> bool:
    return any(p.leaf.name == name and not p.steps and p.leaf.type in ("date", "datetime") for p in query.paths)


def _epoch_ms(record: dict[str, Any], name: str) -> int | None:
    value = record.get(name)
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day, tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _query_xml(sobject: str, rows: list[dict[str, Any]]) -> str:
    parts = [f'<queryResult xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">']
    for row in rows:
        cells = "".join(f"<{k}>{_escape(v)}</{k}>" if v != "" else f'<{k} xsi:nil="true"/>'
                        for k, v in row.items() if "." not in k)
        parts.append(f'<records xsi:type="sObject"><type>{sobject}</type>{cells}</records>')
    return "".join(parts) + "</queryResult>"


def _ingest_results(content_type: str, results: list[dict[str, Any]]) -> Response:
    if content_type == "JSON":
        return _json([{"success": r["success"], "created": r["created"], "id": r["id"],
                       "errors": [r["error"]] if r["error"] else []} for r in results])
    if content_type == "XML":
        body = "".join(f"<result><id>{r['id'] or ''}</id><success>{str(r['success']).lower()}</success>"
                       f"<created>{str(r['created']).lower()}</created>"
                       + (f"<errors><message>{_escape(r['error'])}</message></errors>" if r["error"] else "")
                       + "</result>" for r in results)
        return _xml(f'<results xmlns="{NS}">{body}</results>')
    rows = [{"Id": r["id"] or "", "Success": str(r["success"]).lower(), "Created": str(r["created"]).lower(),
             "Error": r["error"] or ""} for r in results]
    return _csv(["Id", "Success", "Created", "Error"], rows, quote_all=True)


def _csv(columns: list[str], rows: list[dict[str, Any]], quote_all: bool = False) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows([[row.get(c, "") for c in columns] for row in rows])
    return Response(buffer.getvalue(), status=200, content_type="text/csv; charset=UTF-8")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _xml(body: str, status: int = 200) -> Response:
    return Response('<?xml version="1.0" encoding="UTF-8"?>' + body, status=status, content_type="application/xml")


def info_response(info: dict[str, Any], root: str, as_json: bool, status: int = 200) -> Response:
    """A jobInfo / batchInfo in JSON or in XML (elements in the documented order)."""
    if as_json:
        return _json(info, status)
    cells = "".join(f"<{k}>{_escape(_text(v))}</{k}>" for k, v in info.items())
    return _xml(f'<{root} xmlns="{NS}">{cells}</{root}>', status)


def batch_list_response(batches: list[Batch], as_json: bool) -> Response:
    if as_json:
        return _json({"batchInfo": [b.info() for b in batches]})
    inner = "".join("<batchInfo>" + "".join(f"<{k}>{_escape(_text(v))}</{k}>" for k, v in b.info().items())
                    + "</batchInfo>" for b in batches)
    return _xml(f'<batchInfoList xmlns="{NS}">{inner}</batchInfoList>')


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _escape(value: Any) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _result_id(batch_id: str, index: int) -> str:
    return ids.to18(f"752{batch_id[3:9]}{index:06d}")


# -------------------------------------------------------------------------------------------- parsing


def parse_job_spec(body: bytes, as_json: bool) -> dict[str, Any]:
    """A jobInfo request body (XML or JSON) as a dict; the state-change bodies use the same parser."""
    if as_json:
        try:
            spec = json.loads(body or b"{}")
        except ValueError:
            raise BulkError(400, "InvalidJob", "InvalidJob : Unable to parse the JSON request body") from None
        if not isinstance(spec, dict):
            raise BulkError(400, "InvalidJob", "InvalidJob : The request body must be a JSON object")
        return spec
    try:
        root = ET.fromstring(body or b"<jobInfo/>")
    except ET.ParseError:
        raise BulkError(400, "InvalidXML", "InvalidXML : Unable to parse the XML request body") from None
    return {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in root}


def parse_records(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """Ingest batch records; in CSV and XML `#N/A` (or xsi:nil) sets a field to null ("Prepare Data Files")."""
    text = body.decode("utf-8-sig")
    if content_type == "JSON":
        records = json.loads(text)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("a JSON batch is an array of record objects")
        return records
    if content_type == "XML":
        root = ET.fromstring(text)
        return [{c.tag.rsplit("}", 1)[-1]: (None if (c.text or "") == "#N/A" else c.text) for c in obj}
                for obj in root]
    reader = csv.DictReader(io.StringIO(text))
    return [{k: (None if v == "#N/A" else v) for k, v in row.items() if k} for row in reader]


def _chunk_size(header: str | None) -> int | None:
    """`Sforce-Enable-PKChunking: true; chunkSize=50000` (or `TRUE`, or `chunkSize=...` alone)."""
    if not header or header.strip().lower() == "false":
        return None
    size = DEFAULT_CHUNK
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "chunksize":
            if not value.strip().isdigit() or not 1 <= int(value) <= MAX_CHUNK:
                raise BulkError(400, "InvalidJob", f"InvalidJob : chunkSize must be between 1 and {MAX_CHUNK}")
            size = int(value)
    return size


def _write(job: Job, record: dict[str, Any], store: OrgStore, now: datetime) -> dict[str, Any]:
    """One record through the store; errors as the CSV result's `CODE:message:fields --` text."""
    record = {k: v for k, v in record.items() if v != "" or job.content_type == "JSON"}
    try:
        if job.operation == "insert":
            return _ok(store.insert(job.sobject, _typed(store, job.sobject, record), now), True)
        if job.operation == "update":
            record_id = str(record.pop("Id", "") or "")
            store.update(job.sobject, record_id, _typed(store, job.sobject, record), now)
            return _ok(ids.to18(record_id), False)
        if job.operation in ("delete", "hardDelete"):
            record_id = str(record.get("Id") or "")
            store.delete(job.sobject, record_id, now)
            return _ok(ids.to18(record_id), False)
        return _upsert(job, record, store, now)
    except SfError as error:
        return {"id": None, "success": False, "created": False,
                "error": f"{error.code}:{error.message}:{','.join(error.fields)} --"}


def _upsert(job: Job, record: dict[str, Any], store: OrgStore, now: datetime) -> dict[str, Any]:
    key = store.schema(job.sobject).require_field(job.external_id or "")
    value = record.get(key.name)
    matches = [r for r in store.rows(job.sobject) if value is not None and str(r.get(key.name) or "").casefold()
               == str(value).casefold()]
    if len(matches) > 1:
        raise SfError(300, "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [key.name])
    if matches:
        store.update(job.sobject, matches[0]["Id"], _typed(store, job.sobject, record), now)
        return _ok(matches[0]["Id"], False)
    return _ok(store.insert(job.sobject, _typed(store, job.sobject, record), now), True)


def _typed(store: OrgStore, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
    """CSV and XML cells are strings: turn numbers and booleans back into what the REST coercion expects."""
    schema = store.schema(sobject)
    out: dict[str, Any] = {}
    for key, value in record.items():
        definition = schema.field(key)
        if isinstance(value, str) and definition is not None:
            if definition.type == "boolean":
                value = value.strip().lower() == "true"
            elif definition.type in ("double", "currency", "percent", "int") and value.strip():
                value = float(value) if definition.type != "int" else int(float(value))
        out[key] = value
    return out


def _ok(record_id: str, created: bool) -> dict[str, Any]:
    return {"id": record_id, "success": True, "created": created, "error": None}
