"""Conformance of the emulators to the vendors' documented requests and response shapes."""
