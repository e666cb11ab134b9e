"""The event contract v1: what crosses the network from an edge node to the aggregator.

One module, imported by the edge (to build events) and by the aggregator (to validate them). Every
payload is UTF-8 JSON with a common envelope (`schema`, `event_id`, `seq`, `store_id`, `node_id`, `ts`,
`type`) and the fields of its type. Validation is strict: unknown fields, unknown schema versions,
naive timestamps, out-of-range numbers and impossible orderings are rejected with the field and reason.

Privacy by construction: no type here has a field that can carry an image, a crop, an embedding or any
free-form blob. Visitor ids are random per visit. Heat is occupancy per floor cell, nothing more.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    model_validator,
)

SCHEMA_V1 = "showroom.v1"
TOPIC_ROOT = "showroom/v1"
MAX_PAYLOAD_BYTES = 64 * 1024
"""Upper bound on one serialised payload; a heat minute of a 2,000 m2 floor at 0.25 m cells fits easily."""

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

EventKind = Literal["events", "heat", "heartbeat", "status"]
KINDS: tuple[EventKind, ...] = ("events", "heat", "heartbeat", "status")

EventType = Literal[
    "visit.started", "visit.ended", "zone.dwell", "car.entry", "reception", "heat", "heartbeat", "status"
]
"""The `type` of every payload: each payload class narrows it to its own value."""


class ContractError(ValueError):
    """A topic or payload that does not follow the contract; the message names what and why."""


# ---------------------------------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------------------------------


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (e.g. '2026-11-23T10:15:00.000Z')")
    # The contract's resolution is the millisecond: truncate so a round trip is exact. (Payloads are
    # written at that resolution, so the costly `replace` is rarely needed: this runs on every timestamp
    # the aggregator ingests.)
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond - extra) if (extra := utc.microsecond % 1000) else utc


def format_ts(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: `2026-11-23T10:15:00.123Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
    Field(
        description="RFC 3339 timestamp with a time zone; normalised to UTC, millisecond resolution.",
        json_schema_extra={"format": "date-time", "maxLength": 40},
    ),
]


def _check_event_id(value: str) -> str:
    if _UUID7_RE.match(value):
        return value  # already the canonical text of a UUIDv7: what the full parse below returns
    try:
        parsed = uuid.UUID(value)
    except ValueError as exc:
        raise ValueError(f"event_id must be a UUID, got {value!r}") from exc
    if parsed.version != 7:
        raise ValueError(f"event_id must be a time-ordered UUIDv7, got version {parsed.version}")
    return str(parsed)


_UUID7_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_UUID7_RE = re.compile(_UUID7_PATTERN.replace("$", r"\Z"))

EventId = Annotated[
    str,
    AfterValidator(_check_event_id),
    Field(
        min_length=32,
        max_length=36,
        description="Time-ordered unique id (UUIDv7, canonical text form).",
        json_schema_extra={"pattern": _UUID7_PATTERN},
    ),
]
Identifier = Annotated[
    str,
    Field(pattern=ID_PATTERN, description="Lower-case id: letters, digits, '-' and '_', at most 64."),
]
VisitorId = Annotated[
    str,
    Field(
        pattern=r"^v-[0-9a-f]{16}$",
        description="Random per visit ('v-' and 16 hex digits); never reused, never derived from appearance.",
    ),
]
Seconds = Annotated[float, Field(ge=0, le=7 * 24 * 3600, allow_inf_nan=False)]
LongSeconds = Annotated[float, Field(ge=0, le=10 * 365 * 24 * 3600, allow_inf_nan=False)]
"""Durations of the appliance itself (uptime, backlog age), which outlast any visit."""
Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


# ---------------------------------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------------------------------


class IdSource:
    """Event ids (UUIDv7) and visitor ids.

    Live nodes use the OS's randomness (`seed=None`). Offline replays pass a seed, so the same video and
    config give byte-identical events. Either way an id carries no information about a person.
    Within one millisecond a 12-bit counter keeps this source's event ids strictly increasing.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed) if seed is not None else None
        self._last_ms = -1
        self._counter = 0

    def _bits(self, n: int) -> int:
        if self._rng is not None:
            return self._rng.getrandbits(n)
        return int.from_bytes(os.urandom((n + 7) // 8)) & ((1 << n) - 1)

    def event_id(self, ts_utc: datetime | None = None) -> str:
        """A UUIDv7 for an event created at `ts_utc` (now when None): 48-bit Unix ms, then random bits."""
        ms = int(ts_utc.timestamp() * 1000) if ts_utc is not None else time.time_ns() // 1_000_000
        if ms <= self._last_ms:
            # Same (or an earlier) millisecond: stay monotonic by counting on from the last id.
            ms = self._last_ms
            self._counter += 1
            if self._counter > 0xFFF:
                ms, self._counter = ms + 1, 0
        else:
            self._counter = self._bits(11)
        self._last_ms = ms
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | self._counter << 64 | 0b10 << 62 | self._bits(62)
        return str(uuid.UUID(int=value))

    def visitor_id(self) -> str:
        """A random visitor id for one visit ('v-' and 16 hex digits)."""
        return f"v-{self._bits(64):016x}"


_default_ids = IdSource()


def new_event_id(ts_utc: datetime | None = None) -> str:
    """A UUIDv7 from the process-wide random source."""
    return _default_ids.event_id(ts_utc)


def new_visitor_id() -> str:
    """A random visitor id from the process-wide random source."""
    return _default_ids.visitor_id()


def event_id_time(event_id: str) -> datetime:
    """The creation time encoded in a UUIDv7 event id."""
    return datetime.fromtimestamp((uuid.UUID(event_id).int >> 80) / 1000, tz=UTC)


# ---------------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Envelope(_Strict):
    """Fields every payload carries."""

    schema_: Literal["showroom.v1"] = Field(
        "showroom.v1", alias="schema", description="Contract version; anything else is quarantined."
    )
    event_id: EventId
    seq: int = Field(ge=0, le=2**63 - 1, description="Per node, +1 per payload, survives restarts.")
    store_id: Identifier
    node_id: Identifier
    ts: UtcDatetime
    # Every payload class overrides this with its own literal and default; declared here (last, where each
    # class puts its own) so that `event.type` is typed for any payload.
    type: EventType

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def kind(self) -> EventKind:
        """The topic kind this payload is published under."""
        return "events"


class VisitStarted(Envelope):
    """A visitor crossed a door line inward: a visit starts."""

    type: Literal["visit.started"] = "visit.started"
    visitor_id: VisitorId
    door_id: Identifier


class VisitEnded(Envelope):
    """A visit ended: outward door crossing, lost for good, or the node shutting down."""

    type: Literal["visit.ended"] = "visit.ended"
    visitor_id: VisitorId
    door_id: Identifier | None = Field(description="Door of the outward crossing; null when not by a door.")
    started_at: UtcDatetime
    duration_s: Seconds
    browsed: bool
    entered_car: bool
    received: bool
    end_reason: Literal["door", "lost", "shutdown"] = Field(
        "door", description="door: crossed outward; lost: left the covered area; shutdown: node stopped."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.started_at > self.ts:
            raise ValueError(f"started_at {format_ts(self.started_at)} is after ts {format_ts(self.ts)}")
        span = (self.ts - self.started_at).total_seconds()
        if abs(span - self.duration_s) > 1.0:
            raise ValueError(f"duration_s {self.duration_s} does not match ts - started_at = {span:.3f}s")
        if self.end_reason == "door" and self.door_id is None:
            raise ValueError("end_reason 'door' needs a door_id")
        return self


def _check_interval(entered_at: datetime, exited_at: datetime, seconds: float, field: str) -> None:
    if exited_at < entered_at:
        raise ValueError(f"exited_at {format_ts(exited_at)} is before entered_at {format_ts(entered_at)}")
    span = (exited_at - entered_at).total_seconds()
    if seconds > span + 0.001:
        raise ValueError(f"{field} {seconds} is longer than exited_at - entered_at = {span:.3f}s")


class ZoneDwell(Envelope):
    """A visitor's stay in a display car's browse zone (sent when they leave it)."""

    type: Literal["zone.dwell"] = "zone.dwell"
    visitor_id: VisitorId
    zone_id: Identifier = Field(description="The display car whose browse zone this is.")
    entered_at: UtcDatetime
    exited_at: UtcDatetime
    dwell_s: Seconds

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_interval(self.entered_at, self.exited_at, self.dwell_s, "dwell_s")
        return self


class CarEntry(Envelope):
    """A visitor got into a display car (DOMAIN.md: through a door area, stayed or vanished inside)."""

    type: Literal["car.entry"] = "car.entry"
    visitor_id: VisitorId
    car_id: Identifier
    entered_at: UtcDatetime
    exited_at: UtcDatetime
    inside_s: Seconds

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_interval(self.entered_at, self.exited_at, self.inside_s, "inside_s")
        return self


class Reception(Envelope):
    """A visitor spent at least `reception_min_s` near a staff member."""

    type: Literal["reception"] = "reception"
    visitor_id: VisitorId
    started_at: UtcDatetime
    duration_s: Seconds


HeatCell = Annotated[
    tuple[
        Annotated[int, Field(ge=0, le=100_000)],
        Annotated[int, Field(ge=0, le=100_000)],
        Annotated[float, Field(gt=0, le=60 * 1000, allow_inf_nan=False)],
    ],
    Field(description="[ix, iy, person_seconds]: cell column and row from the floor origin, occupancy."),
]


class Heat(Envelope):
    """One node's floor occupancy for one minute: person-seconds per cell, sparse; staff excluded."""

    type: Literal["heat"] = "heat"
    minute: UtcDatetime = Field(description="Start of the minute (seconds and milliseconds are zero).")
    cell_m: float = Field(gt=0, le=10, allow_inf_nan=False, description="Cell edge in metres.")
    cells: list[HeatCell] = Field(max_length=20_000)
    occupancy_max: int = Field(ge=0, le=10_000, description="Most visitors on the floor at once.")

    @property
    def kind(self) -> EventKind:
        return "heat"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.minute.second or self.minute.microsecond:
            raise ValueError(f"minute {format_ts(self.minute)} is not the start of a minute")
        seen: set[tuple[int, int]] = set()
        for ix, iy, _ in self.cells:
            if (ix, iy) in seen:
                raise ValueError(f"cell [{ix}, {iy}] appears twice")
            seen.add((ix, iy))
        return self


ConnectionQuality = Literal["excellent", "fair", "poor", "unusable"]


class CameraHealth(_Strict):
    """One camera's state in a heartbeat."""

    camera_id: Identifier
    state: Literal["ok", "connecting", "stalled", "ended", "failed", "covered", "moved"] = "ok"
    fps: float = Field(ge=0, le=240, allow_inf_nan=False)
    target_fps: float = Field(gt=0, le=240, allow_inf_nan=False)
    inference_ms: float = Field(ge=0, le=60_000, allow_inf_nan=False)
    dropped_frames: int = Field(ge=0)
    reconnects: int = Field(ge=0)
    quality: ConnectionQuality
    detail: str | None = Field(None, max_length=200, description="Short human-readable reason, no data.")


class HandoverHealth(_Strict):
    """A box of a store served by several: its hand-overs at the boundaries since it started."""

    offered: int = Field(ge=0, description="Visits offered to a neighbour.")
    taken: int = Field(ge=0, description="Of those, taken by the neighbour.")
    adopted: int = Field(ge=0, description="Neighbours' visits this box took over.")
    withdrawn: int = Field(ge=0, description="Visitors who turned back before being taken.")
    lost_at_boundary: int = Field(ge=0, description="Offers nobody took in time: visits ended as lost.")
    unmatched: int = Field(ge=0, description="Neighbours' offers no track took in time (waited as lost).")
    stale: int = Field(ge=0, description="Offers that came too late (a neighbour offline, a replay).")
    pending: int = Field(ge=0, description="Offers of this box not answered yet.")


class Heartbeat(Envelope):
    """Node and camera health, every 30 s."""

    type: Literal["heartbeat"] = "heartbeat"
    cameras: list[CameraHealth] = Field(max_length=64)
    outbox_depth: int = Field(ge=0)
    oldest_unsent_age_s: LongSeconds | None = None
    outbox_evicted: int = Field(
        0, ge=0, description="Payloads the outbox dropped, ever, to stay within its disk budget (seq gaps)."
    )
    model_id: str = Field(max_length=100)
    model_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    software_version: str = Field(max_length=50)
    uptime_s: LongSeconds
    cpu_percent: float | None = Field(None, ge=0, le=100 * 256)
    memory_mb: float | None = Field(None, ge=0)
    temperature_c: float | None = Field(None, ge=-50, le=150)
    clock_offset_s: float | None = Field(None, ge=-86_400, le=86_400)
    calibration_error_m: dict[str, float] = Field(
        default_factory=dict, description="Per camera id, the calibration's reprojection error in metres."
    )
    handover: HandoverHealth | None = Field(
        None, description="A box of a store served by several: its hand-overs at the boundaries."
    )

    @property
    def kind(self) -> EventKind:
        return "heartbeat"


class Status(Envelope):
    """Retained node status: `online` on connect, `offline` as the MQTT last will or on clean shutdown."""

    type: Literal["status"] = "status"
    status: Literal["online", "offline"]

    @property
    def kind(self) -> EventKind:
        return "status"


Event = Annotated[
    VisitStarted | VisitEnded | ZoneDwell | CarEntry | Reception | Heat | Heartbeat | Status,
    Field(discriminator="type"),
]
EVENT_TYPES: dict[str, type[Envelope]] = {
    "visit.started": VisitStarted,
    "visit.ended": VisitEnded,
    "zone.dwell": ZoneDwell,
    "car.entry": CarEntry,
    "reception": Reception,
    "heat": Heat,
    "heartbeat": Heartbeat,
    "status": Status,
}
KIND_OF_TYPE: dict[str, EventKind] = {
    "visit.started": "events",
    "visit.ended": "events",
    "zone.dwell": "events",
    "car.entry": "events",
    "reception": "events",
    "heat": "heat",
    "heartbeat": "heartbeat",
    "status": "status",
}

_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


# ---------------------------------------------------------------------------------------------------
# (De)serialisation
# ---------------------------------------------------------------------------------------------------


def to_json(event: Envelope) -> bytes:
    """Serialise to the wire form: compact UTF-8 JSON with the `schema` key."""
    data = event.model_dump_json(by_alias=True, exclude_none=False).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload is {len(data)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
    return data


def parse_event(payload: bytes | str | dict[str, Any]) -> Envelope:
    """Validate one payload against the contract.

    Raises `ContractError` naming the failing field and the reason; never guesses at a payload.
    """
    if isinstance(payload, bytes | bytearray):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ContractError(f"payload is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError(f"payload is not UTF-8: {exc}") from exc
    if isinstance(payload, dict):
        try:
            payload = json.dumps(payload, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise ContractError(f"payload cannot be read as JSON: {exc}") from exc
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise ContractError(f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ContractError(f"payload must be a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != SCHEMA_V1:
        raise ContractError(f"schema: unknown schema version {schema!r}, expected {SCHEMA_V1!r}")
    try:
        # Strict: "7" is not a number and 1 is not true on the wire; times stay RFC 3339 strings.
        return _event_adapter.validate_json(payload, strict=True)
    except ValidationError as exc:
        raise ContractError(describe_validation_error(exc)) from exc


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: `field.path: reason (got value)`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(payload)"
        got = repr(err.get("input"))
        if len(got) > 80:
            got = got[:77] + "..."
        lines.append(f"{loc}: {err['msg']} (got {got})")
    return "; ".join(lines)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every payload type (the file in docs/ is generated from this)."""
    schema = _event_adapter.json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Showroom Vision event contract v1"
    schema["description"] = (__doc__ or "").strip().split("\n\n")[0]
    return schema


# ---------------------------------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------------------------------


def topic(store_id: str, node_id: str, kind: EventKind) -> str:
    """`showroom/v1/{store_id}/{node_id}/{kind}`."""
    for name, value in (("store_id", store_id), ("node_id", node_id)):
        if not _ID_RE.match(value):
            raise ContractError(f"{name} {value!r} does not match {ID_PATTERN}")
    if kind not in KINDS:
        raise ContractError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return f"{TOPIC_ROOT}/{store_id}/{node_id}/{kind}"


def topic_for(event: Envelope) -> str:
    """The topic an event is published under."""
    return topic(event.store_id, event.node_id, event.kind)


def parse_topic(name: str) -> tuple[str, str, EventKind]:
    """(store_id, node_id, kind) of a contract topic; `ContractError` for anything else."""
    parts = name.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise ContractError(f"topic {name!r} is not {TOPIC_ROOT}/{{store_id}}/{{node_id}}/{{kind}}")
    _, _, store_id, node_id, kind = parts
    if kind not in KINDS:
        raise ContractError(f"topic {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    for label, value in (("store_id", store_id), ("node_id", node_id)):
        if not _ID_RE.match(value):
            raise ContractError(f"topic {name!r}: {label} {value!r} does not match {ID_PATTERN}")
    return store_id, node_id, kind


CONTROL_KINDS: tuple[str, ...] = ("commission", "commission/reply", "handover")
"""Topic kinds that are not events: a node's commissioning test message (`commission`, answered by the
aggregator), the aggregator's answer (`commission/reply`) and the hand-overs between the boxes of one store
(`handover`, `edge.handover_messages`). Never stored, never quarantined."""


def commission_topic(store_id: str, node_id: str) -> str:
    """`showroom/v1/{store_id}/{node_id}/commission`: a node's commissioning test message."""
    return topic(store_id, node_id, "events").removesuffix("/events") + "/commission"


def commission_reply_topic(store_id: str, node_id: str) -> str:
    """`showroom/v1/{store_id}/{node_id}/commission/reply`: where the aggregator answers it."""
    return commission_topic(store_id, node_id) + "/reply"


def control_topic(name: str) -> tuple[str, str, str] | None:
    """(store_id, node_id, control kind) when `name` is a control topic (`CONTROL_KINDS`) of a valid store
    and node; None for anything else (event topics included)."""
    parts = name.split("/")
    if len(parts) < 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        return None
    kind = "/".join(parts[4:])
    if kind not in CONTROL_KINDS:
        return None
    store_id, node_id = parts[2], parts[3]
    if not (_ID_RE.match(store_id) and _ID_RE.match(node_id)):
        return None
    return store_id, node_id, kind


def subscription(share_group: str | None = None) -> str:
    """Topic filter for every store's payloads; an MQTT 5 shared subscription when a group is given."""
    base = f"{TOPIC_ROOT}/+/+/+"
    return f"$share/{share_group}/{base}" if share_group else base


def check_topic_matches(topic_name: str, event: Envelope) -> None:
    """The topic's store, node and kind must be the payload's own."""
    store_id, node_id, kind = parse_topic(topic_name)
    if (store_id, node_id) != (event.store_id, event.node_id):
        raise ContractError(
            f"topic {topic_name!r} names {store_id}/{node_id} but the payload is from "
            f"{event.store_id}/{event.node_id}"
        )
    if kind != event.kind:
        raise ContractError(f"topic {topic_name!r} is kind {kind!r} but a {event.kind!r} payload was sent")


def floor_minute(ts_utc: datetime) -> datetime:
    """The start of the minute containing `ts_utc`."""
    return ts_utc.replace(second=0, microsecond=0)


# ---------------------------------------------------------------------------------------------------
# Stamping
# ---------------------------------------------------------------------------------------------------

E = TypeVar("E", bound=Envelope)


class EventStamper:
    """Builds contract payloads for one node: fills the envelope and numbers them.

    `seq` rule: every payload that goes through the node's outbox (events, heat, heartbeat) takes the next
    number, so a gap in what the aggregator stores is a lost payload. `status` payloads (retained, and the
    MQTT last will fixed at connect time) carry the latest number without taking one, and are left out of
    gap detection.
    """

    def __init__(self, store_id: str, node_id: str, ids: IdSource | None = None, next_seq: int = 0) -> None:
        topic(store_id, node_id, "events")  # validates both ids
        self.store_id = store_id
        self.node_id = node_id
        self.ids = ids or IdSource()
        self.next_seq = next_seq

    def stamp(self, cls: type[E], ts_utc: datetime, **fields: Any) -> E:
        """A validated payload of type `cls` at `ts_utc` with the next `seq` (status: the current one)."""
        takes_number = cls is not Status
        seq = self.next_seq if takes_number else max(self.next_seq - 1, 0)
        event = cls(
            event_id=self.ids.event_id(ts_utc),
            seq=seq,
            store_id=self.store_id,
            node_id=self.node_id,
            ts=ts_utc,
            **fields,
        )
        if takes_number:
            self.next_seq += 1
        return event


__all__ = [
    "CONTROL_KINDS",
    "EVENT_TYPES",
    "KINDS",
    "KIND_OF_TYPE",
    "MAX_PAYLOAD_BYTES",
    "SCHEMA_V1",
    "CameraHealth",
    "CarEntry",
    "ContractError",
    "Envelope",
    "Event",
    "EventKind",
    "EventStamper",
    "EventType",
    "HandoverHealth",
    "Heartbeat",
    "Heat",
    "IdSource",
    "Reception",
    "Status",
    "VisitEnded",
    "VisitStarted",
    "ZoneDwell",
    "check_topic_matches",
    "commission_reply_topic",
    "commission_topic",
    "control_topic",
    "event_id_time",
    "floor_minute",
    "format_ts",
    "json_schema",
    "new_event_id",
    "new_visitor_id",
    "parse_event",
    "parse_topic",
    "subscription",
    "to_json",
    "topic",
    "topic_for",
]
