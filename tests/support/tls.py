"""A requests session that trusts the sandbox's throwaway CA, for tests that talk to the emulators over TLS."""

from __future__ import annotations

import requests


def sandbox_session(server) -> requests.Session:
    """`server` is a running SandboxServer; its CA alone is trusted."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace `verify` (sdk-notes 0.1)
    session.verify = str(server.ca_path)
    return session
