"""Bulk API 1.0 against the documented flow and shapes ("Bulk API 2.0 and Bulk API Developer Guide", Bulk API
1.0 part): the unmodified simple-salesforce bulk handler, and plain HTTP for the XML side and the errors."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

NS = "{http://www.force.com/2009/06/asyncapi/dataload}"
JOB_KEYS = {"id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state", "concurrencyMode",
            "contentType", "numberBatchesQueued", "numberBatchesInProgress", "numberBatchesCompleted",
            "numberBatchesFailed", "numberBatchesTotal", "numberRecordsProcessed", "numberRetries", "apiVersion"}


def _async(server, path: str) -> str:
    return f"{server.https_url}/services/async/59.0/{path}"


def test_sdk_bulk_query_and_insert(sf):
    rows = sf.bulk.Account.query("SELECT Id, Name FROM Account ORDER BY Name")
    assert len(rows) == 5 and rows[0]["attributes"]["type"] == "Account" and rows[0]["Name"]
    results = sf.bulk.Contact.insert([{"LastName": "Bulk", "AccountId": rows[0]["Id"]}, {"FirstName": "No last"}])
    assert results[0]["success"] is True and results[0]["created"] is True and results[0]["id"].startswith("003")
    assert results[1]["success"] is False and results[1]["errors"][0].startswith("REQUIRED_FIELD_MISSING")


def test_xml_job_csv_query_batch_result_list_and_result(server, http, sf_token):
    # "Create a Job" (XML jobInfo), "Add a Batch" (the SOQL as text/csv), "Get Batch Results" (result-list),
    # then each result as CSV with a header row
    headers = {"X-SFDC-Session": sf_token, "Content-Type": "application/xml; charset=UTF-8"}
    body = (f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS[1:-1]}"><operation>query</operation>'
            "<object>Contact</object><contentType>CSV</contentType></jobInfo>")
    created = http.post(_async(server, "job"), data=body, headers=headers, timeout=10)
    assert created.status_code == 201
    job = {e.tag.removeprefix(NS): e.text for e in ET.fromstring(created.content)}
    assert JOB_KEYS <= set(job) and job["state"] == "Open" and job["object"] == "Contact"
    batch = http.post(_async(server, f"job/{job['id']}/batch"), data="SELECT Id, LastName FROM Contact",
                      headers={**headers, "Content-Type": "text/csv"}, timeout=10)
    info = {e.tag.removeprefix(NS): e.text for e in ET.fromstring(batch.content)}
    assert batch.status_code == 201 and info["state"] == "Queued" and info["jobId"] == job["id"]
    polled = http.get(_async(server, f"job/{job['id']}/batch/{info['id']}"), headers=headers, timeout=10)
    assert {e.tag.removeprefix(NS): e.text for e in ET.fromstring(polled.content)}["state"] == "Completed"
    listing = http.get(_async(server, f"job/{job['id']}/batch/{info['id']}/result"), headers=headers, timeout=10)
    results = [e.text for e in ET.fromstring(listing.content) if e.tag == f"{NS}result"]
    assert len(results) == 1
    data = http.get(_async(server, f"job/{job['id']}/batch/{info['id']}/result/{results[0]}"), headers=headers,
                    timeout=10)
    table = list(csv.DictReader(io.StringIO(data.text)))
    assert data.headers["Content-Type"].startswith("text/csv") and len(table) >= 20 and set(table[0]) == {"Id", "LastName"}
    closed = http.post(_async(server, f"job/{job['id']}"), headers=headers, timeout=10,
                       data=f'<jobInfo xmlns="{NS[1:-1]}"><state>Closed</state></jobInfo>')
    assert {e.tag.removeprefix(NS): e.text for e in ET.fromstring(closed.content)}["state"] == "Closed"


def test_pk_chunking_splits_a_query_into_batches(server, http, sf_token):
    # "PK Chunking Header": the original batch is Not Processed; one batch per chunk holds the results
    headers = {"X-SFDC-Session": sf_token, "Content-Type": "application/json",
               "Sforce-Enable-PKChunking": "chunkSize=10"}
    job = http.post(_async(server, "job"), json={"operation": "queryAll", "object": "Contact", "contentType": "JSON"},
                    headers=headers, timeout=10).json()
    original = http.post(_async(server, f"job/{job['id']}/batch"), data="SELECT Id FROM Contact",
                         headers=headers, timeout=10).json()
    batches = http.get(_async(server, f"job/{job['id']}/batch"), headers=headers, timeout=10).json()["batchInfo"]
    states = {b["id"]: b["state"] for b in batches}
    assert states.pop(original["id"]) == "Not Processed"
    assert len(states) >= 3 and set(states.values()) == {"Completed"}
    assert sum(b["numberRecordsProcessed"] for b in batches) >= 24


def test_errors_use_exception_code(server, http, sf_token):
    # "Errors": {exceptionCode, exceptionMessage} in the request's format
    bad_session = http.get(_async(server, "job/750000000000000AAA"), headers={"X-SFDC-Session": "nope"}, timeout=10)
    assert bad_session.status_code == 400
    assert ET.fromstring(bad_session.content).find(f"{NS}exceptionCode").text == "InvalidSessionId"
    unknown = http.get(_async(server, "job/750000000000000AAA"), timeout=10,
                       headers={"X-SFDC-Session": sf_token, "Content-Type": "application/json"})
    assert unknown.status_code == 400 and unknown.json()["exceptionCode"] == "InvalidJob"
    entity = http.post(_async(server, "job"), json={"operation": "insert", "object": "Nope", "contentType": "CSV"},
                       headers={"X-SFDC-Session": sf_token, "Content-Type": "application/json"}, timeout=10)
    assert entity.json() == {"exceptionCode": "InvalidEntity",
                             "exceptionMessage": "InvalidEntity : Entity 'Nope' is not supported by the Bulk API."}
    nowhere = http.get(_async(server, "nowhere"), headers={"X-SFDC-Session": sf_token}, timeout=10)
    assert nowhere.status_code == 404
    assert ET.fromstring(nowhere.content).find(f"{NS}exceptionCode").text == "InvalidUrl"
