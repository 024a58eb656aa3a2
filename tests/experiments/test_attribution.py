"""Joining served lists and the events that name them: scopes, windows, positions."""

from __future__ import annotations

from recommendation_service.experiments.attribution import Attribution, rates

HOUR = 3600.0


def test_a_list_counts_for_the_service_its_endpoint_and_its_variant():
    a = Attribution()
    a.impression("r1", ["a", "b", "c"], 1000.0, "recommend", "exp", "control")
    a.impression("r2", ["d", "e"], 1000.0, "similar")
    a.impression("r3", ["f"], 1000.0, "dashboard_user")
    for rid, item, action in [("r1", "b", "click"), ("r1", "c", "click"),
                              ("r1", "b", "purchase"), ("r2", "e", "view"),
                              ("r3", "f", "click")]:  # fmt: skip
        a.event(1001.0, rid, item, action)
    assert a.join(60.0)
    out = a.summary(1100.0)
    service = out["service"]["all"]
    assert service["lists"] == 2  # the dashboard's list is an operator's, not a user's
    assert service["clicks"] == 3 and service["clicked_lists"] == 2
    assert service["conversions"] == 1 and service["converted_lists"] == 1
    assert service["clicks_by_position"] == [0, 2, 1]
    assert out["endpoints"]["dashboard_user"]["all"]["clicked_lists"] == 1
    control = out["experiments"]["exp"]["control"]
    assert control["lists"] == 1 and control["clicks"] == 2 and control["converted_lists"] == 1
    assert rates(service) == {"click_through": 1.0, "conversion": 0.5}


def test_the_last_hour_holds_the_lists_served_in_it_and_what_was_done_with_them():
    a = Attribution()
    a.impression("old", ["a"], 0.0, "recommend")
    a.impression("new", ["a"], HOUR, "recommend")
    a.event(HOUR + 5, "old", "a", "click")  # a late click on an old list
    a.event(HOUR + 5, "new", "a", "click")
    a.join(60.0)
    out = a.summary(HOUR + 30)
    assert out["service"]["all"]["lists"] == 2 and out["service"]["all"]["clicked_lists"] == 2
    hour = out["service"]["last_hour"]
    assert hour["lists"] == 1 and hour["clicked_lists"] == 1
    later = a.summary(3 * HOUR)
    assert later["service"]["last_hour"]["lists"] == 0
    assert later["service"]["all"]["lists"] == 2


def test_an_event_whose_list_never_comes_is_unattributed_after_the_join_wait():
    a = Attribution()
    a.event(100.0, "missing", "a", "purchase")
    a.join(60.0)
    assert a.summary(100.0)["waiting"] == 1
    a.impression("later", ["a"], 200.0, "recommend")  # impressions have moved past the wait
    a.join(60.0)
    out = a.summary(200.0)
    assert out["waiting"] == 0 and out["unattributed"] == {"clicks": 0, "conversions": 1}


def test_an_event_that_arrives_before_its_list_is_joined_when_the_list_comes():
    a = Attribution()
    a.event(100.0, "r", "b", "click")
    a.join(60.0)
    a.impression("r", ["a", "b"], 99.0, "recommend")
    a.join(60.0)
    assert a.summary(120.0)["service"]["all"]["clicks_by_position"] == [0, 1]


def test_only_the_newest_lists_are_kept_for_joining():
    a = Attribution(max_lists=2)
    for k in range(3):
        a.impression(f"r{k}", ["a"], 10.0 + k, "recommend")
    assert list(a.lists) == ["r1", "r2"]
    assert a.summary(20.0)["service"]["all"]["lists"] == 3
