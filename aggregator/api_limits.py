"""What one client can hold of the HTTP API server (kept apart so the CLI reads the defaults cheaply)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiLimits:
    """`header_timeout_s`: a connection that has not sent a whole request by then is closed;
    `request_timeout_s`: a request running longer is answered 503; `limit_concurrency`: connections served
    at once (more are answered 503)."""

    header_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    limit_concurrency: int = 1000
