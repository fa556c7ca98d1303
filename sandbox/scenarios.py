"""The planted scenarios: accounts at fixed positions of every book that must fire (or must not fire) each
playbook rule, each with the reason in plain words so the scoring side and the data side can be tuned.

History rules (sharp drop, slow decline, band change, newly below threshold, declining renewal) are planted
as dated facts that were healthy until recently: the scoring engine back-scores the same facts at
as_of - 7 d and - 30 d. Undated facts (payment status, seats, the CRM NPS field) are kept healthy on those
accounts, because they would read the same in the past.
"""

from __future__ import annotations

from dataclasses import dataclass

from healthsync.sandbox.behaviour import Behaviour, PlannedTicket

RULE_IDS = (
    "below_threshold", "outreach_24h", "sharp_drop", "sharp_drop_manager", "slow_decline",
    "band_change_intervention", "band_change_escalation", "usage_drop", "declining_logins", "ticket_burst",
    "severe_tickets", "competitor_mentioned", "champion_left", "silent_customer", "renewal_risk",
    "renewal_stage_engage", "renewal_stage_propose", "renewal_stage_negotiate", "renewal_unsigned",
    "onboarding_day3_no_login", "onboarding_day5_no_core_action", "onboarding_day7_no_value",
    "onboarding_day10_single_user", "onboarding_day14_low_adoption", "expansion", "advocate",
)
CLEAN_KEY = "__none__"


@dataclass(frozen=True)
class Planted:
    segment: str
    behaviour: Behaviour
    reason: str
    fires: tuple[str, ...] = ()  # rules this account must fire
    also: tuple[str, ...] = ()  # rules it will probably fire too (informative, not asserted)
    control_for: tuple[str, ...] = ()  # rules it must NOT fire
    clean: bool = False  # must fire no rule at all


_OLD_TICKET = PlannedTicket(40, "low", "closed", "how_to", satisfaction="good")

# A model customer: broad daily use growing 4 %/week at ~40 % of capacity and 65 % of seats, one old
# low-priority ticket rated good, a meeting 4 days ago, a QBR 45 days ago, champion and sponsor in place,
# NPS 8 (passive, so no advocacy), payment current, renewal 220 days out, an expansion won this year.
CLEAN = Behaviour(
    "planted", adoption=0.65, activity=0.35, actions_per_user=3.0, weekly_growth=0.04, feature_share=1.0,
    jitter=0.02, value_rate=0.03, tickets_per_90d=0.0, planted_tickets=(_OLD_TICKET,), no_show_share=0.0,
    cancel_share=0.0, reply_share=0.85, last_touch_days=4, qbr_days_ago=45, nps=8, payment_status="current",
    renewal_in_days=220, renewal_signed=False, expansion_won=True,
)
_CLEAN_TEXT = ("model customer: daily use by ~65 % of seats growing 4 %/week, ~40 % of plan capacity, all plan "
               "features used, one low ticket 40 d ago rated good, meeting held 4 d ago, QBR 45 d ago, champion "
               "and sponsor present, NPS 8, payment current, renewal in 220 d")

# Healthy but unremarkable (~75-80 on the default model): the weaknesses are undated facts (no expansion,
# one late payment, no QBR, half the mails answered, half the seats in use), so they read the same in the past.
FAIR = CLEAN.with_(
    adoption=0.5, activity=0.25, feature_share=0.75, expansion_won=False, payment_status="overdue",
    reply_share=0.45, qbr_days_ago=None, nps=7,
)
_FAIR_TEXT = ("healthy but unremarkable until as_of-7d (no expansion, one late payment, no QBR, half the mails "
              "answered, ~50 % of seats active)")
# Weak already (at-risk band) before the collapse: adds a failed payment, sparse use and few replies.
WEAK = FAIR.with_(adoption=0.35, activity=0.15, feature_share=0.5, payment_status="failed", reply_share=0.25)
_WEAK_TEXT = "already at-risk until as_of-7d (FAIR plus a failed payment, ~35 % of seats active, few replies)"

