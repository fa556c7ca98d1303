"""Conformance of the sandbox emulators to the vendors' documented requests and response shapes."""
