"""Shared fixtures: a PostgreSQL server URL (from HEALTHSYNC_TEST_PG_URL) and a `store` on each backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from healthsync.sync.store import Store

PG_URL_ENV = "HEALTHSYNC_TEST_PG_URL"
PG_SKIP_REASON = f"{PG_URL_ENV} not set: PostgreSQL store tests skipped"
BACKENDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test server's URL (`bash .ci/run` starts one and sets it); skips the test when unset."""
    url = os.environ.get(PG_URL_ENV, "").strip()
    if not url:
        pytest.skip(PG_SKIP_REASON)
    return url


@pytest.fixture(scope="session")
def pg_admin_engine(pg_url: str) -> Iterator[Engine]:
    import sqlalchemy as sa

    from healthsync.sync.store.engine import normalise_url

    engine = sa.create_engine(normalise_url(pg_url), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema_url(pg_admin_engine: Engine) -> Iterator[str]:
    """A URL on the test server whose connections see only a fresh schema, dropped after the test."""
    import sqlalchemy as sa

    schema = f"test_{uuid.uuid4().hex[:16]}"
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = pg_admin_engine.url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'healthsync.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, migrated Store on each backend."""
    from healthsync.sync.store import Store

    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
