"""Salesforce REST endpoints against the documented examples and response shapes (REST API Developer Guide,
SOQL and SOSL Reference, OAuth help pages), through simple-salesforce where it covers them, else requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from healthsync.sandbox.credentials import DEMO
from tests.sandbox import sf_fixtures as fx

from .conftest import shape

CREDS = DEMO.salesforce


def _token(http, server, **form):
    return http.post(server.https_url + "/services/oauth2/token", data=form, timeout=10)


def test_refresh_token_flow_answers_the_documented_keys(server, http):
    # "OAuth 2.0 Refresh Token Flow": grant_type, client_id, client_secret, refresh_token -> access_token,
    # signature, scope, instance_url, id, token_type, issued_at (no new refresh_token without rotation)
    answer = _token(http, server, grant_type="refresh_token", client_id=CREDS.consumer_key,
                    client_secret=CREDS.consumer_secret, refresh_token=CREDS.refresh_token)
    assert answer.status_code == 200
    shape(answer.json(), {"access_token": str, "signature": str, "scope": str, "instance_url": str, "id": str,
                          "token_type": str, "issued_at": str})
    assert "refresh_token" not in answer.json()


@pytest.mark.parametrize(("form", "error"), [
    ({"refresh_token": "not-a-token"}, "invalid_grant"),
    ({"client_id": "someone-else"}, "invalid_client_id"),
    ({"client_secret": "wrong"}, "invalid_client"),
    ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
])
def test_token_errors_are_oauth_shaped(server, http, form, error):
    base = {"grant_type": "refresh_token", "client_id": CREDS.consumer_key, "client_secret": CREDS.consumer_secret,
            "refresh_token": CREDS.refresh_token}
    answer = _token(http, server, **{**base, **form})
    assert answer.status_code == 400
    shape(answer.json(), {"error": str, "error_description": str})
    assert answer.json()["error"] == error


def test_get_updated_and_deleted_follow_the_documented_shapes(server, sf):
    emu = server.emulator("salesforce")
    start = emu._now() - timedelta(hours=1)
    emu.update("Account", fx.sf_id("001", 2), {"Name": "Changed"})
    emu.delete("Contact", fx.sf_id("003", 11))
    server.clock.advance(timedelta(minutes=2))  # the current minute is not covered yet (seconds are ignored)
    end = emu._now()
    updated = sf.Account.updated(start, end)
    shape(updated, {"ids": list, "latestDateCovered": str})
    assert fx.sf_id("001", 2) in updated["ids"]
    deleted = sf.Contact.deleted(start, end)
    shape(deleted, {"deletedRecords": list, "earliestDateAvailable": str, "latestDateCovered": str})
    shape(deleted["deletedRecords"][0], {"id": str, "deletedDate": str})
    assert fx.sf_id("003", 11) in {d["id"] for d in deleted["deletedRecords"]}
    with pytest.raises(SalesforceMalformedRequest) as caught:  # "start cannot be more than 30 days ago"
        sf.Account.updated(end - timedelta(days=31), end)
    assert caught.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_composite_runs_subrequests_with_references_and_rolls_back(sf):
    # "Composite": compositeRequest of {method, url, referenceId, body}; compositeResponse of
    # {body, httpHeaders, httpStatusCode, referenceId}; @{ref.id} refers to an earlier answer
    ok = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "NewAccount",
         "body": {"Name": "Sample Account"}},
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "NewContact",
         "body": {"LastName": "Sample Contact", "AccountId": "@{NewAccount.id}"}}]})
    for answer in ok["compositeResponse"]:
        shape(answer, {"body": dict, "httpHeaders": dict, "httpStatusCode": int, "referenceId": str})
    assert [a["httpStatusCode"] for a in ok["compositeResponse"]] == [201, 201]
    bad = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "A", "body": {"Name": "x"}},
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "C", "body": {}}]})
    first, second = bad["compositeResponse"]
    assert second["httpStatusCode"] == 400 and second["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert first["httpStatusCode"] == 400 and first["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert not sf.query("SELECT Id FROM Account WHERE Name = 'x'")["records"]  # rolled back


def test_composite_batch_answers_has_errors_and_results(sf):
    # "Batch": batchRequests of {method, url}; answer {hasErrors, results: [{statusCode, result}]}
    answer = sf.restful("composite/batch", method="POST", json={"batchRequests": [
        {"method": "GET", "url": "v59.0/sobjects/Account/describe"},
        {"method": "GET", "url": "v59.0/sobjects/Nope/describe"}]})
    shape(answer, {"hasErrors": bool, "results": list})
    assert answer["hasErrors"] is True and [r["statusCode"] for r in answer["results"]] == [200, 404]


def test_sosl_search_answers_search_records(sf):
    # "Search": GET /search/?q=FIND {...} RETURNING ... -> {"searchRecords": [{attributes, fields...}]}
    found = sf.search("FIND {Account 0*} IN NAME FIELDS RETURNING Account(Id, Name ORDER BY Name LIMIT 3)")
    shape(found, {"searchRecords": list})
    assert found["searchRecords"] and all(r["attributes"]["type"] == "Account" for r in found["searchRecords"])
    assert [r["Name"] for r in found["searchRecords"]] == sorted(r["Name"] for r in found["searchRecords"])
    with pytest.raises(SalesforceMalformedRequest):
        sf.search("FIND {a}")  # a search term needs two characters


def test_case_is_an_sobject_with_describe(sf):
    described = sf.Case.describe()
    shape(described, {"name": str, "fields": list, "childRelationships": list, "keyPrefix": str})
    assert described["keyPrefix"] == "500"
    names = {f["name"] for f in described["fields"]}
    assert {"CaseNumber", "Status", "Priority", "Origin", "AccountId", "ContactId", "IsClosed"} <= names
    created = sf.Case.create({"Subject": "Cannot log in", "AccountId": fx.sf_id("001", 1)})
    row = sf.query(f"SELECT CaseNumber, Status, IsClosed FROM Case WHERE Id = '{created['id']}'")["records"][0]
    assert row["Status"] == "New" and row["IsClosed"] is False and row["CaseNumber"]


# ---------------------------------------------------------------------------------------------- SOQL


def test_aggregate_results_use_field_names_aliases_and_expr_n(sf):
    # "Aggregate Functions" / "Using Aliases with GROUP BY": AggregateResult rows; unaliased expressions are
    # expr0, expr1, ... in select order
    answer = sf.query("SELECT StageName, COUNT(Id), SUM(Amount) total, MAX(CloseDate) FROM Opportunity "
                      "GROUP BY StageName HAVING COUNT(Id) > 0 ORDER BY StageName")
    rows = answer["records"]
    assert answer["done"] is True and answer["totalSize"] == len(rows) == 2
    for row in rows:
        shape(row, {"attributes": dict, "StageName": str, "expr0": int, "total": float, "expr1": str})
        assert row["attributes"] == {"type": "AggregateResult"}
    assert sum(r["expr0"] for r in rows) == 5
    grouped = sf.query("SELECT CALENDAR_YEAR(CreatedDate), COUNT(Id) n FROM Account GROUP BY CALENDAR_YEAR(CreatedDate)")
    shape(grouped["records"][0], {"expr0": int, "n": int})


def test_child_relationship_subqueries_nest_query_results(sf):
    # "Relationship Queries": children as {totalSize, done, records}, null when there are none
    rows = sf.query("SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName LIMIT 2), "
                    "(SELECT Subject FROM Cases) FROM Account ORDER BY Name LIMIT 2")["records"]
    nested = rows[0]["Contacts"]
    shape(nested, {"totalSize": int, "done": bool, "records": list})
    assert nested["totalSize"] == 2 and nested["records"][0]["attributes"]["type"] == "Contact"
    assert rows[1]["Cases"] is None


def test_semi_and_anti_joins_partition_the_accounts(sf):
    won = sf.query("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity WHERE IsWon = true)")
    rest = sf.query("SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Opportunity WHERE IsWon = true)")
    every = sf.query("SELECT Id FROM Account")
    assert won["totalSize"] >= 1 and won["totalSize"] + rest["totalSize"] == every["totalSize"]


def test_typeof_prints_the_matched_type_fields(sf):
    rows = sf.query("SELECT TYPEOF What WHEN Account THEN Name WHEN Opportunity THEN Amount ELSE Id END FROM Task "
                    "LIMIT 5")["records"]
    what = rows[0]["What"]
    assert what["attributes"]["type"] == "Account" and "Name" in what


def test_fields_function_and_its_limit_rule(sf):
    # "FIELDS()": FIELDS(ALL) and FIELDS(CUSTOM) need LIMIT 200 or less; FIELDS(STANDARD) does not
    custom = sf.query("SELECT FIELDS(CUSTOM) FROM Account LIMIT 1")["records"][0]
    assert "ARR__c" in custom and "Name" not in custom
    assert "Name" in sf.query("SELECT FIELDS(STANDARD) FROM Account")["records"][0]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT FIELDS(ALL) FROM Account")
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    assert "LIMIT of at most 200" in caught.value.content[0]["message"]


def test_tolabel_date_functions_and_date_literals(sf):
    # toLabel(): labels equal values in this org (ambiguous: the docs say "translated", and we have one language)
    row = sf.query("SELECT toLabel(StageName) FROM Opportunity LIMIT 1")["records"][0]
    assert row["StageName"] in {"Negotiation/Review", "Closed Won"}
    this_year = sf.query("SELECT COUNT() FROM Opportunity WHERE CALENDAR_YEAR(CloseDate) = 2024")["totalSize"]
    assert this_year == 5
    quarter = sf.query("SELECT COUNT() FROM Opportunity WHERE CloseDate = NEXT_QUARTER")["totalSize"]
    assert quarter == 5  # the fixture's close dates (2024-07-01) fall in the quarter after June 2024
    assert sf.query("SELECT COUNT() FROM Opportunity WHERE CloseDate = THIS_QUARTER")["totalSize"] == 0
    # the fixture's five live accounts were created 300 days before its as_of; other tests create some today
    recent = sf.query("SELECT COUNT() FROM Account WHERE CreatedDate = LAST_N_DAYS:400 AND CreatedDate < TODAY")
    assert recent["totalSize"] == 5


@pytest.mark.parametrize(("soql", "fragment"), [
    ("SELECT Name, COUNT(Id) FROM Account", "Field must be grouped or aggregated: Name"),
    ("SELECT Name n FROM Account", "Only aggregate expressions use field aliasing"),
    ("SELECT SUM(Name) FROM Account", "does not support aggregate operator SUM"),
    ("SELECT Id, (SELECT Id FROM Nope) FROM Account", "Didn't understand relationship 'Nope'"),
    ("SELECT Amount FROM Opportunity GROUP BY Amount", "can not be grouped"),
])
def test_documented_soql_errors(sf, soql, fragment):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    error = caught.value.content[0]
    assert set(error) >= {"message", "errorCode"} and fragment in error["message"]
