"""The sandbox server's shared machinery: routing, TLS with its own CA, call counts, faults, rate limits."""

import pytest
import requests
from werkzeug.routing import Map, Rule

from healthsync.sandbox.core import Emulator, SandboxServer, SlidingWindowLimit, json_response
from tests.support.tls import sandbox_session


class EchoEmulator(Emulator):
    name = "echo"
    prefixes = ("/echo/",)
    url_map = Map([Rule("/echo/<word>", endpoint="echo")])

    def on_echo(self, request, word):
        return json_response({"word": word})


@pytest.fixture()
def server():
    with SandboxServer([EchoEmulator]) as srv:
        yield srv


_session = sandbox_session


def test_serves_tls_and_plain_http_and_counts_calls(server):
    s = _session(server)
    assert s.get(server.https_url + "/echo/hi").json() == {"word": "hi"}
    assert s.get(server.http_url + "/echo/yo").json() == {"word": "yo"}
    assert server.calls.snapshot() == {"echo echo": 2}
    assert s.get(server.http_url + "/echo/a/b").status_code == 404


def test_faults_fire_the_given_number_of_times(server):
    s = _session(server)
    server.faults.add(r"/echo/x", kind="status", status=429, headers={"Retry-After": "1"}, times=2)
    codes = [s.get(server.http_url + "/echo/x").status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    r = s.post(server.http_url + "/__sandbox/faults", json={"path": "/echo/", "kind": "malformed"})
    assert r.status_code == 201
    with pytest.raises(ValueError):
        s.get(server.http_url + "/echo/z").json()


def test_connection_reset_fault(server):
    s = _session(server)
    server.faults.add(r"/echo/", kind="reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(server.http_url + "/echo/boom")
    assert s.get(server.http_url + "/echo/ok").status_code == 200


def test_sliding_window_limit_scales_time():
    limit = SlidingWindowLimit(limit=2, window=60, time_scale=600)  # 60 s window -> 0.1 s
    assert limit.hit()[0] and limit.hit()[0]
    allowed, remaining, wait = limit.hit()
    assert not allowed and remaining == 0 and 0 < wait <= 0.1
