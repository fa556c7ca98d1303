"""The emulated org's metadata: field definitions of each sObject (standard fields plus the custom fields a
customer-success org would have), describe output, and custom fields added through the Tooling API."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.ids import KEY_PREFIXES

TEXT_TYPES = {"string", "textarea", "email", "url", "phone", "picklist", "combobox"}
NUMBER_TYPES = {"double", "currency", "percent", "int"}
ID_TYPES = {"id", "reference"}
_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "double": "xsd:double",
    "currency": "xsd:double", "percent": "xsd:double", "int": "xsd:int", "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    label: str
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    required: bool = False  # must be given on create (not nillable and no default)
    length: int = 0
    precision: int = 0
    scale: int = 0
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: Any = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    name_field: bool = False
    external_id: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "label": self.label, "type": self.type, "custom": self.custom,
            "createable": self.createable, "updateable": self.updateable, "nillable": self.nillable,
            "defaultedOnCreate": self.default is not None or self.name in _SYSTEM_DEFAULTED,
            "defaultValue": self.default if not isinstance(self.default, bool) else None,
            "defaultValueFormula": None, "length": self.length, "byteLength": self.length * 3,
            "precision": self.precision, "scale": self.scale, "digits": 9 if self.type == "int" else 0,
            "filterable": self.type != "textarea" or self.length <= 255, "sortable": self.type != "textarea",
            "groupable": self.type not in {"textarea", "double", "currency", "percent", "datetime"},
            "unique": False, "externalId": self.external_id,
            "idLookup": self.type == "id" or self.name_field or self.external_id,
            "nameField": self.name_field, "calculated": False, "autoNumber": False,
            "picklistValues": [
                {"active": True, "defaultValue": value == self.default, "label": value, "value": value,
                 "validFor": None}
                for value in self.picklist
            ],
            "restrictedPicklist": self.restricted, "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name, "polymorphicForeignKey": len(self.reference_to) > 1,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
        }


@dataclass(frozen=True)
class ChildRelationship:
    """A parent-to-child relationship a SOQL subquery names in FROM (`SELECT (SELECT Id FROM Contacts) FROM
    Account`), as describe's `childRelationships` lists it ("Understanding Relationship Names", SOQL and SOSL
    Reference, sforce_api_calls_soql_relationships_and_custom_objects.htm)."""

    name: str
    child: str
    field: str
    cascade_delete: bool = False

    def describe(self) -> dict[str, Any]:
        return {"cascadeDelete": self.cascade_delete, "childSObject": self.child, "deprecatedAndHidden": False,
                "field": self.field, "junctionIdListNames": [], "junctionReferenceTo": [],
                "relationshipName": self.name, "restrictedDelete": False}


# Standard relationship names of the objects we emulate (the Object Reference's "Relationships" of each).
CHILD_RELATIONSHIPS: dict[str, tuple[ChildRelationship, ...]] = {
    "Account": (ChildRelationship("Contacts", "Contact", "AccountId", True),
                ChildRelationship("Opportunities", "Opportunity", "AccountId", True),
                ChildRelationship("Cases", "Case", "AccountId"),
                ChildRelationship("Tasks", "Task", "WhatId", True),
                ChildRelationship("Events", "Event", "WhatId", True)),
    "Contact": (ChildRelationship("Cases", "Case", "ContactId"),
                ChildRelationship("Tasks", "Task", "WhoId", True),
                ChildRelationship("Events", "Event", "WhoId", True)),
    "Opportunity": (ChildRelationship("Tasks", "Task", "WhatId", True),
                    ChildRelationship("Events", "Event", "WhatId", True)),
    "Case": (ChildRelationship("Tasks", "Task", "WhatId", True),
             ChildRelationship("Events", "Event", "WhatId", True)),
}


_SYSTEM_DEFAULTED = {"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById",
                     "LastModifiedById", "OwnerId"}


@dataclass
class SObjectSchema:
    name: str
    label: str
    label_plural: str
    fields: dict[str, FieldDef] = field(default_factory=dict)  # lower-case name -> definition
    createable: bool = True

    @property
    def key_prefix(self) -> str:
        return KEY_PREFIXES[self.name]

    def add(self, definition: FieldDef) -> None:
        self.fields[definition.name.lower()] = definition

    def field(self, name: str) -> FieldDef | None:
        return self.fields.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        lowered = name.lower()
        for definition in self.fields.values():
            if definition.relationship_name and definition.relationship_name.lower() == lowered:
                return definition
        return None

    def require_field(self, name: str) -> FieldDef:
        definition = self.field(name)
        if definition is None:
            raise SfError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {self.name}")
        return definition

    def child_relationship(self, name: str) -> ChildRelationship | None:
        lowered = name.lower()
        return next((c for c in CHILD_RELATIONSHIPS.get(self.name, ()) if c.name.lower() == lowered), None)

    def describe(self, version: str) -> dict[str, Any]:
        summary = self.summary(version)
        summary["fields"] = [definition.describe() for definition in self.fields.values()]
        summary["childRelationships"] = [c.describe() for c in CHILD_RELATIONSHIPS.get(self.name, ())]
        summary["recordTypeInfos"] = []
        return summary

    def summary(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name, "label": self.label, "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix, "custom": False, "queryable": True, "searchable": True,
            "createable": self.createable, "updateable": True, "deletable": True, "retrieveable": True,
            "layoutable": True, "replicateable": True, "triggerable": True,
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }


# ------------------------------------------------------------------------------------------------ builders


def _f(name: str, type_: str, label: str | None = None, **kw: Any) -> FieldDef:
    if type_ in {"string", "email", "url", "phone", "picklist"} and "length" not in kw:
        kw["length"] = 255
    if type_ in NUMBER_TYPES and type_ != "int" and "precision" not in kw:
        kw["precision"], kw["scale"] = 18, 2
    if type_ == "boolean":
        kw.setdefault("nillable", False)
        kw.setdefault("default", False)
    return FieldDef(name=name, type=type_, label=label or _label(name), custom=name.endswith("__c"), **kw)


def _label(name: str) -> str:
    core = name.removesuffix("__c").removesuffix("Id") if name != "Id" else "Record ID"
    return core.replace("_", " ").strip() or name


def _readonly(name: str, type_: str, label: str | None = None, **kw: Any) -> FieldDef:
    return _f(name, type_, label, createable=False, updateable=False, **kw)


def _ref(name: str, targets: tuple[str, ...], relationship: str, label: str, **kw: Any) -> FieldDef:
    return _f(name, "reference", label, length=18, reference_to=targets, relationship_name=relationship, **kw)


def _system_fields() -> list[FieldDef]:
    return [
        _readonly("Id", "id", "Record ID", nillable=False, length=18),
        _readonly("IsDeleted", "boolean", "Deleted"),
        _readonly("CreatedDate", "datetime", "Created Date", nillable=False),
        _ref("CreatedById", ("User",), "CreatedBy", "Created By ID", createable=False, updateable=False,
             nillable=False),
        _readonly("LastModifiedDate", "datetime", "Last Modified Date", nillable=False),
        _ref("LastModifiedById", ("User",), "LastModifiedBy", "Last Modified By ID", createable=False,
             updateable=False, nillable=False),
        _readonly("SystemModstamp", "datetime", "System Modstamp", nillable=False),
    ]


def _owner() -> FieldDef:
    return _ref("OwnerId", ("User",), "Owner", "Owner ID", nillable=False)


def _account() -> SObjectSchema:
    schema = SObjectSchema("Account", "Account", "Accounts")
    for definition in [
        *_system_fields(),
        _f("Name", "string", "Account Name", nillable=False, required=True, name_field=True),
        _f("Type", "picklist", "Account Type", picklist=("Prospect", "Customer - Direct", "Customer - Channel",
                                                          "Channel Partner / Reseller", "Other")),
        _f("Industry", "picklist", picklist=("Technology", "Finance", "Healthcare", "Retail", "Manufacturing",
                                             "Education", "Media", "Other")),
        _f("Website", "url"),
        _f("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        _f("Description", "textarea", "Account Description", length=32000),
        _owner(),
        _f("ARR__c", "currency", "ARR"),
        _f("ACV__c", "currency", "ACV"),
        _f("Renewal_Date__c", "date"),
        _f("Plan_Tier__c", "picklist", picklist=("Starter", "Growth", "Business", "Enterprise"), restricted=True),
        _f("Seats_Purchased__c", "double", precision=18, scale=0),
        _f("Usage_Capacity__c", "double", precision=18, scale=0),
        _f("Contract_Start_Date__c", "date"),
        _f("Payment_Status__c", "picklist", picklist=("Current", "Overdue", "Failed"), restricted=True),
        _f("NPS__c", "double", "NPS", precision=3, scale=0),
    ]:
        schema.add(definition)
    return schema


def _contact() -> SObjectSchema:
    schema = SObjectSchema("Contact", "Contact", "Contacts")
    for definition in [
        *_system_fields(),
        _ref("AccountId", ("Account",), "Account", "Account ID"),
        _f("FirstName", "string", "First Name", length=40),
        _f("LastName", "string", "Last Name", length=80, nillable=False, required=True),
        _readonly("Name", "string", "Full Name", length=121, name_field=True, nillable=False),
        _f("Email", "email"),
        _f("Title", "string", length=128),
        _owner(),
        _f("Contact_Role__c", "picklist", "Contact Role",
           picklist=("Champion", "Executive Sponsor", "Admin", "User"), restricted=True),
        _f("Is_Champion__c", "boolean", "Is Champion"),
        _f("Left_Company__c", "boolean", "Left Company"),
        _f("Left_Company_Date__c", "date"),
        _f("Role_Changed_Date__c", "date"),
    ]:
        schema.add(definition)
    return schema


def _opportunity() -> SObjectSchema:
    schema = SObjectSchema("Opportunity", "Opportunity", "Opportunities")
    for definition in [
        *_system_fields(),
        _ref("AccountId", ("Account",), "Account", "Account ID"),
        _f("Name", "string", length=120, nillable=False, required=True, name_field=True),
        _f("Type", "picklist", "Opportunity Type", picklist=("New Business", "Renewal", "Expansion")),
        _f("Amount", "currency"),
        _f("StageName", "picklist", "Stage", nillable=False, required=True, picklist=(
            "Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Proposal/Price Quote",
            "Negotiation/Review", "Closed Won", "Closed Lost")),
        _readonly("IsClosed", "boolean", "Closed"),
        _readonly("IsWon", "boolean", "Won"),
        _f("CloseDate", "date", "Close Date", nillable=False, required=True),
        _owner(),
        _f("Loss_Reason__c", "picklist", "Loss Reason", picklist=(
            "Missing features", "Low adoption", "Switched to competitor", "Poor support experience",
            "Reliability issues", "Too expensive", "Budget cut", "Acquired / merged", "Strategy change",
            "Champion left", "No decision", "Other")),
    ]:
        schema.add(definition)
    return schema


def _activity_fields() -> list[FieldDef]:
    return [
        *_system_fields(),
        _ref("WhatId", ("Account", "Opportunity", "Case"), "What", "Related To ID"),
        _ref("WhoId", ("Contact",), "Who", "Name ID"),
        _ref("AccountId", ("Account",), "Account", "Account ID", createable=False, updateable=False),
        _owner(),
        _f("Subject", "combobox", length=255),
        _f("Description", "textarea", length=32000),
        _f("ActivityDate", "date", "Due Date Only"),
    ]


def _task() -> SObjectSchema:
    schema = SObjectSchema("Task", "Task", "Tasks")
    for definition in [
        *_activity_fields(),
        _f("Status", "picklist", nillable=False, default="Not Started", restricted=True, picklist=(
            "Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")),
        _f("Priority", "picklist", nillable=False, default="Normal", restricted=True,
           picklist=("High", "Normal", "Low")),
        _readonly("IsClosed", "boolean", "Closed"),
        _f("TaskSubtype", "picklist", "Task Subtype", updateable=False, restricted=True, default="Task",
           picklist=("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")),
        _f("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
        _f("CallType", "picklist", "Call Type", restricted=True, picklist=("Internal", "Inbound", "Outbound")),
        _f("CallDisposition", "string", "Call Result"),
        _f("Direction__c", "picklist", "Direction", restricted=True, picklist=("Inbound", "Outbound")),
    ]:
        schema.add(definition)
    return schema


def _event() -> SObjectSchema:
    schema = SObjectSchema("Event", "Event", "Events")
    for definition in [
        *_activity_fields(),
        _f("StartDateTime", "datetime", "Start Date Time"),
        _f("EndDateTime", "datetime", "End Date Time"),
        _f("ActivityDateTime", "datetime", "Due Date Time"),
        _f("DurationInMinutes", "int", "Duration"),
        _f("Type", "picklist", picklist=("Meeting", "QBR", "Call", "Email", "Other")),
        _f("Outcome__c", "picklist", "Outcome", restricted=True, picklist=("Held", "No Show", "Cancelled")),
    ]:
        schema.add(definition)
    return schema


def _user() -> SObjectSchema:
    schema = SObjectSchema("User", "User", "Users")
    for definition in [
        *_system_fields(),
        _f("Username", "string", length=80, nillable=False, required=True),
        _f("FirstName", "string", "First Name", length=40),
        _f("LastName", "string", "Last Name", length=80, nillable=False, required=True),
        _readonly("Name", "string", "Full Name", length=121, name_field=True, nillable=False),
        _f("Email", "email", nillable=False, required=True),
        _f("Alias", "string", length=8),
        _f("IsActive", "boolean", "Active", default=True),
        _f("Title", "string", length=80),
        _f("Department", "string", length=80),
    ]:
        schema.add(definition)
    return schema


def _case() -> SObjectSchema:
    """The standard Case object (Object Reference for Salesforce and Lightning Platform, "Case":
    developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_case.htm),
    with its default picklist values."""
    schema = SObjectSchema("Case", "Case", "Cases")
    for definition in [
        *_system_fields(),
        _readonly("CaseNumber", "string", "Case Number", length=30, name_field=True),
        _ref("AccountId", ("Account",), "Account", "Account ID"),
        _ref("ContactId", ("Contact",), "Contact", "Contact ID"),
        _f("Subject", "string"),
        _f("Description", "textarea", length=32000),
        _f("Status", "picklist", nillable=False, default="New",
           picklist=("New", "Working", "Escalated", "Closed")),
        _f("Priority", "picklist", default="Medium", picklist=("High", "Medium", "Low")),
        _f("Origin", "picklist", "Case Origin", picklist=("Phone", "Email", "Web")),
        _f("Type", "picklist", "Case Type",
           picklist=("Mechanical", "Electrical", "Electronic", "Structural", "Other")),
        _f("Reason", "picklist", "Case Reason", picklist=(
            "Installation", "Equipment Complexity", "Performance", "Breakdown", "Equipment Design", "Feedback",
            "Other")),
        _readonly("IsClosed", "boolean", "Closed"),
        _readonly("ClosedDate", "datetime", "Closed Date"),
        _f("IsEscalated", "boolean", "Escalated"),
        _f("SuppliedEmail", "email", "Web Email", length=80),
        _owner(),
    ]:
        schema.add(definition)
    return schema


def _custom_field_entity() -> SObjectSchema:
    """The Tooling API's CustomField, queryable with SOQL like any sObject."""
    schema = SObjectSchema("CustomField", "Custom Field", "Custom Fields", createable=True)
    for definition in [
        _readonly("Id", "id", "Custom Field Definition ID", nillable=False, length=18),
        _readonly("DeveloperName", "string", "Field Name", length=40),
        _readonly("TableEnumOrId", "string", "Table Enum or ID", length=40),
        _readonly("NamespacePrefix", "string", "Namespace Prefix", length=15),
        _readonly("FullName", "string", "Full Name", length=255),
        _readonly("Description", "textarea", length=1000),
        _readonly("CreatedDate", "datetime", "Created Date"),
        _readonly("LastModifiedDate", "datetime", "Last Modified Date"),
        _readonly("IsDeleted", "boolean", "Deleted"),
    ]:
        schema.add(definition)
    return schema


