"""The Salesforce emulator: routes `/services/...` (login, SOQL, SOSL, sObjects, replication, composite and
collections, limits, Bulk 1.0 and 2.0, Tooling custom fields) onto the in-memory org, and enforces sessions
and the daily API allocation."""

from __future__ import annotations

import re
import threading
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import (
    UNROUTED,
    CallLog,
    Emulator,
    FaultInjector,
    SandboxClock,
    client_of,
    json_response,
    read_json,
)
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.salesforce import bulk as bulk_api
from healthsync.sandbox.salesforce import composite, ids
from healthsync.sandbox.salesforce.async_api import ASYNC_PREFIX, ASYNC_RULES, AsyncApi
from healthsync.sandbox.salesforce.auth import SalesforceAuth
from healthsync.sandbox.salesforce.bulk_v1 import BulkError, BulkV1
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.load import INTEGRATION_USER_ID, load_portfolio, reset_org
from healthsync.sandbox.salesforce.paging import Cursor, Cursors, batch_size, page, split_locator
from healthsync.sandbox.salesforce.rest_extras import EXTRA_RULES, RestExtras
from healthsync.sandbox.salesforce.schema import standard_schemas, tooling_schemas
from healthsync.sandbox.salesforce.soql import aggregate, compile_soql, execute, render_row
from healthsync.sandbox.salesforce.store import OrgStore, render_value
from healthsync.sandbox.salesforce.tooling import Tooling

