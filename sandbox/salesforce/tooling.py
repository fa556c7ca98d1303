"""The Tooling API slice that `healthsync setup` needs: create, list (SOQL over CustomField) and delete
custom fields; a created field becomes part of its sObject at once (describe, SOQL, writes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.schema import FieldDef, SObjectSchema, field_from_metadata
from healthsync.sandbox.salesforce.store import OrgStore


class Tooling:
    """Keeps the CustomField entity (its own store, queried with the same SOQL engine) in step with the org."""

    def __init__(self, org: OrgStore, tooling_store: OrgStore):
        self.org = org
        self.store = tooling_store

    def register_existing(self, now: datetime) -> None:
        """Every custom field the org was built with is visible to Tooling queries, as in a real org."""
        self.store.tables["CustomField"].clear()
        for schema in self.org.schemas.values():
            for definition in schema.fields.values():
                if definition.custom:
                    self._add_row(schema.name, definition, now, description=None)

    def create(self, body: Any, now: datetime) -> str:
        if not isinstance(body, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        full_name = str(body.get("FullName") or "")
        sobject, definition = field_from_metadata(full_name, body.get("Metadata"), self.org.schemas)
        schema = self.org.schemas[sobject]
        if schema.field(definition.name) is not None:
            raise SfError(400, "DUPLICATE_DEVELOPER_NAME",
                          f"There's already a field named {definition.name.removesuffix('__c')} on {sobject}.",
                          ["FullName"])
        self._add_field(schema, definition)
        return self._add_row(sobject, definition, now, description=(body.get("Metadata") or {}).get("description"))

    def delete(self, field_id: str, now: datetime) -> None:
        row = self.get(field_id)
        schema = self.org.schemas[row["TableEnumOrId"]]
        schema.fields.pop(row["FullName"].split(".", 1)[1].lower(), None)
        self.store.tables["CustomField"].pop(ids.key15(row["Id"]), None)

    def get(self, field_id: str) -> dict[str, Any]:
        found = self.store.find(field_id) if ids.is_well_formed(field_id) else None
        if found is None:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        return found[1]

    def _add_field(self, schema: SObjectSchema, definition: FieldDef) -> None:
        schema.add(definition)
        for record in self.org.tables[schema.name].values():
            record.setdefault(definition.name, definition.default)

    def _add_row(self, sobject: str, definition: FieldDef, now: datetime, description: str | None) -> str:
        field_id = self.store.minter.mint("00N", self.store.tables["CustomField"])
        self.store.tables["CustomField"][ids.key15(field_id)] = {
            "Id": field_id, "DeveloperName": definition.name.removesuffix("__c"), "TableEnumOrId": sobject,
            "NamespacePrefix": None, "FullName": f"{sobject}.{definition.name}", "Description": description,
            "CreatedDate": now, "LastModifiedDate": now, "IsDeleted": False,
        }
        return field_id
