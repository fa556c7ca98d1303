"""healthsync: customer-health scores, renewal stages and CS tasks computed locally and written back into the CRM.

The repository's top-level folders (`config/`, `connectors/`, `scoring/`, `writeback/`, `sync/`) are
installed as subpackages of this one namespace (see `[tool.setuptools]` in pyproject.toml); the
offline sandbox (`sandbox/`) is its own distribution, `healthsync-sandbox`, installing
`healthsync.sandbox` for the `sandbox` extra.
"""

__version__ = "0.1.0"
