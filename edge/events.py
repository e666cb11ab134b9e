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
import math
import os
import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, Self, TypeVar

import numpy as np
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
from pydantic_core import PydanticCustomError, from_json

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


MAX_NESTING = 16
"""Deepest nesting of JSON arrays and objects a payload may have (the deepest type needs 3); checked on
the bytes before any parser sees them."""


class Reason(StrEnum):
    """Why a payload or topic was refused: the quarantine's reason codes, one per rule of the contract."""

    OVERSIZE = "oversize"
    TOO_DEEP = "too_deep"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    SCHEMA = "schema"
    NOT_FINITE = "not_finite"
    INVALID = "invalid"
    TIME_WINDOW = "time_window"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    OUTSIDE_FLOOR = "outside_floor"
    SEQ_JUMP = "seq_jump"
    BAD_REPLAY_REPLY = "bad_replay_reply"
    """A node's answer to a replay request (`replay/reply`) that cannot be read."""


class ContractError(ValueError):
    """A topic or payload that does not follow the contract. `rule` names the rule it breaks (`code`, its
    value, is what the quarantine stores); `message` (also `reason`, the quarantine's reason text) says
    what and why."""

    def __init__(self, message: str, rule: Reason = Reason.INVALID) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.reason = message

    @property
    def code(self) -> str:
        """The rule as stored in the quarantine."""
        return self.rule.value


# ---------------------------------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------------------------------


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (e.g. '2026-11-23T10:15:00.000Z')")
    # The contract's resolution is the millisecond: truncate so a round trip is exact. (Payloads are
    # written at that resolution, so the costly `replace` is rarely needed: this runs on every timestamp
    # the aggregator ingests.)
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        # Year 1 with a positive offset (or 9999 with a negative one) has no UTC form.
        raise PydanticCustomError(
            "timestamp_range", "timestamp {value} has no UTC equivalent", {"value": value.isoformat()}
        ) from None
    return utc.replace(microsecond=utc.microsecond - extra) if (extra := utc.microsecond % 1000) else utc


