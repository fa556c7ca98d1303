"""The store: every pulled record, cursor, score and write we made, in SQLite (default) or PostgreSQL.

``Store.open(url)`` migrates to the newest schema and returns a thin Store holding one repository per
concern; close it with ``store.close()`` or use it as a context manager. A ``postgresql://`` URL needs
the ``postgres`` extra (psycopg). The store never reads the clock: every timestamp is an argument,
datetimes must be timezone-aware, and reads return aware UTC on both backends. Column types
(``columns.py``) own every conversion; ``RowMapper`` (``mapper.py``) maps frozen rows (``rows.py``)
to tables by name.

Atomicity: each repository call is one transaction. ``with store.transaction() as tx:`` gives a Store
whose repositories share one, so calls commit or roll back together (``repo.transaction()`` does the
same for one repository). ``records.commit_page`` writes a page, its deletes and its cursor at once.

    store.records     commit_page, upsert, mark_deleted, set_account_ids, get, iter_stream, live_ids,
                      for_account, count; get_state, get_state_row, set_state, reset_state
    store.aggregates  upsert_usage_days, replace_usage_window, usage_days;
                      upsert_identity_links, identity_links, get_identity_link
    store.scores      record, history, histories, latest_at
    store.ledger      writeback.base.Ledger (last_written, record_field_writes, ..., record_task_state);
                      .fields: entries, statuses  ·  .tasks: get, find_by_crm_id, find
    store.runs        start, record_step, finish, abandon_running, get, recent; record_source_success,
                      record_source_error, pause_source, resume_source, set_credentials_fingerprint,
                      source_status, source_statuses
"""

from healthsync.sync.store.engine import StoreUnavailableError
from healthsync.sync.store.migrate import current_revision, head_revision
from healthsync.sync.store.records import StateConflictError
from healthsync.sync.store.rows import (
    IdentityLink,
    LedgerEntry,
    RecordRow,
    RunRow,
    ScoreRow,
    SourceStatus,
    StoredRecord,
    StreamStateRow,
    TaskRow,
    UsageDay,
    WriteStatusRow,
    credentials_fingerprint,
)
from healthsync.sync.store.store import Store

__all__ = [
    "IdentityLink",
    "LedgerEntry",
    "RecordRow",
    "RunRow",
    "ScoreRow",
    "SourceStatus",
    "StateConflictError",
    "Store",
    "StoreUnavailableError",
    "StoredRecord",
    "StreamStateRow",
    "TaskRow",
    "UsageDay",
    "WriteStatusRow",
    "credentials_fingerprint",
    "current_revision",
    "head_revision",
]
