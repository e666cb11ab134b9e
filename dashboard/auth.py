"""Who may log in and what they may see.

Users live in a YAML file that holds only password *hashes* (scrypt from the standard library, with a
random salt per user). Three roles:

- ``store_manager``: the stores listed for them, nothing else, whatever the URL or the session says;
- ``brand_hq``: every store of the brands listed for them;
- ``installer``: node health only (no visitor figures), optionally limited to some brands or stores.

The file looks like this (create hashes with ``showroom dashboard hash-password``)::

    users:
      - username: li.wei
        name: 李伟
        role: store_manager
        stores: [sh-pudong-01]
        password_hash: "scrypt$16384$8$1$...$..."
      - username: hq
        role: brand_hq
        brands: [aurora]
        email: hq@aurora.example   # may also log in through the identity provider

Where the deployment configures an OpenID Connect identity provider (Streamlit's ``[auth]`` secrets),
people may log in there instead; the provider's verified e-mail picks their entry here, which still decides
their role and scope. An entry with an ``email`` and no ``password_hash`` can log in only that way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Role = Literal["store_manager", "brand_hq", "installer"]
ROLES: tuple[Role, ...] = ("store_manager", "brand_hq", "installer")

_SCHEME = "scrypt"
# 16 MiB of memory per check: slow enough to make guessing costly, fast enough for a log-in (~50 ms).
_DEFAULT_N, _DEFAULT_R, _DEFAULT_P = 2**14, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32
_MIN_PASSWORD_CHARS = 8


class UsersFileError(ValueError):
    """The users file is missing, unreadable or invalid; the message names the file and the problem."""


class AccessDeniedError(PermissionError):
    """A user asked for something outside what their role and assignment allow."""


# ---------------------------------------------------------------------------------------------------
# Password hashes
# ---------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = _DEFAULT_N, r: int = _DEFAULT_R, p: int = _DEFAULT_P) -> str:
    """Hash a password for the users file: ``scrypt$N$r$p$salt$key`` (salt and key base64url)."""
    if len(password) < _MIN_PASSWORD_CHARS:
        raise ValueError(f"password must have at least {_MIN_PASSWORD_CHARS} characters, got {len(password)}")
    salt = os.urandom(_SALT_BYTES)
    key = _scrypt(password, salt, n, r, p)
    return f"{_SCHEME}${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES, maxmem=256 * n * r + 2**20
    )


def check_hash_format(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """Parse ``scrypt$N$r$p$salt$key``; raises ValueError saying what is wrong."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise ValueError(
            "password_hash must look like 'scrypt$N$r$p$salt$key' (use `showroom dashboard hash-password`)"
        )
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise ValueError(f"password_hash has a malformed field: {exc}") from exc
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise ValueError(f"password_hash parameters out of range: N={n} (power of 2 >= 1024), r={r}, p={p}")
    if len(salt) < 8 or len(key) != _KEY_BYTES:
        raise ValueError(
            f"password_hash salt ({len(salt)} bytes) or key ({len(key)} bytes) has the wrong size"
        )
    return n, r, p, salt, key


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches the hash; comparison in constant time."""
    n, r, p, salt, key = check_hash_format(encoded)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), key)


# A hash checked for unknown user names, so a log-in takes as long whether or not the name exists.
_DUMMY_HASH = (
    f"{_SCHEME}${_DEFAULT_N}${_DEFAULT_R}${_DEFAULT_P}${_b64(b'0' * _SALT_BYTES)}${_b64(b'0' * _KEY_BYTES)}"
)


# ---------------------------------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------------------------------


class _UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$", description="Log-in name.")
    name: str | None = Field(None, max_length=100, description="Display name; the username when absent.")
    role: Role
    password_hash: str | None = Field(
        None, description="From `showroom dashboard hash-password`; never the password."
    )
    email: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+$",
        max_length=254,
        description="The identity provider's e-mail for this person (log-in through the provider).",
    )
    stores: list[str] = Field(
        default_factory=list, description="Store ids (store_manager; installer: optional)."
    )
    brands: list[str] = Field(default_factory=list, description="Brand ids (brand_hq; installer: optional).")
    language: Literal["en", "zh"] = Field("en", description="Language shown after log-in.")

    @model_validator(mode="after")
    def _check(self) -> _UserEntry:
        if self.password_hash is None and self.email is None:
            raise ValueError("needs a 'password_hash', an 'email' (identity provider log-in), or both")
        if self.password_hash is not None:
            check_hash_format(self.password_hash)
        if self.role == "store_manager" and not self.stores:
            raise ValueError("a store_manager needs at least one store in 'stores'")
        if self.role == "store_manager" and self.brands:
            raise ValueError("a store_manager is assigned stores, not brands: remove 'brands'")
        if self.role == "brand_hq" and not self.brands:
            raise ValueError("a brand_hq user needs at least one brand in 'brands'")
        if self.role == "brand_hq" and self.stores:
            raise ValueError("a brand_hq user sees whole brands: remove 'stores'")
        return self


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[_UserEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> _UsersFile:
        seen: set[str] = set()
        emails: set[str] = set()
        for user in self.users:
            if user.username.lower() in seen:
                raise ValueError(f"username {user.username!r} appears twice")
            seen.add(user.username.lower())
            if user.email is not None:
                if user.email.lower() in emails:
                    raise ValueError(f"email {user.email!r} appears twice")
                emails.add(user.email.lower())
        return self


@dataclass(frozen=True)
class User:
    """A logged-in person. Holds no password material beyond what the users file holds."""

    username: str
    name: str
    role: Role
    stores: frozenset[str]
    brands: frozenset[str]
    language: str
    password_hash: str | None
    email: str | None = None

    def can_see_store(self, store_id: str, brand: str | None) -> bool:
        """Whether this user may see visitor figures (or, for an installer, nodes) of a store."""
        if self.role == "store_manager":
            return store_id in self.stores
        if self.role == "brand_hq":
            return brand is not None and brand in self.brands
        # Installer: unrestricted unless limited to some stores or brands.
        if not self.stores and not self.brands:
            return True
        return store_id in self.stores or (brand is not None and brand in self.brands)

    @property
    def sees_visitor_figures(self) -> bool:
        return self.role in ("store_manager", "brand_hq")

    def visible_stores(self, brand_of: Mapping[str, str | None]) -> list[str]:
        """The store ids (from `brand_of`, store id -> brand) this user may see, sorted."""
        return sorted(s for s, brand in brand_of.items() if self.can_see_store(s, brand))


def load_users(path: Path) -> dict[str, User]:
    """Read and validate a users file; keys are lower-case usernames."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsersFileError(f"{path}: cannot read users file: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise UsersFileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        parsed = _UsersFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise UsersFileError(f"{path}: {problems}") from exc
    return {
        e.username.lower(): User(
            username=e.username,
            name=e.name or e.username,
            role=e.role,
            stores=frozenset(e.stores),
            brands=frozenset(e.brands),
            language=e.language,
            password_hash=e.password_hash,
            email=e.email,
        )
        for e in parsed.users
    }


def authenticate(users: Mapping[str, User], username: str, password: str) -> User | None:
    """The user when name and password match, else None (same work done for unknown names)."""
    user = users.get(username.strip().lower())
    if user is None or user.password_hash is None:
        verify_password(password, _DUMMY_HASH)
        return None
    return user if verify_password(password, user.password_hash) else None


def user_for_identity(users: Mapping[str, User], identity: Mapping[str, object]) -> User | None:
    """The users-file entry of a person the identity provider vouched for: matched on the provider's
    e-mail (case-insensitive); None when there is none, or the provider says the e-mail is unverified."""
    email = identity.get("email")
    if not isinstance(email, str) or not email or identity.get("email_verified") is False:
        return None
    wanted = email.strip().lower()
    return next((u for u in users.values() if u.email is not None and u.email.lower() == wanted), None)


def users_yaml(entries: Iterable[Mapping[str, object]]) -> str:
    """A users file's text for the given entries (used by set-up scripts and tests)."""
    return yaml.safe_dump({"users": [dict(e) for e in entries]}, allow_unicode=True, sort_keys=False)
