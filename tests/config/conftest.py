"""Fixtures for config tests: the example's environment, a key file, a config-file writer."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "sf.pem"
    path.parent.mkdir()
    path.write_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")
    return path


@pytest.fixture
def example_env(key_file: Path) -> dict[str, str]:
    """Exactly the variables example.yaml documents at its top."""
    return {
        "SALESFORCE_CONSUMER_KEY": "3MVG9-consumer-key",
        "SALESFORCE_PRIVATE_KEY_PATH": str(key_file),
        "ZENDESK_TOKEN": "zd-tok-8f3a9c1e77",
        "MIXPANEL_SECRET": "mp-secret-51d0b2aa",
    }


@pytest.fixture
def write_config(tmp_path: Path):
    """write_config(text, name=...) -> path of a config file in tmp_path."""

    def write(text: str, name: str = "healthsync.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
