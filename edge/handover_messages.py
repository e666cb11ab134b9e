"""Hand-over messages between the edge boxes of one store (the `handover` kind of the store's topics).

Topic: `showroom/v1/{store_id}/{from_node}/handover`; each box reads its neighbours' topics and keeps the
messages addressed to it (`to_node`). What crosses is a visit's bookkeeping and where the person stands,
never anything read from pixels: a random id, a floor position and velocity, times, the door id and three
flags. The aggregator does not store these messages (a control kind, `edge.events.CONTROL_KINDS`).

- `handover.offer`: the person `subject_id` left the sender's area at `ts` (sender's clock), at `xy_m`
  walking at `velocity_mps`; a visitor's offer carries their visit so far (door, start, flags).
- `handover.taken`: the receiver adopted the visit for one of its tracks; the sender lets it go.
- `handover.withdrawn`: the visitor turned back before the receiver took them; the sender keeps the visit.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.events import ContractError, EventId, Identifier, UtcDatetime, topic

HANDOVER_KIND = "handover"
MAX_HANDOVER_BYTES = 2048

SubjectId = Annotated[
    str,
    Field(
        pattern=r"^[vs]-[0-9a-f]{16}$",
        description="A visit's visitor id ('v-...'), or a random id for a staff member ('s-...').",
    ),
]
Metres = Annotated[float, Field(ge=-1000, le=1000, allow_inf_nan=False)]
Speed = Annotated[float, Field(ge=-20, le=20, allow_inf_nan=False)]
HandoverType = Literal["handover.offer", "handover.taken", "handover.withdrawn"]


class CarriedStay(BaseModel):
    """A browse-zone stay in progress when the visitor crossed: the receiving box continues it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    car_id: Identifier
    entered_at: UtcDatetime
    last_in: UtcDatetime


class HandoverMessage(BaseModel):
    """One hand-over message; see the module docstring for the three types."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["showroom.v1"] = Field("showroom.v1", alias="schema")
    message_id: EventId
    store_id: Identifier
    from_node: Identifier
    to_node: Identifier
    ts: UtcDatetime = Field(description="When the person was at the boundary, on the sender's clock.")
    type: HandoverType
    subject_id: SubjectId
    xy_m: tuple[Metres, Metres] = Field(description="Floor position at `ts`, metres.")
    velocity_mps: tuple[Speed, Speed] = Field(description="Floor velocity at `ts`, metres per second.")
    door_id: Identifier | None = Field(None, description="A visit's door of entry.")
    started_at: UtcDatetime | None = Field(None, description="A visit's start (the inward door crossing).")
    browsed: bool = False
    entered_car: bool = False
    received: bool = False
    stays: list[CarriedStay] = Field(
        default_factory=list, max_length=16, description="A visit's browse-zone stays in progress."
    )
    reception_since: UtcDatetime | None = Field(
        None, description="A visit's conversation with staff in progress: when it began."
    )
    reception_last_near: UtcDatetime | None = Field(
        None, description="... and when the visitor was last near the staff member."
    )
    clock_offset_s: float | None = Field(
        None, ge=-86_400, le=86_400, description="The sender's clock offset (+ = fast), as in its heartbeat."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.from_node == self.to_node:
            raise ValueError(f"from_node and to_node are both {self.from_node!r}")
        visit = self.subject_id.startswith("v-")
        if self.type == "handover.offer" and visit and (self.door_id is None or self.started_at is None):
            raise ValueError("a visitor's offer needs door_id and started_at")
        if not visit and self.type != "handover.offer":
            raise ValueError(f"{self.type} is for visits only (subject {self.subject_id!r} is staff)")
        return self

    @property
    def is_visit(self) -> bool:
        return self.subject_id.startswith("v-")

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")


def handover_topic(store_id: str, node_id: str) -> str:
    """`showroom/v1/{store_id}/{node_id}/handover`: where node `node_id` publishes its hand-overs."""
    return topic(store_id, node_id, "events").removesuffix("/events") + "/" + HANDOVER_KIND


def parse_handover(topic_name: str, payload: bytes) -> HandoverMessage:
    """A hand-over message received on `topic_name`; `ContractError` naming what is wrong otherwise (the
    topic must be the sender's own)."""
    if len(payload) > MAX_HANDOVER_BYTES:
        raise ContractError(f"hand-over payload is {len(payload)} bytes, over {MAX_HANDOVER_BYTES}")
    try:
        data: Any = json.loads(payload)
        message = HandoverMessage.model_validate(data)
    except ValueError as exc:
        reason = (
            "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        raise ContractError(f"hand-over message on {topic_name!r} is not valid: {reason}") from exc
    expected = handover_topic(message.store_id, message.from_node)
    if topic_name != expected:
        raise ContractError(f"hand-over of {message.from_node!r} came on {topic_name!r}, not {expected!r}")
    return message


def handover_schema() -> dict[str, Any]:
    """The JSON Schema of a hand-over message."""
    return HandoverMessage.model_json_schema(by_alias=True, mode="serialization")


__all__ = [
    "HANDOVER_KIND",
    "CarriedStay",
    "HandoverMessage",
    "HandoverType",
    "handover_schema",
    "handover_topic",
    "parse_handover",
]
