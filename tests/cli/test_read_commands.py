"""The read-side commands against a pulled sandbox: pull, connectors test, identity, score and explain.

None of these tests writes to the CRM, so they share one deployment (see conftest.pulled)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from healthsync.connectors.records import AccountRecord
from tests.cli.conftest import (
    BOOK_SIZE,
    assert_fits,
    assert_no_traceback,
    emulator_calls,
    terminal,
    variant_config,
)

SOURCES = ("salesforce", "zendesk", "mixpanel")
SOURCE_ROW = re.compile(r"^\s*(salesforce|zendesk|mixpanel)\s+(ok|FAILED)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s",
                        re.MULTILINE)
STREAM_ROW = re.compile(r"^\s*(salesforce|zendesk|mixpanel)\s+([a-z_]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s*$",
                        re.MULTILINE)
SCORE_ROW = re.compile(r"^  (\S.*?)\s{2,}(\d+)\*?\s+([a-z-]+)\s", re.MULTILINE)


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _source_rows(out: str) -> dict[str, tuple[str, int, int, int]]:
    """source -> (status, records, API calls, 429s) from the pull's per-source table."""
    return {m[1]: (m[2], _number(m[3]), _number(m[4]), _number(m[5])) for m in SOURCE_ROW.finditer(out)}


def _accounts(pulled) -> dict[str, str]:
    """CRM account id -> name, as the store holds them."""
    records = (AccountRecord.from_json(r.data) for r in pulled.env.store.records.iter_stream("salesforce", "accounts"))
    return {a.id: a.name or a.id for a in records if not a.deleted}


# ------------------------------------------------------------------------------------------------- pull


def test_pull_summary_has_records_per_stream_and_the_api_calls_each_source_made(pulled):
    assert pulled.pull_code == 0, pulled.pull_out
    assert_fits(pulled.pull_out)
    streams = {(m[1], m[2]): _number(m[3]) for m in STREAM_ROW.finditer(pulled.pull_out)}
    store = pulled.env.store
    for source, stream in (("salesforce", "accounts"), ("salesforce", "contacts"), ("zendesk", "tickets"),
                           ("zendesk", "organizations")):
        assert streams[(source, stream)] == store.records.count(source, stream) > 0, (source, stream)
    assert streams[("salesforce", "accounts")] == BOOK_SIZE
    rows = _source_rows(pulled.pull_out)
    assert set(rows) == set(SOURCES)
    for source, (status, records, calls, rate_limited) in rows.items():
        assert status == "ok"
        assert records == sum(n for (src, _), n in streams.items() if src == source)
        # the pacer's count of this source's calls is what the emulator saw (logins are not paced)
        assert calls == pulled.pull_calls[source], (source, calls, pulled.pull_calls)
        assert rate_limited == 0


def test_pull_counts_a_429_against_the_source_that_got_it(pulled, cli):
    server = pulled.env.server
    server.faults.add(r"/incremental/tickets", status=429, headers={"Retry-After": "1"}, emulator="zendesk")
    before = server.calls.snapshot()
    code, out, err = cli("pull", "--config", pulled.config, "--source", "zendesk")
    assert code == 0, out + err
    assert server.faults.fired["status"] >= 1
    rows = _source_rows(out)
    assert set(rows) == {"zendesk"}, "--source zendesk pulls nothing else"
    status, _records, calls, rate_limited = rows["zendesk"]
    assert (status, rate_limited) == ("ok", 1)
    assert calls == emulator_calls(before, server.calls.snapshot())["zendesk"]


def test_pull_full_rereads_what_an_incremental_pull_skips(pulled, cli):
    code, out, err = cli("pull", "--config", pulled.config, "--source", "zendesk")
    assert code == 0, err
    incremental = {(m[1], m[2]): _number(m[3]) for m in STREAM_ROW.finditer(out)}
    code, out, err = cli("pull", "--config", pulled.config, "--source", "zendesk", "--full")
    assert code == 0, err
    assert "Records per stream (full pull)" in out
    full = {(m[1], m[2]): _number(m[3]) for m in STREAM_ROW.finditer(out)}
    tickets = pulled.env.store.records.count("zendesk", "tickets")
    assert full[("zendesk", "tickets")] == tickets > incremental[("zendesk", "tickets")]


