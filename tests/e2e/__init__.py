"""End-to-end tests: the whole product (real SDKs, connectors, store, scoring, writeback, CLI) against the sandbox."""