def standard_schemas() -> dict[str, SObjectSchema]:
    builders = (_account, _contact, _opportunity, _case, _task, _event, _user)
    return {schema.name: schema for schema in (build() for build in builders)}


def tooling_schemas() -> dict[str, SObjectSchema]:
    return {"CustomField": _custom_field_entity()}


# ------------------------------------------------------------------------------------------------ tooling

_METADATA_TYPES = {
    "Number": "double", "Currency": "currency", "Percent": "percent", "Text": "string", "TextArea": "textarea",
    "LongTextArea": "textarea", "Date": "date", "DateTime": "datetime", "Checkbox": "boolean",
    "Picklist": "picklist", "Email": "email", "Url": "url", "Phone": "phone",
}


def field_from_metadata(full_name: str, metadata: Any, schemas: dict[str, SObjectSchema]) -> tuple[str, FieldDef]:
    """Validate a Tooling API CustomField body and build the field it defines. Returns (sObject, field)."""
    sobject, _, api_name = (full_name or "").partition(".")
    if sobject not in schemas:
        raise SfError(400, "INVALID_TYPE", f"Cannot find the object '{sobject}' for custom field '{full_name}'")
    if not api_name.endswith("__c") or not api_name[:-3].replace("_", "a").isalnum() or "__" in api_name[:-3]:
        raise SfError(400, "INVALID_FIELD",
                      f"Invalid field name '{api_name}': custom field names end in __c and use letters, "
                      "digits and single underscores")
    if not isinstance(metadata, dict):
        raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Metadata]", ["Metadata"])
    missing = [key for key in ("label", "type") if not metadata.get(key)]
    if missing:
        raise SfError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", missing)
    kind = _METADATA_TYPES.get(str(metadata["type"]))
    if kind is None:
        raise SfError(400, "FIELD_INTEGRITY_EXCEPTION",
                      f"Invalid field type '{metadata['type']}'. Supported: {sorted(_METADATA_TYPES)}")
    definition = _build_custom(api_name, kind, metadata)
    if metadata.get("externalId"):
        if kind not in {"string", "double", "email"}:
            raise SfError(400, "FIELD_INTEGRITY_EXCEPTION",
                          f"{definition.label}: only Text, Number and Email fields can be external ids")
        definition = replace(definition, external_id=True)
    return sobject, definition


