"""Where the MQTT service's batches are validated and stored: in its own thread, or in a child process.

The MQTT client (paho, pure Python) costs about as much CPU per message as validating and storing it, and
both hold the GIL, so one process does one or the other at a time. `ProcessWriter` moves the ingest pipeline
into a child process that owns the database connection: the MQTT process only receives, hands each batch
over a pipe (topics, payloads and receipt times, pickled as a whole) and acknowledges it once the child
reports it committed. The two halves then use two cores and the service keeps pace with a bare subscriber.
`InlineWriter` runs the same pipeline on the calling thread (tests, embedding, one-core boxes).

Both answer batches in the order they were submitted, and a batch's result arrives only after its
transaction committed (or its payloads were quarantined): the acknowledgement-after-commit rule holds.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import signal
import sys
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

from aggregator.ingest import BatchResult, Ingestor, Message
from aggregator.storage import open_storage
from edge.events import DEFAULT_WINDOW, TimeWindow

log = logging.getLogger(__name__)

Raw = tuple[bytes, bytes, float]
"""One received message as the network thread keeps it: topic bytes, payload, receipt time (epoch s)."""


class WriterDiedError(RuntimeError):
    """The writer process ended while batches were in its hands; they were not acknowledged to the broker,
    which delivers them again to the next session."""


class BatchWriter(Protocol):
    depth: int
    """How many batches may be in flight at once (submitted, result not yet taken)."""

    def submit(self, batch: list[Raw]) -> None: ...

    def result(self, timeout_s: float | None) -> BatchResult | None:
        """The result of the oldest batch in flight, waiting up to `timeout_s` (None: until it is done);
        None if it is not done yet."""
        ...

    def idle(self) -> None:
        """Called when nothing arrived for a while: time to refresh rollups."""
        ...

    def close(self) -> None:
        """Finish: refresh rollups and release the storage. Every submitted result must have been taken."""
        ...


def to_messages(batch: list[Raw]) -> list[Message]:
    """The batch as the ingester takes it. Receipt times are kept to the millisecond, the stored
    resolution; messages received in the same millisecond (a busy inbox holds dozens) share one `datetime`,
    which the ingester then formats once."""
    out: list[Message] = []
    last_ms = -1
    received_at = datetime.fromtimestamp(0, UTC)
    for topic, payload, received in batch:
        ms = int(received * 1000)
        if ms != last_ms:
            last_ms, received_at = ms, datetime.fromtimestamp(ms / 1000, UTC)
        # An invalid UTF-8 topic is kept (replacement characters) and quarantined as such by the ingester.
        out.append(Message(topic.decode("utf-8", errors="replace"), payload, received_at, "mqtt"))
    return out


class InlineWriter:
    """The ingest pipeline on the caller's thread: `result` does the work."""

    depth = 1

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self._queued: deque[list[Raw]] = deque()

    def submit(self, batch: list[Raw]) -> None:
        self._queued.append(batch)

    def result(self, timeout_s: float | None) -> BatchResult | None:
        return self.ingestor.ingest_safe(to_messages(self._queued.popleft()))

    def idle(self) -> None:
        if self.ingestor.pending:
            self.ingestor.refresh_pending()

    def close(self) -> None:
        self.ingestor.refresh_pending()


@dataclass(frozen=True)
class _Stop:
    pass


_READY = "ready"


def _serve(
    conn: Connection,
    db_path: str,
    refresh_interval_s: float,
    time_window: TimeWindow,
    log_level: int,
    log_format: tuple[str | None, str | None],
) -> None:
    """The child process: ingest each batch received on `conn`, answer its result, until told to stop or
    the parent goes away. Signals are the parent's business: a Ctrl-C in a terminal reaches the whole
    process group, and the child must finish its batch and drain rather than die mid-transaction."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    handler = logging.StreamHandler(sys.stderr)
    fmt, datefmt = log_format
    handler.setFormatter(logging.Formatter(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level)
    try:
        ingestor = Ingestor(
            open_storage(db_path), refresh_interval_s=refresh_interval_s, time_window=time_window
        )
    except Exception as exc:  # reported to the parent, which raises it where the service is built
        conn.send(f"{type(exc).__name__}: {exc}")
        conn.close()
        return
    conn.send(_READY)
    try:
        while True:
            if not conn.poll(0.5):
                if ingestor.pending:
                    ingestor.refresh_pending()
                continue
            try:
                item = conn.recv()
            except EOFError:  # the parent is gone; what it did not acknowledge will be redelivered
                break
            if isinstance(item, _Stop):
                break
            conn.send(ingestor.ingest_safe(to_messages(item)))
    finally:
        ingestor.refresh_pending()
        ingestor.storage.close()
        conn.close()


def _logging_of_this_process() -> tuple[int, tuple[str | None, str | None]]:
    """The root logger's level and its first handler's format and date format, for the child to log the
    same way. The strings, not the formatter: a formatter may hold what cannot be pickled to a spawned
    process (a terminal writer, say)."""
    root = logging.getLogger()
    formatter = root.handlers[0].formatter if root.handlers else None
    if formatter is None:
        return root.getEffectiveLevel(), (None, None)
    return root.getEffectiveLevel(), (formatter._fmt, formatter.datefmt)


class ProcessWriter:
    """The ingest pipeline in a child process that owns the database at `db_path` (a path or URL)."""

    depth = 2

    def __init__(
        self, db_path: str | Path, refresh_interval_s: float = 1.0, time_window: TimeWindow = DEFAULT_WINDOW
    ) -> None:
        """`time_window`: how far from its receipt a payload's timestamps may lie (`Ingestor`)."""
        # spawn, not fork: the parent runs paho's network thread, and a forked copy of a threaded process
        # may inherit a held lock.
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve,
            args=(child_conn, str(db_path), refresh_interval_s, time_window, *_logging_of_this_process()),
            name="showroom-aggregator-writer",
            daemon=True,
        )
        self._process.start()
        child_conn.close()
        self._in_flight = 0
        try:
            answer = self._conn.recv() if self._conn.poll(120) else "no answer within 120 s"
        except EOFError:
            self._process.join(5)
            answer = f"it exited with code {self._process.exitcode}"
        if answer != _READY:
            self.close()
            raise WriterDiedError(f"the writer process could not open the database {db_path}: {answer}")

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def submit(self, batch: list[Raw]) -> None:
        try:
            self._conn.send(batch)
        except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
            raise self._died() from exc
        self._in_flight += 1

    def result(self, timeout_s: float | None) -> BatchResult | None:
        try:
            if timeout_s is not None and not self._conn.poll(timeout_s):
                return None
            result = self._conn.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError) as exc:
            raise self._died() from exc
        self._in_flight -= 1
        if not isinstance(result, BatchResult):
            raise TypeError(f"writer process answered {type(result).__name__}, not a BatchResult")
        return result

    def idle(self) -> None:
        """The child refreshes rollups on its own when its pipe is quiet."""

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError, OSError):
            self._conn.send(_Stop())
        self._process.join(60)
        if self._process.is_alive():
            log.error("writer process did not stop within 60 s; terminating it")
            self._process.terminate()
            self._process.join(5)
        with contextlib.suppress(OSError):
            self._conn.close()

    def _died(self) -> WriterDiedError:
        self._process.join(1)
        return WriterDiedError(
            f"the aggregator's writer process (pid {self._process.pid}) exited with code "
            f"{self._process.exitcode} holding {self._in_flight} unacknowledged batch(es); "
            "the broker will deliver them again"
        )