def format_ts(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: `2026-11-23T10:15:00.123Z` (always a 4-digit year)."""
    u = value.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
        f"{u.microsecond // 1000:03d}Z"
    )


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
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False, allow_inf_nan=False)


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

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

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
    end_reason: Literal["door", "lost", "shutdown", "restart"] = Field(
        "door",
        description="door: crossed outward; lost: left the covered area; shutdown: node stopped; restart: "
        "the node stopped without closing it (a crash) and closed it when it started again.",
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
    cell_m: float = Field(ge=0.1, le=10, allow_inf_nan=False, description="Cell edge in metres.")
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


_MAX_COUNT = 2**53 - 1
"""Counters stay exact in every JSON reader (IEEE doubles hold integers up to 2^53)."""

ConnectionQuality = Literal["excellent", "fair", "poor", "unusable"]
Degradation = Literal["no_detections", "off_floor", "over_capacity"]
"""What makes a delivering camera's counts unreliable (`edge.degradation`): its detector has returned no one
for minutes, most of its people land off the floor plan (a wrong calibration), or people in its view were
left untracked because the node's tracker was full."""


class CameraHealth(_Strict):
    """One camera's state in a heartbeat."""

    camera_id: Identifier
    state: Literal["ok", "connecting", "stalled", "ended", "failed", "covered", "moved"] = "ok"
    fps: float = Field(ge=0, le=240, allow_inf_nan=False)
    target_fps: float = Field(gt=0, le=240, allow_inf_nan=False)
    inference_ms: float = Field(ge=0, le=60_000, allow_inf_nan=False)
    dropped_frames: int = Field(ge=0, le=_MAX_COUNT)
    reconnects: int = Field(ge=0, le=_MAX_COUNT)
    quality: ConnectionQuality
    detail: str | None = Field(None, max_length=200, description="Short human-readable reason, no data.")
    degraded: list[Degradation] = Field(
        default_factory=list,
        max_length=3,
        description="Why this camera's counts are unreliable now, if they are (empty: nothing known).",
    )
    no_detections_s: LongSeconds | None = Field(
        None,
        description="Seconds of the camera's frames since its detector last returned a person; null before "
        "its first analysed frame.",
    )
    off_floor_share: Ratio | None = Field(
        None,
        description="Of the camera's boxes in the last minute, the share whose feet landed off the floor "
        "plan; null without boxes.",
    )
    untracked: int = Field(
        0,
        ge=0,
        description="The most people in the camera's view at one step of the last minute that no track "
        "follows because the node's tracker was at capacity.",
    )


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
    outbox_depth: int = Field(ge=0, le=_MAX_COUNT)
    oldest_unsent_age_s: LongSeconds | None = None
    outbox_evicted: int = Field(
        0,
        ge=0,
        le=_MAX_COUNT,
        description="Payloads the outbox dropped, ever, to stay within its disk budget (seq gaps).",
    )
    outbox_write_failures: int = Field(
        0,
        ge=0,
        le=_MAX_COUNT,
        description="Writes the outbox refused since the node started (a full disk, or another storage "
        "error); the payloads were held in memory, not lost.",
    )
    outbox_held: int = Field(
        0,
        ge=0,
        le=_MAX_COUNT,
        description="Payloads held in memory when this heartbeat was made, not yet on disk (also counted "
        "in outbox_depth).",
    )
    model_id: str = Field(max_length=100)
    model_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    software_version: str = Field(max_length=50)
    uptime_s: LongSeconds
    cpu_percent: float | None = Field(None, ge=0, le=100 * 256)
    memory_mb: float | None = Field(None, ge=0, le=1e9)
    temperature_c: float | None = Field(None, ge=-50, le=150)
    clock_offset_s: float | None = Field(None, ge=-86_400, le=86_400)
    calibration_error_m: dict[
        Annotated[str, Field(max_length=64)], Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]
    ] = Field(
        default_factory=dict,
        max_length=64,
        description="Per camera id, the calibration's reprojection error in metres.",
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
        raise ContractError(
            f"payload is {len(data)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit", Reason.OVERSIZE
        )
    return data


@dataclass(frozen=True)
class TimeWindow:
    """How far from its receipt time a payload's timestamps may lie: `max_past` back (a node's outbox
    drains days of backlog after an outage) and `max_future` ahead (clock skew)."""

    max_past: timedelta = timedelta(days=400)
    max_future: timedelta = timedelta(days=1)

    def check(self, event: Envelope, received_at: datetime) -> None:
        """`ContractError` (time_window) naming the first timestamp of `event` outside the window."""
        lo, hi = received_at - self.max_past, received_at + self.max_future
        for name in _time_fields(type(event)):
            value = getattr(event, name)
            if isinstance(value, datetime) and not lo <= value <= hi:
                raise ContractError(
                    f"{name}: {format_ts(value)} is outside the window {format_ts(lo)} .. {format_ts(hi)} "
                    f"around its receipt at {format_ts(received_at)}",
                    Reason.TIME_WINDOW,
                )


_TIME_FIELDS = ("ts", "started_at", "entered_at", "exited_at", "minute")


@cache
def _time_fields(cls: type[Envelope]) -> tuple[str, ...]:
    """The timestamp fields a payload class has (looked up once: a missing attribute is slow to ask for)."""
    return tuple(name for name in _TIME_FIELDS if name in cls.model_fields)


DEFAULT_WINDOW = TimeWindow()

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS = frozenset(b"[{")


def check_bounds(payload: bytes) -> None:
    """Size and nesting of a raw payload, checked before any parser reads it (`ContractError`)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            f"payload is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit", Reason.OVERSIZE
        )
    if payload.count(b"[") + payload.count(b"{") <= MAX_NESTING:
        return  # too few brackets to nest deeper (the common case: one flat object)
    # Brackets inside strings do not nest: drop the strings, then depth is a running sum.
    bare = np.frombuffer(_JSON_STRING.sub(b"", payload), dtype=np.uint8)
    step = (np.isin(bare, (0x5B, 0x7B)).astype(np.int32)) - np.isin(bare, (0x5D, 0x7D)).astype(np.int32)
    depth = int(np.cumsum(step).max(initial=0))
    if depth > MAX_NESTING:
        raise ContractError(
            f"payload nests {depth} levels deep, over the limit of {MAX_NESTING}", Reason.TOO_DEEP
        )


def read_json(payload: bytes) -> Any:
    """The JSON value of a raw payload, bounded first (`check_bounds`); `ContractError` names why not.
    Non-finite numbers (NaN, Infinity) are refused as such."""
    check_bounds(payload)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"payload is not UTF-8: {exc}", Reason.NOT_UTF8) from exc
    try:
        data = from_json(text, allow_inf_nan=True)
    except ValueError as exc:
        raise ContractError(f"payload is not JSON: {exc}", Reason.NOT_JSON) from exc
    where = _non_finite(data, "")
    if where is not None:
        raise ContractError(
            f"{where or '(payload)'}: numbers must be finite (NaN, Infinity)", Reason.NOT_FINITE
        )
    return data


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinite number in a parsed JSON value (depth already bounded)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def parse_payload(
    payload: bytes | str,
    received_at: datetime | None = None,
    window: TimeWindow = DEFAULT_WINDOW,
) -> Envelope:
    """Validate one raw payload against the contract: the one parser of the aggregator's ingest, its
    rebuilds and the tests.

    Size and nesting are bounded before parsing; then the payload is validated in one pass (the common,
    valid case); a failure is read again step by step to name its `Reason`. With `received_at`, every
    timestamp must lie within `window` of it. Raises `ContractError`; never anything else for any input.
    """
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
    check_bounds(raw)
    try:
        # Strict: "7" is not a number and 1 is not true on the wire; times stay RFC 3339 strings.
        event: Envelope = _event_adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _classify(raw, exc) from None
    if "schema_" not in event.model_fields_set:
        raise ContractError(f"schema: missing, expected {SCHEMA_V1!r}", Reason.SCHEMA)
    # JSON can carry U+0000 only as an escape; text with it cannot be stored (PostgreSQL refuses it).
    if b"\\u0000" in raw and _holds_nul(event.model_dump()):
        raise ContractError("a text field or key holds the NUL character (U+0000)", Reason.INVALID)
    if received_at is not None:
        window.check(event, received_at)
    return event


def _holds_nul(value: object) -> bool:
    """Whether any string in `value` (dict keys included, at any depth) holds U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


def _classify(raw: bytes, exc: ValidationError) -> ContractError:
    """Why a payload failed validation, as a `ContractError` with its `Reason`."""
    try:
        data = read_json(raw)
    except ContractError as err:
        return err
    if not isinstance(data, dict):
        return ContractError(f"payload must be a JSON object, got {type(data).__name__}", Reason.NOT_JSON)
    schema = data.get("schema")
    if schema != SCHEMA_V1:
        return ContractError(
            f"schema: unknown schema version {_short(schema)}, expected {SCHEMA_V1!r}", Reason.SCHEMA
        )
    errors = exc.errors(include_url=False)
    if any(e["type"] == "timestamp_range" for e in errors):
        return ContractError(describe_validation_error(exc), Reason.TIME_WINDOW)
    return ContractError(describe_validation_error(exc), Reason.INVALID)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_event(payload: bytes | str | dict[str, Any]) -> Envelope:
    """Validate one payload against the contract (`parse_payload`; a dict is serialised first).

    Raises `ContractError` naming the failing field and the reason; never guesses at a payload.
    """
    if isinstance(payload, dict):
        try:
            payload = json.dumps(payload, default=_json_default)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ContractError(f"payload cannot be read as JSON: {exc}", Reason.NOT_JSON) from None
    return parse_payload(payload)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: `field.path: reason (got value)`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(payload)"
        got = _short(err.get("input"))
        lines.append(f"{loc}: {err['msg']} (got {got})")
    return "; ".join(lines)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every payload type (the file in docs/ is generated from this)."""
    schema = _event_adapter.json_schema(by_alias=True, mode="serialization")
    for definition in schema.get("$defs", {}).values():
        # Built in Python, `schema` defaults to the current version; on the wire it is required.
        if "schema" in definition.get("properties", {}):
            definition["required"] = ["schema", *(r for r in definition.get("required", []) if r != "schema")]
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
        raise ContractError(
            f"topic {name[:200]!r} is not {TOPIC_ROOT}/{{store_id}}/{{node_id}}/{{kind}}", Reason.BAD_TOPIC
        )
    _, _, store_id, node_id, kind = parts
    if kind not in KINDS:
        raise ContractError(
            f"topic {name[:200]!r}: kind {kind[:80]!r} is not one of {', '.join(KINDS)}", Reason.BAD_TOPIC
        )
    for label, value in (("store_id", store_id), ("node_id", node_id)):
        if not _ID_RE.match(value):
            raise ContractError(
                f"topic {name[:200]!r}: {label} {value[:80]!r} does not match {ID_PATTERN}", Reason.BAD_TOPIC
            )
    return store_id, node_id, kind


CONTROL_KINDS: tuple[str, ...] = ("commission", "commission/reply", "replay", "replay/reply", "handover")
"""Topic kinds that are not events: a node's commissioning test message (`commission`, answered by the
aggregator) and the aggregator's answer (`commission/reply`); the aggregator's request to send a `seq`
range again (`replay`, see `edge.mqtt_common.ReplayRequest`) and the node's answer (`replay/reply`); the
hand-overs between the boxes of one store (`handover`, `edge.handover_messages`). Never stored as events,
never quarantined as such."""


def replay_topic(store_id: str, node_id: str) -> str:
    """`showroom/v1/{store_id}/{node_id}/replay`: the aggregator asks the node for a `seq` range again."""
    return commission_topic(store_id, node_id).removesuffix("/commission") + "/replay"


def replay_reply_topic(store_id: str, node_id: str) -> str:
    """`showroom/v1/{store_id}/{node_id}/replay/reply`: the node's answer to a replay request."""
    return replay_topic(store_id, node_id) + "/reply"


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


