"""Contracts in connectors/base.py: the HTTP classification table, Retry-After parsing, StreamSpec, Source."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from healthsync.config.secrets import register_secret
from healthsync.connectors.base import (
    CheckResult,
    Page,
    Source,
    StreamSpec,
    classify_http,
    header_value,
    parse_retry_after,
    safe_reason,
)
from healthsync.connectors.cursor import StreamState, advance
from healthsync.connectors.records import AccountRecord
from healthsync.errors import (
    AuthError,
    FatalError,
    HealthsyncError,
    QuotaExhaustedError,
    RateLimitedError,
    RetryableError,
    SkippableRecordError,
)

SF_LIMIT = '[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]'
SF_DAILY = '[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]'
SF_LOCK = '[{"message":"unable to obtain exclusive access to this record","errorCode":"UNABLE_TO_LOCK_ROW"}]'
HS_SECONDLY = '{"status":"error","message":"You have reached your secondly limit.","category":"RATE_LIMITS","policyName":"TEN_SECONDLY_ROLLING"}'
HS_DAILY = '{"status":"error","message":"You have reached your daily limit.","category":"RATE_LIMITS","policyName":"DAILY"}'

# status, headers, body, per_record → expected class, expected retry_after
TABLE = [
    (401, {}, '[{"errorCode":"INVALID_SESSION_ID"}]', False, AuthError, None),
    (401, {}, None, True, AuthError, None),
    (403, {}, '{"category":"MISSING_SCOPES"}', False, AuthError, None),
    (403, {"Retry-After": "7"}, SF_LIMIT, False, RateLimitedError, 7.0),
    (403, {}, SF_DAILY, False, QuotaExhaustedError, None),
    (404, {}, '{"error":"RecordNotFound"}', True, SkippableRecordError, None),
    (404, {}, '{"error":"RecordNotFound"}', False, FatalError, None),
    (400, {}, '{"error":"invalid"}', True, SkippableRecordError, None),
    (400, {}, '{"error":"invalid"}', False, FatalError, None),
    (422, {}, None, True, SkippableRecordError, None),
    (422, {}, None, False, FatalError, None),
    (400, {}, SF_LOCK, True, RetryableError, None),
    (408, {}, None, False, RetryableError, None),
    (409, {"retry-after": "2"}, None, True, RetryableError, 2.0),
    (425, {}, None, False, RetryableError, None),
    (429, {"Retry-After": "30"}, '{"error":"TooManyRequests"}', False, RateLimitedError, 30.0),
    (429, {}, HS_SECONDLY, False, RateLimitedError, None),
    (429, {}, HS_DAILY, False, QuotaExhaustedError, None),
    (500, {}, "<html>boom</html>", False, RetryableError, None),
    (502, {}, None, True, RetryableError, None),
    (503, {"RETRY-AFTER": "120"}, None, False, RetryableError, 120.0),
    (504, {}, None, False, RetryableError, None),
    (501, {}, None, False, FatalError, None),
    (505, {}, None, False, FatalError, None),
    (405, {}, None, True, FatalError, None),
    (413, {}, None, False, FatalError, None),
]


@pytest.mark.parametrize(("status", "headers", "body", "per_record", "expected", "retry_after"), TABLE)
def test_classify_http_table(status, headers, body, per_record, expected, retry_after) -> None:  # noqa: PLR0913 (one parameter per column of the parametrized table)
    error = classify_http(status, headers, body, source="src", per_record=per_record)
    assert type(error) is expected
    assert isinstance(error, HealthsyncError)
    assert str(error).startswith(f"src: HTTP {status}")
    if isinstance(error, RetryableError):
        assert error.retry_after == retry_after
        assert error.status == status


def test_rate_limited_is_retryable_but_quota_is_not() -> None:
    assert isinstance(classify_http(429, {}, None, source="s"), RetryableError)
    assert not isinstance(classify_http(429, {}, HS_DAILY, source="s"), RetryableError)


def test_message_carries_the_reason_from_the_body() -> None:
    error = classify_http(403, {}, SF_LIMIT, source="salesforce")
    assert "REQUEST_LIMIT_EXCEEDED" in str(error)
    assert "ConcurrentPerOrgLongTxn Limit exceeded." in str(error)
    hubspot = classify_http(429, {}, HS_SECONDLY, source="hubspot")
    assert "RATE_LIMITS" in str(hubspot) and "TEN_SECONDLY_ROLLING" in str(hubspot)


def test_message_never_contains_headers_urls_or_credentials() -> None:
    body = (
        '{"error":"invalid_grant","description":"token=abc123SECRET rejected for '
        'https://api.example.com/x?access_token=zzzTOKEN&page=2"}'
    )
    headers = {"Authorization": "Bearer sk-live-HEADER", "Retry-After": "1"}
    error = classify_http(400, headers, body, source="hubspot")
    text = str(error)
    assert "abc123SECRET" not in text
    assert "zzzTOKEN" not in text
    assert "sk-live-HEADER" not in text and "Authorization" not in text
    assert "https://api.example.com/x?…" in text


def test_html_error_pages_and_long_bodies_are_not_dumped() -> None:
    assert str(classify_http(502, {}, "<html><body>" + "x" * 10_000, source="z")) == "z: HTTP 502"
    long_line = classify_http(500, {}, "y" * 10_000, source="z")
    assert len(str(long_line)) < 260


def test_classify_http_refuses_success_statuses() -> None:
    with pytest.raises(ValueError, match="not an error status"):
        classify_http(200, {}, None, source="s")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 12 ", 12.0),
        ("1.5", 2.0),  # decimals round up: waiting less than asked gets refused again
        ("0", 0.0),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
    ],
)
def test_parse_retry_after(value, expected) -> None:
    assert parse_retry_after({"Retry-After": value}) == expected


def test_parse_retry_after_absent_and_case_insensitive() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "4"}) == 4.0
    assert header_value({"X-Rate-Limit": "400"}, "x-rate-limit") == "400"


def test_a_quoted_reason_is_redacted_before_it_is_cut_short() -> None:
    secret = "zd-reason-secret-7f3e9a"
    register_secret(secret)
    text = "x" * 190 + f" token {secret} rejected"  # the cut at 200 falls inside the secret
    quoted = safe_reason(text)
    assert len(quoted) == 200 and quoted.endswith(" token [RE")
    assert secret[:5] not in quoted  # not even the part before the cut
    assert safe_reason("see http://h/p?api_key=1&x=2 now") == "see http://h/p?… now"


def test_stream_spec_validation_and_incremental_flag() -> None:
    spec = StreamSpec("accounts", AccountRecord, "id", "SystemModstamp", True, 2000)
    assert spec.incremental
    assert not StreamSpec("users", AccountRecord, "id", None, False, 2000).incremental
    with pytest.raises(ValueError, match="max_page_size"):
        StreamSpec("accounts", AccountRecord, "id", None, False, 0)
    with pytest.raises(ValueError, match="name"):
        StreamSpec("", AccountRecord, "id", None, False, 10)


class _ListSource:
    """A minimal in-memory Source: proves the Protocol is implementable with our own types."""

    name = "memory"

    def __init__(self, accounts: list[AccountRecord]):
        self._accounts = accounts

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec("accounts", AccountRecord, "id", "updated_at", False, 2)]

    def check(self) -> CheckResult:
        return CheckResult(ok=True, message="2 accounts visible")

    def read(
        self, stream: str, state: StreamState | None, *, as_of: datetime, full: bool = False
    ) -> Iterator[Page]:
        rows = sorted(self._accounts, key=lambda a: (a.updated_at, a.id))
        for start in range(0, len(rows), 2):
            chunk = rows[start : start + 2]
            state = advance(
                state, [(a.updated_at, a.id) for a in chunk], cycle_started_at=as_of, overlap=timedelta(0)
            )
            yield Page(records=tuple(chunk), state=state)


def test_source_protocol_is_runtime_checkable_and_pages_carry_state() -> None:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    accounts = [AccountRecord(id=str(i), updated_at=t.replace(hour=i)) for i in range(1, 4)]
    source = _ListSource(accounts)
    assert isinstance(source, Source)
    assert not isinstance(object(), Source)
    pages = list(source.read("accounts", None, as_of=t.replace(hour=3)))
    assert [len(p.records) for p in pages] == [2, 1]
    # the record stamped at the cycle start is emitted but does not move the position
    assert pages[-1].state is not None
    assert pages[-1].state.position.id == "2"  # type: ignore[union-attr]
    assert pages[0].deleted_ids == () and pages[0].skipped == ()


def test_check_result_defaults() -> None:
    result = CheckResult(ok=False, message="401 from Salesforce", fix_hint="set SALESFORCE_TOKEN")
    assert result.fix_hint == "set SALESFORCE_TOKEN"
    assert CheckResult(ok=True, message="fine").fix_hint is None


def test_page_freezes_what_connectors_build_as_lists() -> None:
    account = AccountRecord(id="1", updated_at=datetime(2024, 5, 1, tzinfo=UTC))
    page = Page(records=[account], deleted_ids=["2", 3], skipped=[])  # type: ignore[arg-type]
    assert page.records == (account,)
    assert page.deleted_ids == ("2", "3")
    assert page.skipped == () and page.state is None