_DATA = "/services/data/v<ver:ver>"
_FROM = re.compile(r"\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_SESSION_EXPIRED = SfError(401, "INVALID_SESSION_ID", "Session expired or invalid")
LATEST_VERSION = "62.0"


class _VersionConverter(BaseConverter):
    regex = r"\d+\.\d+"


def _rules() -> list[Rule]:
    return [
        Rule("/services/oauth2/token", endpoint="oauth_token", methods=["POST"]),
        Rule("/services/Soap/u/<ver:ver>", endpoint="soap_login", methods=["POST"]),
        Rule("/services/data/", endpoint="versions", methods=["GET"]),
        Rule(f"{_DATA}/", endpoint="resources", methods=["GET"]),
        Rule(f"{_DATA}/limits/", endpoint="limits", methods=["GET"]),
        Rule(f"{_DATA}/query/", endpoint="query", methods=["GET"]),
        Rule(f"{_DATA}/query/<locator>", endpoint="query_more", methods=["GET"]),
        Rule(f"{_DATA}/queryAll/", endpoint="query_all", methods=["GET"]),
        Rule(f"{_DATA}/queryAll/<locator>", endpoint="query_more", methods=["GET"]),
        Rule(f"{_DATA}/sobjects/", endpoint="describe_global", methods=["GET"]),
        Rule(f"{_DATA}/sobjects/<sobject>/", endpoint="sobject", methods=["GET", "POST"]),
        Rule(f"{_DATA}/sobjects/<sobject>/describe/", endpoint="describe", methods=["GET"]),
        Rule(f"{_DATA}/sobjects/<sobject>/<record_id>", endpoint="record", methods=["GET", "PATCH", "DELETE"]),
        Rule(f"{_DATA}/sobjects/<sobject>/<field>/<path:value>", endpoint="upsert", methods=["GET", "PATCH"]),
        Rule(f"{_DATA}/composite/sobjects/", endpoint="collections", methods=["POST", "PATCH", "DELETE"]),
        Rule(f"{_DATA}/composite/sobjects/<sobject>/", endpoint="collections_read", methods=["GET"]),
        Rule(f"{_DATA}/jobs/query/", endpoint="bulk_create", methods=["POST"]),
        Rule(f"{_DATA}/jobs/query/<job_id>", endpoint="bulk_job", methods=["GET", "PATCH", "DELETE"]),
        Rule(f"{_DATA}/jobs/query/<job_id>/results", endpoint="bulk_results", methods=["GET"]),
        Rule(f"{_DATA}/tooling/query/", endpoint="tooling_query", methods=["GET"]),
        Rule(f"{_DATA}/tooling/sobjects/CustomField/", endpoint="tooling_create", methods=["POST"]),
        Rule(f"{_DATA}/tooling/sobjects/CustomField/<field_id>", endpoint="tooling_field",
             methods=["GET", "DELETE"]),
        *EXTRA_RULES,
        *ASYNC_RULES,
    ]


class SalesforceEmulator(RestExtras, AsyncApi, Emulator):
    """A Salesforce org on 127.0.0.1 that the unmodified simple-salesforce drives over TLS.

    Knobs: `daily_limit`, `session_seconds`, `allow_metadata`, `recycle_bin_days`. Helpers for tests and the
    demo: `load`, `insert`, `update`, `delete`, `records`, `record`, `custom_fields`, `issue_token`,
    `expire_sessions`, `set_workdir` / `jwt_private_key_path`, `api_usage`, `reset_api_usage`."""

    name = "salesforce"
    prefixes = ("/services/",)
    url_map = Map(_rules(), strict_slashes=False, converters={"ver": _VersionConverter})

    def __init__(self, clock: SandboxClock, calls: CallLog, faults: FaultInjector, time_scale: float = 1.0):
        super().__init__(clock, calls, faults, time_scale)
        self.credentials = DEMO.salesforce
        self.daily_limit = 15000
        self.allow_metadata = True
        self.recycle_bin_days: int | None = 15
        self.auth = SalesforceAuth(self.credentials, self._now, INTEGRATION_USER_ID)
        self.minter = ids.IdMinter()
        self.store = OrgStore(standard_schemas(), self.minter)
        self.tooling = Tooling(self.store, OrgStore(tooling_schemas(), self.minter))
        self.cursors = Cursors()
        self.bulk = bulk_api.BulkQueries()
        self.bulk_v1 = BulkV1()
        self._usage: deque[datetime] = deque()
        self._usage_lock = threading.Lock()
        reset_org(self.store, self.credentials.username, self._now())
        self.tooling.register_existing(self._now())

    # ---------------------------------------------------------------------------------------- helpers API
    def load(self, portfolio: Any, crm: str = "salesforce") -> None:
        """Rebuild the org from a Portfolio (an empty org, bar the integration user, when the CRM is HubSpot)."""
        with self.lock:
            self.store.schemas = standard_schemas()
            self.tooling.org = self.store
            self.store.tables = {name: {} for name in self.store.schemas}
            reset_org(self.store, self.credentials.username, self._now())
            self.tooling.register_existing(self._now())
            self.cursors.clear()
            self.bulk.jobs.clear()
            self.bulk_v1.clear()
            if crm == "salesforce":
                load_portfolio(self.store, portfolio, self._now())

    def insert(self, sobject: str, fields: dict[str, Any], by_user: str | None = None) -> str:
        """Add a record as a person in the org would (validated; CreatedById = `by_user` or the owner)."""
        with self.lock:
            actor = by_user or fields.get("OwnerId") or INTEGRATION_USER_ID
            return self._as(actor, lambda: self.store.insert(sobject, fields, self._now(), system=True))

    def update(self, sobject: str, record_id: str, fields: dict[str, Any], by_user: str | None = None) -> None:
        """Edit a record as a person would: bumps LastModifiedDate/SystemModstamp to the sandbox clock and
        sets LastModifiedById to `by_user` (default: the record's owner, i.e. a human edit)."""
        with self.lock:
            actor = by_user or self.store.get(sobject, record_id).get("OwnerId") or INTEGRATION_USER_ID
            self._as(actor, lambda: self.store.update(sobject, record_id, fields, self._now(), system=True))

    def delete(self, sobject: str, record_id: str) -> None:
        with self.lock:
            self.store.delete(sobject, record_id, self._now())

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every record of an sObject as the REST API would print it (all fields)."""
        with self.lock:
            schema = self.store.schema(sobject)
            return [{d.name: render_value(d, r.get(d.name)) for d in schema.fields.values()}
                    for r in self.store.rows(sobject, include_deleted=include_deleted)]

    def record(self, sobject: str, record_id: str) -> dict[str, Any]:
        with self.lock:
            schema = self.store.schema(sobject)
            found = self.store.find(record_id)
            if found is None or found[0] != schema.name:
                raise KeyError(f"no {schema.name} with id {record_id}")
            return {d.name: render_value(d, found[1].get(d.name)) for d in schema.fields.values()}

    def custom_fields(self, sobject: str) -> list[str]:
        with self.lock:
            return [d.name for d in self.store.schema(sobject).fields.values() if d.custom]

    def issue_token(self) -> str:
        """A fresh access token for the demo user, as if a login had happened (for session_id clients)."""
        return self.auth.issue()

    def expire_sessions(self) -> None:
        self.auth.expire_all()

    def set_workdir(self, path: str | Path) -> Path:
        """Write the JWT signing key into `path` (clients sign assertions with `jwt_private_key_path`)."""
        return self.auth.set_workdir(path)

    @property
    def jwt_private_key_path(self) -> Path:
        return self.auth.jwt_private_key_path

    @property
    def session_seconds(self) -> int:
        return self.auth.session_seconds

    @session_seconds.setter
    def session_seconds(self, value: int) -> None:
        self.auth.session_seconds = value

    @property
    def api_usage(self) -> int:
        """API requests counted in the rolling 24 hours (sandbox clock)."""
        with self._usage_lock:
            self._trim_usage()
            return len(self._usage)

    def reset_api_usage(self) -> None:
        with self._usage_lock:
            self._usage.clear()

    # ---------------------------------------------------------------------------------------- base hooks
    def _now(self) -> datetime:
        return self.clock.now().replace(microsecond=0)

    def _as(self, user_id: str, action: Any) -> Any:
        previous, self.store.acting_user_id = self.store.acting_user_id, user_id
        try:
            return action()
        finally:
            self.store.acting_user_id = previous

    @staticmethod
    def _is_api(request: Request) -> bool:
        return request.path.startswith("/services/data/v")

    def check_auth(self, request: Request) -> Response | None:
        if request.path.startswith(ASYNC_PREFIX):
            if self.async_session_ok(request):
                return None
            # Bulk API 1.0 "Errors": InvalidSessionId, in the async API's own shape
            return self.async_error(request, BulkError(400, "InvalidSessionId", "Invalid session id"))
        if not self._is_api(request):
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in {"bearer", "oauth"} or self.auth.validate(token.strip()) is None:
            return self.expired_session_response()
        return None

    def rate_limit(self, request: Request, endpoint: str) -> Response | None:
        if not self._is_api(request):
            return None
        with self._usage_lock:
            self._trim_usage()
            if len(self._usage) >= self.daily_limit:
                return SfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.").response()
            self._usage.append(self.clock.now())
        return None

    def _trim_usage(self) -> None:
        horizon = self.clock.now() - timedelta(hours=24)
        while self._usage and self._usage[0] <= horizon:
            self._usage.popleft()

    def decorate(self, request: Request, response: Response, endpoint: str) -> Response:
        if self._is_api(request):
            response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.daily_limit}"
        return response

    def expired_session_response(self) -> Response:
        return _SESSION_EXPIRED.response()

    def error_response(self, status: int, message: str) -> Response:
        if status == 404:
            return SfError(404, "NOT_FOUND", "The requested resource does not exist").response()
        if status == 405:
            return SfError(405, "METHOD_NOT_ALLOWED", f"HTTP Method not allowed: {message}").response()
        return SfError(status, "UNKNOWN_EXCEPTION", message).response()

    def dispatch(self, request: Request) -> Response:
        try:
            return super().dispatch(request)
        except SfError as error:
            return self.decorate(request, error.response(), "")
        except BulkError as error:
            return self.async_error(request, error)

    def unrouted(self, request: Request, status: int = 404, message: str | None = None) -> Response:
        if not request.path.startswith(ASYNC_PREFIX):
            return super().unrouted(request, status, message)
        self.calls.record(self.name, UNROUTED, None, client_of(request))
        return self.async_error(request, BulkError(status, "InvalidUrl", f"InvalidUrl : {request.path}"))

    def call_object(self, request: Request, endpoint: str, values: dict[str, Any]) -> str | None:
        """The sObject of a call: from the path, a SOQL FROM, a Bulk job, or the records of a collection."""
        if values.get("sobject"):
            return str(values["sobject"])
        if endpoint in ("query", "query_all", "tooling_query"):
            found = _FROM.search(request.args.get("q", ""))
            return found.group(1) if found else None
        if endpoint.startswith("bulk1_") and values.get("job_id"):
            job = self.bulk_v1.jobs.get(str(values["job_id"]))
            return job.sobject if job else None
        if endpoint == "bulk_create":
            found = _FROM.search(str((read_json(request) or {}).get("query", "")))
            return found.group(1) if found else None
        if endpoint == "collections":
            kinds = {str((r.get("attributes") or {}).get("type")) for r in (read_json(request) or {}).get(
                "records", []) if isinstance(r, dict)}
            return ",".join(sorted(kinds)) or None
        return None

    # ---------------------------------------------------------------------------------------- login
    def _server_base(self, request: Request) -> str:
        return self.base_urls.get("https") or self.base_url(request)

    def on_soap_login(self, request: Request, ver: str) -> Response:
        return self.auth.soap_login(request, self._server_base(request), ver)

    def on_oauth_token(self, request: Request) -> Response:
        return self.auth.oauth_token(request, self._server_base(request))

    # ---------------------------------------------------------------------------------------- discovery
    def on_versions(self, request: Request) -> Response:
        return json_response([{"label": f"v{v}.0", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                              for v in range(50, int(float(LATEST_VERSION)) + 1)])

    def on_resources(self, request: Request, ver: str) -> Response:
        base = f"/services/data/v{ver}"
        return json_response({name: f"{base}/{name}" for name in
                              ("sobjects", "query", "queryAll", "limits", "composite", "jobs", "tooling")})

    def on_limits(self, request: Request, ver: str) -> Response:
        used = self.api_usage
        jobs = self.bulk.jobs_today(self.clock.now())
        return json_response({
            "DailyApiRequests": {"Max": self.daily_limit, "Remaining": max(self.daily_limit - used, 0)},
            "DailyBulkV2QueryJobs": {"Max": bulk_api.DAILY_QUERY_JOBS, "Remaining": bulk_api.DAILY_QUERY_JOBS - jobs},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 5120, "Remaining": 5120 - self._storage_mb()},
            "FileStorageMB": {"Max": 20480, "Remaining": 20480},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        })

    def _storage_mb(self) -> int:
        with self.lock:
            return sum(len(table) for table in self.store.tables.values()) * 2 // 1024  # 2 KB per record

    def on_describe_global(self, request: Request, ver: str) -> Response:
        with self.lock:
            summaries = [schema.summary(ver) for schema in self.store.schemas.values()]
        return json_response({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": summaries})

    def on_describe(self, request: Request, ver: str, sobject: str) -> Response:
        with self.lock:
            return json_response(self.store.schema(sobject).describe(ver))

    # ---------------------------------------------------------------------------------------- SOQL
    def on_query(self, request: Request, ver: str) -> Response:
        return self._query(request, ver, "query")

    def on_query_all(self, request: Request, ver: str) -> Response:
        return self._query(request, ver, "queryAll")

    def _query(self, request: Request, ver: str, endpoint: str) -> Response:
        include_deleted = endpoint == "queryAll"
        now = self._now()
        with self.lock:
            if include_deleted:
                self._empty_recycle_bin(now)
            query = compile_soql(request.args.get("q", ""), self.store)
            rows = execute(query, self.store, include_deleted=include_deleted, now=now)
            if query.is_aggregate:
                return json_response(aggregate(query, rows, self.store, now))
            cursor = Cursor(query, rows, batch_size(request.headers.get("Sforce-Query-Options")), ver, endpoint, now)
            return json_response(page(self.cursors, cursor, None, 0, self.store, _odd(request)))

    def on_query_more(self, request: Request, ver: str, locator: str) -> Response:
        locator_id, start = split_locator(locator)
        with self.lock:
            cursor = self.cursors.take(locator_id, self._now())
            return json_response(page(self.cursors, cursor, locator_id, start, self.store, _odd(request)))

    def _empty_recycle_bin(self, now: datetime) -> None:
        if self.recycle_bin_days is not None:
            self.store.purge(now - timedelta(days=self.recycle_bin_days))

    # ---------------------------------------------------------------------------------------- sObjects
    def on_sobject(self, request: Request, ver: str, sobject: str) -> Response:
        with self.lock:
            schema = self.store.schema(sobject)
            if request.method == "GET":
                return json_response({"objectDescribe": schema.summary(ver), "recentItems": []})
            body = read_json(request)
            if not isinstance(body, dict):
                raise SfError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            record_id = self.store.insert(schema.name, body, self._now())
            return json_response({"id": record_id, "success": True, "errors": []}, 201)

    def on_record(self, request: Request, ver: str, sobject: str, record_id: str) -> Response:
        with self.lock:
            schema = self.store.schema(sobject)
            if request.method == "GET":
                record = self.store.get(schema.name, record_id)
                wanted = [f for f in request.args.get("fields", "").split(",") if f.strip()]
                definitions = ([schema.require_field(f.strip()) for f in wanted] if wanted
                               else list(schema.fields.values()))
                return json_response(self._plain_row(schema.name, record, definitions, ver))
            if request.method == "DELETE":
                self.store.delete(schema.name, record_id, self._now())
                return Response(status=204)
            body = read_json(request)
            if not isinstance(body, dict):
                raise SfError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            self.store.update(schema.name, record_id, body, self._now())
            return Response(status=204)

    def on_upsert(self, request: Request, ver: str, sobject: str, field: str, value: str) -> Response:
        with self.lock:
            schema = self.store.schema(sobject)
            key = schema.field(field)
            if key is None or not (key.external_id or key.type == "id"):
                raise SfError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
                                                f"{field}")
            matches = [r for r in self.store.rows(schema.name)
                       if r.get(key.name) is not None and str(r[key.name]).casefold() == value.casefold()]
            if request.method == "GET":
                if not matches:
                    raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
                return json_response(self._plain_row(schema.name, matches[0], list(schema.fields.values()), ver))
            if len(matches) > 1:
                return json_response([f"/services/data/v{ver}/sobjects/{schema.name}/{r['Id']}" for r in matches], 300)
            body = {k: v for k, v in (read_json(request) or {}).items() if k.lower() != key.name.lower()}
            if matches:
                self.store.update(schema.name, matches[0]["Id"], body, self._now())
                return json_response({"id": matches[0]["Id"], "success": True, "errors": [], "created": False})
            record_id = self.store.insert(schema.name, {**body, key.name: value}, self._now())
            return json_response({"id": record_id, "success": True, "errors": [], "created": True}, 201)

    @staticmethod
    def _plain_row(sobject: str, record: dict, definitions: list, ver: str) -> dict[str, Any]:
        row = {"attributes": {"type": sobject, "url": f"/services/data/v{ver}/sobjects/{sobject}/{record['Id']}"}}
        row.update({d.name: render_value(d, record.get(d.name)) for d in definitions})
        return row

    # ---------------------------------------------------------------------------------------- collections
    def on_collections(self, request: Request, ver: str) -> Response:
        now = self._now()
        with self.lock:
            if request.method == "DELETE":
                wanted = [i for i in request.args.get("ids", "").split(",") if i]
                all_or_none = request.args.get("allOrNone", "false").lower() == "true"
                return json_response(composite.delete(self.store, wanted, all_or_none, now))
            records, all_or_none = composite.parse_body(read_json(request))
            results = composite.write(self.store, records, all_or_none, now, creating=request.method == "POST")
            return json_response(results)

    def on_collections_read(self, request: Request, ver: str, sobject: str) -> Response:
        wanted = [i for i in request.args.get("ids", "").split(",") if i]
        fields = [f.strip() for f in request.args.get("fields", "").split(",") if f.strip()]
        if not wanted or not fields:
            raise SfError(400, "MISSING_ARGUMENT", "Both ids and fields query parameters are required")
        with self.lock:
            return json_response(composite.read(self.store, sobject, wanted, fields, ver))

    # ---------------------------------------------------------------------------------------- Bulk 2.0
    def on_bulk_create(self, request: Request, ver: str) -> Response:
        with self.lock:
            job = self.bulk.create(read_json(request), self.store, self._now(), ver, _odd(request))
        return json_response(job.info(state="UploadComplete"))

    def on_bulk_job(self, request: Request, ver: str, job_id: str) -> Response:
        if request.method == "DELETE":
            self.bulk.delete(job_id)
            return Response(status=204)
        if request.method == "PATCH":
            state = (read_json(request) or {}).get("state")
            if state != "Aborted":
                raise SfError(400, "INVALIDJOBSTATE", f"Cannot change a query job to state {state!r}")
            return json_response(self.bulk.abort(job_id).info())
        return json_response(self.bulk.get(job_id).info())

    def on_bulk_results(self, request: Request, ver: str, job_id: str) -> Response:
        return self.bulk.results(job_id, request.args.get("locator"), request.args.get("maxRecords"))

    # ---------------------------------------------------------------------------------------- Tooling
    def _require_metadata_permission(self) -> None:
        if not self.allow_metadata:
            raise SfError(403, "INSUFFICIENT_ACCESS", "insufficient access rights on cross-reference id")

    def on_tooling_create(self, request: Request, ver: str) -> Response:
        self._require_metadata_permission()
        with self.lock:
            field_id = self.tooling.create(read_json(request), self._now())
        return json_response({"id": field_id, "success": True, "errors": [], "warnings": [], "infos": []}, 201)

    def on_tooling_field(self, request: Request, ver: str, field_id: str) -> Response:
        with self.lock:
            if request.method == "DELETE":
                self._require_metadata_permission()
                self.tooling.delete(field_id, self._now())
                return Response(status=204)
            row = self.tooling.get(field_id)
            schema = self.tooling.store.schema("CustomField")
            body = self._plain_row("CustomField", row, list(schema.fields.values()), ver)
            body["attributes"]["url"] = f"/services/data/v{ver}/tooling/sobjects/CustomField/{row['Id']}"
            return json_response(body)

    def on_tooling_query(self, request: Request, ver: str) -> Response:
        with self.lock:
            store = self.tooling.store
            query = compile_soql(request.args.get("q", ""), store)
            rows = execute(query, store, include_deleted=False, now=self._now())
            if any(p.leaf and p.leaf.name == "FullName" for p in query.paths) and len(rows) > 1:
                raise SfError(400, "MALFORMED_QUERY", "When retrieving results with Metadata or FullName fields, "
                                                      "the query qualifications must specify no more than one row "
                                                      "for retrieval. Result size: " + str(len(rows)))
            records = []
            for row in rows:
                rendered = render_row(query, row, store, ver)
                rendered["attributes"]["url"] = f"/services/data/v{ver}/tooling/sobjects/{query.sobject}/{row['Id']}"
                records.append(rendered)
        return json_response({"size": len(records), "totalSize": len(records), "done": True, "queryLocator": None,
                              "entityTypeName": query.sobject, "records": records})


def _odd(request: Request) -> bool:
    return bool(request.environ.get("sandbox.odd_record"))


__all__ = ["SalesforceEmulator"]
