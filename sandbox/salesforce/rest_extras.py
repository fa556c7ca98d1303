"""REST resources beyond query and sObject rows, mixed into the Salesforce emulator: Get Updated / Get Deleted
(replication), Composite and Composite Batch (subrequests run through the emulator's own routes), and SOSL
search. Sources: REST API Developer Guide (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/),
"Get a List of Updated Records" (resources_getupdated.htm), "Get a List of Deleted Records"
(resources_getdeleted.htm), "Composite" (resources_composite_composite.htm), "Batch"
(resources_composite_batch.htm) and "Search" (resources_search.htm)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import json_response, read_json
from healthsync.sandbox.salesforce import sosl
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.store import DELETED_AT, format_datetime, parse_datetime_value

_DATA = "/services/data/v<ver:ver>"
REPLICATION_DAYS = 30  # start may be at most 30 days back ("Get a List of Updated Records")
MAX_SUBREQUESTS = 25  # Composite: up to 25 subrequests; Batch: up to 25 too
EXTRA_RULES = [
    Rule(f"{_DATA}/sobjects/<sobject>/updated/", endpoint="updated", methods=["GET"]),
    Rule(f"{_DATA}/sobjects/<sobject>/deleted/", endpoint="deleted", methods=["GET"]),
    Rule(f"{_DATA}/composite/", endpoint="composite", methods=["GET", "POST"]),
    Rule(f"{_DATA}/composite/batch/", endpoint="composite_batch", methods=["POST"]),
    Rule(f"{_DATA}/search/", endpoint="search", methods=["GET"]),
]
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_HALTED = [{"errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed."}]


class RestExtras:
    """Relies on the emulator's store, lock, clock (`_now`), url_map and `dispatch_internal`."""

    # ---------------------------------------------------------------------------------------- replication
    def _window(self, request: Request) -> tuple[datetime, datetime]:
        """start/end are UTC dateTimes whose seconds are ignored; start within the last 30 days, before end."""
        raw_start, raw_end = request.args.get("start"), request.args.get("end")
        if not raw_start or not raw_end:
            raise SfError(400, "MISSING_ARGUMENT", "Both start and end query parameters are required")
        try:
            start, end = (parse_datetime_value(v).replace(second=0) for v in (raw_start, raw_end))
        except SfError:
            raise SfError(400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 dateTimes") from None
        now = self._now()
        if start >= end:
            raise SfError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
        if start < now - timedelta(days=REPLICATION_DAYS):
            raise SfError(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {REPLICATION_DAYS} "
                                                           "days ago")
        return start, min(end, now.replace(second=0))

    def on_updated(self, request: Request, ver: str, sobject: str) -> Response:
        """Ids of records created or changed in [start, end) (SystemModstamp), and latestDateCovered."""
        start, end = self._window(request)
        with self.lock:
            name = self.store.schema(sobject).name
            found = [r["Id"] for r in self.store.rows(name) if start <= r["SystemModstamp"] < end]
        return json_response({"ids": found, "latestDateCovered": format_datetime(end)})

    def on_deleted(self, request: Request, ver: str, sobject: str) -> Response:
        """Records deleted in [start, end) that the recycle bin still holds, with earliestDateAvailable."""
        start, end = self._window(request)
        with self.lock:
            name = self.store.schema(sobject).name
            bin_rows = [r for r in self.store.rows(name, include_deleted=True) if r.get(DELETED_AT)]
            deleted = [{"id": r["Id"], "deletedDate": format_datetime(r[DELETED_AT])}
                       for r in sorted(bin_rows, key=lambda r: r[DELETED_AT]) if start <= r[DELETED_AT] < end]
            days = self.recycle_bin_days or REPLICATION_DAYS
            earliest = min([r[DELETED_AT] for r in bin_rows], default=self._now() - timedelta(days=days))
        return json_response({"deletedRecords": deleted, "earliestDateAvailable": format_datetime(earliest),
                              "latestDateCovered": format_datetime(end)})

    # ---------------------------------------------------------------------------------------- search
    def on_search(self, request: Request, ver: str) -> Response:
        with self.lock:
            return json_response(sosl.search(request.args.get("q", ""), self.store, ver, self._now()))

    # ---------------------------------------------------------------------------------------- composite
    def on_composite(self, request: Request, ver: str) -> Response:
        if request.method == "GET":  # the resource list of "Composite Resources"
            base = f"/services/data/v{ver}/composite"
            return json_response({"batch": f"{base}/batch", "sobjects": f"{base}/sobjects"})
        body = read_json(request)
        subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subrequests, list) or not subrequests:
            raise SfError(400, "JSON_PARSER_ERROR", "The request body needs a non-empty compositeRequest list")
        if len(subrequests) > MAX_SUBREQUESTS:
            raise SfError(400, "INVALID_API_INPUT", f"Composite requests allow at most {MAX_SUBREQUESTS} "
                                                    "subrequests")
        all_or_none = bool(body.get("allOrNone"))
        with self.lock:
            snapshot = {name: dict(table) for name, table in self.store.tables.items()} if all_or_none else None
            answers = self._run_composite(subrequests, all_or_none)
            if snapshot is not None and any(a["httpStatusCode"] >= 400 for a in answers):
                self.store.tables = snapshot
                answers = [a if a["httpStatusCode"] >= 400 else {**a, "httpStatusCode": 400, "body": _HALTED}
                           for a in answers]
        return json_response({"compositeResponse": answers})

    def _run_composite(self, subrequests: list[Any], all_or_none: bool) -> list[dict[str, Any]]:
        results: dict[str, Any] = {}
        answers: list[dict[str, Any]] = []
        failed = False
        for sub in subrequests:
            if not isinstance(sub, dict) or not sub.get("url") or not sub.get("referenceId"):
                raise SfError(400, "JSON_PARSER_ERROR", "Each subrequest needs method, url and referenceId")
            if failed and all_or_none:
                answers.append(_answer(sub, 400, _HALTED, {}))
                continue
            try:
                url, body = _substitute(sub["url"], results), _substitute(sub.get("body"), results)
            except KeyError as missing:
                answers.append(_answer(sub, 400, [{"errorCode": "PROCESSING_HALTED", "message": (
                    f"Invalid reference specified. No value for {missing.args[0]} found in {sub['referenceId']}. "
                    "Provided referenceId ('@{...}') must be valid and must reference a previous subrequest.")}], {}))
                failed = True
                continue
            status, payload, headers = self.dispatch_internal(str(sub.get("method", "GET")), url, body,
                                                              sub.get("httpHeaders") or {})
            answers.append(_answer(sub, status, payload, headers))
            failed = failed or status >= 400
            if status < 400:
                results[sub["referenceId"]] = payload
        return answers

    def on_composite_batch(self, request: Request, ver: str) -> Response:
        body = read_json(request)
        batch = body.get("batchRequests") if isinstance(body, dict) else None
        if not isinstance(batch, list) or not batch or len(batch) > MAX_SUBREQUESTS:
            raise SfError(400, "JSON_PARSER_ERROR", f"batchRequests must list 1 to {MAX_SUBREQUESTS} subrequests")
        results, halted = [], False
        for sub in batch:
            if halted:
                results.append({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED",
                                                                "message": "Batch processing halted per request"}]})
                continue
            url = "/services/data/v" + ver + "/" + str(sub.get("url", "")).lstrip("/").split(f"v{ver}/", 1)[-1]
            status, payload, _ = self.dispatch_internal(str(sub.get("method", "GET")), url, sub.get("richInput"), {})
            results.append({"statusCode": status, "result": payload})
            halted = status >= 400 and bool(body.get("haltOnError"))
        return json_response({"hasErrors": any(r["statusCode"] >= 400 for r in results), "results": results})

    def dispatch_internal(self, method: str, url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict]:
        """Run one subrequest through our own routes and handlers (no extra API call is counted: a composite
        request counts as one call)."""
        if not url.startswith("/services/data/v") or "/composite/batch" in url or url.rstrip("/").endswith(
                "/composite"):
            return 400, [{"errorCode": "INVALID_API_INPUT", "message": f"Unsupported subrequest url: {url}"}], {}
        builder = EnvironBuilder(path=url.split("?", 1)[0], query_string=url.split("?", 1)[1] if "?" in url else "",
                                 method=method.upper(), data=json.dumps(body) if body is not None else None,
                                 headers={"Content-Type": "application/json", **headers})
        request = Request(builder.get_environ())
        try:
            endpoint, values = self.url_map.bind_to_environ(request.environ).match()
            response = getattr(self, f"on_{endpoint}")(request, **values)
        except SfError as error:
            return error.status, error.rest_body(), {}
        except Exception:  # noqa: BLE001 - werkzeug's NotFound / MethodNotAllowed for an unknown url
            return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}], {}
        data = response.get_data(as_text=True)
        payload = json.loads(data) if data and "json" in (response.content_type or "") else (data or None)
        kept = {k: v for k, v in response.headers.items() if k.lower() == "location"}
        return response.status_code, payload, kept


def _answer(sub: dict[str, Any], status: int, payload: Any, headers: dict[str, str]) -> dict[str, Any]:
    return {"body": payload, "httpHeaders": headers, "httpStatusCode": status, "referenceId": sub["referenceId"]}


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    """`@{ref.id}` / `@{ref.records[0].Id}` replaced by values of earlier subrequests' answers."""
    if isinstance(value, str):
        return _REFERENCE.sub(lambda m: str(_lookup(results, m.group(1), m.group(2))), value)
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    return value


def _lookup(results: dict[str, Any], ref: str, trail: str) -> Any:
    if ref not in results:
        raise KeyError(ref)
    current = results[ref]
    for name, index in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", trail):
        try:
            current = current[int(index)] if index else current[name]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"{ref}{trail}") from None
    return current
