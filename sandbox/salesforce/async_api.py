"""The HTTP side of Bulk API 1.0 (`/services/async/{version}/...`), mixed into the Salesforce emulator: routes,
the `X-SFDC-Session` header it authenticates with, and its XML/JSON answers (see bulk_v1 for the sources)."""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.salesforce.bulk_v1 import (
    BulkError,
    batch_list_response,
    info_response,
    parse_job_spec,
)

_ASYNC = "/services/async/<ver:ver>"
ASYNC_PREFIX = "/services/async/"
ASYNC_RULES = [
    Rule(f"{_ASYNC}/job", endpoint="bulk1_create_job", methods=["POST"]),
    Rule(f"{_ASYNC}/job/<job_id>", endpoint="bulk1_job", methods=["GET", "POST"]),
    Rule(f"{_ASYNC}/job/<job_id>/batch", endpoint="bulk1_batches", methods=["GET", "POST"]),
    Rule(f"{_ASYNC}/job/<job_id>/batch/<batch_id>", endpoint="bulk1_batch", methods=["GET"]),
    Rule(f"{_ASYNC}/job/<job_id>/batch/<batch_id>/request", endpoint="bulk1_request", methods=["GET"]),
    Rule(f"{_ASYNC}/job/<job_id>/batch/<batch_id>/result", endpoint="bulk1_results", methods=["GET"]),
    Rule(f"{_ASYNC}/job/<job_id>/batch/<batch_id>/result/<result_id>", endpoint="bulk1_result", methods=["GET"]),
]


def wants_json(request: Request) -> bool:
    """Job calls answer in the format of the request's Content-Type (JSON, else XML)."""
    return "json" in (request.headers.get("Content-Type") or "").lower()


class AsyncApi:
    """Bulk API 1.0 handlers; relies on the emulator's `bulk_v1`, `store`, `auth`, `lock` and clock."""

    def async_session_ok(self, request: Request) -> bool:
        """Bulk API 1.0 reads the session from `X-SFDC-Session` ("Set a Session Header"); a Bearer header is
        accepted too, as the real endpoint does for OAuth tokens."""
        token = request.headers.get("X-SFDC-Session")
        if not token:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            token = value.strip() if scheme.lower() in {"bearer", "oauth"} else None
        return self.auth.validate((token or "").strip()) is not None

    def async_error(self, request: Request, error: BulkError) -> Response:
        return error.response(wants_json(request))

    def _job_format(self, job_id: str) -> bool:
        return self.bulk_v1.job(job_id).content_type == "JSON"

    def on_bulk1_create_job(self, request: Request, ver: str) -> Response:
        spec = parse_job_spec(request.get_data(), wants_json(request))
        with self.lock:
            job = self.bulk_v1.create_job(spec, self.store, self._now(), ver, self.store.acting_user_id or "",
                                          request.headers.get("Sforce-Enable-PKChunking"))
            return info_response(job.info(self.bulk_v1.batches), "jobInfo", wants_json(request), 201)

    def on_bulk1_job(self, request: Request, ver: str, job_id: str) -> Response:
        with self.lock:
            if request.method == "POST":
                state = parse_job_spec(request.get_data(), wants_json(request)).get("state")
                job = self.bulk_v1.set_state(job_id, state)
            else:
                job = self.bulk_v1.job(job_id)
            return info_response(job.info(self.bulk_v1.batches), "jobInfo", wants_json(request))

    def on_bulk1_batches(self, request: Request, ver: str, job_id: str) -> Response:
        with self.lock:
            as_json = self._job_format(job_id)
            if request.method == "POST":
                batch = self.bulk_v1.add_batch(job_id, request.get_data(), self.store, self._now())
                return info_response(batch.info(), "batchInfo", as_json, 201)
            batches = [self.bulk_v1.batches[b] for b in self.bulk_v1.job(job_id).batches]
            for batch in batches:
                batch.observe()
            return batch_list_response(batches, as_json)

    def on_bulk1_batch(self, request: Request, ver: str, job_id: str, batch_id: str) -> Response:
        with self.lock:
            batch = self.bulk_v1.batch(job_id, batch_id)
            batch.observe()
            return info_response(batch.info(), "batchInfo", self._job_format(job_id))

    def on_bulk1_request(self, request: Request, ver: str, job_id: str, batch_id: str) -> Response:
        with self.lock:
            job, batch = self.bulk_v1.job(job_id), self.bulk_v1.batch(job_id, batch_id)
            kind = {"JSON": "application/json", "XML": "application/xml"}.get(job.content_type, "text/csv")
            if job.operation in ("query", "queryAll"):
                kind = "text/plain"
            return Response(batch.request, status=200, content_type=f"{kind}; charset=UTF-8")

    def on_bulk1_results(self, request: Request, ver: str, job_id: str, batch_id: str) -> Response:
        with self.lock:
            batch = self.bulk_v1.batch(job_id, batch_id)
            batch.observe()
            return self.bulk_v1.result_answer(self.bulk_v1.job(job_id), batch)

    def on_bulk1_result(self, request: Request, ver: str, job_id: str, batch_id: str, result_id: str) -> Response:
        with self.lock:
            return self.bulk_v1.query_result(self.bulk_v1.job(job_id), self.bulk_v1.batch(job_id, batch_id),
                                             result_id)
