"""Mosquitto's files, written by the installer: password hashes, the ACL, the broker configuration.

Password entries use Mosquitto's own PBKDF2-SHA512 format (`user:$7$iterations$salt$hash`, what
`mosquitto_passwd` writes), computed here so that a password never appears on a command line (where other
users of the machine could read it in the process list). Every file is written whole, atomically (a
temporary file beside it, then a rename), with mode 0600: a broker reloading it never reads half a file.
Mosquitto reads its password and ACL files again on SIGHUP (`reload`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HASH_ITERATIONS = 1000
"""PBKDF2 rounds per password entry (mosquitto_passwd uses 101; the passwords here are random anyway)."""
SALT_BYTES = 12
PASSWORD_BYTES = 24
"""Random bytes per generated password (32 URL-safe characters)."""

SECRET_FILE_MODE = 0o600
SECRET_DIR_MODE = 0o700


class MosquittoFileError(ValueError):
    """A password or ACL file that cannot be read or written; the message names the file."""


def new_password() -> str:
    """A random password: 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, *, iterations: int = HASH_ITERATIONS, salt: bytes | None = None) -> str:
    """The `$7$...` PBKDF2-SHA512 hash Mosquitto 2 checks a password against."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True when `password` is the one `hashed` (a `$7$` entry) was made from."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(digest, expected)


def write_private(path: Path, text: str, mode: int = SECRET_FILE_MODE) -> None:
    """Write `text` to `path` atomically, readable by its owner only (the temporary file is too).

    A file that exists keeps its owner when root rewrites it (the broker's account must still read it).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(mode)  # the umask may have taken bits away; never added any
        if os.geteuid() == 0 and path.exists():
            owner = path.stat()
            os.chown(tmp, owner.st_uid, owner.st_gid)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) if missing; the folder itself ends up 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(SECRET_DIR_MODE)


def read_password_file(path: Path) -> dict[str, str]:
    """User name -> `$7$` hash, in file order; an absent file is empty."""
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith("$"):
            raise MosquittoFileError(f"{path}, line {number}: not a 'user:$hash' entry")
        entries[user] = hashed
    return entries


def render_password_file(entries: dict[str, str]) -> str:
    return "".join(f"{user}:{hashed}\n" for user, hashed in entries.items())


@dataclass(frozen=True)
class AclRule:
    """One `topic read|write|readwrite FILTER` line."""

    access: str
    topic_filter: str


@dataclass(frozen=True)
class AclEntry:
    """One account's rules; `comment` says whose account it is."""

    username: str
    comment: str
    rules: tuple[AclRule, ...]


def render_acl(entries: Iterable[AclEntry]) -> str:
    """Mosquitto's ACL file: nothing for anonymous clients (no rule before the first `user` line)."""
    lines = [
        "# Written by `showroom hardware broker-config` / `showroom hardware provision`: re-run them rather",
        "# than editing this file. An account may use only the topics listed under its `user` line.",
        "",
    ]
    for entry in entries:
        lines += [f"# {entry.comment}", f"user {entry.username}"]
        lines += [f"topic {rule.access} {rule.topic_filter}" for rule in entry.rules]
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class TlsListener:
    """A second listener with TLS: the port and the server's certificate files (PEM)."""

    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class BrokerSettings:
    """What `mosquitto.conf` says: where the broker listens, where its files are, its limits."""

    folder: Path
    port: int
    bind: str = "127.0.0.1"
    run_as: str | None = None
    tls: TlsListener | None = None
    max_packet_bytes: int = 1_048_576
    max_inflight_messages: int = 100
    max_queued_messages: int = 100_000
    max_connections: int = 1000
    persistent_client_expiration: str = "14d"

    @property
    def password_file(self) -> Path:
        return self.folder / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.folder / "acl"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"


def _listener_security(settings: BrokerSettings) -> list[str]:
    # per_listener_settings: these bind to the listener line above them.
    return [
        "allow_anonymous false",
        f"password_file {settings.password_file}",
        f"acl_file {settings.acl_file}",
        # The client id is the account's user name: nobody can take over another account's session.
        "use_username_as_clientid true",
        f"max_connections {settings.max_connections}",
    ]


def render_conf(settings: BrokerSettings) -> str:
    """The broker configuration: authenticated listeners only, persistence on, bounded packets and queues."""
    lines = [
        "# Written by `showroom hardware broker-config`; re-run it rather than editing this file.",
        "per_listener_settings true",
        "",
        "# Sessions and queued messages survive a restart.",
        "persistence true",
        f"persistence_location {settings.data_dir}/",
        "autosave_interval 60",
        f"persistent_client_expiration {settings.persistent_client_expiration}",
        "",
        "# Limits: no packet above max_packet_size; queued messages per offline session are bounded.",
        f"max_packet_size {settings.max_packet_bytes}",
        f"max_inflight_messages {settings.max_inflight_messages}",
        f"max_queued_messages {settings.max_queued_messages}",
        "",
        "connection_messages true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    if settings.run_as is not None:
        lines += [
            "",
            "# The account the broker runs as once started: it must read passwd and acl.",
            f"user {settings.run_as}",
        ]
    lines += ["", f"listener {settings.port} {settings.bind}", "protocol mqtt", *_listener_security(settings)]
    if settings.tls is not None:
        tls = settings.tls
        lines += [
            "",
            f"listener {tls.port} {settings.bind}",
            "protocol mqtt",
            f"cafile {tls.ca_file}",
            f"certfile {tls.cert_file}",
            f"keyfile {tls.key_file}",
            "tls_version tlsv1.2",
            *_listener_security(settings),
        ]
    return "\n".join(lines) + "\n"


def read_listener(conf: Path) -> tuple[int, str]:
    """(port, bind address) of the first listener in a `mosquitto.conf`."""
    try:
        text = conf.read_text(encoding="utf-8")
    except OSError as exc:
        raise MosquittoFileError(f"{conf}: cannot read: {exc.strerror or exc}") from exc
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "listener" and words[1].isdigit():
            return int(words[1]), words[2] if len(words) > 2 else "0.0.0.0"
    raise MosquittoFileError(f"{conf}: no `listener PORT` line")


def reload(pid: int) -> None:
    """Ask the broker `pid` to read its password and ACL files again (SIGHUP)."""
    os.kill(pid, signal.SIGHUP)


def pid_from_file(path: Path) -> int:
    """The process id a pid file holds; `MosquittoFileError` naming the file when it holds none."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise MosquittoFileError(f"pid file {path}: cannot read: {exc.strerror or exc}") from exc
    if not text.isdigit():
        raise MosquittoFileError(f"pid file {path}: expected a process id, got {text[:20]!r}")
    return int(text)
