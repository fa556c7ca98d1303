"""Field checks shared by the settings models; each raises ValueError with a message that says the fix."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationInfo
from pydantic_core import PydanticCustomError

from healthsync.config.envrefs import EnvValue

_EMAIL = re.compile(r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_SF_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_DB_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")


def from_file(info: ValidationInfo) -> bool:
    """True when validating a config file (secrets must then come from the environment)."""
    return bool(info.context and info.context.get("from_file"))


def base_dir(info: ValidationInfo) -> Path:
    """Relative paths in a config file are relative to the file's directory (like docker-compose)."""
    if info.context and info.context.get("base_dir"):
        return Path(info.context["base_dir"])
    return Path.cwd()


# --- secrets -----------------------------------------------------------------------------------


def _secret(value: Any, info: ValidationInfo) -> SecretStr:
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
    elif isinstance(value, str):
        if from_file(info) and not isinstance(value, EnvValue):
            raise PydanticCustomError("secret_literal", "is a secret and must not be written in the file")
        if isinstance(value, EnvValue) and not value.whole and not value.unresolved:
            raise PydanticCustomError(
                "secret_partial", "a secret must be exactly one ${VAR} reference with nothing around it"
            )
        raw = str(value)
    else:
        raise PydanticCustomError("secret_type", "must be a ${VAR} reference to an environment variable")
    if not raw.strip() and not (isinstance(value, EnvValue) and value.unresolved):
        raise PydanticCustomError("secret_empty", "is empty")
    return SecretStr(raw)


# A credential: SecretStr in memory, `${VAR}` (or VAR_FILE) in the file, never a literal.
Secret = Annotated[SecretStr, BeforeValidator(_secret)]


# --- strings with a shape ----------------------------------------------------------------------


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"'{value}' is not an email address (expected name@example.com)")
    return value


Email = Annotated[str, AfterValidator(_email)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'{value}' is not an http(s) URL (expected e.g. https://127.0.0.1:8443)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"'{value}' has an invalid port (expected 1-65535)") from None
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _zendesk_subdomain(value: str) -> str:
    if value.endswith(".zendesk.com") or "://" in value:
        bare = value.split("://")[-1].split(".zendesk.com")[0]
        raise ValueError(f"give only the subdomain: '{bare}', not '{value}'")
    if not _SUBDOMAIN.fullmatch(value):
        raise ValueError(f"'{value}' is not a Zendesk subdomain (lowercase letters, digits and '-')")
    return value


ZendeskSubdomain = Annotated[str, AfterValidator(_zendesk_subdomain)]


def _salesforce_domain(value: str) -> str:
    if value.endswith(".salesforce.com"):
        raise ValueError(f"drop '.salesforce.com': write '{value.removesuffix('.salesforce.com')}'")
    if not _SF_DOMAIN.fullmatch(value):
        raise ValueError(f"'{value}' is not a Salesforce login domain (login, test, or your My Domain like acme.my)")
    return value


SalesforceDomain = Annotated[str, AfterValidator(_salesforce_domain)]


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{value}' (expected an IANA name like UTC or Europe/Berlin)") from None
    return value


TimeZone = Annotated[str, AfterValidator(_timezone)]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


UpperCase = BeforeValidator(_upper)
LowerCase = BeforeValidator(_lower)


# --- database URL ------------------------------------------------------------------------------


def database_url_problem(value: str) -> str | None:
    """Why `value` is not a database URL we support, or None."""
    parts = urlsplit(value)
    if parts.scheme in ("postgres", "postgresql+psycopg2"):
        return f"use 'postgresql+psycopg://' (psycopg 3) instead of '{parts.scheme}://'"
    if parts.scheme not in _DB_SCHEMES:
        return f"unsupported database URL scheme '{parts.scheme}:' (use sqlite:///path/file.db or postgresql+psycopg://user:${{PGPASSWORD}}@host/db)"
    if parts.scheme.startswith("postgresql") and not parts.hostname:
        return "a PostgreSQL URL needs a host: postgresql+psycopg://user@host:5432/dbname"
    return None


def literal_password_in_url(value: str) -> bool:
    """True when the URL carries a password that did not come from an environment variable."""
    try:
        password = urlsplit(value).password
    except ValueError:
        return False
    if not password:
        return False
    resolved = value.resolved if isinstance(value, EnvValue) else ()
    return not any(password in v or unquote(password) in v for v in resolved)


# --- paths -------------------------------------------------------------------------------------


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    path = Path(os.path.expandvars(str(value))).expanduser()
    return path if path.is_absolute() else (base_dir(info) / path).resolve()


def _readable_file(value: Path, info: ValidationInfo) -> Path:
    path = resolve_path(value, info)
    shown = str(value) if str(value) == str(path) else f"{value} (looked for {path})"
    if not path.exists():
        raise PydanticCustomError("file_missing", "file not found: {path}", {"path": shown})
    if not path.is_file():
        raise PydanticCustomError("file_kind", "not a file: {path}", {"path": shown})
    if not os.access(path, os.R_OK):
        raise PydanticCustomError("file_unreadable", "file not readable (check its permissions): {path}", {"path": shown})
    return path


def _any_path(value: Path, info: ValidationInfo) -> Path:
    return resolve_path(value, info)


ReadableFile = Annotated[Path, AfterValidator(_readable_file)]
ResolvedPath = Annotated[Path, AfterValidator(_any_path)]


# --- cron --------------------------------------------------------------------------------------

_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}),
    ("day of week", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)


def _cron_number(token: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    number = names.get(token.lower()) if token.isalpha() else (int(token) if token.isdigit() else None)
    if number is None or not low <= number <= high:
        raise ValueError(f"{field} '{token}' out of range {low}-{high}")
    return number


def _cron_item(item: str, low: int, high: int, names: dict[str, int], field: str) -> None:
    span, _, step = item.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        raise ValueError(f"{field} step '{step}' must be a positive number")
    if span in ("*", "?"):
        return
    first, _, last = span.partition("-")
    start = _cron_number(first, low, high, names, field)
    if last and _cron_number(last, low, high, names, field) < start:
        raise ValueError(f"{field} range '{span}' runs backwards")


def _cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"'{value}' is not a 5-field cron expression (minute hour day-of-month month day-of-week), e.g. '*/5 * * * *'")
    try:
        for text, (field, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
            for item in text.split(","):
                _cron_item(item, low, high, names, field)
    except ValueError as exc:
        raise ValueError(f"cron '{value}': {exc}") from None
    return value


Cron = Annotated[str, AfterValidator(_cron)]
