"""API tokens and secret files: what a bearer token may read, tokens kept hashed, secrets kept private.

Tokens made by `showroom aggregator token create` are 256-bit random strings, printed once and stored as
their SHA-256 only, each scoped to one brand or one store. Tokens read from a file (or the environment)
are the operator's own and read every store. Any file holding a secret (token file, TLS key) must be
readable by its owner only (mode 0600 or stricter), or it is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aggregator.storage.base import StorageBackend
from aggregator.storage.records import ApiTokenRecord
from edge.events import ID_PATTERN, format_ts

TOKEN_PREFIX = "srv_"
MIN_TOKEN_CHARS = 16
_ID_RE = re.compile(ID_PATTERN)


class SecretFileError(ValueError):
    """A secret file that cannot be used: missing, unreadable, readable by others, or empty."""


@dataclass(frozen=True)
class Scope:
    """What a token reads: one brand's stores, one store, or (neither) every store."""

    brand: str | None = None
    store: str | None = None

    def allows(self, store_id: str, brand: str) -> bool:
        if self.store is not None:
            return store_id == self.store
        if self.brand is not None:
            return brand == self.brand
        return True

    def __str__(self) -> str:
        if self.store is not None:
            return f"store {self.store}"
        if self.brand is not None:
            return f"brand {self.brand}"
        return "every store"


EVERY_STORE = Scope()


def token_hash(token: str) -> str:
    """The SHA-256 (hex) a token is kept as. Tokens are random and long, so no slow hash is needed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_secret_file(path: Path) -> list[str]:
    """The non-empty lines of a secret file that only its owner can read; `SecretFileError` otherwise."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise SecretFileError(f"{path}: not a regular file")
    if mode & 0o077:
        raise SecretFileError(
            f"{path}: mode {stat.S_IMODE(mode):04o} lets others read it; make it 0600 (chmod 600 {path})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"{path}: cannot read: {exc}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SecretFileError(f"{path}: empty")
    return lines


def create_token(storage: StorageBackend, scope: Scope, note: str = "") -> str:
    """A new token for `scope` (a brand or a store), stored hashed; the token itself is returned once."""
    if (scope.brand is None) == (scope.store is None):
        raise ValueError("a token is scoped to exactly one brand or one store")
    name = scope.brand if scope.brand is not None else scope.store
    if name is None or not _ID_RE.match(name):
        raise ValueError(f"{name!r} is not a brand or store id ({ID_PATTERN})")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with storage.transaction():
        storage.insert_api_token(
            ApiTokenRecord(
                token_sha256=token_hash(token),
                brand_id=scope.brand,
                store_id=scope.store,
                note=note[:200],
                created_at=format_ts(datetime.now(UTC)),
            )
        )
    return token


class TokenBook:
    """Resolves a presented bearer token to its `Scope`: the operator's tokens (every store) first, then
    the scoped tokens in storage. Only hashes are kept in memory and compared."""

    def __init__(self, operator_tokens: Iterable[str] = ()) -> None:
        tokens = list(operator_tokens)
        short = [t for t in tokens if len(t) < MIN_TOKEN_CHARS]
        if short:
            raise ValueError(f"{len(short)} token(s) shorter than {MIN_TOKEN_CHARS} characters")
        self._operator = [token_hash(t).encode() for t in tokens]

    def scope_of(self, token: str, storage: StorageBackend) -> Scope | None:
        digest = token_hash(token)
        if any(hmac.compare_digest(digest.encode(), h) for h in self._operator):
            return EVERY_STORE
        found = storage.api_token(digest)
        if found is None:
            return None
        return Scope(brand=found.brand_id, store=found.store_id)
