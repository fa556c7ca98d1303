"""The Salesforce emulator driven by the unmodified simple-salesforce over TLS: logins, SOQL paging and
cursors, writes and their errors, collections, limits, sessions, Bulk 2.0 and Tooling custom fields."""

from __future__ import annotations

import csv
import io
import time
import urllib.parse
from datetime import timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.salesforce import SalesforceEmulator

from . import sf_fixtures as fx

CREDS = DEMO.salesforce
SMALL_PAGES = {"Sforce-Query-Options": "batchSize=200"}


@pytest.fixture(scope="module")
def server():
    with SandboxServer([SalesforceEmulator], clock=SandboxClock(fx.AS_OF)) as srv:
        yield srv


@pytest.fixture()
def emu(server):
    emulator = server.emulator("salesforce")
    emulator.load(fx.portfolio())
    emulator.reset_api_usage()
    emulator.daily_limit = 15000
    emulator.allow_metadata = True
    emulator.session_seconds = CREDS.session_seconds
    server.faults.clear()
    server.calls.reset()
    yield emulator
    server.faults.clear()


def _session(server, rewrite: bool = True) -> requests.Session:
    port = server.tls_port

    class RewriteSalesforceHosts(requests.Session):
        """Sends the SDK's hard-coded *.salesforce.com login URLs to the emulator (sdk-notes §1.1)."""

        def request(self, method, url, *args, **kwargs):
            parts = urllib.parse.urlsplit(url)
            if rewrite and parts.hostname and parts.hostname.endswith(".salesforce.com"):
                url = parts._replace(netloc=f"127.0.0.1:{port}").geturl()
            return super().request(method, url, *args, **kwargs)

    session = RewriteSalesforceHosts()
    session.trust_env = False
    session.verify = str(server.ca_path)
    return session


def _login(server) -> Salesforce:
    return Salesforce(username=CREDS.username, password=CREDS.password, security_token=CREDS.security_token,
                      session=_session(server))


@pytest.fixture()
def sf(server, emu) -> Salesforce:
    return _login(server)


def _direct(server, token: str) -> Salesforce:
    return Salesforce(instance_url=server.https_url, session_id=token, session=_session(server))


# -------------------------------------------------------------------------------------------------- logins


def test_soap_login_points_the_sdk_at_the_emulator(server, emu):
    sf = _login(server)
    assert sf.sf_instance == f"127.0.0.1:{server.tls_port}"
    assert sf.session_id.startswith(CREDS.org_id[:15] + "!")
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 24  # 25 accounts, one deleted
    assert server.calls.snapshot()["salesforce soap_login"] == 1


def test_bad_soap_password_is_an_invalid_login(server, emu):
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(username=CREDS.username, password="wrong", security_token=CREDS.security_token,
                   session=_session(server))
    assert caught.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token" in caught.value.auth_message


def test_client_credentials_login(server, emu):
    sf = Salesforce(consumer_key=CREDS.consumer_key, consumer_secret=CREDS.consumer_secret,
                    domain="healthsync-demo.my", session=_session(server))
    assert sf.query(f"SELECT Id FROM User WHERE Username = '{CREDS.username}'")["totalSize"] == 1
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(consumer_key=CREDS.consumer_key, consumer_secret="nope", domain="healthsync-demo.my",
                   session=_session(server))
    assert caught.value.code == "invalid_client"


def test_oauth_username_password_flow(server, emu):
    sf = Salesforce(username=CREDS.username, password=CREDS.password + CREDS.security_token,
                    consumer_key=CREDS.consumer_key, consumer_secret=CREDS.consumer_secret,
                    session=_session(server))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 96
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(username=CREDS.username, password=CREDS.password, consumer_key=CREDS.consumer_key,
                   consumer_secret=CREDS.consumer_secret, session=_session(server))
    assert (caught.value.code, caught.value.auth_message) == ("invalid_grant", "authentication failure")


