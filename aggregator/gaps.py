"""Sequence gaps of a node: what is missing, whether it is still being repaired, and when to ask for it.

Every payload a node sends through its outbox carries the next `seq`, so a hole between the ranges the
aggregator received is a payload it has not got. A gap is one of:

- `open`: not (yet) received; the aggregator asks the node to send it again (`ReplayScheduler`);
- `unrecoverable`: the node answered that it cannot, with its reason (e.g. "outside node history");
- `not believed`: wider than `REPLAY_MAX_SPAN`: no outage loses that many payloads between two received
  ones, a forged or corrupted `seq` does; reported as such, never counted as missing, never asked for.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from edge.mqtt_common import REPLAY_MAX_SPAN, ReplayRequest

GapState = Literal["open", "unrecoverable", "not believed"]

NodeKey = tuple[str, str]
"""(store_id, node_id)."""


@dataclass(frozen=True)
class Gap:
    """Missing `seq`s `lo`..`hi` (inclusive) of a node, and what became of them."""

    lo: int
    hi: int
    state: GapState
    reason: str | None = None

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1


def gap_report(
    ranges: Sequence[tuple[int, int]], unrecoverable: Sequence[tuple[int, int, str]] = ()
) -> list[Gap]:
    """The gaps between received `ranges` (sorted, disjoint, inclusive), split by the node's answers
    `unrecoverable` ((lo, hi, reason), sorted by `lo`), in `seq` order."""
    out: list[Gap] = []
    for a, b in itertools.pairwise(ranges):
        lo, hi = a[1] + 1, b[0] - 1
        if hi < lo:
            continue
        if hi - lo + 1 > REPLAY_MAX_SPAN:
            why = (
                f"seq {hi + 1} after {lo - 1} is not believed: a jump wider than {REPLAY_MAX_SPAN} "
                "(forged or corrupted), not a loss"
            )
            out.append(Gap(lo, hi, "not believed", why))
            continue
        for u_lo, u_hi, reason in unrecoverable:
            if u_hi < lo or u_lo > hi:
                continue
            if u_lo > lo:
                out.append(Gap(lo, u_lo - 1, "open"))
            out.append(Gap(max(lo, u_lo), min(hi, u_hi), "unrecoverable", reason))
            lo = u_hi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append(Gap(lo, hi, "open"))
    return out


def missing_count(report: Sequence[Gap]) -> int:
    """Payloads missing: open and unrecoverable gaps (a gap not believed is no count of anything)."""
    return sum(g.size for g in report if g.state != "not believed")


@dataclass
class _Asking:
    first_seen: float
    asked_at: float | None = None
    attempts: int = 0


class ReplayScheduler:
    """When to ask a node for its open gaps again (in memory; a restarted aggregator starts afresh).

    A gap is asked for once it has been open `grace_s` (a payload merely late fills it on its own), then
    again after `retry_s`, doubling up to `max_retry_s` while it stays open (the node may be offline or
    busy). A gap that closes or becomes unrecoverable is forgotten when the next batch of its node says so.
    """

    def __init__(self, grace_s: float = 2.0, retry_s: float = 5.0, max_retry_s: float = 60.0) -> None:
        self.grace_s = grace_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._open: dict[NodeKey, dict[tuple[int, int], _Asking]] = {}
        self.requests = 0

    def observe(self, gaps: Mapping[NodeKey, Sequence[tuple[int, int]]], now: float) -> None:
        """The open gaps of the nodes a batch touched (an empty list: none left)."""
        for node, ranges in gaps.items():
            old = self._open.get(node, {})
            new = {(lo, hi): old.get((lo, hi)) or _Asking(now) for lo, hi in ranges}
            if new:
                self._open[node] = new
            else:
                self._open.pop(node, None)

    def due(self, now: float, limit: int = 100) -> list[tuple[str, str, ReplayRequest]]:
        """The requests to send now (at most `limit`), marked as asked."""
        out: list[tuple[str, str, ReplayRequest]] = []
        for (store_id, node_id), gaps in self._open.items():
            for (lo, hi), asking in gaps.items():
                if len(out) >= limit:
                    return out
                if now - asking.first_seen < self.grace_s:
                    continue
                wait = min(self.retry_s * 2 ** max(asking.attempts - 1, 0), self.max_retry_s)
                if asking.asked_at is not None and now - asking.asked_at < wait:
                    continue
                asking.asked_at, asking.attempts = now, asking.attempts + 1
                self.requests += 1
                out.append((store_id, node_id, ReplayRequest(uuid.uuid4().hex, lo, hi)))
        return out

    def open_gaps(self) -> dict[NodeKey, list[tuple[int, int]]]:
        return {node: sorted(gaps) for node, gaps in self._open.items()}
