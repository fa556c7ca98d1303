"""The store's tables as SQLAlchemy Core metadata: the one picture of the schema that migrations must match."""

from __future__ import annotations

import sqlalchemy as sa

from healthsync.sync.store.columns import Json, JsonSet, JsonTuple, UtcDateTime

# Named constraints so Alembic can alter them later (SQLite batch mode needs names).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

IDENTITY_METHODS = ("external_id", "domain", "group_key", "email_domain")
IDENTITY_STATUSES = ("matched", "unmatched", "ambiguous")
WRITE_STATUSES = ("ok", "failed")
TASK_STATUSES = ("pending", "open", "completed", "failed")
RUN_STATUSES = ("running", "ok", "partial", "failed")


def _choice(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

records = sa.Table(
    "records",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("stream", sa.String, primary_key=True),
    sa.Column("record_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=True),  # the source's modstamp
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
    sa.Column("data", Json, nullable=False),  # canonical fields
    sa.Column("raw", Json, nullable=True),  # source payload, so a new field map can be re-applied
    sa.Column("first_seen_run", sa.String, nullable=True),
    sa.Column("first_seen_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Index(None, "source", "stream", "updated_at"),
    sa.Index(None, "account_id"),
)

usage_daily = sa.Table(
    "usage_daily",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("account_key", sa.String, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("active_users", sa.Integer, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("core_actions", sa.Integer, nullable=False),
    sa.Column("login_users", sa.Integer, nullable=False),
    sa.Column("value_events", sa.Integer, nullable=False),
    sa.Column("features_used", JsonSet, nullable=False),
    sa.Column("user_ids", JsonSet, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index(None, "source", "day"),
)

stream_state = sa.Table(
    "stream_state",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("stream", sa.String, primary_key=True),
    sa.Column("state", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # format version of `state`, owned by the caller
    sa.Column("revision", sa.Integer, nullable=False),  # bumped on every write, owned by the store
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

identity_links = sa.Table(
    "identity_links",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("external_key", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=True),
    sa.Column("method", sa.String, nullable=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("candidates", JsonTuple, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    _choice("method", IDENTITY_METHODS, "method"),
    _choice("status", IDENTITY_STATUSES, "status"),
    sa.Index(None, "account_id"),
)

score_history = sa.Table(
    "score_history",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("as_of", UtcDateTime, primary_key=True),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("band", sa.String, nullable=False),
    sa.Column("components", Json, nullable=False),
    sa.Column("result", Json, nullable=False),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("run_id", sa.String, nullable=True),
    sa.Index(None, "as_of"),
)

writeback_ledger = sa.Table(
    "writeback_ledger",
    metadata,
    sa.Column("crm", sa.String, primary_key=True),
    sa.Column("object", sa.String, primary_key=True),
    sa.Column("record_id", sa.String, primary_key=True),
    sa.Column("field", sa.String, primary_key=True),
    sa.Column("value", Json, nullable=True),  # the value the CRM confirmed (JSON null: we cleared it)
    sa.Column("written_at", UtcDateTime, nullable=False),
    sa.Column("run_id", sa.String, nullable=True),
)

writeback_status = sa.Table(
    "writeback_status",
    metadata,
    sa.Column("crm", sa.String, primary_key=True),
    sa.Column("object", sa.String, primary_key=True),
    sa.Column("record_id", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # failures since the last success
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_attempt_at", UtcDateTime, nullable=False),
    sa.Column("last_success_at", UtcDateTime, nullable=True),
    sa.Column("run_id", sa.String, nullable=True),
    _choice("status", WRITE_STATUSES, "status"),
    sa.Index(None, "crm", "status"),
)

task_ledger = sa.Table(
    "task_ledger",
    metadata,
    sa.Column("dedupe_key", sa.String, primary_key=True),
    sa.Column("crm", sa.String, nullable=False),
    sa.Column("crm_task_id", sa.String, nullable=True),  # NULL until the CRM confirmed the create
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("rule_id", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("cooldown_until", UtcDateTime, nullable=True),
    sa.Column("run_id", sa.String, nullable=True),
    _choice("status", TASK_STATUSES, "status"),
    sa.Index(None, "crm", "account_id", "rule_id"),
    sa.Index(None, "status"),
    sa.Index(None, "crm", "crm_task_id", unique=True),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("steps", Json, nullable=False),  # {step: {counts, duration_s, api_calls, errors}}
    sa.Column("error", sa.Text, nullable=True),
    _choice("status", RUN_STATUSES, "status"),
    sa.Index(None, "kind", "started_at"),
    sa.Index(None, "started_at"),
)

source_status = sa.Table(
    "source_status",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("last_success_at", UtcDateTime, nullable=True),
    sa.Column("last_error_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("paused_reason", sa.Text, nullable=True),
    sa.Column("credentials_fingerprint", sa.String, nullable=True),  # sha256 hex, never the secret
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