_SEVERE_TICKETS = (
    _OLD_TICKET,
    PlannedTicket(6.0, "normal", "solved", "outage", "App unavailable this morning",
                  "Nobody could log in between 8 and 10 am.", satisfaction="bad"),
    PlannedTicket(5.5, "urgent", "open", "outage", "Dashboards down for the whole team",
                  "Since this morning nobody can load any dashboard; this blocks our daily operations review."),
    PlannedTicket(4.0, "urgent", "open", "data_sync", "Data missing after last night's sync",
                  "Half of yesterday's records are missing from every report. We need this fixed today."),
    PlannedTicket(3.5, "normal", "solved", "data_sync", "Sync delayed again",
                  "Numbers were late again today.", satisfaction="bad"),
    PlannedTicket(2.5, "high", "open", "sso", "SSO login loop for all users",
                  "Users are bounced back to the login page after SSO. Escalating on behalf of our CIO."),
    PlannedTicket(1.0, "high", "pending", "outage", "Reports time out",
                  "Every report over 30 days times out. Reopened: the workaround did not help.", reopens=1),
)
_SEVERE_KNOBS = dict(
    shape="collapse", floor=0.05, planted_tickets=_SEVERE_TICKETS, champion_change=("left", 4),
    replace_champion=False, sponsor_left_days=3, silent_days=7, last_touch_days=None, nps=2, nps_days_ago=2,
    earlier_nps=(8, 60),
)
_SEVERE_WEEK = ("then in the last 7 days: usage at 5 % of normal, 6 tickets (2 urgent + 2 high unsolved, one "
                "reopened; 2 solved and rated bad; outage and data_sync repeated), champion left 4 d ago and the "
                "executive sponsor 3 d ago, meetings no-show/cancelled and mails unanswered (last held meeting "
                "9 d ago), NPS survey 2 d ago scored 2 (previous survey 60 d ago scored 8)")
SEVERE_COLLAPSE = CLEAN.with_(**_SEVERE_KNOBS)

_MODERATE_TICKETS = (
    _OLD_TICKET,
    PlannedTicket(5.0, "high", "open", "export", "Export to CSV drops columns",
                  "Our weekly export is missing the region column since the last release."),
    PlannedTicket(4.0, "normal", "solved", "export", "Export still wrong", "The fix did not help.",
                  satisfaction="bad"),
    PlannedTicket(2.0, "high", "open", "permissions", "Admins lost access to settings",
                  "Since yesterday our admins cannot open the settings page."),
)
_MODERATE_KNOBS = dict(
    shape="collapse", floor=0.3, planted_tickets=_MODERATE_TICKETS, champion_change=("role_changed", 3),
    nps=5, nps_days_ago=3, earlier_nps=(8, 60), silent_days=6, last_touch_days=None,
)
# The same week without the champion's move: enough to cross 70, not enough to reach the bottom band.
_MILD_KNOBS = {**_MODERATE_KNOBS, "champion_change": None}
_MILD_WEEK = ("then in the last 7 days: usage at 30 % of normal, 3 tickets (2 high unsolved, 1 solved and "
              "rated bad, export repeated), meetings of the last 6 days missed (last held 8 d ago), NPS survey "
              "3 d ago scored 5 (8 sixty days ago)")
_MODERATE_WEEK = ("then in the last 7 days: usage at 30 % of normal, 3 tickets (2 high unsolved, 1 solved and "
                  "rated bad, export repeated), the champion changed role 3 d ago, meetings of the last 6 days "
                  "missed (last held 8 d ago), NPS survey 3 d ago scored 5 (8 sixty days ago)")

_CHRONIC_TICKETS = tuple(
    PlannedTicket(age, prio, status, topic, satisfaction=sat, reopens=reopen)
    for age, prio, status, topic, sat, reopen in (
        (84, "high", "closed", "performance", "bad", 1), (70, "normal", "closed", "data_sync", "bad", 0),
        (56, "high", "closed", "performance", "bad", 1), (42, "normal", "solved", "billing", "bad", 0),
        (28, "high", "solved", "bug", "bad", 0), (16, "normal", "open", "data_sync", "unoffered", 1),
        (10, "normal", "pending", "bug", "unoffered", 0),
    )
)
# Bad for months and stable (no recent drop): sparse use, a ticket every two weeks, silent, no champion.
CHRONIC = Behaviour(
    "planted", adoption=0.25, activity=0.07, actions_per_user=1.0, weekly_growth=0.0, feature_share=0.2,
    jitter=0.02, value_rate=0.0, tickets_per_90d=0.0, planted_tickets=_CHRONIC_TICKETS, no_show_share=0.4,
    cancel_share=0.3, reply_share=0.1, silent_days=75, champion_change=("left", 200), replace_champion=False,
    nps=3, payment_status="overdue", renewal_in_days=250, renewal_signed=False, expansion_won=False,
)
_CHRONIC_TEXT = ("unhealthy for months, stable: ~25 % of seats use the product, 7 % of them on a weekday, 20 % of "
                 "features; 7 tickets in 90 d (3 high) all rated bad, 3 reopened; no two-way touch for 75 d; "
                 "champion left 200 d ago, none replaced; NPS 3 (CRM field); payment overdue")


