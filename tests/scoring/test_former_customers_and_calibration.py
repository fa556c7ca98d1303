"""Who is still a customer (a lost last renewal makes a former one, whom a cycle no longer scores), and a
fitted model's calibration: score -> renewal probability, read from the health-model YAML."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import yaml

from healthsync.config.catalog import resolve_preset_path
from healthsync.config.documents import DefinitionError
from healthsync.config.health_model import load_model
from healthsync.scoring.base import Account, AccountFacts, Opportunity
from healthsync.scoring.calibration import Calibration
from healthsync.scoring.renewal import current_customers, is_former_customer

TODAY = date(2025, 6, 1)


def _renewal(n: int, close: date, *, won: bool, closed: bool = True) -> Opportunity:
    return Opportunity(f"O{n}", "renewal", 1000.0, "x", won, close, is_closed=closed or won)


@pytest.mark.parametrize(("opportunities", "former"), [
    ((), False),
    ((_renewal(1, date(2025, 5, 1), won=False),), True),
    ((_renewal(1, date(2024, 5, 1), won=True), _renewal(2, date(2025, 5, 1), won=False)), True),
    ((_renewal(1, date(2025, 5, 1), won=False), _renewal(2, date(2025, 5, 20), won=True)), False),
    ((_renewal(1, date(2025, 5, 1), won=False), _renewal(2, date(2026, 5, 1), won=False, closed=False)), False),
    ((_renewal(1, date(2025, 7, 1), won=False),), False),  # decided after today: still a customer today
    ((_renewal(1, date(2025, 5, 1), won=True),), False),
    ((Opportunity("E", "expansion", 1.0, "Closed Lost", False, date(2025, 5, 1), is_closed=True),), False),
])
def test_a_lost_last_renewal_with_nothing_after_it_makes_a_former_customer(opportunities, former):
    assert is_former_customer(opportunities, TODAY) is former


def test_current_customers_keeps_the_order_and_drops_former_ones():
    facts = [AccountFacts(Account(f"A{n}"), opportunities=opps) for n, opps in enumerate(
        [(), (_renewal(1, date(2025, 5, 1), won=False),), (_renewal(2, date(2025, 5, 1), won=True),)])]
    kept = current_customers(facts, datetime(2025, 6, 1, tzinfo=UTC))
    assert [f.account.id for f in kept] == ["A0", "A2"]


def test_calibration_interpolates_and_holds_its_ends():
    calibration = Calibration(90, ((0.0, 0.2), (50.0, 0.6), (100.0, 0.9)))
    assert calibration.renewal_probability(25) == pytest.approx(0.4)
    assert calibration.renewal_probability(75) == pytest.approx(0.75)
    assert calibration.renewal_probability(-5) == 0.2 and calibration.renewal_probability(130) == 0.9
    with pytest.raises(ValueError):
        Calibration(90, ((10.0, 0.2), (10.0, 0.3)))


def _default_document() -> dict:
    return yaml.safe_load(resolve_preset_path("default").read_text())


def test_a_model_file_may_carry_its_calibration_and_presets_carry_none():
    assert load_model(_default_document()).calibration is None
    document = {**_default_document(), "calibration": {
        "horizon_days": 90, "method": "logistic", "intercept": -1.5, "slope": 0.04,
        "table": [[0, 18.2], [50, 61.0], [100, 93.5]]}}
    calibration = load_model(document).calibration
    assert calibration.horizon_days == 90
    assert calibration.renewal_probability(50) == pytest.approx(0.61)


@pytest.mark.parametrize(("table", "message"), [
    ([[0, 20], [0, 40]], "strictly increasing"),
    ([[0, 20], [50, 140]], "percentage"),
    ([[0, 20]], "two or more"),
    ([[0, 20], [50]], "pair"),
])
def test_a_broken_calibration_table_is_one_clear_problem(table, message):
    document = {**_default_document(), "calibration": {"horizon_days": 90, "table": table}}
    with pytest.raises(DefinitionError) as error:
        load_model(document)
    assert len(error.value.problems) == 1 and error.value.problems[0][0].startswith("health.calibration.table")
    assert message in error.value.problems[0][1]
