"""HubSpot's object-type names and its HUBSPOT_DEFINED association type ids, as the real portal reports them."""

from __future__ import annotations

from dataclasses import dataclass

# Plural API name -> (singular name used in association labels, objectTypeId).
OBJECT_TYPES: dict[str, tuple[str, str]] = {
    "contacts": ("contact", "0-1"),
    "companies": ("company", "0-2"),
    "deals": ("deal", "0-3"),
    "tickets": ("ticket", "0-5"),  # "Tickets" guide, developers.hubspot.com/docs/api/crm/tickets
    "tasks": ("task", "0-27"),
    "notes": ("note", "0-46"),
    "meetings": ("meeting", "0-47"),
    "calls": ("call", "0-48"),
    "emails": ("email", "0-49"),
}

ENGAGEMENT_TYPES = ("tasks", "notes", "meetings", "calls", "emails")

_ALIASES: dict[str, str] = {}
for _plural, (_singular, _type_id) in OBJECT_TYPES.items():
    for _alias in (_plural, _singular, _type_id):
        _ALIASES[_alias] = _plural


def normalize_type(name: str) -> str | None:
    """The plural API name for any spelling HubSpot accepts (`company`, `companies`, `0-2`), else None."""
    return _ALIASES.get(name.strip().lower())


def singular(object_type: str) -> str:
    return OBJECT_TYPES[object_type][0]


def type_id(object_type: str) -> str:
    return OBJECT_TYPES[object_type][1]


@dataclass(frozen=True)
class AssociationKind:
    from_type: str
    to_type: str
    type_id: int
    reverse_id: int
    label: str | None = None  # "Primary" for the primary company of a contact / deal


# Default (unlabelled) types first: the first kind listed for a pair is what "default" associations use.
_KINDS = [
    AssociationKind("contacts", "companies", 279, 280),
    AssociationKind("contacts", "companies", 1, 2, "Primary"),
    AssociationKind("deals", "companies", 341, 342),
    AssociationKind("deals", "companies", 5, 6, "Primary"),
    AssociationKind("deals", "contacts", 3, 4),
    AssociationKind("tasks", "companies", 192, 191),
    AssociationKind("tasks", "contacts", 204, 203),
    AssociationKind("tasks", "deals", 216, 215),
    AssociationKind("meetings", "companies", 188, 187),
    AssociationKind("meetings", "contacts", 200, 199),
    AssociationKind("meetings", "deals", 212, 211),
    AssociationKind("calls", "companies", 182, 181),
    AssociationKind("calls", "contacts", 194, 193),
    AssociationKind("calls", "deals", 206, 205),
    AssociationKind("emails", "companies", 186, 185),
    AssociationKind("emails", "contacts", 198, 197),
    AssociationKind("emails", "deals", 210, 209),
    AssociationKind("notes", "companies", 190, 189),
    AssociationKind("notes", "contacts", 202, 201),
    AssociationKind("notes", "deals", 214, 213),
    # Tickets: the HUBSPOT_DEFINED ids of "Associations v4 > association type IDs" (ticket → contact 16,
    # contact → ticket 15, ticket → company 339 unlabelled / 26 primary, ticket → deal 28, engagements 219-230)
    AssociationKind("tickets", "contacts", 16, 15),
    AssociationKind("tickets", "companies", 339, 340),
    AssociationKind("tickets", "companies", 26, 25, "Primary"),
    AssociationKind("tickets", "deals", 28, 27),
    AssociationKind("tickets", "calls", 219, 220),
    AssociationKind("tickets", "emails", 223, 224),
    AssociationKind("tickets", "meetings", 225, 226),
    AssociationKind("tickets", "notes", 227, 228),
    AssociationKind("tickets", "tasks", 229, 230),
]

# (from, to, typeId) -> (reverse typeId, label) for HUBSPOT_DEFINED kinds, both directions.
_BY_ID: dict[tuple[str, str, int], tuple[int, str | None]] = {}
# typeId -> (from, to): lets a create body's association spec name its target type.
_PAIR_OF_ID: dict[int, tuple[str, str]] = {}
_DEFAULT: dict[tuple[str, str], int] = {}
for _k in _KINDS:
    _BY_ID[(_k.from_type, _k.to_type, _k.type_id)] = (_k.reverse_id, _k.label)
    _BY_ID[(_k.to_type, _k.from_type, _k.reverse_id)] = (_k.type_id, _k.label)
    _PAIR_OF_ID[_k.type_id] = (_k.from_type, _k.to_type)
    _PAIR_OF_ID[_k.reverse_id] = (_k.to_type, _k.from_type)
    _DEFAULT.setdefault((_k.from_type, _k.to_type), _k.type_id)
    _DEFAULT.setdefault((_k.to_type, _k.from_type), _k.reverse_id)


def default_type_id(from_type: str, to_type: str) -> int | None:
    return _DEFAULT.get((from_type, to_type))


def pair_of_type_id(association_type_id: int) -> tuple[str, str] | None:
    return _PAIR_OF_ID.get(association_type_id)


def reverse_of(from_type: str, to_type: str, category: str, association_type_id: int) -> tuple[int, str | None]:
    """The type id (and label) the other side of an association carries. USER_DEFINED labels are
    symmetric in this emulator (HubSpot pairs them per label; the id is the same on both sides here)."""
    if category == "HUBSPOT_DEFINED":
        found = _BY_ID.get((from_type, to_type, association_type_id))
        if found is not None:
            return found
    return association_type_id, None


def is_known_hubspot_defined(from_type: str, to_type: str, association_type_id: int) -> bool:
    return (from_type, to_type, association_type_id) in _BY_ID


def label_of(from_type: str, to_type: str, category: str, association_type_id: int) -> str | None:
    found = _BY_ID.get((from_type, to_type, association_type_id)) if category == "HUBSPOT_DEFINED" else None
    return found[1] if found else None


def v3_type_name(from_type: str, to_type: str) -> str:
    """The `type` string the v3 object API shows in `associations.<to>.results[]`, e.g. `company_to_contact`."""
    return f"{singular(from_type)}_to_{singular(to_type)}"