def _build_custom(api_name: str, kind: str, metadata: dict[str, Any]) -> FieldDef:
    label = str(metadata["label"])
    if kind in {"double", "currency", "percent"}:
        precision, scale = int(metadata.get("precision") or 18), int(metadata.get("scale") or 0)
        if not 1 <= precision <= 18 or not 0 <= scale <= precision:
            raise SfError(400, "FIELD_INTEGRITY_EXCEPTION",
                          f"{label}: precision must be 1-18 and scale between 0 and precision")
        return _f(api_name, kind, label, precision=precision, scale=scale)
    if kind == "string":
        return _f(api_name, kind, label, length=_length(metadata, 255, label))
    if kind == "textarea":
        return _f(api_name, kind, label, length=_length(metadata, 131072 if metadata["type"] == "LongTextArea"
                                                         else 255, label))
    if kind == "boolean":
        return _f(api_name, kind, label, default=str(metadata.get("defaultValue", "false")).lower() == "true")
    if kind == "picklist":
        values = _picklist_values(metadata)
        restricted = bool((metadata.get("valueSet") or {}).get("restricted"))
        return _f(api_name, kind, label, picklist=values, restricted=restricted)
    return _f(api_name, kind, label)


def _length(metadata: dict[str, Any], maximum: int, label: str) -> int:
    length = int(metadata.get("length") or 0)
    if not 1 <= length <= maximum:
        raise SfError(400, "FIELD_INTEGRITY_EXCEPTION", f"{label}: length must be between 1 and {maximum}")
    return length


def _picklist_values(metadata: dict[str, Any]) -> tuple[str, ...]:
    value_set = metadata.get("valueSet") or {}
    definition = value_set.get("valueSetDefinition") or {}
    values = tuple(str(v.get("fullName") or v.get("label")) for v in definition.get("value") or [])
    if not values:
        raise SfError(400, "FIELD_INTEGRITY_EXCEPTION",
                      "Picklist fields need valueSet.valueSetDefinition.value with at least one value")
    return values