def test_jwt_bearer_login_verifies_signature_subject_and_expiry(server, emu, tmp_path):
    emu.set_workdir(tmp_path)
    assert emu.jwt_private_key_path.parent == tmp_path
    sf = Salesforce(username=CREDS.username, consumer_key=CREDS.consumer_key,
                    privatekey_file=str(emu.jwt_private_key_path), session=_session(server))
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 24

    with pytest.raises(SalesforceAuthenticationFailed) as wrong_user:
        Salesforce(username="someone@else.test", consumer_key=CREDS.consumer_key,
                   privatekey_file=str(emu.jwt_private_key_path), session=_session(server))
    assert wrong_user.value.code == "invalid_grant"

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(SalesforceAuthenticationFailed) as bad_signature:
        Salesforce(username=CREDS.username, consumer_key=CREDS.consumer_key, privatekey=other_key.decode(),
                   session=_session(server))
    assert bad_signature.value.auth_message == "invalid assertion"

    expired = jwt.encode({"iss": CREDS.consumer_key, "sub": CREDS.username, "aud": "https://login.salesforce.com",
                          "exp": int(time.time()) - 600}, emu.jwt_private_key_path.read_bytes(), algorithm="RS256")
    answer = _session(server).post(server.https_url + "/services/oauth2/token",
                                   data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                         "assertion": expired})
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "expired authorization code"}


# -------------------------------------------------------------------------------------------------- SOQL


def test_query_all_iter_pages_through_three_pages(server, sf):
    ids = [r["Id"] for r in sf.query_all_iter("SELECT Id, Subject FROM Task", headers=SMALL_PAGES)]
    assert len(ids) == len(set(ids)) == 24 * 18  # live accounts x 18 tasks (calls + emails)
    calls = server.calls.snapshot()
    assert calls["salesforce query"] == 1 and calls["salesforce query_more"] == 2
    first = sf.query("SELECT Id FROM Task", headers=SMALL_PAGES)
    assert first["done"] is False and len(first["records"]) == 200 and first["totalSize"] == 432
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-200")
    with pytest.raises(SalesforceMalformedRequest) as bad_locator:
        sf.query_more("/services/data/v59.0/query/01gXXXXXXXXXXXXXXX-200", identifier_is_url=True)
    assert bad_locator.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_default_pages_hold_2000_rows(server, emu):
    for n in range(2100):
        emu.store.insert("Contact", {"LastName": f"Bulk{n}"}, emu.clock.now().replace(microsecond=0))
    sf = _login(server)
    first = sf.query("SELECT Id FROM Contact")
    assert len(first["records"]) == 2000 and not first["done"] and first["totalSize"] == 2196
    assert len(list(sf.query_all_iter("SELECT Id FROM Contact"))) == 2196


def test_query_hides_deleted_rows_and_query_all_shows_them(server, sf, emu):
    before = emu.clock.now().replace(microsecond=0)
    emu.delete("Account", fx.sf_id("001", 5))
    live = {r["Id"] for r in sf.query_all("SELECT Id FROM Account")["records"]}
    assert fx.sf_id("001", 5) not in live and len(live) == 23
    rows = sf.query_all("SELECT Id, IsDeleted, SystemModstamp FROM Account WHERE IsDeleted = true",
                        include_deleted=True)["records"]
    assert {r["Id"] for r in rows} == {fx.sf_id("001", 3), fx.sf_id("001", 5)}
    assert all(r["IsDeleted"] is True for r in rows)
    stamp = next(r["SystemModstamp"] for r in rows if r["Id"] == fx.sf_id("001", 5))
    assert stamp >= before.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    # deleting an account cascades to its contacts, as in a real org
    gone = sf.query_all(f"SELECT Id FROM Contact WHERE AccountId = '{fx.sf_id('001', 5)}' AND IsDeleted = true",
                        include_deleted=True)
    assert gone["totalSize"] == 4


