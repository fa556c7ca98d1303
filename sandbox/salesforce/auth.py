"""Salesforce logins — SOAP username/password(+token), OAuth username-password, client credentials, JWT bearer
and refresh token — and the sessions they issue, which expire after inactivity on the sandbox clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import json_response
from healthsync.sandbox.credentials import SalesforceCredentials

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_INVALID_LOGIN = "Invalid username, password, security token; or user locked out."


@dataclass
class Session:
    token: str
    username: str
    last_used: datetime


class SalesforceAuth:
    """Issues and checks access tokens; holds the connected app's JWT signing key pair."""

    def __init__(self, credentials: SalesforceCredentials, now: Callable[[], datetime], user_id: str):
        self.credentials = credentials
        self.now = now
        self.user_id = user_id
        self.session_seconds = credentials.session_seconds
        self._sessions: dict[str, Session] = {}
        self.refresh_tokens = {credentials.refresh_token}  # tests revoke them to see invalid_grant
        self.client_secret_required = True  # a connected app may waive the secret for the refresh flow
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.jwt_private_key_path = self._write_key(None)

    # ---------------------------------------------------------------------------------------- keys
    def _write_key(self, directory: Path | None) -> Path:
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="healthsync-sf-jwt-")
            directory = Path(self._tmp.name)
        path = Path(directory) / "salesforce-jwt-private-key.pem"
        path.write_bytes(self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        path.chmod(0o600)
        return path

    def set_workdir(self, directory: str | Path) -> Path:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.jwt_private_key_path = self._write_key(Path(directory))
        return self.jwt_private_key_path

    @property
    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)

    # ---------------------------------------------------------------------------------------- sessions
    def issue(self, username: str | None = None) -> str:
        token = f"{self.credentials.org_id[:15]}!{secrets.token_urlsafe(48)}"
        with self._lock:
            self._sessions[token] = Session(token, username or self.credentials.username, self.now())
        return token

    def validate(self, token: str | None) -> Session | None:
        """The live session for a token (touching it, as real inactivity timeouts do), else None."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            now = self.now()
            if now - session.last_used > timedelta(seconds=self.session_seconds):
                del self._sessions[token]
                return None
            session.last_used = now
            return session

    def expire_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    # ---------------------------------------------------------------------------------------- SOAP login
    def soap_login(self, request: Request, server_base: str, version: str) -> Response:
        username, password = _soap_credentials(request.get_data(as_text=True))
        expected = self.credentials.password + self.credentials.security_token
        if username != self.credentials.username or password != expected:
            return _soap_fault("INVALID_LOGIN", _INVALID_LOGIN)
        token = self.issue(username)
        org = self.credentials.org_id
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{_SOAP_ENV}" '
            'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><loginResponse><result>"
            f"<metadataServerUrl>{server_base}/services/Soap/m/{version}/{org}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{server_base}/services/Soap/u/{version}/{org}</serverUrl>"
            f"<sessionId>{escape(token)}</sessionId><userId>{self.user_id}</userId>"
            f"<userInfo><organizationId>{org}</organizationId><organizationName>Healthsync Demo</organizationName>"
            f"<sessionSecondsValid>{self.session_seconds}</sessionSecondsValid><userEmail>{escape(username)}"
            f"</userEmail><userFullName>Healthsync Integration</userFullName><userId>{self.user_id}</userId>"
            f"<userName>{escape(username)}</userName></userInfo>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return Response(body, status=200, content_type="text/xml;charset=UTF-8")

    # ---------------------------------------------------------------------------------------- OAuth
    def oauth_token(self, request: Request, server_base: str) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        if grant == "password":
            failure = self._password_grant(form)
        elif grant == "client_credentials":
            failure = self._client_credentials_grant(request)
        elif grant == JWT_GRANT:
            failure = self._jwt_grant(form.get("assertion", ""), server_base)
        elif grant == "refresh_token":
            failure = self._refresh_grant(request)
        else:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        if failure is not None:
            return failure
        token = self.issue()
        issued = str(int(time.time() * 1000))
        signature = base64.b64encode(hmac.new(self.credentials.consumer_secret.encode(),
                                              (server_base + issued).encode(), hashlib.sha256).digest()).decode()
        # The refresh-token answer has the same keys and, without refresh-token rotation, no new refresh_token
        # ("OAuth 2.0 Refresh Token Flow", help.salesforce.com sf.remoteaccess_oauth_refresh_token_flow.htm).
        scope = "api refresh_token" if grant == "refresh_token" else "api"
        return json_response({
            "access_token": token, "instance_url": server_base,
            "id": f"{server_base}/id/{self.credentials.org_id}/{self.user_id}", "token_type": "Bearer",
            "issued_at": issued, "signature": signature, "scope": scope,
        })

    def _refresh_grant(self, request: Request) -> Response | None:
        """grant_type=refresh_token: client_id, refresh_token and (unless the app waives it) client_secret, in
        the form or as HTTP Basic. An unknown or revoked token is 400 invalid_grant "expired access/refresh
        token" (OAuth 2.0 Refresh Token Flow; "OAuth 2.0 Endpoints and Errors" on help.salesforce.com)."""
        form, auth = request.form, request.authorization
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if auth is not None and auth.type == "basic":
            client_id, secret = auth.username, auth.password
        if client_id != self.credentials.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if (secret is not None or self.client_secret_required) and secret != self.credentials.consumer_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        if form.get("refresh_token") not in self.refresh_tokens:
            return _oauth_error("invalid_grant", "expired access/refresh token")
        return None

    def _client_ok(self, client_id: str | None, client_secret: str | None) -> Response | None:
        if client_id != self.credentials.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if client_secret != self.credentials.consumer_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        return None

    def _password_grant(self, form: Any) -> Response | None:
        bad_client = self._client_ok(form.get("client_id"), form.get("client_secret"))
        if bad_client is not None:
            return bad_client
        expected = self.credentials.password + self.credentials.security_token
        if form.get("username") != self.credentials.username or form.get("password") != expected:
            return _oauth_error("invalid_grant", "authentication failure")
        return None

    def _client_credentials_grant(self, request: Request) -> Response | None:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return self._client_ok(auth.username, auth.password)
        return self._client_ok(request.form.get("client_id"), request.form.get("client_secret"))

    def _jwt_grant(self, assertion: str, server_base: str) -> Response | None:
        try:
            claims = jwt.decode(assertion, self._key.public_key(), algorithms=["RS256"],
                                audience=[*JWT_AUDIENCES, server_base], leeway=60,
                                options={"require": ["exp", "iss", "sub", "aud"]})
        except jwt.ExpiredSignatureError:
            return _oauth_error("invalid_grant", "expired authorization code")
        except jwt.InvalidAudienceError:
            return _oauth_error("invalid_grant", "audience is invalid")
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.credentials.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.credentials.username:
            return _oauth_error("invalid_grant", "invalid assertion")
        return None


def _soap_credentials(body: str) -> tuple[str | None, str | None]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None, None
    found: dict[str, str] = {}
    for element in root.iter():
        local = element.tag.rsplit("}", 1)[-1]
        if local in {"username", "password"} and local not in found:
            found[local] = element.text or ""
    return found.get("username"), found.get("password")


def _soap_fault(code: str, message: str) -> Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{_SOAP_ENV}" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}"
        f'</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}'
        f"</sf:exceptionCode><sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault>"
        "</detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, status=500, content_type="text/xml;charset=UTF-8")


def _oauth_error(error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, 400)
