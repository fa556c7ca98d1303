"""The store: every pulled record, cursor, score and write we made, in SQLite (default) or PostgreSQL."""

from healthsync.sync.store.records import *  # noqa: F403
from healthsync.sync.store.records import __all__  # noqa: F401
