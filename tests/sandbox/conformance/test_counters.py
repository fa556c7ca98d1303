"""`/__sandbox/calls`: the flat per-endpoint counts current callers read, plus splits per object type, per
client (X-Sandbox-Client) and unrouted requests, so a benchmark can attribute every call."""

from __future__ import annotations

from healthsync.sandbox.core import CLIENT_HEADER


def test_calls_are_split_by_endpoint_object_client_and_unrouted(server, http, sf_token):
    server.calls.reset()
    bench = {CLIENT_HEADER: "bench", "Authorization": f"Bearer {sf_token}"}
    base = f"{server.https_url}/services/data/v59.0"
    http.get(f"{base}/query/", params={"q": "SELECT Id FROM Account"}, headers=bench, timeout=10)
    http.get(f"{base}/query/", params={"q": "SELECT Id FROM Contact"}, headers=bench, timeout=10)
    http.get(f"{base}/sobjects/Case/describe", headers={"Authorization": f"Bearer {sf_token}"}, timeout=10)
    http.get(f"{base}/no/such/thing", headers=bench, timeout=10)
    http.get(f"{server.http_url}/crm/v3/objects/company", headers={CLIENT_HEADER: "other"}, timeout=10)
    http.get(f"{server.http_url}/nowhere", timeout=10)
    report = http.get(f"{server.http_url}/__sandbox/calls", timeout=10).json()
    assert report["salesforce query"] == 2 and report["by_endpoint"]["salesforce describe"] == 1  # flat keys kept
    assert report["by_object"]["salesforce"] == {"Account": 1, "Contact": 1, "Case": 1}
    assert report["by_object"]["hubspot"] == {"companies": 1}  # spelled "company", counted under its API name
    assert report["unrouted"] == {"salesforce": 1, "sandbox": 1}
    assert report["by_client"]["bench"] == {"salesforce query": 2, "salesforce unrouted": 1}
    assert report["by_client"]["untagged"] == {"salesforce describe": 1, "sandbox unrouted": 1}
    assert report["total"] == 6 == sum(row["count"] for row in report["rows"])
    only = http.get(f"{server.http_url}/__sandbox/calls", params={"client": "other"}, timeout=10).json()
    assert only["total"] == 1 and only["hubspot list_objects"] == 1
    assert server.calls.snapshot(client="bench") == {"salesforce query": 2, "salesforce unrouted": 1}


def test_concurrent_clients_are_counted_apart(server, http, sf_token):
    from concurrent.futures import ThreadPoolExecutor

    server.calls.reset()
    url = f"{server.https_url}/services/data/v59.0/limits/"

    def call(name: str) -> int:
        return http.get(url, headers={CLIENT_HEADER: name, "Authorization": f"Bearer {sf_token}"},
                        timeout=10).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(call, ["a"] * 7 + ["b"] * 5))
    assert set(codes) == {200}
    detail = server.calls.detail()
    assert detail["by_client"] == {"a": {"salesforce limits": 7}, "b": {"salesforce limits": 5}}
