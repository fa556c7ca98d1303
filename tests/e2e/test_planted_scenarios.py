"""The planted scenarios through the real pipeline, for both CRMs: emulators → SDKs → connectors → store →
facts → scoring → playbook → plan → apply, one full cycle on the smallest book holding every scenario.
Each planted account fires its rule, the controls stay quiet, and what landed in the CRM (read back from
the emulator) is what the results and the playbook asked for: fields, and one task per intent with the
right owner (renewal_unsigned → the user whose email is cto@cloudscale.io)."""

from __future__ import annotations

import pytest

from healthsync.sandbox.scenarios import CLEAN_KEY, PLANTED, RULE_IDS, scenario_manifest
from healthsync.writeback.plan import desired_fields, same_value
from tests.e2e.crm import account_fields, account_owner_id, duplicated_keys, our_tasks, user_id_by_email
from tests.support.sandbox_env import sandbox_env

pytestmark = pytest.mark.slow

BOOK_SIZE = 60  # the planted scenarios take the first len(PLANTED) accounts; the rest is background
RENEWAL_ESCALATION_EMAIL = "cto@cloudscale.io"


@pytest.fixture(scope="module", params=("salesforce", "hubspot"))
def cycled(request):
    """One full cycle against a fresh sandbox: (env, report, manifest, fired rules by CRM account id)."""
    with sandbox_env(request.param, accounts=BOOK_SIZE, seed=7) as env:
        env.setup_fields()
        report = env.cycle(full=True)
        manifest = scenario_manifest(env.server.portfolio, request.param)
        fired = {s.result.account_id: {i.rule_id for i in s.intents} for s in report.scored}
        yield env, report, manifest, fired


def test_the_book_plants_every_rule_and_the_cycle_is_complete(cycled):
    env, report, manifest, _ = cycled
    assert BOOK_SIZE >= len(PLANTED)
    assert [r for r in RULE_IDS if not manifest["scenarios"].get(r)] == []
    assert report.status == "ok", report.error
    assert {name: r.ok for name, r in report.sources.items()} == {env.crm: True, "zendesk": True, "mixpanel": True}
    assert len(report.scored) == BOOK_SIZE
    # every planted account is joined to its Zendesk organization and its Mixpanel usage
    assert report.identity["zendesk"]["matched"] >= len(PLANTED)
    assert report.identity["mixpanel"]["matched"] >= len(PLANTED)
    assert report.plan is not None and not report.plan.unresolved and not report.plan.conflicts
    assert report.applied is not None and report.applied.ok, report.applied.errors[:3]


def test_every_planted_account_fires_its_rule(cycled):
    _, _, manifest, fired = cycled
    missing = [f"{rule} on {e['account_key']} ({e['crm_id']}): fired {sorted(fired.get(e['crm_id'], ()))}"
               for rule, entries in manifest["scenarios"].items() for e in entries
               if rule not in fired.get(e["crm_id"], set())]
    assert not missing, "planted scenarios that did not fire:\n" + "\n".join(missing)


def test_clean_controls_fire_no_rule(cycled):
    _, _, manifest, fired = cycled
    clean = manifest["controls"][CLEAN_KEY]
    assert len(clean) >= 10
    noisy = {e["account_key"]: sorted(fired[e["crm_id"]]) for e in clean if fired[e["crm_id"]]}
    assert not noisy, f"clean controls that fired rules: {noisy}"


def test_per_rule_controls_do_not_fire_their_rule(cycled):
    _, _, manifest, fired = cycled
    checked = 0
    problems = []
    for rule, entries in manifest["controls"].items():
        if rule == CLEAN_KEY:
            continue
        for entry in entries:
            checked += 1
            if rule in fired[entry["crm_id"]]:
                problems.append(f"{entry['account_key']} fired {rule}")
    assert checked >= 40  # the clean controls are controls for every rule, plus the near-miss ones
    assert not problems, problems


def test_fields_in_the_crm_hold_every_result(cycled):
    env, report, _, _ = cycled
    policy = env.ctx.policy
    wrong = []
    for scored in report.scored:
        flags = [i for i in scored.intents if i.kind == "field_flag"]
        want = desired_fields(scored.result, policy, flags)
        have = account_fields(env.server, env.crm, scored.result.account_id, want)
        wrong += [(scored.result.account_id, name, value, have[name]) for name, value in want.items()
                  if not same_value(value, have[name])]
    assert not wrong, f"{len(wrong)} field values differ from the health results, e.g. {wrong[:5]}"
    score_field = policy.crm_field("health_score")
    assert score_field is not None
    scores = [account_fields(env.server, env.crm, s.result.account_id, [score_field])[score_field]
              for s in report.scored]
    assert None not in scores and len(set(map(str, scores))) > 10


def test_one_crm_task_per_intent_and_nothing_else(cycled):
    env, report, _, _ = cycled
    tasks = our_tasks(env.server, env.crm, env.settings.crm.field_map.write.task_key)
    wanted = {i.dedupe_key for s in report.scored for i in s.intents if i.kind in ("task", "escalation")}
    assert not duplicated_keys(tasks)
    assert {t.key for t in tasks} == wanted
    assert report.applied.tasks_created == len(wanted)


def test_planted_accounts_tasks_are_on_the_account_with_the_right_owner(cycled):
    env, report, manifest, _ = cycled
    portfolio, crm = env.server.portfolio, env.crm
    tasks = {t.key: t for t in our_tasks(env.server, crm, env.settings.crm.field_map.write.task_key)}
    intents = {(i.account_id, i.rule_id): i for s in report.scored for i in s.intents}
    wrong, checked = [], 0
    for rule, entries in manifest["scenarios"].items():
        for entry in entries:
            intent = intents[(entry["crm_id"], rule)]
            if intent.kind == "field_flag":
                continue
            checked += 1
            task = tasks.get(intent.dedupe_key)
            if intent.owner.kind == "email":
                owner = user_id_by_email(portfolio, intent.owner.email, crm)
            else:
                owner = account_owner_id(portfolio, entry["crm_id"], crm)
            if task is None or task.account != entry["crm_id"] or task.owner != owner or task.completed:
                wrong.append((rule, entry["account_key"], task, owner))
    assert checked >= len(RULE_IDS)
    assert not wrong, wrong


def test_renewal_unsigned_escalates_to_the_user_found_by_email(cycled):
    env, report, manifest, _ = cycled
    crm = env.crm
    target = manifest["scenarios"]["renewal_unsigned"][0]["crm_id"]
    cto = user_id_by_email(env.server.portfolio, RENEWAL_ESCALATION_EMAIL, crm)
    assert cto != account_owner_id(env.server.portfolio, target, crm)  # else the test could not tell them apart
    tasks = [t for t in our_tasks(env.server, crm, env.settings.crm.field_map.write.task_key)
             if t.account == target and "|renewal_unsigned|" in t.key]
    assert len(tasks) == 1, tasks
    assert tasks[0].owner == cto