def _onboarding(age: int, **kw: object) -> Behaviour:
    base = CLEAN.with_(
        contract_age_days=age, planted_tickets=(), last_touch_days=None, qbr_days_ago=None, nps=None,
        expansion_won=False, renewal_in_days=None, activity=0.9, weekly_growth=0.0, feature_share=0.8,
        adoption=0.7,
    )
    return base.with_(**kw)


def _planted() -> tuple[Planted, ...]:
    """Order is position in the book; append only, so existing keys keep their scenario."""
    return (
        # --- clean controls (fire nothing) ----------------------------------------------------------------
        Planted("enterprise", CLEAN, _CLEAN_TEXT, control_for=RULE_IDS, clean=True),
        Planted("mid_market", CLEAN.with_(nps=None), _CLEAN_TEXT.replace("NPS 8", "no NPS on record"),
                control_for=RULE_IDS, clean=True),
        Planted("smb", CLEAN.with_(renewal_in_days=300), _CLEAN_TEXT.replace("220 d", "300 d"),
                control_for=RULE_IDS, clean=True),
        # --- score level and history ----------------------------------------------------------------------
        Planted("mid_market", FAIR.with_(**_MILD_KNOBS), f"{_FAIR_TEXT}, {_MILD_WEEK}; the score "
                "crosses below 70", fires=("below_threshold",), also=("sharp_drop", "band_change_intervention")),
        Planted("mid_market", CHRONIC, _CHRONIC_TEXT + "; score < 60 now, 7 d and 30 d ago (not newly)",
                fires=("outreach_24h",), also=("silent_customer",), control_for=("below_threshold", "sharp_drop")),
        Planted("enterprise", CLEAN.with_(**_MODERATE_KNOBS), f"model customer until as_of-7d, {_MODERATE_WEEK}; "
                "the score drops > 10 in 7 d", fires=("sharp_drop",), also=("sharp_drop_manager",)),
        Planted("enterprise", SEVERE_COLLAPSE, f"model customer until as_of-7d, {_SEVERE_WEEK}; the score drops "
                "> 15 in 7 d",
                fires=("sharp_drop", "sharp_drop_manager"),
                also=("below_threshold", "outreach_24h", "band_change_escalation", "usage_drop", "ticket_burst",
                      "severe_tickets", "champion_left")),
        Planted("mid_market", CLEAN.with_(
            shape="decline", floor=0.12, weekly_growth=0.0, nps=4, nps_days_ago=10, earlier_nps=(8, 60),
            silent_days=25, last_touch_days=None, qbr_days_ago=125, champion_change=("role_changed", 20),
            planted_tickets=(
                _OLD_TICKET,
                PlannedTicket(26, "normal", "solved", "data_sync", satisfaction="bad"),
                PlannedTicket(19, "normal", "solved", "bug", satisfaction="bad", reopens=1),
                PlannedTicket(12, "high", "solved", "performance", satisfaction="bad"),
                PlannedTicket(5, "high", "open", "performance"),
            )),
            "healthy 30 d ago, then a steady slide: usage falls linearly from 100 % (as_of-30d) to 12 % of "
            "normal, a ticket every ~7 d with rising severity (normal, normal, high, high) rated bad, no two-way "
            "touch for 25 d (last held meeting 27 d ago), the last QBR (125 d ago) ages out of the 120-d window, "
            "the champion changed role 20 d ago, NPS 4 ten days ago (8 sixty days ago); the score drops > 15 "
            "over 30 d", fires=("slow_decline",),
            also=("below_threshold", "usage_drop", "renewal_risk")),
        Planted("mid_market", FAIR.with_(**_MILD_KNOBS), f"{_FAIR_TEXT}, {_MILD_WEEK}; the band falls "
                "healthy -> at-risk (not critical)", fires=("band_change_intervention",),
                also=("below_threshold", "sharp_drop")),
        Planted("enterprise", WEAK.with_(**_SEVERE_KNOBS), f"{_WEAK_TEXT}, {_SEVERE_WEEK}; the band falls into "
                "critical",
                fires=("band_change_escalation",), also=("sharp_drop", "sharp_drop_manager", "outreach_24h")),
        # --- usage ----------------------------------------------------------------------------------------
        Planted("mid_market", CLEAN.with_(shape="collapse", floor=0.35),
                "model customer except usage: events of the last 7 days at 35 % of the week before (-65 % WoW)",
                fires=("usage_drop",), also=("sharp_drop",)),
        Planted("enterprise", CLEAN.with_(shape="login_decline", floor=0.58, weekly_growth=0.0),
                "model customer except logins: weekly logins step down 4 weeks running (100 % of normal, then "
                "96 %, 82 %, 68 %, 58 %; -15 to -20 % a week)", fires=("declining_logins",)),
        # --- support --------------------------------------------------------------------------------------
        Planted("mid_market", CLEAN.with_(planted_tickets=(
            _OLD_TICKET,
            PlannedTicket(5, "normal", "solved", "billing", satisfaction="good"),
            PlannedTicket(3, "normal", "pending", "export"),
            PlannedTicket(1, "normal", "open", "permissions"),
        )), "model customer except 3 normal-priority tickets created 5, 3 and 1 d ago (different topics)",
                fires=("ticket_burst",)),
        Planted("enterprise", CLEAN.with_(planted_tickets=(
            _OLD_TICKET,
            PlannedTicket(20, "urgent", "open", "outage", "API returns 500 for bulk exports"),
            PlannedTicket(14, "high", "open", "data_sync", "Nightly sync skips records"),
            PlannedTicket(9, "urgent", "pending", "sso", "SSO certificate rejected after rotation"),
        )), "model customer except 3 high-severity tickets (urgent 20 d, high 14 d, urgent 9 d ago), all "
            "unsolved; never 2 in the same 7 days", fires=("severe_tickets",)),
        Planted("mid_market", CLEAN.with_(planted_tickets=(
            _OLD_TICKET,
            PlannedTicket(10, "normal", "solved", "feature_request", "Custom health weights?",
                          "We are evaluating ChurnZero alongside you. ChurnZero lets us set custom weights per "
                          "segment; can your product do the same before our budget review?",
                          satisfaction="good"),
        )), "model customer except one ticket 10 d ago naming the competitor ChurnZero",
                fires=("competitor_mentioned",)),
        Planted("smb", CLEAN.with_(champion_change=("left", 20), replace_champion=False),
                "model customer except the champion contact left the company 20 d ago (not replaced yet)",
                fires=("champion_left",)),
        Planted("mid_market", CLEAN.with_(champion_change=("role_changed", 40)),
                "model customer except the champion changed role 40 d ago", fires=("champion_left",)),
        Planted("enterprise", CLEAN.with_(silent_days=45, last_touch_days=None),
                "model customer except no two-way touch for 45 d: meetings since then no-show/cancelled, 4+ "
                "outbound mails unanswered (last held meeting 47 d ago)", fires=("silent_customer",)),
        # --- renewal --------------------------------------------------------------------------------------
        Planted("mid_market", CLEAN.with_(
            renewal_in_days=75, shape="decline", floor=0.45, weekly_growth=0.0, nps=5, nps_days_ago=14,
            earlier_nps=(8, 70), planted_tickets=(
                _OLD_TICKET,
                PlannedTicket(18, "high", "solved", "performance", satisfaction="bad"),
                PlannedTicket(8, "normal", "open", "bug"),
            )),
            "renewal in 75 d, unsigned; health declining over 30 d: usage slides to 45 % of normal, a high "
            "ticket 18 d ago rated bad and a normal one open 8 d ago, NPS 5 fourteen days ago (8 seventy days "
            "ago)", fires=("renewal_risk",), also=("slow_decline", "usage_drop")),
        Planted("mid_market", CLEAN.with_(renewal_in_days=120),
                "model customer with renewal exactly 120 d out, unsigned: entered engage today",
                fires=("renewal_stage_engage",)),
        Planted("smb", CLEAN.with_(renewal_in_days=90),
                "model customer with renewal exactly 90 d out, unsigned: entered propose today",
                fires=("renewal_stage_propose",)),
        Planted("mid_market", CLEAN.with_(renewal_in_days=60),
                "model customer with renewal exactly 60 d out, unsigned: entered negotiate today",
                fires=("renewal_stage_negotiate",)),
        Planted("enterprise", CLEAN.with_(renewal_in_days=25),
                "model customer with renewal in 25 d and the renewal opportunity still open (not signed)",
                fires=("renewal_unsigned",)),
        # --- onboarding -----------------------------------------------------------------------------------
        Planted("mid_market", _onboarding(3, first_login_day=None, onboarding_users=4),
                "contract started 3 d ago; 4 users invited, nobody has logged in", fires=("onboarding_day3_no_login",)),
        Planted("smb", _onboarding(5, first_core_day=None, first_value_day=None, onboarding_users=3),
                "contract started 5 d ago; 3 users log in daily since day 1 but no core action "
                "(report_created/dashboard_shared/workflow_run) yet", fires=("onboarding_day5_no_core_action",)),
        Planted("mid_market", _onboarding(7, first_value_day=None, onboarding_users=4),
                "contract started 7 d ago; 4 users, logins since day 1, core actions since day 2, no "
                "first_value_achieved event", fires=("onboarding_day7_no_value",)),
        Planted("smb", _onboarding(10, onboarding_users=1),
                "contract started 10 d ago; all milestones met but by one single user",
                fires=("onboarding_day10_single_user",)),
        Planted("mid_market", _onboarding(14, onboarding_users=2, feature_share=0.2),
                "contract started 14 d ago; only 2 of the purchased seats active and 1 plan feature used",
                fires=("onboarding_day14_low_adoption",)),
        # --- growth ---------------------------------------------------------------------------------------
        Planted("mid_market", CLEAN.with_(adoption=1.0, activity=0.55, actions_per_user=5.0),
                "model customer using every purchased seat (100 % seats) and ~150 % of the plan's monthly event "
                "capacity", fires=("expansion",)),
        Planted("smb", CLEAN.with_(nps=10, nps_days_ago=12),
                "model customer whose NPS survey 12 d ago scored 10 (CRM NPS 10)", fires=("advocate",)),
        # --- near-miss controls -----------------------------------------------------------------------------
        Planted("mid_market", CLEAN.with_(planted_tickets=(
            _OLD_TICKET,
            PlannedTicket(12, "low", "solved", "billing", satisfaction="good"),
            PlannedTicket(3, "normal", "open", "export"),
        )), _CLEAN_TEXT + "; only 1 ticket in the last 7 d (another 12 d ago)",
                control_for=("ticket_burst",), clean=True),
        Planted("enterprise", CLEAN.with_(planted_tickets=(
            _OLD_TICKET, PlannedTicket(15, "high", "solved", "performance", satisfaction="good"),
        )), _CLEAN_TEXT + "; a single high ticket 15 d ago, solved", control_for=("severe_tickets",), clean=True),
        Planted("mid_market", CLEAN.with_(planted_tickets=(
            _OLD_TICKET,
            PlannedTicket(10, "normal", "solved", "integration", "Slack and Salesforce notifications",
                          "Can alerts go to Slack and be logged on the Salesforce account? Zapier is our fallback.",
                          satisfaction="good"),
        )), _CLEAN_TEXT + "; a ticket naming Slack, Salesforce and Zapier (not competitors)",
                control_for=("competitor_mentioned",), clean=True),
        Planted("smb", CLEAN.with_(champion_change=("left", 150)),
                _CLEAN_TEXT + "; the previous champion left 150 d ago and a new champion took over 140 d ago",
                control_for=("champion_left",), clean=True),
        Planted("mid_market", CLEAN.with_(silent_days=18, last_touch_days=None),
                _CLEAN_TEXT.replace("meeting held 4 d ago", "last two-way touch 20 d ago"),
                control_for=("silent_customer",), clean=True),
        Planted("enterprise", CLEAN.with_(renewal_in_days=20, renewal_signed=True, signed_days_ago=10),
                _CLEAN_TEXT.replace("renewal in 220 d", "renewal in 20 d, signed 10 d ago"),
                control_for=("renewal_unsigned", "renewal_risk", "renewal_stage_negotiate"), clean=True),
        Planted("mid_market", CLEAN.with_(renewal_in_days=150), _CLEAN_TEXT.replace("220 d", "150 d"),
                control_for=("renewal_stage_engage", "renewal_stage_propose", "renewal_stage_negotiate",
                             "renewal_risk", "renewal_unsigned"), clean=True),
        Planted("mid_market", _onboarding(3, first_value_day=3, onboarding_users=4),
                "contract started 3 d ago; 4 users logged in since day 1, core action day 2, first value day 3",
                control_for=("onboarding_day3_no_login",)),
        Planted("smb", _onboarding(5, onboarding_users=4),
                "contract started 5 d ago; 4 users, logins day 1, core actions day 2, first value day 4",
                control_for=("onboarding_day5_no_core_action",)),
        Planted("mid_market", _onboarding(7, onboarding_users=5),
                "contract started 7 d ago; 5 users, first value reached on day 4", control_for=("onboarding_day7_no_value",)),
        Planted("smb", _onboarding(10, onboarding_users=5),
                "contract started 10 d ago; 5 distinct users active", control_for=("onboarding_day10_single_user",)),
        Planted("mid_market", _onboarding(14),
                "contract started 14 d ago; ~70 % of seats active, 80 % of plan features used, first value day 4",
                control_for=("onboarding_day14_low_adoption",)),
        Planted("mid_market", CHRONIC.with_(adoption=1.0, activity=0.55, actions_per_user=5.0, feature_share=1.0,
                                            payment_status="failed"),
                "every seat active and ~150 % of plan capacity, BUT unhealthy: 7 tickets in 90 d (3 high) rated "
                "bad, no two-way touch for 75 d, champion gone for 200 d, NPS 3, payment failed; expansion must "
                "be suppressed",
                also=("outreach_24h", "silent_customer"), control_for=("expansion",)),
        Planted("smb", CHRONIC.with_(nps=9, nps_days_ago=10),
                "NPS survey 10 d ago scored 9 BUT unhealthy (" + _CHRONIC_TEXT + "): no advocacy ask",
                also=("outreach_24h", "silent_customer"), control_for=("advocate",)),
    )


