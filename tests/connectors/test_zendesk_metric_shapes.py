"""ZendeskSource reads ticket metrics in every shape Zendesk documents for `include=metric_sets`: a metric set
nested in each ticket (`ticket["metric_set"]`), a top-level `metric_sets` sideload keyed by ticket id, or both.
If it read only one, reopens and solved times would silently be empty on an account that answers the other."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthsync.connectors.zendesk import ZendeskSource
from healthsync.connectors.zendesk.source import _metric_sets

from . import zm_conn_fixtures as fx

SHAPES = ("nested", "sideload", "both")


@pytest.fixture()
def server():
    with fx.zendesk_server() as srv:
        yield srv


def make_source(server) -> ZendeskSource:
    return ZendeskSource(server.http_url, fx.scaled_zendesk_pacer(), retry=fx.fast_retry(), export_page_size=5,
                         **fx.zendesk_credentials())


def read(source: ZendeskSource, stream: str, server, state=None) -> tuple[dict, list]:
    pages = list(source.read(stream, state, as_of=server.clock.now()))
    return {r.primary_key: r for p in pages for r in p.records}, pages


def expected_metrics() -> dict[str, fx.Ticket]:
    return {str(t.id): t for t in fx.make_portfolio().tickets if t.id not in fx.DELETED_TICKETS}


@pytest.mark.parametrize("shape", SHAPES)
def test_ticket_metrics_are_read_from_each_shape(server, shape):
    server.emulator("zendesk").metric_set_shape = shape
    metrics, _ = read(make_source(server), "ticket_metrics", server)
    expected = expected_metrics()
    assert set(metrics) == set(expected)
    for key, ticket in expected.items():
        got = metrics[key]
        assert (got.reopens, got.replies) == (ticket.reopens, ticket.replies)
        assert got.full_resolution_minutes == ticket.full_resolution_minutes
    assert any(m.reopens for m in metrics.values()) and any(m.full_resolution_minutes for m in metrics.values())


@pytest.mark.parametrize("shape", SHAPES)
def test_solved_times_on_tickets_come_from_each_shape(server, shape):
    server.emulator("zendesk").metric_set_shape = shape
    tickets, _ = read(make_source(server), "tickets", server)
    solved = {str(t.id): t.solved_at for t in fx.make_portfolio().tickets}
    assert {k: t.solved_at for k, t in tickets.items()} == solved
    assert sum(1 for v in solved.values() if v is not None) >= 5  # the comparison is not vacuous


@pytest.mark.parametrize("shape", ("nested", "sideload"))
def test_a_metric_change_arrives_through_each_shape(server, shape):
    emu = server.emulator("zendesk")
    emu.metric_set_shape = shape
    source = make_source(server)
    _, pages = read(source, "ticket_metrics", server)
    emu.update_ticket(7, reopens=6)
    server.clock.advance(timedelta(seconds=61))
    changed, _ = read(source, "ticket_metrics", server, pages[-1].state)
    assert set(changed) == {"7"} and changed["7"].reopens == 6


class _Page:
    def __init__(self, body: dict):
        self._response_json = body


def test_nested_metric_set_wins_and_one_without_ticket_id_still_belongs_to_its_ticket():
    nested = {"reopens": 2, "replies": 1}
    page = _Page({"metric_sets": [{"ticket_id": 1, "reopens": 9}, {"ticket_id": 2, "reopens": 4}]})
    found = _metric_sets(page, [{"id": 1, "metric_set": nested}, {"id": 3, "metric_set": None}])
    assert found[1] == {**nested, "ticket_id": 1}  # nested wins, and gets its ticket's id
    assert found[2]["reopens"] == 4  # sideload-only tickets still have theirs
    assert 3 not in found  # a null metric_set is no metric set