def test_pull_of_an_unknown_source_is_a_usage_error(pulled, cli):
    code, out, err = cli("pull", "--config", pulled.config, "--source", "intercom")
    assert code == 2
    assert "--source intercom: not configured" in err and "salesforce" in err
    assert_no_traceback(out, err)


# ------------------------------------------------------------------------------------------ connectors test


def test_connectors_test_names_the_failing_source_and_the_fix(pulled, cli, monkeypatch):
    wrong = "not-the-zendesk-token-0000"
    monkeypatch.setenv("DEMO_ZENDESK_TOKEN", wrong)
    terminal(monkeypatch, width=1000)  # one verdict per line, unwrapped
    code, out, err = cli("connectors", "test", "--config", pulled.config)
    assert code == 1
    verdicts = [line for line in out.splitlines() if line.startswith(("OK", "FAIL"))]
    assert len(verdicts) == 3, out
    assert verdicts[0].startswith("OK   salesforce: ") and verdicts[2].startswith("OK   mixpanel: ")
    failed = verdicts[1]
    assert failed.startswith("FAIL zendesk: ") and "rejected the credentials" in failed
    assert " — fix: check zendesk.auth.email and zendesk.auth.token" in failed
    assert failed.count("check ") == 1, "the fix is said once"
    assert "zendesk failed" not in err and "1 of 3 connector(s) failed their check: zendesk" in err
    for secret in (wrong, pulled.env.env["DEMO_ZENDESK_TOKEN"]):
        assert secret not in out + err
    assert_no_traceback(out, err)


# ------------------------------------------------------------------------------------------------- identity


def test_identity_lists_the_planted_unmatched_zendesk_orgs(pulled, cli):
    code, out, err = cli("identity", "--config", pulled.config)
    assert code == 0, err
    assert_fits(out)
    planted = [org for org in pulled.env.server.portfolio.zendesk_orgs if org.account_key is None]
    assert planted, "the sandbox plants organizations that match no account"
    unmatched = {link.external_key for link in pulled.env.store.aggregates.identity_links("zendesk", status="unmatched")}
    for org in planted:
        assert str(org.id) in unmatched
        assert re.search(rf"^\s*zendesk\s+{org.id}\s+{re.escape(org.name)}\s+unmatched", out, re.MULTILINE), org
    counts = re.search(r"^\s*zendesk\s+(\d+)\s+(\d+)\s+(\d+)\s*$", out, re.MULTILINE)
    assert counts and int(counts[2]) == len(unmatched) >= len(planted)
    assert int(counts[1]) + int(counts[2]) + int(counts[3]) == len(pulled.env.server.portfolio.zendesk_orgs)
    assert "fix for unmatched zendesk keys: set the org's external_id" in out


# ------------------------------------------------------------------------------------------------- score


def test_score_prints_band_counts_lowest_scores_and_drops(pulled, cli):
    code, out, err = cli("score", "--config", pulled.config, "--limit", "5")
    assert code == 0, err
    assert_fits(out)
    assert re.search(rf"^{BOOK_SIZE} accounts scored as of .* with model default \(nothing written\)", out, re.M)
    bands = dict(re.findall(r"^\s+(healthy|at-risk|critical)\s+(\d+)\s+\d+%", out, re.MULTILINE))
    assert sum(int(n) for n in bands.values()) == BOOK_SIZE
    lowest_block = out.split("Lowest 5 scores", 1)[1].split("Biggest 7-day drops", 1)[0]
    lowest = [(name, int(score), band) for name, score, band in SCORE_ROW.findall(lowest_block)]
    assert len(lowest) == 5 and [s for _, s, _ in lowest] == sorted(s for _, s, _ in lowest)
    assert set(_accounts(pulled).values()) >= {name for name, _, _ in lowest}
    assert lowest[0][2] == "critical" and int(bands["critical"]) >= 1
    # the compact "why": the costliest measures with the points they cost, never the whole explanation
    assert re.search(r"[a-z_0-9]+ [\d.]+ \(-\d+\)", lowest_block)
    assert "Pulling down" not in out
    drops = out.split("Biggest 7-day drops", 1)[1]
    assert [int(d) for d in re.findall(r"^  \S.*?\s{2,}\d+\*?\s+[a-z-]+\s+(-\d+)\s", drops, re.M)] == sorted(
        int(d) for d in re.findall(r"^  \S.*?\s{2,}\d+\*?\s+[a-z-]+\s+(-\d+)\s", drops, re.M))


