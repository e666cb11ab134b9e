"""Python's cyclic garbage collector paused around the reads that build figures for thousands of stores.

A league of 2,000 stores allocates some 100,000 short-lived objects (rows, per-store sums, entries), none
in a reference cycle: reference counting frees every one. While they live, the cyclic collector promotes
them and, every second report or so, scans the whole process heap (every loaded module and the store
registry: 120,000 objects in a bare process, more in the dashboard's), 55-90 ms a time on the reference
machine, which set the p95 of the HQ league report. Paused for the duration of such a read, the collector
finds those objects freed when it resumes.

The pause is process-wide (the collector has no per-thread switch); nested and concurrent pauses resume
it once, when the last ends, and only if it was running before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pause:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.resume = False


_PAUSE = _Pause()


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (reference counting still frees what is no longer used)."""
    with _PAUSE.lock:
        if _PAUSE.depth == 0:
            _PAUSE.resume = gc.isenabled()
            gc.disable()
        _PAUSE.depth += 1
    try:
        yield
    finally:
        with _PAUSE.lock:
            _PAUSE.depth -= 1
            if _PAUSE.depth == 0 and _PAUSE.resume:
                gc.enable()
