"""The portal's in-memory objects and associations (callers hold the emulator's lock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from healthsync.sandbox.hubspot.schema import CREATED_PROPERTY, format_datetime
from healthsync.sandbox.hubspot.types import OBJECT_TYPES, label_of, reverse_of

FIRST_NEW_ID = 50_000_000_001  # ids minted by the emulator; well above any id a portfolio uses


@dataclass
class HsObject:
    id: str
    object_type: str
    properties: dict[str, str | None]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    archived_at: datetime | None = None

    @property
    def numeric_id(self) -> int:
        return int(self.id)

    def stamp(self, moment: datetime) -> None:
        """Record a modification at `moment` (the modstamp that incremental pulls key on)."""
        self.updated_at = moment
        self.properties["hs_lastmodifieddate"] = format_datetime(moment)
        if self.object_type == "contacts":
            self.properties["lastmodifieddate"] = format_datetime(moment)

    def to_json(self, property_names: list[str] | None) -> dict:
        """SimplePublicObject: `property_names=None` means every property that has a value."""
        if property_names is None:
            props = {k: v for k, v in self.properties.items() if v is not None}
        else:
            props = {name: self.properties.get(name) for name in property_names}
        body = {"id": self.id, "properties": props, "createdAt": format_datetime(self.created_at),
                "updatedAt": format_datetime(self.updated_at), "archived": self.archived}
        if self.archived_at is not None:
            body["archivedAt"] = format_datetime(self.archived_at)
        return body


@dataclass
class AssociationEdge:
    category: str
    type_id: int


@dataclass
class ObjectStore:
    objects: dict[str, dict[str, HsObject]] = field(default_factory=lambda: {t: {} for t in OBJECT_TYPES})
    # (from_type, from_id, to_type) -> {to_id: [edges]}; both directions are stored.
    edges: dict[tuple[str, str, str], dict[str, list[AssociationEdge]]] = field(default_factory=dict)
    next_id: int = FIRST_NEW_ID
    # id-ordered views per (type, archived), rebuilt only after a put or an archive (list paging reads them)
    _ordered: dict[tuple[str, bool], tuple[list[HsObject], list[int]]] = field(default_factory=dict)
    # ordered search hits per canonical query; any write empties it (paging a query then costs a slice)
    _queries: dict[tuple[str, str], list[HsObject]] = field(default_factory=dict)

    def changed(self) -> None:
        self._queries.clear()

    def cached_query(self, key: tuple[str, str]) -> list[HsObject] | None:
        return self._queries.get(key)

    def remember_query(self, key: tuple[str, str], ordered: list[HsObject]) -> None:
        if len(self._queries) >= 16:
            self._queries.pop(next(iter(self._queries)))
        self._queries[key] = ordered

    def write(self, obj: HsObject, values: dict[str, str | None], moment: datetime, force: bool = False) -> bool:
        """Set values; only a real change (or `force`) moves hs_lastmodifieddate. True when it moved."""
        if not force and all(obj.properties.get(k) == v for k, v in values.items()):
            return False
        obj.properties.update(values)
        self.touch(obj, moment)
        return True

    def touch(self, obj: HsObject, moment: datetime) -> None:
        obj.stamp(moment)
        self.changed()

    # ------------------------------------------------------------------------------------------ objects
    def mint_id(self) -> str:
        self.next_id += 1
        return str(self.next_id - 1)

    def put(self, object_type: str, object_id: str, properties: dict[str, str | None], created: datetime,  # noqa: PLR0913 (an object row's columns)
            modified: datetime, archived_at: datetime | None = None) -> HsObject:
        props = dict(properties)
        props["hs_object_id"] = object_id
        props.setdefault(CREATED_PROPERTY[object_type], format_datetime(created))
        obj = HsObject(object_id, object_type, props, created, modified)
        obj.stamp(modified)
        if archived_at is not None:
            obj.archived, obj.archived_at = True, archived_at
        self.objects[object_type][object_id] = obj
        self._forget_order(object_type)
        self.changed()
        if object_id.isdigit():
            self.next_id = max(self.next_id, int(object_id) + 1)
        return obj

    def live(self, object_type: str, object_id: str) -> HsObject | None:
        obj = self.objects[object_type].get(str(object_id))
        return obj if obj is not None and not obj.archived else None

    def find(self, object_type: str, object_id: str, archived: bool = False) -> HsObject | None:
        obj = self.objects[object_type].get(str(object_id))
        if obj is None or obj.archived != archived:
            return None
        return obj

    def find_by_property(self, object_type: str, name: str, value: str) -> HsObject | None:
        wanted = str(value).lower()
        for obj in self.objects[object_type].values():
            current = obj.properties.get(name)
            if not obj.archived and current is not None and current.lower() == wanted:
                return obj
        return None

    def archive(self, obj: HsObject, moment: datetime) -> None:
        obj.archived, obj.archived_at = True, moment
        self._forget_order(obj.object_type)
        self.changed()

    def _forget_order(self, object_type: str) -> None:
        self._ordered.pop((object_type, True), None)
        self._ordered.pop((object_type, False), None)

    def sorted_objects(self, object_type: str, archived: bool) -> list[HsObject]:
        return self._ordered_view(object_type, archived)[0]

    def sorted_ids(self, object_type: str, archived: bool) -> list[int]:
        return self._ordered_view(object_type, archived)[1]

    def _ordered_view(self, object_type: str, archived: bool) -> tuple[list[HsObject], list[int]]:
        view = self._ordered.get((object_type, archived))
        if view is None:
            ordered = sorted((o for o in self.objects[object_type].values() if o.archived == archived),
                             key=lambda o: o.numeric_id)
            view = (ordered, [o.numeric_id for o in ordered])
            self._ordered[(object_type, archived)] = view
        return view

    # ------------------------------------------------------------------------------------------ associations
    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, category: str,  # noqa: PLR0913 (both ends of an association plus its category and type id, as the v4 API names them)
                  type_id: int) -> None:
        reverse_id, _ = reverse_of(from_type, to_type, category, type_id)
        self.changed()
        self._add_edge(from_type, str(from_id), to_type, str(to_id), AssociationEdge(category, type_id))
        self._add_edge(to_type, str(to_id), from_type, str(from_id), AssociationEdge(category, reverse_id))

    def _add_edge(self, from_type: str, from_id: str, to_type: str, to_id: str, edge: AssociationEdge) -> None:
        targets = self.edges.setdefault((from_type, from_id, to_type), {})
        existing = targets.setdefault(to_id, [])
        for known in existing:
            if known.category == edge.category and known.type_id == edge.type_id:
                return
        existing.append(edge)

    def dissociate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self.changed()
        self.edges.get((from_type, str(from_id), to_type), {}).pop(str(to_id), None)
        self.edges.get((to_type, str(to_id), from_type), {}).pop(str(from_id), None)

    def associated(self, from_type: str, from_id: str, to_type: str) -> dict[str, list[AssociationEdge]]:
        """Live targets only: archiving an object hides its associations, as in HubSpot."""
        targets = self.edges.get((from_type, str(from_id), to_type), {})
        return {tid: edges for tid, edges in sorted(targets.items(), key=lambda kv: int(kv[0]))
                if edges and self.live(to_type, tid) is not None}

    def v4_item(self, from_type: str, to_type: str, to_id: str, edges: list[AssociationEdge]) -> dict:
        return {"toObjectId": int(to_id),
                "associationTypes": [{"category": e.category, "typeId": e.type_id,
                                      "label": label_of(from_type, to_type, e.category, e.type_id)}
                                     for e in edges]}

