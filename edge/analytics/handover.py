"""The hand-over of visits (and staff flags) between the edge boxes of one store, at their boundary.

Pure like the rest of the analytics: messages in, messages and events out, time from the steps only. The
transport (`edge.node.handover_transport`, or the simulator's broker loop) carries `outgoing` to the
neighbours and passes what arrives to `receive`.

The box a visitor leaves (their track goes `hysteresis_m` past its area, into a neighbour's) closes what
it measured of the visit (dwell, car entries, reception so far, as events) and offers the visit to that
neighbour: visitor id, floor position, velocity, the time, the door and start of the visit and its flags.
The neighbour adopts it for the track it sees where and when the offer predicts (within `gate_m` of the
position carried forward at the offered velocity, within `window_s`), and says so (`handover.taken`); it
counts from then on and sends the one `visit.ended`. A visitor who turns back before being taken (the
leaving track comes back into the area, or a new track appears where they left) is kept, and the offer
withdrawn. An offer nobody takes within `timeout_s` ends the visit as lost at the boundary (counted).
Staff members are pointed out too (an offer with no answer expected), whenever they stand in a neighbour's
view, on either side of the boundary, and again every `staff_repeat_s` while there: the neighbour flags its
track of them staff, so that its visitors talking with them across the boundary are received.

Clock offsets between boxes: each message carries its sender's offset (+ = fast, as its heartbeat
reports it) and the receiver moves the message's time onto its own clock; offers older than `window_s`
on arrival (a neighbour back from being offline, a broker replaying a session) are dropped and counted,
and each message id is taken once, so nothing is replayed twice.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from shapely.geometry import Point

from edge.analytics.door import DoorCounter, outside_doors
from edge.analytics.reception import ReceptionStreak
from edge.analytics.track_records import TrackRecords
from edge.analytics.visits import Visit, Visits
from edge.analytics.zones import ZoneStay
from edge.events import Envelope, IdSource
from edge.handover_messages import HandoverMessage, HandoverType
from edge.store_areas import BoxLayout
from edge.tracking.base import TrackState
from vision_models.arrays import XY

_SEEN_IDS = 4096
"""How many message ids are remembered to refuse a repeat."""


@dataclass(frozen=True)
class HandoverRules:
    """Gating of a hand-over in metres and seconds.

    Attributes:
        gate_m: the adopted track is at most this far from where the offer predicts the person.
        predict_max_s: the offered position is carried forward at the offered velocity this long at most.
        window_s: how long the receiving box looks for the person after the boundary time.
        timeout_s: how long the offering box waits to hear that the visit was taken; then the visit ends
            as lost at the boundary.
    """

    gate_m: float = 1.5
    predict_max_s: float = 2.0
    window_s: float = 8.0
    timeout_s: float = 15.0
    staff_view_m: float = 1.5
    """A staff member this close to a neighbour's area (inside the strip its cameras see, with a margin) is
    pointed out to it, so that its visitors talking with them across the boundary are received."""
    staff_repeat_s: float = 10.0
    """... again this often while they stay there (the neighbour's track of them may have broken)."""
    staff_gate_m: float = 0.5
    """A staff member is pointed out where both boxes see them at the same moment (their positions agree
    within a few decimetres): the flag goes only to a track this near. A visitor talking with them stands
    0.6 m away or more, and a wrong flag takes a visitor out of the counts and receives everyone beside
    them."""
    staff_clear_m: float = 0.4
    """... and only when the next track is at least this much farther."""


@dataclass
class HandoverCounts:
    """What the hand-over did, for the heartbeat: sent and answered offers, adoptions, losses."""

    offered: int = 0
    taken: int = 0
    """Offers of this box that a neighbour took."""
    adopted: int = 0
    """Neighbours' visits this box took over."""
    withdrawn: int = 0
    """Visitors who turned back before being taken (offers of this box withdrawn)."""
    returned: int = 0
    """Visits this box had taken that their neighbour withdrew (released again)."""
    lost_at_boundary: int = 0
    """Offers nobody took in time: those visits ended as lost."""
    unmatched: int = 0
    """Neighbours' offers for which no track appeared in time."""
    stale: int = 0
    """Offers that arrived too late to be taken (neighbour offline, replayed session)."""
    repeated: int = 0
    """Messages received a second time (ignored)."""
    staff_offered: int = 0
    staff_adopted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Offered:
    """A visit this box offered and has not heard about yet."""

    visit: Visit
    track_id: int | None
    to_node: str
    ts_utc: datetime
    xy_m: XY
    stays: dict[str, ZoneStay] = field(default_factory=dict)
    reception: ReceptionStreak | None = None

    def restore(self) -> Visit:
        """The visit with the stays and conversation it carried (they stay here after all)."""
        self.visit.stays.update(self.stays)
        if self.visit.reception is None:
            self.visit.reception = self.reception
        return self.visit


@dataclass
class _Incoming:
    message: HandoverMessage
    at_utc: datetime
    """The boundary time on this box's clock."""


@dataclass
class _Adopted:
    from_node: str
    track_ids: set[int] = field(default_factory=set)


class Handover:
    """One box's side of the hand-over; `step` once per analytics step, after the visits' metrics."""

    def __init__(
        self,
        layout: BoxLayout,
        store_id: str,
        visits: Visits,
        records: TrackRecords,
        ids: IdSource,
        doors: Sequence[DoorCounter] = (),
        rules: HandoverRules | None = None,
    ) -> None:
        self.layout = layout
        self.doors = doors
        """The store's doors (every one, not only those this box counts): nobody past them is taken for a
        person handed over, and a visitor of this box who walks out past a neighbour's door has left."""
        self._own_doors = [d for d in doors if layout.holds_line(d.door.line_m)]
        self.store_id = store_id
        self.visits = visits
        self.records = records
        self.ids = ids
        self.rules = rules or HandoverRules()
        self.clock_offset_s: float | None = None
        """This box's clock offset (+ = fast), sent with each message; set by the node from its vitals."""
        self.counts = HandoverCounts()
        self.outgoing: list[HandoverMessage] = []
        """Messages to send, oldest first; the transport takes them (`take_outgoing`)."""
        self._inbox: list[HandoverMessage] = []
        self._offered: dict[str, _Offered] = {}
        self._incoming: dict[str, _Incoming] = {}
        self._adopted: dict[str, _Adopted] = {}
        self._staff_offered: dict[tuple[int, str], tuple[str, datetime]] = {}
        """(track id, neighbour): the staff id it was pointed out under, and when last."""
        self._seen: OrderedDict[str, None] = OrderedDict()

    @property
    def node_id(self) -> str:
        return self.layout.node_id

    @property
    def pending(self) -> int:
        """Offers of this box not answered yet."""
        return len(self._offered)

    def take_outgoing(self) -> list[HandoverMessage]:
        out, self.outgoing = self.outgoing, []
        return out

    def receive(self, message: HandoverMessage) -> bool:
        """Queue a message from a neighbour for the next step; False (ignored) when it is not for this box or
        was received before."""
        if message.to_node != self.node_id or message.store_id != self.store_id:
            return False
        if message.message_id in self._seen:
            self.counts.repeated += 1
            return False
        self._seen[message.message_id] = None
        while len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        self._inbox.append(message)
        return True

    def step(self, ts_utc: datetime, tracks: Sequence[TrackState]) -> list[Envelope]:
        """Answer what came, offer who left, keep who turned back, adopt who arrived, end what timed out."""
        by_id = {t.track_id: t for t in tracks}
        out: list[Envelope] = []
        for message in self._take_inbox():
            out += self._handle(ts_utc, message)
        out += self._leaving(ts_utc, by_id)
        self._turned_back(ts_utc, by_id)
        self._arriving(ts_utc, by_id)
        out += self._expire(ts_utc)
        self._staff_offered = {k: v for k, v in self._staff_offered.items() if k[0] in by_id}
        return out

    def track_ending(self, track_id: int) -> None:
        """The tracker is ending `track_id`: a staff member whose track ends past this box's boundary has
        walked over to the neighbour (handed over), and is not a staff member lost here, whose flag the
        next look-alike track would take."""
        record = self.records.get(track_id)
        last = record.last if record is not None and record.staff else None
        if record is not None and last is not None and self.layout.beyond_m(last.xy) > 0:
            record.staff = False

    def flush(self) -> None:
        """The node stops: visits still on offer go back to the visits (ended with the others)."""
        for visitor_id, offered in self._offered.items():
            self.visits.open[visitor_id] = offered.restore()
        self._offered.clear()
        self._incoming.clear()
        self._adopted.clear()
        self._staff_offered.clear()

    # ---------------------------------------------------------------------------------------------
    # Messages in
    # ---------------------------------------------------------------------------------------------

    def _take_inbox(self) -> list[HandoverMessage]:
        inbox, self._inbox = self._inbox, []
        return sorted(inbox, key=lambda m: (m.ts, m.message_id))

    def _local(self, message: HandoverMessage) -> datetime:
        """The message's time on this box's clock."""
        shift = (self.clock_offset_s or 0.0) - (message.clock_offset_s or 0.0)
        return message.ts + timedelta(seconds=shift)

    def _handle(self, ts_utc: datetime, message: HandoverMessage) -> list[Envelope]:
        if message.type == "handover.offer":
            at_utc = self._local(message)
            if (ts_utc - at_utc).total_seconds() > self.rules.window_s:
                self.counts.stale += 1
            elif message.subject_id in self.visits.open or message.subject_id in self._offered:
                self.counts.repeated += 1  # a visit this box already holds
            else:
                self._incoming[message.subject_id] = _Incoming(message, at_utc)
            return []
        if message.type == "handover.taken":
            offered = self._offered.pop(message.subject_id, None)
            if offered is not None:
                self.counts.taken += 1
            return []
        # Withdrawn: the visitor turned back; the sender keeps the visit.
        self._incoming.pop(message.subject_id, None)
        adopted = self._adopted.pop(message.subject_id, None)
        visit = self.visits.open.get(message.subject_id)
        if adopted is None or visit is None:
            return []
        self.counts.returned += 1
        return self.visits.release(visit, ts_utc)

    # ---------------------------------------------------------------------------------------------
    # People leaving this box's area
    # ---------------------------------------------------------------------------------------------

    def _leaving(self, ts_utc: datetime, by_id: dict[int, TrackState]) -> list[Envelope]:
        out: list[Envelope] = []
        hysteresis = self.layout.hysteresis_m
        for visit in list(self.visits.open.values()):
            track = by_id.get(visit.track_id) if visit.track_id is not None else None
            if not visit.confirmed or track is None or not track.observed:
                continue
            door = self._walked_out_by(track)
            if door is not None:
                # Out through a door that the neighbour counts, which does not hold this visit: it ends
                # here. Offered on, the street past the door would hand the visit to the next person
                # walking in there, whose own visit would then never start.
                out += self.visits.end(visit, ts_utc, door.door.id, "door")
                record = self.records.get(track.track_id)
                if record is not None:
                    record.visitor_id = None
                continue
            if self.layout.beyond_m(track.xy_m) <= hysteresis:
                continue
            neighbour = self.layout.neighbour_at(track.xy_m)
            if neighbour is None:
                continue
            # Stays in a browse zone and a conversation with staff go on at the neighbour's: carried over.
            stays, visit.stays = dict(visit.stays), {}
            reception, visit.reception = visit.reception, None
            out += self.visits.release(visit, ts_utc)
            visit.last_seen_utc, visit.last_xy = ts_utc, track.xy_m
            offered = _Offered(visit, track.track_id, neighbour, ts_utc, track.xy_m, stays, reception)
            self._offered[visit.visitor_id] = offered
            self._adopted.pop(visit.visitor_id, None)
            self.counts.offered += 1
            self._send(
                "handover.offer",
                neighbour,
                ts_utc,
                visit.visitor_id,
                track,
                door_id=visit.door_id,
                started_at=visit.started_at,
                browsed=visit.browsed,
                entered_car=visit.entered_car,
                received=visit.received,
                stays=[
                    {"car_id": car_id, "entered_at": stay.entered_at, "last_in": stay.last_in}
                    for car_id, stay in sorted(stays.items())
                ][:16],
                reception_since=None if reception is None else reception.started_at,
                reception_last_near=None if reception is None else reception.last_near,
            )
        self._point_out_staff(ts_utc, by_id)
        return out

    def _point_out_staff(self, ts_utc: datetime, by_id: dict[int, TrackState]) -> None:
        """Staff members in a neighbour's view (near or past the boundary) are pointed out to it: the
        neighbour flags its track of them, so that a visitor of its own talking with them is received,
        whichever side of the boundary each stands on. Again every `staff_repeat_s` while they stay."""
        for track in by_id.values():
            record = self.records.get(track.track_id)
            if record is None or not record.staff or not track.observed:
                continue
            point = Point(track.xy_m)
            for neighbour, area in self.layout.neighbours.items():
                if float(area.distance(point)) > self.rules.staff_view_m:
                    continue
                key = (track.track_id, neighbour)
                known = self._staff_offered.get(key)
                if known is not None and (ts_utc - known[1]).total_seconds() < self.rules.staff_repeat_s:
                    continue
                if known is None:
                    self.counts.staff_offered += 1
                staff_id = known[0] if known is not None else "s-" + self.ids.visitor_id()[2:]
                self._staff_offered[key] = (staff_id, ts_utc)
                self._send("handover.offer", neighbour, ts_utc, staff_id, track)

    def _walked_out_by(self, track: TrackState) -> DoorCounter | None:
        """The door of the store, counted by a neighbour, that `track` stands past (on the street side, by
        the door's hysteresis), if any: the person has left through it."""
        for door in self.doors:
            if door in self._own_doors:
                continue  # this box's own door counter ends visits there
            if door.side(track.xy_m) < 0 and door.within_span(track.xy_m, margin_m=1.0):
                return door
        return None

    def _turned_back(self, ts_utc: datetime, by_id: dict[int, TrackState]) -> None:
        """An offered visitor back in this box's area before anyone took them: the visit stays here."""
        hysteresis = self.layout.hysteresis_m
        for visitor_id, offered in list(self._offered.items()):
            track = by_id.get(offered.track_id) if offered.track_id is not None else None
            record = self.records.get(offered.track_id) if offered.track_id is not None else None
            if track is None or record is None:
                continue
            if not track.observed or record.visitor_id is not None or record.staff:
                continue
            if self.layout.inside_by_m(track.xy_m) < hysteresis:
                continue
            del self._offered[visitor_id]
            self.visits.adopt(offered.restore(), track.track_id)
            self.counts.withdrawn += 1
            self._send("handover.withdrawn", offered.to_node, ts_utc, visitor_id, track)

    # ---------------------------------------------------------------------------------------------
    # People arriving from a neighbour
    # ---------------------------------------------------------------------------------------------

    def _arriving(self, ts_utc: datetime, by_id: dict[int, TrackState]) -> None:
        """Adopt each waiting offer for the free track nearest to where it predicts the person (nearest
        pairs first), and drop the offers whose window has passed."""
        for subject_id, incoming in list(self._incoming.items()):
            if (ts_utc - incoming.at_utc).total_seconds() > self.rules.window_s:
                del self._incoming[subject_id]
                if incoming.message.is_visit:
                    self.counts.unmatched += 1
                    # Nobody appeared where predicted (hidden, or tracked late): the visit is taken all
                    # the same and waits here for its visitor like any lost one (`Visits.lost`), so
                    # the track that turns out to be them takes it over, or it ends as lost here.
                    self._adopt(ts_utc, incoming.message, None)
        if not self._incoming:
            return
        unclaimed = [
            (t, r.staff)
            for t in by_id.values()
            if t.observed
            and (r := self.records.get(t.track_id)) is not None
            and r.visitor_id is None
            and not outside_doors(self.doors, t.xy_m)
            # Someone still on the street side of this box's own door line is coming in by it, and their
            # own visit starts when they cross it.
            and not any(d.coming_in(t.track_id) for d in self._own_doors)
        ]
        # A staff member is flagged wherever this box sees them; a visit is taken on this box's side only.
        used = self._flag_staff(ts_utc, by_id, [t for t, _ in unclaimed])
        free = [(t, staff) for t, staff in unclaimed if self.layout.owns(t.xy_m)]
        pairs: list[tuple[float, str, int]] = []
        for subject_id, incoming in self._incoming.items():
            if not incoming.message.is_visit:
                continue
            target = self._predicted(incoming.message, incoming.at_utc, ts_utc)
            for track, staff in free:
                if staff:
                    continue  # a visit never goes to a staff member's track
                d = math.dist(target, track.xy_m)
                if d <= self.rules.gate_m:
                    pairs.append((d, subject_id, track.track_id))
        for _, subject_id, track_id in sorted(pairs):
            if track_id in used or subject_id not in self._incoming:
                continue
            used.add(track_id)
            self._adopt(ts_utc, self._incoming.pop(subject_id).message, by_id[track_id])

    def _flag_staff(self, ts_utc: datetime, by_id: dict[int, TrackState], free: list[TrackState]) -> set[int]:
        """Flag the track of each staff member pointed out by a neighbour: the nearest free track to where
        the message predicts them, when no other is nearly as near (a visitor beside them); an unclear
        one waits for the next step. Returns the tracks flagged (or found flagged already)."""
        used: set[int] = set()
        for subject_id, incoming in list(self._incoming.items()):
            if incoming.message.is_visit:
                continue
            target = self._predicted(incoming.message, incoming.at_utc, ts_utc)
            near = sorted((math.dist(target, t.xy_m), t.track_id) for t in free if t.track_id not in used)
            if not near or near[0][0] > self.rules.staff_gate_m:
                continue
            if len(near) > 1 and near[1][0] - near[0][0] < self.rules.staff_clear_m:
                continue
            used.add(near[0][1])
            self._adopt(ts_utc, self._incoming.pop(subject_id).message, by_id[near[0][1]])
        return used

    def _predicted(self, message: HandoverMessage, at_utc: datetime, ts_utc: datetime) -> XY:
        dt = min(max((ts_utc - at_utc).total_seconds(), 0.0), self.rules.predict_max_s)
        return (
            message.xy_m[0] + message.velocity_mps[0] * dt,
            message.xy_m[1] + message.velocity_mps[1] * dt,
        )

    def _adopt(self, ts_utc: datetime, message: HandoverMessage, track: TrackState | None) -> None:
        """Take the offered visit on `track` (None: it waits for its visitor); mark a staff member's."""
        if not message.is_visit:
            assert track is not None
            record = self.records[track.track_id]
            if not record.staff:
                record.staff = True
                self.counts.staff_adopted += 1
            return
        assert message.door_id is not None and message.started_at is not None  # the contract's rule
        shift = self._local(message) - message.ts
        reception = None
        if message.reception_since is not None and message.reception_last_near is not None:
            reception = ReceptionStreak(message.reception_since + shift, message.reception_last_near + shift)
        visit = Visit(
            message.subject_id,
            message.door_id,
            message.started_at,
            None,
            self._local(message) if track is None else ts_utc,
            message.xy_m if track is None else track.xy_m,
            confirmed=True,
            browsed=message.browsed,
            entered_car=message.entered_car,
            received=message.received,
            stays={s.car_id: ZoneStay(s.entered_at + shift, s.last_in + shift) for s in message.stays},
            reception=reception,
        )
        if track is None:
            self.visits.open[visit.visitor_id] = visit
            self.visits.waiting(visit)
        else:
            self.visits.adopt(visit, track.track_id)
        self._adopted[message.subject_id] = _Adopted(message.from_node)
        self.counts.adopted += 1
        self._send("handover.taken", message.from_node, ts_utc, message.subject_id, track, xy_m=message.xy_m)

    # ---------------------------------------------------------------------------------------------
    # Offers nobody took
    # ---------------------------------------------------------------------------------------------

    def _expire(self, ts_utc: datetime) -> list[Envelope]:
        out: list[Envelope] = []
        for visitor_id in [v for v in self._adopted if v not in self.visits.open]:
            del self._adopted[visitor_id]
        for visitor_id, offered in list(self._offered.items()):
            if (ts_utc - offered.ts_utc).total_seconds() < self.rules.timeout_s:
                continue
            del self._offered[visitor_id]
            self.counts.lost_at_boundary += 1
            visit = offered.restore()
            self.visits.open[visitor_id] = visit
            out += self.visits.end(visit, max(visit.last_seen_utc, visit.started_at), None, "lost")
        return out

    def _send(
        self,
        kind: HandoverType,
        to_node: str,
        ts_utc: datetime,
        subject_id: str,
        track: TrackState | None,
        **visit: object,
    ) -> None:
        xy = track.xy_m if track is not None else visit.pop("xy_m")
        velocity = track.velocity_mps if track is not None else (0.0, 0.0)
        visit.pop("xy_m", None)
        self.outgoing.append(
            HandoverMessage.model_validate(
                {
                    "message_id": self.ids.event_id(ts_utc),
                    "store_id": self.store_id,
                    "from_node": self.node_id,
                    "to_node": to_node,
                    "ts": ts_utc,
                    "type": kind,
                    "subject_id": subject_id,
                    "xy_m": (round(xy[0], 3), round(xy[1], 3)),  # type: ignore[index]
                    "velocity_mps": (round(_bounded(velocity[0]), 3), round(_bounded(velocity[1]), 3)),
                    "clock_offset_s": self.clock_offset_s,
                    **visit,
                }
            )
        )


def _bounded(v: float) -> float:
    return max(-20.0, min(20.0, v)) if math.isfinite(v) else 0.0


__all__ = ["Handover", "HandoverCounts", "HandoverRules"]
