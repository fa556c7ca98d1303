"""`healthsync setup`: create the custom fields healthsync writes, idempotently, and say what happened.

Running it twice changes nothing: every field is looked up first and only missing ones are created.
What cannot be created is reported with the permission or edition the CRM said is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from healthsync.writeback.base import FieldSpec, SchemaWriter, SetupOutcome

# Logical field → (label, type, description); the CRM API names come from the field map in config.
ACCOUNT_FIELDS: Mapping[str, tuple[str, str, str]] = {
    "health_score": ("Health Score", "number", "healthsync health score, 0-100"),
    "health_band": ("Health Band", "text", "healthsync band, e.g. healthy / at-risk / critical"),
    "component_scores": ("Health Components", "text", "score of each health component"),
    "trend_7d": ("Health Trend 7d", "number", "score change over 7 days"),
    "trend_30d": ("Health Trend 30d", "number", "score change over 30 days"),
    "renewal_stage": ("Renewal Stage", "text", "engage / propose / negotiate / escalate / renewed / lapsed"),
    "days_to_renewal": ("Days to Renewal", "number", "days until the renewal date"),
    "segment": ("CS Segment", "text", "segment by ACV"),
    "top_risks": ("Risk Signals", "text", "active risk and expansion signals"),
    "explanation": ("Health Explanation", "long_text", "why the score is what it is"),
    "last_scored_at": ("Last Scored At", "datetime", "when healthsync last changed these values"),
}
TASK_KEY_FIELD = ("Healthsync Key", "text", "healthsync dedupe key (account|rule|window); do not edit")


def required_fields(field_names: Mapping[str, str], task_key_field: str | None) -> list[FieldSpec]:
    """The specs for every mapped account field, plus the task dedupe-key field when the CRM needs one."""
    specs = [
        FieldSpec("account", field_names[logical], label, kind, description)  # type: ignore[arg-type]
        for logical, (label, kind, description) in ACCOUNT_FIELDS.items()
        if field_names.get(logical)
    ]
    if task_key_field:
        label, kind, description = TASK_KEY_FIELD
        specs.append(FieldSpec("task", task_key_field, label, kind, description))  # type: ignore[arg-type]
    return specs


def run_setup(schema: SchemaWriter, specs: Sequence[FieldSpec]) -> list[SetupOutcome]:
    existing: dict[str, set[str]] = {}
    outcomes = []
    for spec in specs:
        if spec.object not in existing:
            existing[spec.object] = {name.lower() for name in schema.existing_fields(spec.object)}
        if spec.name.lower() in existing[spec.object]:
            outcomes.append(SetupOutcome(spec, "existed"))
            continue
        outcome = schema.create_field(spec)
        if outcome.status == "created":
            existing[spec.object].add(spec.name.lower())
        outcomes.append(outcome)
    return outcomes