def test_compound_cursor_pages_exactly_once_through_shared_stamps(sf):
    seen: list[str] = []
    stamp, last_id = "2000-01-01T00:00:00Z", "000000000000000"
    while True:
        soql = ("SELECT Id, SystemModstamp FROM Account "
                f"WHERE (SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > '{last_id}')) "
                "ORDER BY SystemModstamp, Id LIMIT 4")
        rows = sf.query(soql)["records"]
        if not rows:
            break
        seen += [r["Id"] for r in rows]
        stamp, last_id = rows[-1]["SystemModstamp"], rows[-1]["Id"]
    assert len(seen) == len(set(seen)) == 24
    assert seen == sorted(seen, key=lambda i: (int(i[6:15]) - 1) // 5) and fx.sf_id("001", 3) not in seen


def test_relationship_fields_render_as_nested_objects(sf, emu):
    orphan = emu.insert("Contact", {"LastName": "Orphan"})
    rows = sf.query_all("SELECT Id, Name, Account.Name, Account.Owner.Email, Owner.Email FROM Contact "
                        f"WHERE Id IN ('{fx.sf_id('003', 10)}', '{orphan}') ORDER BY Account.Name NULLS LAST")
    first, second = rows["records"]
    assert first["Account"]["Name"] == "Account 01"
    assert first["Account"]["attributes"]["type"] == "Account"
    assert first["Account"]["Owner"]["Email"] == "jamie@vendor.test"
    assert first["Owner"]["Email"] == "jamie@vendor.test"
    assert second["Id"] == orphan and second["Account"] is None


def test_soql_filters_order_limit_offset(sf):
    rows = sf.query("SELECT Name, NPS__c FROM Account WHERE NPS__c != null AND Plan_Tier__c IN ('Growth', 'Business') "
                    "ORDER BY NPS__c DESC, Name ASC LIMIT 3 OFFSET 1")["records"]
    assert [r["NPS__c"] for r in rows] == sorted([r["NPS__c"] for r in rows], reverse=True) and len(rows) == 3
    assert all(isinstance(r["NPS__c"], float) for r in rows)
    nulls_last = sf.query_all("SELECT Id, NPS__c FROM Account ORDER BY NPS__c ASC NULLS LAST")["records"]
    assert nulls_last[-1]["NPS__c"] is None and nulls_last[0]["NPS__c"] is not None
    assert sf.query("SELECT COUNT() FROM Account WHERE NOT Name LIKE 'account 1%'")["totalSize"] == 14
    after = sf.query("SELECT COUNT() FROM Account WHERE SystemModstamp >= 2024-05-01T00:02:00.000+0000 "
                     "AND Renewal_Date__c < 2024-07-14")["totalSize"]
    assert after == 2  # accounts 11 and 12: stamped from minute 2 on, renewing before 14 July
    assert sf.query("SELECT COUNT() FROM Account WHERE Renewal_Date__c < 2024-07-12")["totalSize"] == 9
    count = sf.query("SELECT COUNT(Id) total FROM Contact WHERE Left_Company__c = TRUE")["records"][0]["total"]
    assert count == 4


@pytest.mark.parametrize(("soql", "code", "fragment"), [
    ("SELECT Id, Foo__c FROM Account", "INVALID_FIELD", "No such column 'Foo__c' on entity 'Account'"),
    ("SELECT Id FROM Widget__c", "INVALID_TYPE", "sObject type 'Widget__c' is not supported"),
    ("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "MALFORMED_QUERY",
     "unexpected token: 'OR'"),
    ("SELECT Id FROM Account WHERE SystemModstamp > '2024-05-01T00:00:00Z'", "INVALID_FIELD",
     "must be of type dateTime and should not be enclosed in quotes"),
    # GROUP BY is supported (issue 12); selecting an ungrouped field is what the real org rejects
    ("SELECT Id FROM Account GROUP BY Name", "MALFORMED_QUERY", "Field must be grouped or aggregated: Id"),
    ("SELECT Id FROM Account WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"),
    ("SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"),
])
def test_bad_soql_is_rejected_with_real_error_shapes(sf, soql, code, fragment):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    error = caught.value.content[0]
    assert error["errorCode"] == code and fragment in error["message"]
    assert "ERROR at Row:1:Column:" in error["message"] or code == "INVALID_TYPE"


def test_odd_record_fault_corrupts_one_record_of_a_page(server, sf):
    server.faults.add(r"/query/", kind="odd_record")
    rows = sf.query("SELECT Id, Name, SystemModstamp FROM Account")["records"]
    assert sum(1 for r in rows if r["SystemModstamp"] is None) == 1
    assert all(r["SystemModstamp"] for r in sf.query("SELECT Id, SystemModstamp FROM Account")["records"])


# -------------------------------------------------------------------------------------------------- writes


def test_single_record_create_read_update_delete(server, sf, emu):
    emu.clock.advance(timedelta(hours=1))
    created = sf.Task.create({"Subject": "Health dropped", "WhatId": fx.sf_id("001", 1),
                              "OwnerId": fx.sf_id("005", 1), "ActivityDate": "2024-06-05", "Priority": "High"})
    assert created["success"] is True and created["id"].startswith("00T") and len(created["id"]) == 18
    task = sf.Task.get(created["id"])
    assert (task["Status"], task["IsClosed"], task["AccountId"]) == ("Not Started", False, fx.sf_id("001", 1))
    assert sf.Task.update(created["id"], {"Status": "Completed"}) == 204
    assert sf.Task.get(created["id"])["IsClosed"] is True
    account_id = fx.sf_id("001", 2)
    sf.Account.update(account_id, {"ARR__c": 99999.5})
    account = emu.record("Account", account_id)
    assert account["ARR__c"] == 99999.5
    assert account["SystemModstamp"].startswith(emu.clock.now().strftime("%Y-%m-%dT%H"))
    assert account["LastModifiedById"] == emu.store.acting_user_id  # the integration user
    assert sf.Task.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as deleted:
        sf.Task.get(created["id"])
    assert deleted.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


@pytest.mark.parametrize(("sobject", "body", "code"), [
    ("Account", {"Website": "x.test"}, "REQUIRED_FIELD_MISSING"),
    ("Account", {"Name": "X", "Foo__c": 1}, "INVALID_FIELD"),
    ("Account", {"Name": "X", "Plan_Tier__c": "Platinum"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ("Account", {"Name": "X", "ARR__c": "lots"}, "JSON_PARSER_ERROR"),
    ("Account", {"Name": "X", "CreatedDate": "2024-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ("Contact", {"LastName": "X", "AccountId": "001bad"}, "MALFORMED_ID"),
    ("Contact", {"LastName": "X", "AccountId": "001Fx0000000999"}, "INVALID_CROSS_REFERENCE_KEY"),
    ("Contact", {"LastName": "X", "AccountId": fx.sf_id("003", 10)}, "FIELD_INTEGRITY_EXCEPTION"),
    ("Task", {"Subject": "x", "OwnerId": fx.sf_id("005", 4)}, "INACTIVE_OWNER_OR_USER"),
    ("Task", {"Subject": "x" * 300}, "STRING_TOO_LONG"),
])
def test_invalid_writes_get_real_error_codes(sf, sobject, body, code):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        getattr(sf, sobject).create(body)
    assert caught.value.content[0]["errorCode"] == code


def test_helpers_edit_as_a_human_and_list_records(sf, emu):
    emu.clock.advance(timedelta(minutes=5))
    account_id = fx.sf_id("001", 7)
    fmt = "%Y-%m-%dT%H:%M:%S.000+0000"
    before = emu.clock.now().strftime(fmt)
    emu.update("Account", account_id, {"Payment_Status__c": "Failed"})
    after = emu.clock.now().strftime(fmt)
    row = sf.query(f"SELECT Payment_Status__c, LastModifiedById, SystemModstamp FROM Account WHERE Id = '{account_id}'"
                   )["records"][0]
    assert row["Payment_Status__c"] == "Failed"
    assert row["LastModifiedById"] == fx.sf_id("005", 2)  # the account owner, not the integration user
    assert before <= row["SystemModstamp"] <= after
    new_id = emu.insert("Account", {"Name": "Fresh Co", "OwnerId": fx.sf_id("005", 1)})
    names = {r["Name"] for r in emu.records("Account")}
    assert "Fresh Co" in names and "Account 03" not in names
    assert "Account 03" in {r["Name"] for r in emu.records("Account", include_deleted=True)}
    assert emu.record("Account", new_id)["CreatedById"] == fx.sf_id("005", 1)
    with pytest.raises(Exception, match="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"):
        emu.update("Account", account_id, {"Payment_Status__c": "Bankrupt"})


def test_collections_partial_failure_keeps_request_order(sf, emu):
    records = [
        {"attributes": {"type": "Account"}, "Id": fx.sf_id("001", 1), "NPS__c": 9},
        {"attributes": {"type": "Account"}, "Id": fx.sf_id("001", 2), "Plan_Tier__c": "Platinum"},
        {"attributes": {"type": "Account"}, "Id": fx.sf_id("001", 4), "NPS__c": 10},
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["id"] == fx.sf_id("001", 2)
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert emu.record("Account", fx.sf_id("001", 1))["NPS__c"] == 9.0
    assert emu.record("Account", fx.sf_id("001", 4))["NPS__c"] == 10.0

    created = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Task"}, "Subject": "ok", "WhatId": fx.sf_id("001", 1)},
        {"attributes": {"type": "Opportunity"}, "Name": "missing stage"},
    ]})
    assert created[0]["success"] and created[0]["id"].startswith("00T")
    assert created[1] == {"success": False, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message":
                          "Required fields are missing: [StageName, CloseDate]", "fields": ["StageName", "CloseDate"]}]}


def test_collections_all_or_none_rolls_everything_back(sf, emu):
    before = emu.record("Account", fx.sf_id("001", 1))
    records = [
        {"attributes": {"type": "Account"}, "Id": fx.sf_id("001", 1), "NPS__c": 1},
        {"attributes": {"type": "Account"}, "Id": fx.sf_id("001", 3), "NPS__c": 2},  # deleted account
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": True, "records": records})
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert emu.record("Account", fx.sf_id("001", 1)) == before


def test_collections_over_200_records_are_rejected(sf, emu):
    records = [{"attributes": {"type": "Task"}, "Subject": f"t{n}"} for n in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sf.query("SELECT COUNT() FROM Task WHERE Subject LIKE 't%'")["totalSize"] == 0


def test_collections_read_returns_null_for_missing_ids(sf):
    rows = sf.restful("composite/sobjects/Account", params={"ids": f"{fx.sf_id('001', 1)},001Fx0000000999AAA",
                                                            "fields": "Name,ARR__c"})
    assert rows[0]["Name"] == "Account 01" and rows[0]["ARR__c"] == 12000.0 and rows[1] is None


# -------------------------------------------------------------------------------------------------- sessions, limits, faults


def test_expired_session_relogin_for_credential_clients_only(server, sf, emu):
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 24
    emu.session_seconds = 60
    emu.clock.advance(timedelta(seconds=61))
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 24  # the SDK logged in again
    assert server.calls.snapshot()["salesforce soap_login"] == 2

    direct = _direct(server, emu.issue_token())
    assert direct.query("SELECT COUNT() FROM User")["totalSize"] == 5
    emu.expire_sessions()
    with pytest.raises(SalesforceExpiredSession) as caught:
        direct.query("SELECT COUNT() FROM User")
    assert caught.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_daily_api_limit_and_usage_header(server, sf, emu):
    emu.daily_limit = 5
    sf.query("SELECT Id FROM User")
    assert sf.api_usage["api-usage"].used == 1 and sf.api_usage["api-usage"].total == 5
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 5, "Remaining": 3}
    for _ in range(3):
        sf.query("SELECT Id FROM User")
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM User")
    assert caught.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    emu.clock.advance(timedelta(hours=24, seconds=1))  # the allocation is a rolling 24 hours
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 5


@pytest.mark.parametrize("status", [429, 503])
def test_injected_throttle_surfaces_as_general_error(server, sf, status):
    server.faults.add(r"/query/", kind="status", status=status, headers={"Retry-After": "1"})
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query("SELECT Id FROM Account")
    assert caught.value.status == status
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 24


# -------------------------------------------------------------------------------------------------- Bulk 2.0, Tooling


def test_bulk2_query_returns_csv_pages(server, sf):
    pages = list(sf.bulk2.Task.query("SELECT Id, Subject, Owner.Email, SystemModstamp FROM Task ORDER BY Id",
                                     max_records=150, wait=0))
    assert len(pages) == 3
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert len(rows) == 432 and len({r["Id"] for r in rows}) == 432
    assert rows[0]["Owner.Email"].endswith("@vendor.test") and rows[0]["SystemModstamp"].endswith(".000Z")
    hidden = list(sf.bulk2.Account.query("SELECT Id FROM Account WHERE IsDeleted = true", wait=0))
    assert hidden == ["Id\n"]
    deleted = "".join(sf.bulk2.Account.query_all("SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true",
                                                  wait=0))
    assert deleted == f"Id,IsDeleted\n{fx.sf_id('001', 3)},true\n"
    assert len(server.emulator("salesforce").bulk.jobs) == 3
    server.faults.add(r"/jobs/query$", method="POST", kind="odd_record")
    odd = list(csv.DictReader(io.StringIO("".join(sf.bulk2.Account.query(
        "SELECT Id, Name, SystemModstamp FROM Account", wait=0)))))
    assert len(odd) == 24 and sum(1 for r in odd if r["SystemModstamp"] == "") == 1


def test_tooling_custom_field_lifecycle(server, sf, emu):
    body = {"FullName": "Account.Health_Score__c",
            "Metadata": {"label": "Health Score", "type": "Number", "precision": 3, "scale": 0}}
    created = sf.toolingexecute("sobjects/CustomField/", method="POST", data=body)
    assert created["success"] is True and created["id"].startswith("00N")
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("tooling/sobjects/CustomField/", method="POST", json=body)
    assert caught.value.content[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"

    listed = sf.toolingexecute("query/?q=" + urllib.parse.quote(
        "SELECT Id, DeveloperName, TableEnumOrId FROM CustomField WHERE TableEnumOrId = 'Account'"))
    names = {r["DeveloperName"] for r in listed["records"]}
    assert {"Health_Score", "ARR", "Renewal_Date"} <= names

    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert fields["Health_Score__c"]["custom"] is True and fields["Health_Score__c"]["precision"] == 3
    sf.Account.update(fx.sf_id("001", 1), {"Health_Score__c": 72})
    assert sf.query(f"SELECT Health_Score__c FROM Account WHERE Id = '{fx.sf_id('001', 1)}'")["records"][0][
        "Health_Score__c"] == 72.0
    with pytest.raises(SalesforceMalformedRequest) as too_big:
        sf.Account.update(fx.sf_id("001", 1), {"Health_Score__c": 1000})
    assert too_big.value.content[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"

    emu.allow_metadata = False
    other = {"FullName": "Account.Health_Band__c", "Metadata": {"label": "Band", "type": "Text", "length": 20}}
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.restful("tooling/sobjects/CustomField/", method="POST", json=other)
    assert refused.value.content[0]["errorCode"] == "INSUFFICIENT_ACCESS"


def test_upsert_by_external_id_after_setup_creates_the_key_field(sf, emu):
    sf.restful("tooling/sobjects/CustomField/", method="POST", json={
        "FullName": "Task.Healthsync_Key__c",
        "Metadata": {"label": "Healthsync Key", "type": "Text", "length": 80, "externalId": True}})
    fields = {"Subject": "Renewal in 30 days", "WhatId": fx.sf_id("001", 1)}
    assert sf.Task.upsert("Healthsync_Key__c/A1-renewal-2024W23", fields) == 201
    assert sf.Task.upsert("Healthsync_Key__c/A1-renewal-2024W23", {"Priority": "High"}) in (200, 204)
    rows = sf.query("SELECT Id, Priority FROM Task WHERE Healthsync_Key__c = 'A1-renewal-2024W23'")["records"]
    assert len(rows) == 1 and rows[0]["Priority"] == "High"
