"""`showroom hardware broker-config` and `showroom hardware provision`: the broker's accounts and who may
use which topic.

The broker folder B holds everything the broker needs, written 0600 in a 0700 folder:

- `mosquitto.conf`: authenticated listeners only (`allow_anonymous false`), persistence, bounded packets
  and queues, `use_username_as_clientid` (an account cannot take over another account's session);
- `passwd`: one PBKDF2-SHA512 hash per account, never a password;
- `acl`: per account, the topics it may read and write (see `acl_entry`);
- `accounts.yaml`: which account is whose (role, store, node), from which `acl` is written;
- `aggregator.yaml` and `aggregator.password`: the aggregator's account, for `showroom aggregator run
  --account B/aggregator.yaml`.

A node's account is `node-{store}-{node}`. It may write its own topics, `showroom/v1/{store}/{node}/+`
(events, heat, heartbeat, status, the commissioning request and its hand-overs), and read its commissioning
reply `showroom/v1/{store}/{node}/commission/reply` and the hand-overs of its own store's boxes,
`showroom/v1/{store}/+/handover`. The aggregator may read `showroom/v1/#` (its shared
subscription included) and write only commissioning replies. Nothing is granted to anonymous clients.

Re-running either command keeps existing accounts and passwords; `--rotate` issues a new one. Mosquitto
reads `passwd` and `acl` again on SIGHUP: `--reload-pid` / `--pid-file` send it, otherwise the command
says to (`kill -HUP <pid>`).
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import ConfigError, parse_config
from edge.events import ID_PATTERN, TOPIC_ROOT
from edge.mqtt_common import BrokerAddress
from edge.strict_yaml import YamlFileError, load_yaml_file
from hardware.mosquitto import (
    AclEntry,
    AclRule,
    BrokerSettings,
    MosquittoFileError,
    TlsListener,
    hash_password,
    make_private_dir,
    new_password,
    pid_from_file,
    read_listener,
    read_password_file,
    reload,
    render_acl,
    render_conf,
    render_password_file,
    verify_password,
    write_private,
)

log = logging.getLogger(__name__)

CONF_FILE = "mosquitto.conf"
ACCOUNTS_FILE = "accounts.yaml"
AGGREGATOR_FILE = "aggregator.yaml"
AGGREGATOR_PASSWORD_FILE = "aggregator.password"
AGGREGATOR_USER = "aggregator"
DEFAULT_SHARE_GROUP = "showroom-aggregator"
NODE_CONFIG_FILE = "node.yaml"
NODE_PASSWORD_FILE = "node.password"
_ID_RE = re.compile(ID_PATTERN)
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

Role = Literal["aggregator", "node"]


class ProvisionError(click.ClickException):
    """Something the installer must fix; the message names the file, account or value."""


# ---------------------------------------------------------------------------------------------------
# Accounts and their topics
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """One broker account: the aggregator's, or a node's (then with its store and node ids)."""

    username: str
    role: Role
    store_id: str | None = None
    node_id: str | None = None

    def as_yaml(self) -> dict[str, str]:
        data = {"username": self.username, "role": self.role}
        if self.store_id is not None and self.node_id is not None:
            data |= {"store_id": self.store_id, "node_id": self.node_id}
        return data


def node_username(store_id: str, node_id: str) -> str:
    return f"node-{store_id}-{node_id}"


def acl_entry(account: Account, share_group: str) -> AclEntry:
    """The topics an account may use (Mosquitto denies everything not listed)."""
    rules: tuple[AclRule, ...]
    if account.role == "aggregator":
        rules = (
            AclRule("read", f"{TOPIC_ROOT}/#"),
            AclRule("read", f"$share/{share_group}/{TOPIC_ROOT}/#"),
            AclRule("write", f"{TOPIC_ROOT}/+/+/commission/reply"),
            AclRule("write", f"{TOPIC_ROOT}/+/+/replay"),
        )
        return AclEntry(
            account.username,
            "the aggregator: reads every store, answers commissioning, asks nodes to replay gaps",
            rules,
        )
    prefix = f"{TOPIC_ROOT}/{account.store_id}/{account.node_id}"
    rules = (
        AclRule("write", f"{prefix}/+"),
        AclRule("write", f"{prefix}/replay/reply"),
        AclRule("read", f"{prefix}/commission/reply"),
        AclRule("read", f"{prefix}/replay"),
        # A store served by several boxes: each reads the hand-overs of the boxes of its own store.
        AclRule("read", f"{TOPIC_ROOT}/{account.store_id}/+/handover"),
    )
    return AclEntry(account.username, f"store {account.store_id}, node {account.node_id}", rules)


class BrokerFolder:
    """The broker folder's accounts, password hashes and share group; `save` writes passwd, acl and
    accounts.yaml together."""

    def __init__(self, folder: Path, share_group: str, accounts: list[Account], hashes: dict[str, str]):
        self.folder = folder
        self.share_group = share_group
        self.accounts = {a.username: a for a in accounts}
        self.hashes = hashes

    @property
    def conf(self) -> Path:
        return self.folder / CONF_FILE

    @classmethod
    def load(cls, folder: Path, *, must_exist: bool = True) -> BrokerFolder:
        accounts_file = folder / ACCOUNTS_FILE
        if not accounts_file.exists():
            if must_exist:
                raise ProvisionError(
                    f"{folder} is not a broker folder (no {ACCOUNTS_FILE}); "
                    f"run `showroom hardware broker-config --dir {folder} --port PORT` first"
                )
            return cls(folder, DEFAULT_SHARE_GROUP, [], {})
        try:
            data = yaml.safe_load(accounts_file.read_text(encoding="utf-8")) or {}
            accounts = [Account(**entry) for entry in data.get("accounts", [])]
            hashes = read_password_file(folder / "passwd")
        except (OSError, yaml.YAMLError, TypeError, MosquittoFileError) as exc:
            raise ProvisionError(f"{accounts_file}: cannot read: {exc}") from exc
        return cls(folder, str(data.get("share_group", DEFAULT_SHARE_GROUP)), accounts, hashes)

    def set_password(self, account: Account, password: str) -> None:
        """Add or update the account; its hash is kept when it already matches (no new salt, no change)."""
        self.accounts[account.username] = account
        if not self.has_password(account.username, password):
            self.hashes[account.username] = hash_password(password)

    def remove(self, username: str) -> bool:
        found = self.accounts.pop(username, None) is not None
        return self.hashes.pop(username, None) is not None or found

    def has_password(self, username: str, password: str) -> bool:
        hashed = self.hashes.get(username)
        return hashed is not None and verify_password(password, hashed)

    def save(self) -> None:
        accounts = sorted(self.accounts.values(), key=lambda a: (a.role != "aggregator", a.username))
        header = "# The broker's accounts (no secrets): written by `showroom hardware`, read back by it.\n"
        text = yaml.safe_dump(
            {"share_group": self.share_group, "accounts": [a.as_yaml() for a in accounts]}, sort_keys=False
        )
        with _Writing(self.folder):
            write_private(self.folder / "passwd", render_password_file(self.hashes))
            write_private(self.folder / "acl", render_acl(acl_entry(a, self.share_group) for a in accounts))
            write_private(self.folder / ACCOUNTS_FILE, header + text)


class _Writing:
    """Turns an OSError while writing into a `ProvisionError` naming the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            raise ProvisionError(f"cannot write in {self.folder}: {reason} ({exc.filename or self.folder})")