def replay_reply_subscription(share_group: str | None = None) -> str:
    """Topic filter for every node's replay answers (`replay/reply`), shared like `subscription`."""
    base = f"{TOPIC_ROOT}/+/+/replay/reply"
    return f"$share/{share_group}/{base}" if share_group else base


def check_topic_matches(topic_name: str, event: Envelope) -> None:
    """The topic's store, node and kind must be the payload's own."""
    store_id, node_id, kind = parse_topic(topic_name)
    if (store_id, node_id) != (event.store_id, event.node_id):
        raise ContractError(
            f"topic {topic_name!r} names {store_id}/{node_id} but the payload is from "
            f"{event.store_id}/{event.node_id}",
            Reason.TOPIC_MISMATCH,
        )
    if kind != event.kind:
        raise ContractError(
            f"topic {topic_name!r} is kind {kind!r} but a {event.kind!r} payload was sent",
            Reason.TOPIC_MISMATCH,
        )


UNKNOWN_FLOOR_M = 200.0
"""Floor edge assumed for a store the registry does not know (yet): bounds its heat grids."""


def check_heat_floor(event: Heat, floor_size_m: tuple[float, float] | None) -> None:
    """Every heat cell must lie on the store's floor (`floor_size_m`, width and depth in metres; None:
    `UNKNOWN_FLOOR_M` square), with one cell of slack for a floor measured a little differently by the
    node; `ContractError` (outside_floor) names the first cell that does not."""
    w_m, h_m = floor_size_m or (UNKNOWN_FLOOR_M, UNKNOWN_FLOOR_M)
    nx = max(1, math.ceil(w_m / event.cell_m)) + 1
    ny = max(1, math.ceil(h_m / event.cell_m)) + 1
    for ix, iy, _ in event.cells:
        if ix >= nx or iy >= ny:
            raise ContractError(
                f"cells: [{ix}, {iy}] is outside the store's {w_m:g} x {h_m:g} m floor "
                f"({nx} x {ny} cells of {event.cell_m:g} m)",
                Reason.OUTSIDE_FLOOR,
            )


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
    "DEFAULT_WINDOW",
    "EVENT_TYPES",
    "KINDS",
    "KIND_OF_TYPE",
    "MAX_NESTING",
    "MAX_PAYLOAD_BYTES",
    "SCHEMA_V1",
    "CameraHealth",
    "CarEntry",
    "ContractError",
    "Degradation",
    "Envelope",
    "Event",
    "EventKind",
    "EventStamper",
    "EventType",
    "HandoverHealth",
    "Heartbeat",
    "Heat",
    "IdSource",
    "Reason",
    "Reception",
    "Status",
    "TimeWindow",
    "VisitEnded",
    "VisitStarted",
    "ZoneDwell",
    "check_bounds",
    "check_heat_floor",
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
    "parse_payload",
    "parse_topic",
    "read_json",
    "subscription",
    "to_json",
    "topic",
    "topic_for",
]
