"""Initial store schema: records, usage, stream state, identity, scores, writeback and task ledgers, runs, sources.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01

Frozen on purpose: it spells every table out rather than importing `sync.store.schema`, so a later
change to the live metadata needs a new revision (tests compare the migrated schema to the metadata).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _check(name: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("source", sa.String, nullable=False),
        sa.Column("stream", sa.String, nullable=False),
        sa.Column("record_id", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=True),
        _ts("updated_at"),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        _ts("deleted_at"),
        sa.Column("data", _json(), nullable=False),
        sa.Column("raw", _json(), nullable=True),
        sa.Column("first_seen_run", sa.String, nullable=True),
        _ts("first_seen_at", nullable=False),
        _ts("last_seen_at", nullable=False),
        sa.PrimaryKeyConstraint("source", "stream", "record_id", name="pk_records"),
    )
    op.create_index("ix_records_source_stream_updated_at", "records", ["source", "stream", "updated_at"])
    op.create_index("ix_records_account_id", "records", ["account_id"])

    op.create_table(
        "usage_daily",
        sa.Column("source", sa.String, nullable=False),
        sa.Column("account_key", sa.String, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("active_users", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("core_actions", sa.Integer, nullable=False),
        sa.Column("login_users", sa.Integer, nullable=False),
        sa.Column("value_events", sa.Integer, nullable=False),
        sa.Column("features_used", _json(), nullable=False),
        sa.Column("user_ids", _json(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("source", "account_key", "day", name="pk_usage_daily"),
    )
    op.create_index("ix_usage_daily_source_day", "usage_daily", ["source", "day"])

    op.create_table(
        "stream_state",
        sa.Column("source", sa.String, nullable=False),
        sa.Column("stream", sa.String, nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("source", "stream", name="pk_stream_state"),
    )

    op.create_table(
        "identity_links",
        sa.Column("source", sa.String, nullable=False),
        sa.Column("external_key", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=True),
        sa.Column("method", sa.String, nullable=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("candidates", _json(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("source", "external_key", name="pk_identity_links"),
        _check("ck_identity_links_method", "method", ("external_id", "domain", "group_key", "email_domain")),
        _check("ck_identity_links_status", "status", ("matched", "unmatched", "ambiguous")),
    )
    op.create_index("ix_identity_links_account_id", "identity_links", ["account_id"])

    op.create_table(
        "score_history",
        sa.Column("account_id", sa.String, nullable=False),
        _ts("as_of", nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("band", sa.String, nullable=False),
        sa.Column("components", _json(), nullable=False),
        sa.Column("result", _json(), nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("run_id", sa.String, nullable=True),
        sa.PrimaryKeyConstraint("account_id", "as_of", name="pk_score_history"),
    )
    op.create_index("ix_score_history_as_of", "score_history", ["as_of"])

    op.create_table(
        "writeback_ledger",
        sa.Column("crm", sa.String, nullable=False),
        sa.Column("object", sa.String, nullable=False),
        sa.Column("record_id", sa.String, nullable=False),
        sa.Column("field", sa.String, nullable=False),
        sa.Column("value", _json(), nullable=True),
        _ts("written_at", nullable=False),
        sa.Column("run_id", sa.String, nullable=True),
        sa.PrimaryKeyConstraint("crm", "object", "record_id", "field", name="pk_writeback_ledger"),
    )

    op.create_table(
        "writeback_status",
        sa.Column("crm", sa.String, nullable=False),
        sa.Column("object", sa.String, nullable=False),
        sa.Column("record_id", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        _ts("last_attempt_at", nullable=False),
        _ts("last_success_at"),
        sa.Column("run_id", sa.String, nullable=True),
        sa.PrimaryKeyConstraint("crm", "object", "record_id", name="pk_writeback_status"),
        _check("ck_writeback_status_status", "status", ("ok", "failed")),
    )
    op.create_index("ix_writeback_status_crm_status", "writeback_status", ["crm", "status"])

    op.create_table(
        "task_ledger",
        sa.Column("dedupe_key", sa.String, nullable=False),
        sa.Column("crm", sa.String, nullable=False),
        sa.Column("crm_task_id", sa.String, nullable=True),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("rule_id", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("closed_at"),
        _ts("cooldown_until"),
        sa.Column("run_id", sa.String, nullable=True),
        sa.PrimaryKeyConstraint("dedupe_key", name="pk_task_ledger"),
        _check("ck_task_ledger_status", "status", ("pending", "open", "completed", "failed")),
    )
    op.create_index("ix_task_ledger_crm_account_id_rule_id", "task_ledger", ["crm", "account_id", "rule_id"])
    op.create_index("ix_task_ledger_status", "task_ledger", ["status"])
    op.create_index("ix_task_ledger_crm_crm_task_id", "task_ledger", ["crm", "crm_task_id"], unique=True)

    op.create_table(
        "runs",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        _ts("started_at", nullable=False),
        _ts("finished_at"),
        sa.Column("steps", _json(), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        _check("ck_runs_status", "status", ("running", "ok", "partial", "failed")),
    )
    op.create_index("ix_runs_kind_started_at", "runs", ["kind", "started_at"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "source_status",
        sa.Column("source", sa.String, nullable=False),
        _ts("last_success_at"),
        _ts("last_error_at"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("paused_reason", sa.Text, nullable=True),
        sa.Column("credentials_fingerprint", sa.String, nullable=True),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_source_status"),
    )


def downgrade() -> None:
    for table in (
        "source_status",
        "runs",
        "task_ledger",
        "writeback_status",
        "writeback_ledger",
        "score_history",
        "identity_links",
        "stream_state",
        "usage_daily",
        "records",
    ):
        op.drop_table(table)
