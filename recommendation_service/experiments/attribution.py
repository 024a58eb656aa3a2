"""What users did with the lists they were shown: counts per scope, since start and over the
last hour.

Every list a server answers carries a ``recommendation_id`` and (with an impressions topic)
is published as an impression; events that carry the id are joined to it. A list counts in
several *scopes* at once: the service as a whole (lists shown to users, not the dashboard's),
the endpoint that served it (``recommend``, ``similar``, ...), and its experiment variant
when it was served in one. Per
scope:

* ``lists`` -- lists served;
* ``clicks`` / ``clicked_lists`` -- events other than purchases carrying a list's id, and
  lists with at least one (click-through = clicked_lists / lists);
* ``conversions`` / ``converted_lists`` -- ``purchase`` events, and lists with at least one;
* ``clicks_by_position`` -- clicks per position (0-based) of the clicked item in its list.

"Last hour" covers the lists served in the last hour (by impression time) and what was done
with them, so its rates compare like with like: a click on a list shown 61 minutes ago counts
since start only. Minutes are the unit (``BUCKET_SECONDS``).
"""

from __future__ import annotations

from collections import OrderedDict, deque

CONVERSION_ACTIONS = frozenset({"purchase"})
MAX_POSITIONS = 100
BUCKET_SECONDS = 60
HOUR_BUCKETS = 60
#: The scope every list shown to users counts in.
SERVICE = "service"
#: Lists an operator looks at on the dashboard: counted per endpoint, never as the service's.
OPERATOR_ENDPOINTS = frozenset({"dashboard_user", "dashboard_item"})


def empty_counts() -> dict:
    return {"lists": 0, "clicks": 0, "clicked_lists": 0, "conversions": 0,
            "converted_lists": 0, "clicks_by_position": []}  # fmt: skip


def add_counts(total: dict, part: dict) -> None:
    for key in ("lists", "clicks", "clicked_lists", "conversions", "converted_lists"):
        total[key] += part[key]
    by_position = total["clicks_by_position"]
    for position, clicks in enumerate(part["clicks_by_position"]):
        if position >= len(by_position):
            by_position.append(0)
        by_position[position] += clicks


def rates(counts: dict) -> dict:
    """Click-through and conversion of ``counts`` (None with no lists)."""
    n = counts["lists"]
    return {
        "click_through": counts["clicked_lists"] / n if n else None,
        "conversion": counts["converted_lists"] / n if n else None,
    }


class ScopeCounts:
    """One scope's counts since start and per minute of impression time."""

    def __init__(self) -> None:
        self.total = empty_counts()
        self.minutes: OrderedDict[int, dict] = OrderedDict()

    def _minute(self, minute: int) -> dict | None:
        counts = self.minutes.get(minute)
        if counts is None:
            if self.minutes and minute < next(iter(self.minutes)):
                return None  # older than what is kept: since start only
            counts = self.minutes[minute] = empty_counts()
            if len(self.minutes) > 1 and minute < next(reversed(self.minutes)):
                self.minutes = OrderedDict(sorted(self.minutes.items()))  # late impression
        return counts

    def add(self, minute: int, key: str, position: int | None = None) -> None:
        for counts in (self.total, self._minute(minute)):
            if counts is None:
                continue
            counts[key] += 1
            if position is not None:
                by_position = counts["clicks_by_position"]
                by_position.extend([0] * (position + 1 - len(by_position)))
                by_position[position] += 1

    def prune(self, now_minute: int) -> None:
        while self.minutes and next(iter(self.minutes)) <= now_minute - HOUR_BUCKETS:
            self.minutes.popitem(last=False)

    def last_hour(self, now_minute: int) -> dict:
        out = empty_counts()
        for minute, counts in self.minutes.items():
            if minute > now_minute - HOUR_BUCKETS:
                add_counts(out, counts)
        return out


class ServedList:
    """A served list waiting for the events that name it."""

    __slots__ = ("clicked", "converted", "items", "minute", "scopes")

    def __init__(self, scopes: tuple[ScopeCounts, ...], items: list[str], minute: int) -> None:
        self.scopes, self.items, self.minute = scopes, items, minute
        self.clicked = self.converted = False


