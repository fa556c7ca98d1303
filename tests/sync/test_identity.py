"""Identity resolution: configured order, ambiguity and unmatched keys are reported, never guessed."""

from healthsync.sync.identity import (
    AccountIndex,
    AccountKey,
    resolve_usage_key,
    resolve_zendesk_org,
    summarise,
)

INDEX = AccountIndex([
    AccountKey("001AAA", "acme.com"),
    AccountKey("001BBB", "https://www.Globex.com/"),
    AccountKey("001CCC", "twin.io"),
    AccountKey("001DDD", "twin.io"),
])


def test_zendesk_external_id_first_then_domain():
    assert resolve_zendesk_org(INDEX, "7", "001AAA", ["other.com"]).account_id == "001AAA"
    r = resolve_zendesk_org(INDEX, "8", None, ["globex.com"])
    assert (r.status, r.account_id, r.method) == ("matched", "001BBB", "domain")
    r = resolve_zendesk_org(INDEX, "9", "nope", ["nothing.org"])
    assert (r.status, r.account_id) == ("unmatched", None)


def test_configured_order_is_honoured():
    # external id says AAA, domain says BBB: the first method in the order wins
    assert resolve_zendesk_org(INDEX, "7", "001AAA", ["globex.com"]).account_id == "001AAA"
    r = resolve_zendesk_org(INDEX, "7", "001AAA", ["globex.com"], order=("domain", "external_id"))
    assert r.account_id == "001BBB"
    assert resolve_zendesk_org(INDEX, "7", "001AAA", [], order=("domain",)).status == "unmatched"


def test_two_accounts_sharing_a_domain_are_ambiguous_not_guessed():
    r = resolve_zendesk_org(INDEX, "10", None, ["twin.io"])
    assert (r.status, r.account_id, r.candidates) == ("ambiguous", None, ("001CCC", "001DDD"))


def test_mixpanel_keys():
    assert resolve_usage_key(INDEX, "group_crm_id", "001BBB").account_id == "001BBB"
    assert resolve_usage_key(INDEX, "group_domain", "acme.com").account_id == "001AAA"
    assert resolve_usage_key(INDEX, "email_domain", "gmail.com").status == "unmatched"
    assert resolve_usage_key(INDEX, "email_domain", "globex.com", order=("group_crm_id",)).status == "unmatched"


def test_summary_counts_every_status():
    rs = [resolve_zendesk_org(INDEX, "1", "001AAA", []), resolve_zendesk_org(INDEX, "2", None, ["twin.io"]),
          resolve_usage_key(INDEX, "email_domain", "x.org")]
    assert summarise(rs) == {"zendesk": {"matched": 1, "unmatched": 0, "ambiguous": 1},
                             "mixpanel": {"matched": 0, "unmatched": 1, "ambiguous": 0}}
