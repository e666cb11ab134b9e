"""Writing the node's payloads to the outbox when the disk may be full: hold, retry, count, never stop.

`OutboxWriter.store` writes a batch; if the outbox refuses it (a full disk: SQLite's "database or disk is
full", or any storage error) the batch is held in memory and written before the next one, and the
outbox's sent history is given up to make room. The analytics keep running and counting meanwhile. Held
payloads are bounded (`max_held`): beyond that the oldest heat and heartbeats are dropped first, then the
oldest of the rest, each counted, so a full disk that never clears cannot exhaust memory either.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from edge.events import Envelope
from edge.node.outbox import Outbox

log = logging.getLogger(__name__)

_LEAST_VALUABLE = ("heat", "heartbeat")


class OutboxWriter:
    """The outbox's writer with a bounded in-memory hold for when it cannot write."""

    def __init__(self, outbox: Outbox, max_held: int = 100_000) -> None:
        if max_held < 1:
            raise ValueError(f"max_held must be at least 1, got {max_held}")
        self.outbox = outbox
        self.max_held = max_held
        self.failures = 0
        """Writes the outbox refused."""
        self.dropped = 0
        """Payloads given up because the hold was full."""
        self._held: list[Envelope] = []

    @property
    def held(self) -> int:
        """Payloads waiting in memory for the outbox to take them."""
        return len(self._held)

    def store(self, events: Sequence[Envelope]) -> list[Envelope]:
        """Write the held payloads and `events`, in `seq` order; returns what was written now (empty when
        the outbox refused them: they are held)."""
        batch = [*self._held, *events]
        if not batch:
            return []
        try:
            self.outbox.extend(batch)
        except Exception as exc:  # an OutboxError, or anything else the storage raised: hold, never lose
            self._hold(batch, exc)
            return []
        if self._held:
            log.warning("the outbox stores again: %d held payload(s) written", len(self._held))
            self._held = []
        return batch

    def _hold(self, batch: list[Envelope], exc: Exception) -> None:
        self.failures += 1
        freed = self.outbox.drop_history()
        if len(batch) > self.max_held:
            over = len(batch) - self.max_held
            order = sorted(batch, key=lambda e: (e.type not in _LEAST_VALUABLE, e.seq))
            batch = sorted(order[over:], key=lambda e: e.seq)
            self.dropped += over
        self._held = batch
        log.error(
            "cannot store in the outbox (%s): %d payload(s) held in memory, %d dropped so far; sent "
            "history given up: %d row(s)",
            exc,
            len(batch),
            self.dropped,
            freed,
        )