class Attribution:
    """Joins impressions and events; keeps every scope's counts.

    Parameters
    ----------
    max_lists
        Lists kept for joining (the newest); an event naming an older one is unattributed.
    """

    def __init__(self, max_lists: int = 500_000) -> None:
        self.max_lists = max_lists
        self.lists: OrderedDict[str, ServedList] = OrderedDict()
        self.scopes: dict[tuple, ScopeCounts] = {}
        self.pending: deque = deque()  # (event time, id, item, action)
        self.unattributed = {"clicks": 0, "conversions": 0}
        self.impression_time = 0.0

    def scope(self, *key: str) -> ScopeCounts:
        counts = self.scopes.get(key)
        if counts is None:
            counts = self.scopes[key] = ScopeCounts()
        return counts

    def impression(self, rid: str, items: list[str], ts: float, endpoint: str,
                   experiment: str | None = None, variant: str | None = None) -> None:  # fmt: skip
        scopes = [self.scope("endpoint", endpoint)]
        if endpoint not in OPERATOR_ENDPOINTS:
            scopes.append(self.scope(SERVICE))
        if experiment is not None and variant is not None:
            scopes.append(self.scope("variant", experiment, variant))
        minute = int(ts // BUCKET_SECONDS)
        for counts in scopes:
            counts.add(minute, "lists")
        self.lists[rid] = ServedList(tuple(scopes), items, minute)
        while len(self.lists) > self.max_lists:
            self.lists.popitem(last=False)
        self.impression_time = max(self.impression_time, ts)

    def event(self, ts: float, rid: str, item: str, action) -> None:
        self.pending.append((ts, rid, item, action))

    def join(self, join_seconds: float) -> bool:
        """Attribute waiting events whose list is known; count as unattributed those whose list
        has not appeared within ``join_seconds`` of impression time. True if anything changed."""
        changed, still = False, deque()
        while self.pending:
            ts, rid, item, action = entry = self.pending.popleft()
            served = self.lists.get(rid)
            if served is not None:
                self._attribute(served, item, action)
                changed = True
            elif self.impression_time > ts + join_seconds or len(still) > self.max_lists:
                kind = "conversions" if action in CONVERSION_ACTIONS else "clicks"
                self.unattributed[kind] += 1
                changed = True
            else:
                still.append(entry)
        self.pending = still
        return changed

    def _attribute(self, served: ServedList, item: str, action) -> None:
        if action in CONVERSION_ACTIONS:
            first, served.converted = not served.converted, True
            for counts in served.scopes:
                counts.add(served.minute, "conversions")
                if first:
                    counts.add(served.minute, "converted_lists")
            return
        first, served.clicked = not served.clicked, True
        position = None
        if item in served.items:
            position = min(served.items.index(item), MAX_POSITIONS - 1)
        for counts in served.scopes:
            counts.add(served.minute, "clicks", position)
            if first:
                counts.add(served.minute, "clicked_lists")

    def summary(self, now: float) -> dict:
        """The counts file's body: service, endpoints, experiments' variants, each since start
        (``all``) and over the ``last_hour``; variants keep their since-start counts at the
        top level too (what ``GET /experiments`` analyses)."""
        now_minute = int(now // BUCKET_SECONDS)
        out: dict = {"service": {}, "endpoints": {}, "experiments": {}}
        for key, counts in self.scopes.items():
            counts.prune(now_minute)
            both = {"all": _copy(counts.total), "last_hour": counts.last_hour(now_minute)}
            if key[0] == SERVICE:
                out["service"] = both
            elif key[0] == "endpoint":
                out["endpoints"][key[1]] = both
            else:
                out["experiments"].setdefault(key[1], {})[key[2]] = {
                    **_copy(counts.total),
                    "last_hour": both["last_hour"],
                }
        out["unattributed"] = dict(self.unattributed)
        out["waiting"] = len(self.pending)
        out["tracked_lists"] = len(self.lists)
        return out


def _copy(counts: dict) -> dict:
    return {**counts, "clicks_by_position": list(counts["clicks_by_position"])}