def test_score_as_of_and_model_options(pulled, cli):
    day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    code, out, err = cli("score", "--config", pulled.config, "--as-of", day, "--model", "points-100", "--limit", "1")
    assert code == 0, err
    assert f"scored as of {day} 00:00 UTC with model points-100" in out
    assert set(re.findall(r"^\s+(healthy|stable|at-risk|critical)\s+\d+\s+\d+%", out, re.M)) <= {
        "healthy", "stable", "at-risk", "critical"}


def test_score_rejects_a_bad_as_of_and_an_unknown_model(pulled, cli):
    code, out, err = cli("score", "--config", pulled.config, "--as-of", "last tuesday")
    assert code == 2 and "--as-of: 'last tuesday' is not a date" in err and out == ""
    code, out, err = cli("score", "--config", pulled.config, "--model", "points-1000")
    assert code == 2 and "unknown health preset 'points-1000'" in err and "points-100" in err
    assert_no_traceback(out, err)


def test_commands_on_an_empty_store_say_to_pull_first(pulled, cli, tmp_path):
    config = variant_config(pulled.env.config_path, tmp_path / "empty.yaml", store={"data_dir": str(tmp_path)})
    for command in (["score"], ["explain", "anything"], ["identity"], ["plan"]):
        code, out, err = cli(*command, "--config", str(config))
        assert code == 2, command
        assert "run `healthsync pull` first" in err, (command, err)
        assert_no_traceback(out, err)


# ------------------------------------------------------------------------------------------------- explain


def test_explain_by_id_and_by_name_fragment_agree_with_score(pulled, cli):
    code, out, _ = cli("score", "--config", pulled.config, "--limit", "1")
    name, score, band = SCORE_ROW.findall(out.split("Lowest 1 scores", 1)[1])[0]
    accounts = _accounts(pulled)
    (account_id,) = [i for i, n in accounts.items() if n == name]
    fragment = name.split()[0].lower()
    if sum(fragment in n.lower() for n in accounts.values()) != 1:
        fragment = name.lower()
    header = f"{name} ({account_id}) — score {score} ({band})"
    for query in (account_id, fragment):
        code, out, err = cli("explain", query, "--config", pulled.config)
        assert code == 0, err
        assert_fits(out)
        assert out.splitlines()[0].startswith(header), (query, out.splitlines()[0])
        for section in ("Components and measures", "Why: Health", "Rules fired", "History:"):
            assert section in out, section
    # every measure is listed with its signal and raw value (or "no data")
    measure_rows = re.findall(r"^    ([a-z_]+)\s+([a-z_0-9]+)\s+(\S+)", out, re.MULTILINE)
    assert len(measure_rows) >= 10 and all(raw for _, _, raw in measure_rows)
    assert re.search(r"^  • [a-z_0-9]+ — (task|escalation), (low|normal|high|urgent), due \d{4}-\d\d-\d\d: ", out,
                     re.MULTILINE), "the lowest-scored account fires at least one rule"


def test_explain_ambiguous_or_unknown_name_is_a_usage_error(pulled, cli):
    accounts = _accounts(pulled)
    words: dict[str, int] = {}
    for name in accounts.values():
        for word in set(name.lower().split()):
            words[word] = words.get(word, 0) + 1
    shared = max(words, key=lambda w: words[w])
    assert words[shared] >= 2
    code, out, err = cli("explain", shared, "--config", pulled.config)
    assert code == 2
    assert f"{words[shared]} accounts match {shared!r}" in err and "give more of the name or the CRM id" in err
    code, out, err = cli("explain", "no-such-account-xyz", "--config", pulled.config)
    assert code == 2 and "no account has the id or a name containing 'no-such-account-xyz'" in err
    assert_no_traceback(out, err)