def _prepare_folder(folder: Path, what: str) -> None:
    """Create `folder` (0700) and check that this account can write in it, before anything is changed."""
    with _Writing(folder):
        make_private_dir(folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, f"{what} is not writable", str(folder))


def _read_password(path: Path) -> str | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return lines[0] if lines else None


def _reload_broker(pid: int | None, pid_file: Path | None) -> str:
    """Send SIGHUP when told which broker; the line to show either way."""
    if pid is None and pid_file is not None:
        try:
            pid = pid_from_file(pid_file)
        except MosquittoFileError as exc:
            raise ProvisionError(str(exc)) from exc
    if pid is None:
        return "the running broker applies this after `kill -HUP <its pid>` (or --reload-pid PID)"
    try:
        reload(pid)
    except ProcessLookupError as exc:
        raise ProvisionError(f"no process {pid} to reload (is the broker running?)") from exc
    except PermissionError as exc:
        raise ProvisionError(f"not allowed to signal process {pid} (run as the broker's user)") from exc
    return f"sent SIGHUP to the broker (pid {pid}): it reads passwd and acl again"


def _identifier(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _ID_RE.match(value):
        raise click.BadParameter(
            f"{value!r} is not a valid id: lower-case letters, digits, '-' and '_', at most 64, "
            "starting with a letter or digit"
        )
    return value


def _default_run_as() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


RELOAD_OPTIONS = [
    click.option("--reload-pid", type=int, help="Send SIGHUP to this broker process after the change."),
    click.option(
        "--pid-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Read the broker's process id from this file (mosquitto's pid_file) and send it SIGHUP.",
    ),
]


def _with_reload_options(command: Any) -> Any:
    for option in reversed(RELOAD_OPTIONS):
        command = option(command)
    return command


# ---------------------------------------------------------------------------------------------------
# broker-config
# ---------------------------------------------------------------------------------------------------


def _tls_listener(tls_dir: Path | None, tls_port: int) -> TlsListener | None:
    if tls_dir is None:
        return None
    files = {name: (tls_dir / name).resolve() for name in ("ca.pem", "server.pem", "server.key")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ProvisionError(f"--tls-dir {tls_dir}: missing {', '.join(missing)} (PEM files of your CA)")
    return TlsListener(tls_port, files["ca.pem"], files["server.pem"], files["server.key"])


def _aggregator_password(broker: BrokerFolder, rotate: bool) -> tuple[str, str]:
    """(password, what happened): the existing one, or a new one for a new account or `--rotate`."""
    path = broker.folder / AGGREGATOR_PASSWORD_FILE
    existing = _read_password(path)
    if AGGREGATOR_USER in broker.hashes and not rotate:
        if existing is None or not broker.has_password(AGGREGATOR_USER, existing):
            raise ProvisionError(
                f"the {AGGREGATOR_USER} account exists but {path} is missing or does not match it; "
                "pass --rotate to give the aggregator a new password"
            )
        return existing, "kept"
    return new_password(), "rotated" if AGGREGATOR_USER in broker.hashes else "created"


def _chown_for_broker(settings: BrokerSettings) -> None:
    # Started as root, Mosquitto drops to `run_as`, which must still read its configuration, passwd and
    # acl (again on every SIGHUP) and write data/.
    if os.geteuid() != 0 or settings.run_as in (None, "root"):
        return
    conf = settings.folder / CONF_FILE
    try:
        for path in (conf, settings.password_file, settings.acl_file, settings.data_dir, settings.folder):
            shutil.chown(path, user=settings.run_as)
    except (LookupError, OSError) as exc:
        raise ProvisionError(f"--broker-user {settings.run_as}: cannot hand the files over: {exc}") from exc


@click.command("broker-config")
@click.option(
    "--dir", "folder", type=click.Path(path_type=Path, file_okay=False), required=True, help="Broker folder."
)
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="MQTT port (no TLS).")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option(
    "--share-group",
    default=DEFAULT_SHARE_GROUP,
    show_default=True,
    help="The aggregators' MQTT 5 shared-subscription group (`aggregator run --share-group`).",
)
@click.option(
    "--tls-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Add a TLS listener using ca.pem, server.pem and server.key from this folder (your CA's files).",
)
@click.option("--tls-port", type=click.IntRange(1, 65535), default=8883, show_default=True)
@click.option(
    "--broker-user",
    default=None,
    help="Account the broker runs as once started as root [default: the current user]; "
    "when run as root, passwd, acl and data/ are handed to it.",
)
@click.option("--rotate", is_flag=True, help="Give the aggregator's account a new password.")
@_with_reload_options
def broker_config_command(
    folder: Path,
    port: int,
    bind: str,
    share_group: str,
    tls_dir: Path | None,
    tls_port: int,
    broker_user: str | None,
    rotate: bool,
    reload_pid: int | None,
    pid_file: Path | None,
) -> None:
    """Write the broker's configuration, password and ACL files in DIR and the aggregator's account.

    Re-running keeps every account and password (--rotate: a new aggregator password) and rewrites
    mosquitto.conf from the options given. Start the broker with `mosquitto -c DIR/mosquitto.conf`.
    """
    if not _GROUP_RE.match(share_group):
        raise click.BadParameter(
            f"{share_group!r}: letters, digits, '-' and '_' only", param_hint="--share-group"
        )
    if tls_dir is not None and tls_port == port:
        raise click.BadParameter(f"the TLS port must differ from --port {port}", param_hint="--tls-port")
    folder = folder.resolve()
    _prepare_folder(folder, "the broker folder")
    broker = BrokerFolder.load(folder, must_exist=False)
    broker.share_group = share_group
    settings = BrokerSettings(
        folder=folder,
        port=port,
        bind=bind,
        run_as=broker_user or _default_run_as(),
        tls=_tls_listener(tls_dir, tls_port),
    )
    password, what = _aggregator_password(broker, rotate)
    broker.set_password(Account(AGGREGATOR_USER, "aggregator"), password)
    host = bind if bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
    account = {
        "username": AGGREGATOR_USER,
        "password_file": AGGREGATOR_PASSWORD_FILE,
        "share_group": share_group,
        "broker_url": f"mqtt://{host}:{port}",
    }
    with _Writing(folder):
        make_private_dir(settings.data_dir)
        write_private(folder / AGGREGATOR_PASSWORD_FILE, password + "\n")
        write_private(folder / AGGREGATOR_FILE, yaml.safe_dump(account, sort_keys=False))
        write_private(folder / CONF_FILE, render_conf(settings))
    broker.save()
    _chown_for_broker(settings)
    nodes = sum(a.role == "node" for a in broker.accounts.values())
    click.echo(f"wrote {folder / CONF_FILE}: listener {bind}:{port}, no anonymous access")
    if settings.tls is not None:
        click.echo(f"  TLS listener {bind}:{settings.tls.port} with {settings.tls.cert_file}")
    click.echo(f"aggregator account {AGGREGATOR_USER!r}: password {what} ({folder / AGGREGATOR_FILE})")
    click.echo(f"{nodes} node account(s) kept")
    click.echo(_reload_broker(reload_pid, pid_file))
    click.echo(f"start the broker: mosquitto -c {folder / CONF_FILE}")


# ---------------------------------------------------------------------------------------------------
# provision
# ---------------------------------------------------------------------------------------------------


def minimal_node_config(store_id: str, node_id: str, timezone: str) -> dict[str, Any]:
    """A node config that validates, with placeholders for what the plan and calibration fill in."""
    return {
        "store_id": store_id,
        "node_id": node_id,
        "timezone": timezone,
        "broker": {},
        "floor": {"size_m": [20, 15]},
        "cameras": [{"id": "cam-1", "source": "rtsp://camera-1.invalid/stream", "fps": 5}],
        "doors": [{"id": "main", "line_m": [[9, 15], [11, 15]], "inside_point_m": [10, 13]}],
    }


def _load_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        data = load_yaml_file(path)  # strict: a key given twice, non-UTF-8 or an oversized file is named
    except YamlFileError as exc:
        raise ProvisionError(f"{what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ProvisionError(f"{what} {path}: expected a mapping, got {type(data).__name__}")
    return data


def _node_document(
    out: Path, template: Path | None, store_id: str, node_id: str, timezone: str | None
) -> dict[str, Any]:
    """The node config to update: `--from`, else the node.yaml already in `out`, else a minimal one."""
    existing = out / NODE_CONFIG_FILE
    if template is not None:
        data = _load_yaml_mapping(template, "--from")
    elif existing.exists():
        data = _load_yaml_mapping(existing, "node config")
        if (data.get("store_id"), data.get("node_id")) != (store_id, node_id):
            raise ProvisionError(
                f"{existing} is for store {data.get('store_id')!r}, node {data.get('node_id')!r}, "
                f"not {store_id!r}, {node_id!r}: use another --out"
            )
    else:
        return minimal_node_config(store_id, node_id, timezone or "UTC")
    if timezone is not None:
        data["timezone"] = timezone
    return data


def _default_broker_url(broker: BrokerFolder) -> str:
    try:
        port, bind = read_listener(broker.conf)
    except MosquittoFileError as exc:
        raise ProvisionError(str(exc)) from exc
    host = bind if bind not in ("0.0.0.0", "::") else socket.getfqdn()
    return f"mqtt://{host}:{port}"


def write_node_config(out: Path, data: dict[str, Any], broker_section: dict[str, Any]) -> Path:
    """Validate and write `out/node.yaml` with the node's broker section; `ProvisionError` if invalid."""
    broker = {k: v for k, v in (data.get("broker") or {}).items() if k not in ("password_env", "client_id")}
    data = {**data, "broker": {**broker, **broker_section}}
    path = out / NODE_CONFIG_FILE
    try:
        parse_config(data, str(path))
    except ConfigError as exc:
        raise ProvisionError(str(exc)) from exc
    header = "# Node configuration; broker credentials written by `showroom hardware provision`.\n"
    with _Writing(out):
        write_private(path, header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return path


def add_to_registry(registry: Path, store_id: str, node_config: Path, store: dict[str, str | None]) -> str:
    """Add the store (if missing) and the node config reference to an aggregator stores registry file."""
    data: dict[str, Any] = _load_yaml_mapping(registry, "--registry") if registry.exists() else {}
    data = {"brands": data.pop("brands", []), "stores": data.pop("stores", []), **data}
    stores: list[dict[str, Any]] = data["stores"]
    reference = os.path.relpath(node_config.resolve(), registry.resolve().parent)
    entry = next((s for s in stores if isinstance(s, dict) and s.get("store_id") == store_id), None)
    if entry is None:
        missing = [f"--{k}" for k in ("brand", "region") if not store.get(k)]
        if missing:
            raise ProvisionError(f"store {store_id!r} is not in {registry}: give {' and '.join(missing)}")
        brand = str(store["brand"])
        if _ID_RE.match(brand) is None:
            raise ProvisionError(f"--brand {brand!r} is not a valid id")
        brands: list[dict[str, Any]] = data["brands"]
        if not any(isinstance(b, dict) and b.get("id") == brand for b in brands):
            brands.append({"id": brand, "name": brand})
        stores.append(
            {
                "store_id": store_id,
                "name": store.get("name") or store_id,
                "brand": brand,
                "region": store["region"],
                "node_configs": [reference],
            }
        )
        what = "added store"
    else:
        configs: list[str] = entry.setdefault("node_configs", [])
        if reference in configs:
            return f"{registry}: store {store_id} already lists {reference}"
        configs.append(reference)
        what = "added node config to store"
    if not data["brands"]:
        del data["brands"]
    with _Writing(registry.parent):
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True)
        registry.write_text(text, encoding="utf-8")
    return f"{registry}: {what} {store_id} ({reference})"


def _check_registry(registry: Path, store_id: str, brand: str | None, region: str | None) -> None:
    """Fail before anything changes when the registry cannot take the store."""
    if registry.exists():
        stores = _load_yaml_mapping(registry, "--registry").get("stores") or []
        if any(isinstance(s, dict) and s.get("store_id") == store_id for s in stores):
            return
    elif not registry.parent.is_dir():
        raise ProvisionError(f"--registry {registry}: folder {registry.parent} does not exist")
    missing = [name for name, value in (("--brand", brand), ("--region", region)) if not value]
    if missing:
        raise ProvisionError(f"store {store_id!r} is not in {registry}: give {' and '.join(missing)}")
    if brand is not None and _ID_RE.match(brand) is None:
        raise ProvisionError(f"--brand {brand!r} is not a valid id")


def _node_password(broker: BrokerFolder, username: str, password_file: Path, rotate: bool) -> tuple[str, str]:
    existing = _read_password(password_file)
    if username in broker.hashes and not rotate:
        if existing is None or not broker.has_password(username, existing):
            raise ProvisionError(
                f"account {username} exists but {password_file} is missing or holds another password; "
                "pass --rotate to give the node a new password (the node then needs the new file)"
            )
        return existing, "kept"
    return new_password(), "rotated" if username in broker.hashes else "created"


def check_login(url: str, username: str, password: str, timeout_s: float = 10.0) -> str | None:
    """Connect to the broker as `username`: None when it accepts, else why not (refusal or no answer)."""
    address = BrokerAddress.parse(url)
    done = threading.Event()
    outcome: list[str | None] = []

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        outcome.append(f"refused: {reason}" if reason.is_failure else None)
        done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    if address.tls:
        client.tls_set()
    client.on_connect = on_connect
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError as exc:
        return f"cannot reach {address.host}:{address.port}: {exc.strerror or exc}"
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return f"no answer from {address.host}:{address.port} within {timeout_s:g} s"
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0]


def _list_accounts(broker: BrokerFolder) -> None:
    click.echo(f"{broker.folder}: share group {broker.share_group}")
    for account in sorted(broker.accounts.values(), key=lambda a: (a.role != "aggregator", a.username)):
        where = (
            f"store {account.store_id}, node {account.node_id}" if account.role == "node" else "all stores"
        )
        state = "" if account.username in broker.hashes else "  (no password: re-run provision)"
        click.echo(f"{account.username}\t{account.role}\t{where}{state}")
    for username in sorted(set(broker.hashes) - set(broker.accounts)):
        click.echo(f"{username}\t(unknown)\tin passwd but granted no topic")


@click.command("provision")
@click.option("--dir", "folder", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Broker folder (written by broker-config).")  # fmt: skip
@click.option("--store", "store_id", callback=_identifier, help="Store id.")
@click.option("--node", "node_id", callback=_identifier, help="Node id.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the node's node.yaml and node.password (copy it to the node).")  # fmt: skip
@click.option("--from", "template", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Node config to start from [default: OUT/node.yaml, else a minimal one].")  # fmt: skip
@click.option("--broker-url", help="How the node reaches the broker [default: from DIR/mosquitto.conf].")
@click.option("--timezone", help="IANA time zone of the store (a new minimal config: UTC).")
@click.option("--registry", type=click.Path(path_type=Path, dir_okay=False),
              help="Aggregator stores registry (YAML): add the store and this node config.")  # fmt: skip
@click.option("--brand", help="Brand id of a store new to the registry.")
@click.option("--region", help="Region of a store new to the registry.")
@click.option("--store-name", help="Display name of a store new to the registry [default: its id].")
@click.option("--rotate", is_flag=True, help="Give the node a new password.")
@click.option("--remove", is_flag=True, help="Delete the node's account (its files in OUT are left).")
@click.option("--list", "list_only", is_flag=True, help="List the broker's accounts (never passwords).")
@click.option("--verify", is_flag=True, help="Then log in to the broker as the node to check the account.")
@_with_reload_options
def provision_command(
    folder: Path,
    store_id: str | None,
    node_id: str | None,
    out: Path | None,
    template: Path | None,
    broker_url: str | None,
    timezone: str | None,
    registry: Path | None,
    brand: str | None,
    region: str | None,
    store_name: str | None,
    rotate: bool,
    remove: bool,
    list_only: bool,
    verify: bool,
    reload_pid: int | None,
    pid_file: Path | None,
) -> None:
    """Give a node its broker account (user node-STORE-NODE, its own topics only) and write OUT/node.yaml
    with its credentials (OUT/node.password, 0600).

    Re-running keeps the node's password; --rotate issues a new one, --remove deletes the account,
    --list shows the accounts. The running broker applies a change on SIGHUP (--reload-pid, --pid-file).
    """
    folder = folder.resolve()
    broker = BrokerFolder.load(folder)
    if list_only:
        _list_accounts(broker)
        return
    if store_id is None or node_id is None:
        raise click.UsageError("--store and --node are required (or --list)")
    username = node_username(store_id, node_id)
    _prepare_folder(folder, "the broker folder")
    if remove:
        if not broker.remove(username):
            raise ProvisionError(f"no account {username} in {folder}")
        broker.save()
        click.echo(f"removed account {username}")
        click.echo(_reload_broker(reload_pid, pid_file))
        return
    if out is None:
        raise click.UsageError("--out is required to provision a node")
    if registry is not None:
        _check_registry(registry, store_id, brand, region)
    _provision_node(
        broker,
        store_id,
        node_id,
        out.resolve(),
        template=template,
        broker_url=broker_url or _default_broker_url(broker),
        timezone=timezone,
        rotate=rotate,
    )
    if registry is not None:
        store = {"brand": brand, "region": region, "name": store_name}
        click.echo(add_to_registry(registry, store_id, out / NODE_CONFIG_FILE, store))
    click.echo(_reload_broker(reload_pid, pid_file))
    if verify:
        password = _read_password(out / NODE_PASSWORD_FILE) or ""
        url = broker_url or _default_broker_url(broker)
        problem = check_login(url, username, password)
        for _ in range(4 if problem and (reload_pid or pid_file) else 0):
            time.sleep(0.5)  # the broker reads the files between two network loops after SIGHUP
            problem = check_login(url, username, password)
            if problem is None:
                break
        if problem is not None:
            raise ProvisionError(
                f"the broker did not accept {username}: {problem}. Has it read the new passwd "
                "(kill -HUP <pid>)? Is --broker-url the broker started from this folder?"
            )
        click.echo(f"the broker accepts {username}")


def _provision_node(
    broker: BrokerFolder,
    store_id: str,
    node_id: str,
    out: Path,
    *,
    template: Path | None,
    broker_url: str,
    timezone: str | None,
    rotate: bool,
) -> None:
    username = node_username(store_id, node_id)
    _prepare_folder(out, "--out")
    password_file = out / NODE_PASSWORD_FILE
    document = _node_document(out, template, store_id, node_id, timezone)
    document |= {"store_id": store_id, "node_id": node_id}
    password, what = _node_password(broker, username, password_file, rotate)
    section = {"url": broker_url, "username": username, "password_file": NODE_PASSWORD_FILE}
    # Validate before any change, so a bad template leaves everything as it was.
    config = write_node_config(out, document, section)
    with _Writing(out):
        write_private(password_file, password + "\n")
    broker.set_password(Account(username, "node", store_id, node_id), password)
    broker.save()
    click.echo(f"account {username}: password {what}; may write showroom/v1/{store_id}/{node_id}/+")
    click.echo(f"wrote {config} (broker {broker_url}) and {password_file}")
