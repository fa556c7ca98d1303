"""The pure planner: only changed owned fields, human edits kept, one open task per rule, cooldowns."""

from datetime import UTC, datetime, timedelta

from healthsync.scoring.base import HealthResult, Intent, OwnerSpec
from healthsync.writeback.base import RuleTaskState, TaskEntry
from healthsync.writeback.plan import PlanInputs, WritebackPolicy, build_plan, same_value

AS_OF = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = WritebackPolicy(
    field_names={"health_score": "HS_Score__c", "health_band": "HS_Band__c", "last_scored_at": "HS_At__c",
                 "segment": "Segment__c"},
    owned=frozenset({"HS_Score__c", "HS_Band__c", "HS_At__c"}),  # Segment__c is mapped but not owned
)


def result(account="001A", score=72, band="healthy"):
    return HealthResult(account_id=account, as_of=AS_OF, score=score, band=band, component_rows=(), measure_rows=(),
                        trend_7d=None, trend_30d=None, renewal_stage=None, days_to_renewal=None,
                        segment="smb", insufficient_data=False, coverage=1.0, active_signals=(), explanation="x")


def intent(account="001A", rule="usage_drop", window="2026-W48", owner=None):
    return Intent(rule_id=rule, account_id=account, kind="task", subject="s", body="b",
                  owner=owner or OwnerSpec(kind="account_owner", owner_id="005X"), due_at=AS_OF + timedelta(days=1),
                  priority="high", dedupe_key=f"{account}|{rule}|{window}", window=window, cooldown_days=14)


def plan_for(**kw):
    base = dict(crm="salesforce", as_of=AS_OF, results=[result()], intents=[], last_written={}, crm_current={})
    base.update(kw)
    return build_plan(PlanInputs(**base), POLICY)


def test_first_run_writes_owned_fields_only():
    plan = plan_for()
    assert len(plan.field_updates) == 1
    assert plan.field_updates[0].fields == {"HS_At__c": "2026-11-23T12:00:00+00:00", "HS_Band__c": "healthy",
                                            "HS_Score__c": 72}


def test_nothing_changed_means_no_writes_even_though_the_timestamp_moved():
    last = {"001A": {"HS_Score__c": 72, "HS_Band__c": "healthy", "HS_At__c": "2026-11-22T12:00:00+00:00"}}
    current = {"001A": {"HS_Score__c": "72.0", "HS_Band__c": "healthy", "HS_At__c": "2026-11-22T12:00:00+00:00"}}
    plan = plan_for(last_written=last, crm_current=current)
    assert plan.field_updates == () and plan.is_empty


def test_only_the_changed_field_and_the_timestamp_are_written():
    last = {"001A": {"HS_Score__c": 80, "HS_Band__c": "healthy", "HS_At__c": "old"}}
    plan = plan_for(last_written=last, crm_current=last)
    assert plan.field_updates[0].fields == {"HS_Score__c": 72, "HS_At__c": "2026-11-23T12:00:00+00:00"}
    assert plan.field_updates[0].previous == {"HS_Score__c": 80, "HS_At__c": "old"}


def test_human_edit_is_reported_and_kept_by_default():
    last = {"001A": {"HS_Score__c": 80, "HS_Band__c": "healthy", "HS_At__c": "old"}}
    current = {"001A": {"HS_Score__c": 95, "HS_Band__c": "healthy", "HS_At__c": "old"}}
    plan = plan_for(last_written=last, crm_current=current)
    assert [(c.field, c.ours, c.theirs, c.action) for c in plan.conflicts] == [("HS_Score__c", 80, 95, "kept_theirs")]
    assert plan.field_updates == ()


def test_human_edit_overwritten_when_config_says_we_win():
    last = {"001A": {"HS_Score__c": 80}}
    current = {"001A": {"HS_Score__c": 95}}
    policy = WritebackPolicy(POLICY.field_names, POLICY.owned, we_win_conflicts=True)
    plan = build_plan(PlanInputs("salesforce", AS_OF, [result()], [], last, current), policy)
    assert plan.conflicts[0].action == "overwrote"
    assert plan.field_updates[0].fields["HS_Score__c"] == 72


def test_values_already_in_the_crm_after_a_crash_are_adopted_not_rewritten():
    current = {"001A": {"HS_Score__c": 72, "HS_Band__c": "healthy", "HS_At__c": "2026-11-23T12:00:00+00:00"}}
    plan = plan_for(crm_current=current)
    assert plan.field_updates == ()
    assert plan.adopted[0].fields["HS_Score__c"] == 72


def test_one_task_per_key_and_owner_resolution():
    plan = plan_for(intents=[intent(), intent()])
    assert [t.dedupe_key for t in plan.tasks] == ["001A|usage_drop|2026-W48"]
    assert plan.tasks[0].owner_id == "005X"


def test_open_task_or_cooldown_suppresses():
    entries = {"001A|usage_drop|2026-W48": TaskEntry("001A|usage_drop|2026-W48", "open", "00T1", None)}
    assert plan_for(intents=[intent()], task_entries=entries).tasks == ()
    states = {("001A", "usage_drop"): RuleTaskState(cooldown_until=AS_OF + timedelta(days=3))}
    plan = plan_for(intents=[intent(window="2026-W49")], rule_states=states)
    assert plan.tasks == () and "cooldown" in plan.suppressed[0].reason
    expired = {("001A", "usage_drop"): RuleTaskState(cooldown_until=AS_OF - timedelta(seconds=1))}
    assert len(plan_for(intents=[intent(window="2026-W49")], rule_states=expired).tasks) == 1


def test_failed_task_is_retried():
    entries = {"001A|usage_drop|2026-W48": TaskEntry("001A|usage_drop|2026-W48", "failed", None, None, attempts=1)}
    assert len(plan_for(intents=[intent()], task_entries=entries).tasks) == 1


def test_escalation_routed_by_email_or_reported_unresolved():
    esc = intent(rule="renewal_unsigned", owner=OwnerSpec(kind="email", email="CTO@cloudscale.io"))
    plan = plan_for(intents=[esc], users_by_email={"cto@cloudscale.io": "005CTO"})
    assert plan.tasks[0].owner_id == "005CTO"
    plan = plan_for(intents=[esc])
    assert plan.tasks == () and "cto@cloudscale.io" in plan.unresolved[0].reason


def test_value_normalisation():
    assert same_value(72, "72.0") and same_value(None, "") and not same_value(72, 73) and same_value(True, "true")
    assert same_value("2026-11-23T12:00:00+00:00", "2026-11-23T12:00:00.000Z")
    assert not same_value("2026-11-23T12:00:00+00:00", "2026-11-23T12:00:01Z")