PLANTED: tuple[Planted, ...] = _planted()


def scenario_maps(keys: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(scenarios, controls) for the planted accounts, whose keys are `keys[i]` for PLANTED[i]."""
    scenarios: dict[str, list[str]] = {rule: [] for rule in RULE_IDS}
    controls: dict[str, list[str]] = {rule: [] for rule in RULE_IDS}
    controls[CLEAN_KEY] = []
    for key, spec in zip(keys, PLANTED, strict=False):
        for rule in spec.fires:
            scenarios[rule].append(key)
        for rule in spec.control_for:
            controls[rule].append(key)
        if spec.clean:
            controls[CLEAN_KEY].append(key)
    return scenarios, controls


# The scenarios were tuned against this health model and playbook (see bench/sandbox_scenarios.py): band
# rules depend on a model's bands, so other presets may band the same accounts differently.
CALIBRATED_FOR = {"health_model": "default", "playbook": "playbook-default"}


def scenario_manifest(portfolio, crm: str | None = None) -> dict:
    """JSON-able manifest: rule -> planted accounts that must fire it (with why), and the controls.
    With `crm` each entry also carries `crm_id`, the account's id in that CRM."""
    by_key = {a.key: a for a in portfolio.accounts}
    specs = dict(zip([a.key for a in portfolio.accounts], PLANTED, strict=False))

    def entry(key: str, rule: str | None) -> dict:
        account = by_key[key]
        spec = specs[key]
        item = {"account_key": key, "sf_id": account.sf_id, "hs_id": account.hs_id, "name": account.name,
                "segment": account.segment, "reason": spec.reason}
        if crm is not None:
            item["crm_id"] = account.sf_id if crm == "salesforce" else account.hs_id
        if rule is not None and spec.also:
            item["also_expected"] = list(spec.also)
        return item

    return {
        "seed": portfolio.seed,
        "size": portfolio.size,
        "as_of": portfolio.as_of.isoformat(),
        "crm": crm,
        "calibrated_for": CALIBRATED_FOR,
        "rules": list(RULE_IDS),
        "scenarios": {rule: [entry(k, rule) for k in keys] for rule, keys in portfolio.scenarios.items()},
        "controls": {rule: [entry(k, None) for k in keys] for rule, keys in portfolio.controls.items()},
    }
